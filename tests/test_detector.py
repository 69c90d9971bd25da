"""Detector pipeline: pre-processing, flip merging, run() results/timings, merging, headless output."""
import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from detectors.base_detector import TIME_STATS, keep_top_scores
from detectors.ctdet import CtdetDetector
from detectors.detector_factory import detector_factory
from models.model import create_model, save_model
from models.utils import flip_tensor
from opts import opts
from utils.errors import UserError

torch.set_num_threads(1)
NUM_CLASSES = 3
INFO = SimpleNamespace(default_resolution=[64, 64], num_classes=NUM_CLASSES,
                       mean=np.array([0.4, 0.45, 0.5], np.float32).reshape(1, 1, 3),
                       std=np.array([0.28, 0.27, 0.28], np.float32).reshape(1, 1, 3))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("res_18", {"hm": NUM_CLASSES, "wh": 2, "reg": 2}, 64)
    path = str(tmp_path_factory.mktemp("ckpt") / "model.pth")
    save_model(path, 0, model)
    return path


def make_opt(ckpt, tmp_path, *extra):
    args = ["ctdet", "--arch", "res_18", "--gpus", "-1", "--load_model", ckpt,
            "--exp_root", str(tmp_path / "exp"), "--demo_out_dir", str(tmp_path / "vis"), *extra]
    o = opts()
    opt = o.parse(args)
    opt.dataset = "pascal"  # any dataset with a known class-name table; only used for drawing
    return o.update_dataset_info_and_set_heads(opt, INFO)


def make_image(h=50, w=70, seed=0):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def test_factory_has_all_tasks():
    assert set(detector_factory) == {"ctdet", "exdet", "multi_pose", "ddd", "centernet2"}
    assert detector_factory["ctdet"] is CtdetDetector


def test_pre_process_fix_res(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path))
    images, meta = det.pre_process(make_image(50, 70), 1.0)
    assert images.shape == (1, 3, 64, 64) and images.dtype == torch.float32
    np.testing.assert_allclose(meta["c"], [35.0, 25.0])
    assert meta["s"] == 70.0
    assert (meta["out_height"], meta["out_width"]) == (16, 16)
    images, meta = det.pre_process(make_image(50, 70), 0.5)
    np.testing.assert_allclose(meta["c"], [17.5, 12.5])
    assert meta["s"] == 70.0  # the original image's longest side, whatever the scale


def test_pre_process_keep_res_pads_to_multiple(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path, "--keep_res"))
    images, meta = det.pre_process(make_image(50, 64), 1.0)
    # 50 -> 64, and 64 (already a multiple of 32) -> 96: strictly greater
    assert images.shape == (1, 3, 64, 96)
    np.testing.assert_allclose(meta["c"], [32, 25])
    np.testing.assert_allclose(meta["s"], [96, 64])
    assert (meta["out_height"], meta["out_width"]) == (16, 24)


def test_pre_process_flip_test_appends_mirror(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path, "--flip_test"))
    images, _ = det.pre_process(make_image(), 1.0)
    assert images.shape[0] == 2
    torch.testing.assert_close(images[1], torch.flip(images[0], [2]))


