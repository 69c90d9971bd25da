"""Cython soft-NMS (external/nms.pyx): decay values by hand, in-place row handling, hard NMS."""
import importlib
import importlib.util
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "lib")


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    """The compiled module; built into a temporary folder when `make setup` has not been run."""
    try:
        return importlib.import_module("external.nms")
    except ImportError:
        pass
    build = tmp_path_factory.mktemp("nms_build")
    for name in ("nms.pyx", "setup.py"):
        shutil.copy(os.path.join(LIB, "external", name), build / name)
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=build,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail("building external/nms.pyx failed:\n" + proc.stderr[-2000:])
    so = next(p for p in os.listdir(build) if p.startswith("nms.") and p.endswith(".so"))
    spec = importlib.util.spec_from_file_location("nms", build / so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BIG = [0.0, 0.0, 9.0, 9.0]  # 10 x 10 pixels with the inclusive convention
HALF = [0.0, 0.0, 9.0, 4.0]  # 10 x 5, IoU with BIG = 50 / 100 = 0.5
FAR = [100.0, 100.0, 120.0, 120.0]


def _boxes(*rows):
    return np.array([list(b) + [s] + list(extra) for b, s, *extra in rows], np.float32)


def test_linear_and_gaussian_decay(ext):
    lin = _boxes((BIG, 0.9), (HALF, 0.8), (FAR, 0.7))
    assert ext.soft_nms(lin, Nt=0.3, method=1) == [0, 1, 2]
    np.testing.assert_allclose(lin[:, 4], [0.9, 0.7, 0.8 * 0.5], rtol=1e-6)  # re-sorted after the decay
    below = _boxes((BIG, 0.9), (HALF, 0.8))
    ext.soft_nms(below, Nt=0.6, method=1)  # IoU 0.5 <= Nt: untouched
    np.testing.assert_allclose(below[:, 4], [0.9, 0.8], rtol=1e-6)

    gauss = _boxes((HALF, 0.8), (BIG, 0.9))
    assert ext.soft_nms(gauss, sigma=0.5, Nt=0.5, method=2) == [0, 1]
    np.testing.assert_allclose(gauss[0], BIG + [0.9], rtol=1e-6)  # the maximum moved to the front
    assert gauss[1, 4] == pytest.approx(0.8 * math.exp(-0.25 / 0.5), rel=1e-6)


def test_hard_method_discards_with_stale_tail(ext):
    boxes = _boxes((BIG, 0.9), (HALF, 0.8), (FAR, 0.7))
    keep = ext.soft_nms(boxes, Nt=0.3, method=0)
    assert keep == [0, 1]
    np.testing.assert_allclose(boxes[:2], _boxes((BIG, 0.9), (FAR, 0.7)))
    np.testing.assert_allclose(boxes[2], FAR + [0.7])  # the discarded row was overwritten by the last one


def test_discard_copies_last_row(ext):
    A, B, D = BIG, FAR, [200.0, 200.0, 210.0, 210.0]
    boxes = _boxes((A, 0.9), (A, 0.0015), (B, 0.5), (A, 0.8), (D, 0.0005))
    assert ext.soft_nms(boxes, Nt=0.5, method=2) == [0, 1, 2, 3]
    np.testing.assert_allclose(boxes[:, 4], [0.9, 0.5, 0.8 * math.exp(-2), 0.0005, 0.0005], rtol=1e-5)
    np.testing.assert_allclose(boxes[3, :4], D)
    np.testing.assert_allclose(boxes[4, :4], D)


def test_soft_nms_39_carries_keypoints(ext):
    kp = [np.full(34, v, np.float32) for v in (1.0, 2.0, 3.0)]
    boxes = _boxes((FAR, 0.3, *kp[0]), (BIG, 0.9, *kp[1]), ([300.0, 300.0, 310.0, 310.0], 0.6, *kp[2]))
    assert boxes.shape == (3, 39)
    assert ext.soft_nms_39(boxes, Nt=0.5, method=2) == [0, 1, 2]
    np.testing.assert_allclose(boxes[:, 4], [0.9, 0.6, 0.3])
    np.testing.assert_allclose(boxes[:, 5:].mean(1), [2.0, 3.0, 1.0])  # each row kept its own joints


def test_soft_nms_merge_averages_suppressed_boxes(ext):
    other = [2.0, 0.0, 11.0, 9.0]  # 10 x 10 shifted by 2: IoU = 80 / 120
    boxes = _boxes((BIG, 0.9, 1.0, 1.0), (other, 0.8, 1.0, 1.0))
    ext.soft_nms_merge(boxes, sigma=0.5, Nt=0.5, method=2, weight_exp=1)
    ov = 80.0 / 120.0
    mw = 1 - math.exp(-ov * ov / 0.5)
    assert boxes[0, 0] == pytest.approx((0 + 2 * mw) / (1 + mw), rel=1e-5)
    assert boxes[0, 2] == pytest.approx((9 + 11 * mw) / (1 + mw), rel=1e-5)
    assert boxes[1, 4] == pytest.approx(0.8 * (1 - mw), rel=1e-5)


def test_hard_nms(ext):
    dets = _boxes((HALF, 0.8), (BIG, 0.9), (FAR, 0.7))
    assert ext.nms(dets, 0.5) == [1, 2]  # IoU 0.5 >= 0.5 suppresses
    assert ext.nms(dets, 0.6) == [1, 0, 2]
    assert ext.nms(np.zeros((0, 5), np.float32), 0.5) == []


def test_rejects_float64(ext):
    with pytest.raises(ValueError):
        ext.soft_nms(np.zeros((2, 5)))


def test_require_nms_reports_missing_build(monkeypatch):
    import external
    from utils.errors import UserError

    monkeypatch.setitem(sys.modules, "external.nms", None)  # makes the import fail
    if hasattr(external, "nms"):
        monkeypatch.delattr(external, "nms")
    with pytest.raises(UserError, match="make setup"):
        external.require_nms("soft_nms")