class _FixedNet(torch.nn.Module):
    """Stands in for the network: fixed outputs for a batch of 2 (original + mirrored)."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, x):
        return [{k: v.clone() for k, v in self.outputs.items()}]


def test_process_flip_merges_heat_and_size(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path, "--flip_test", "--K", "5"))
    g = torch.Generator().manual_seed(1)
    raw = {"hm": torch.randn(2, NUM_CLASSES, 16, 16, generator=g), "wh": torch.rand(2, 2, 16, 16, generator=g) * 8,
           "reg": torch.rand(2, 2, 16, 16, generator=g)}
    det.model = _FixedNet(raw)
    _, dets = det.process(torch.zeros(2, 3, 64, 64))
    hm = (raw["hm"][0:1].sigmoid() + flip_tensor(raw["hm"][1:2].sigmoid())) / 2
    assert dets.shape == (1, 5, 6)
    torch.testing.assert_close(dets[0, :, 4], hm.flatten().topk(5).values)
    # top detection: its box width is the merged wh at that peak (reg of the unflipped copy)
    idx = hm.flatten().argmax().item()
    cls, rest = divmod(idx, 256)
    y, x = divmod(rest, 16)
    wh = (raw["wh"][0:1] + flip_tensor(raw["wh"][1:2])) / 2
    assert int(dets[0, 0, 5]) == cls
    torch.testing.assert_close(dets[0, 0, 2] - dets[0, 0, 0], wh[0, 0, y, x])
    torch.testing.assert_close((dets[0, 0, 0] + dets[0, 0, 2]) / 2, x + raw["reg"][0, 0, y, x])


def test_run_returns_results_and_timings(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path))
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, make_image())
    ret = det.run(path)
    assert set(ret) == {"results", *TIME_STATS}
    assert all(isinstance(ret[t], float) and ret[t] >= 0 for t in TIME_STATS)
    assert ret["tot"] >= ret["net"]
    res = ret["results"]
    assert sorted(res) == list(range(1, NUM_CLASSES + 1))
    assert all(r.dtype == np.float32 and r.shape[1] == 5 for r in res.values())
    assert sum(len(r) for r in res.values()) == 100  # single scale, no NMS: exactly K boxes
    # same image as an array gives the same results
    ret2 = det.run(make_image())
    for j in res:
        np.testing.assert_allclose(ret2["results"][j], res[j])


def test_run_accepts_prefetch_dict(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path))
    img = make_image()
    images, meta = det.pre_process(img, 1.0)
    # the layout test.py's DataLoader produces (batch of one around every tensor)
    batch = {"images": {1.0: images[None]}, "image": torch.from_numpy(img)[None],
             "meta": {1.0: {k: torch.as_tensor(np.asarray(v))[None] for k, v in meta.items()}}}
    got = det.run(batch)["results"]
    want = det.run(img)["results"]
    for j in want:
        np.testing.assert_allclose(got[j], want[j], rtol=1e-5, atol=1e-4)


def test_run_missing_image_names_the_file(ckpt, tmp_path):
    det = CtdetDetector(make_opt(ckpt, tmp_path))
    missing = str(tmp_path / "nope.jpg")
    with pytest.raises(UserError, match="nope.jpg"):
        det.run(missing)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError, match="bad.jpg"):
        det.run(str(bad))


def test_keep_top_scores_cuts_over_all_classes():
    rng = np.random.RandomState(0)
    results = {j: np.hstack([rng.rand(60, 4), rng.rand(60, 1)]).astype(np.float32) for j in (1, 2, 3)}
    all_scores = np.sort(np.hstack([r[:, 4] for r in results.values()]))[::-1]
    out = keep_top_scores({k: v.copy() for k, v in results.items()}, 100)
    assert sum(len(r) for r in out.values()) == 100
    assert min(r[:, 4].min() for r in out.values()) == all_scores[99]
    small = {1: results[1][:10]}
    assert len(keep_top_scores(small, 100)[1]) == 10


def test_merge_outputs_multi_scale_uses_soft_nms(ckpt, tmp_path):
    pytest.importorskip("external.nms")
    det = CtdetDetector(make_opt(ckpt, tmp_path, "--test_scales", "0.5,1"))
    box = np.array([[10, 10, 40, 40, 0.9]], np.float32)
    dup = np.array([[11, 10, 41, 40, 0.8]], np.float32)
    far = np.array([[100, 100, 120, 130, 0.7]], np.float32)
    empty = np.zeros((0, 5), np.float32)
    per_scale = [{1: box, 2: far, 3: empty}, {1: dup, 2: empty, 3: empty}]
    res = det.merge_outputs(per_scale)
    assert res[1][0, 4] == pytest.approx(0.9)
    assert res[1][1, 4] < 0.8  # the overlapping box of the other scale is decayed, not kept as is
    assert res[2][0, 4] == pytest.approx(0.7)


def test_headless_show_writes_result_image(ckpt, tmp_path, monkeypatch):
    import utils.debugger as dbg
    no_display = dbg.DisplayProbe()
    no_display.mark_unavailable()
    monkeypatch.setattr(dbg, "PROCESS_DISPLAY", no_display)
    det = CtdetDetector(make_opt(ckpt, tmp_path, "--debug", "2"))
    path = str(tmp_path / "frame.png")
    cv2.imwrite(path, make_image())
    det.run(path)
    written = sorted(os.listdir(tmp_path / "vis"))
    assert written == ["frame_ctdet.png", "frame_out_pred_1.0.png", "frame_pred_hm_1.0.png"]
    assert cv2.imread(str(tmp_path / "vis" / "frame_ctdet.png")).shape == (50, 70, 3)
    assert "ctdet" in det.last_vis


def test_exdet_unmirror_swaps_left_and_right():
    from detectors.exdet import unmirror_extremes
    row = np.array([[2, 1, 8, 9, 0.5, 5, 1, 2, 4, 6, 9, 8, 3, 0]], np.float32)
    out = unmirror_extremes(row, 16)[0]
    assert out[[0, 2]].tolist() == [8, 14]  # box x1, x2
    assert out[[5, 9]].tolist() == [11, 10]  # top and bottom points mirrored
    assert out[[7, 8, 11, 12]].tolist() == [8, 3, 14, 4]  # new left = mirrored right, new right = mirrored left
