"""Post-processing maps output-map detections back through the inverse affine transform."""
import math
import types

import numpy as np
import pytest

from utils.ddd_utils import project_to_image
from utils.post_process import (
    ctdet_post_process,
    ddd_post_process,
    ddd_post_process_2d,
    get_alpha,
    multi_pose_post_process,
)

H = 24  # output map height used below (width W = 32)
W = 32


def _map(pts, c, s):
    """Inverse of the un-rotated test-time warp: output-map pixel -> original pixel."""
    pts = np.asarray(pts, np.float64)
    return np.asarray(c, np.float64) + (pts - np.array([W / 2, H / 2])) * (s / W)


def test_ctdet_post_process_groups_by_class_and_maps_back():
    c, s = np.array([160.0, 100.0], np.float32), 320.0
    dets = np.array([[[1.0, 2.0, 5.0, 6.0, 0.9, 0.0],
                      [10.0, 12.0, 20.0, 22.0, 0.8, 2.0],
                      [3.0, 3.0, 4.0, 4.0, 0.7, 0.0]]], np.float32)
    out = ctdet_post_process(dets.copy(), [c], [s], H, W, 3)
    assert len(out) == 1 and sorted(out[0]) == [1, 2, 3]
    assert out[0][2] == []
    assert len(out[0][1]) == 2 and len(out[0][3]) == 1
    row = np.array(out[0][3][0])
    np.testing.assert_allclose(row[:2], _map([10, 12], c, s), rtol=1e-5)
    np.testing.assert_allclose(row[2:4], _map([20, 22], c, s), rtol=1e-5)
    assert row[4] == pytest.approx(0.8)
    assert [r[4] for r in out[0][1]] == pytest.approx([0.9, 0.7])  # decode order kept


def test_ctdet_post_process_rectangular_scale():
    c, s = np.array([100.0, 50.0], np.float32), np.array([200.0, 100.0], np.float32)
    dets = np.array([[[16.0, 12.0, 32.0, 24.0, 0.5, 0.0]]], np.float32)
    row = ctdet_post_process(dets, [c], [s], H, W, 1)[0][1][0]
    # the x extent of s sets the scale for both axes
    np.testing.assert_allclose(row[:4], [100.0, 50.0, 200.0, 125.0], rtol=1e-5)


def test_multi_pose_post_process():
    rs = np.random.RandomState(0)
    dets = rs.uniform(0, 20, (1, 3, 40)).astype(np.float32)
    c, s = np.array([50.0, 60.0], np.float32), 128.0
    out = multi_pose_post_process(dets.copy(), [c], [s], H, W)
    (key,) = out[0].keys()
    assert key == 1 and isinstance(key, np.int32)
    rows = np.array(out[0][key])
    assert rows.shape == (3, 39)
    np.testing.assert_allclose(rows[:, :4].reshape(-1, 2), _map(dets[0, :, :4].reshape(-1, 2), c, s), rtol=1e-5)
    np.testing.assert_allclose(rows[:, 4], dets[0, :, 4], rtol=1e-6)
    np.testing.assert_allclose(rows[:, 5:].reshape(-1, 2), _map(dets[0, :, 5:39].reshape(-1, 2), c, s), rtol=1e-5)


def test_get_alpha_picks_the_stronger_bin():
    rot = np.array([[0, 2.0, 1.0, 0.0, 0, 1.0, 0.0, 1.0],    # bin 1: atan2(1, 0) - pi/2 = 0
                    [0, -1.0, 0.0, 1.0, 0, 3.0, -1.0, 0.0]],  # bin 2: atan2(-1, 0) + pi/2 = 0
                   np.float32)
    rot[1, 6:8] = [1.0, 1.0]  # bin 2: atan2(1, 1) + pi/2
    np.testing.assert_allclose(get_alpha(rot), [0.0, math.pi / 4 + math.pi / 2], atol=1e-6)


CALIB = np.array([[700.0, 0.0, 600.0, 45.0], [0.0, 700.0, 180.0, -0.3], [0.0, 0.0, 1.0, 0.005]], np.float32)


def _ddd_dets(with_wh=True):
    # [x, y, score, rot(8), depth, dim(3), (w, h), class] in a 32 x 24 output map
    row = [8.0, 12.0, 0.9, 0, 1.0, 1.0, 0.0, 0, 0.0, 0, 0, 20.0, 1.5, 1.6, 3.9]
    row2 = [20.0, 10.0, 0.6, 0, 0.0, 0, 0, 0, 1.0, 1.0, 1.0, 35.0, 1.7, 0.6, 0.8]
    if with_wh:
        row += [4.0, 2.0]
        row2 += [2.0, 6.0]
    return np.array([[row + [0.0], row2 + [2.0]]], np.float32)


def test_ddd_post_process_2d_and_3d():
    opt = types.SimpleNamespace(output_w=W, output_h=H, num_classes=3)
    c, s = np.array([640.0, 192.0], np.float32), np.array([1280, 384], np.int32)
    two_d = ddd_post_process_2d(_ddd_dets().copy(), [c], [s], opt)[0]
    assert sorted(two_d) == [1, 2, 3] and two_d[2].shape == (0, 10)
    r = two_d[1][0]
    np.testing.assert_allclose(r[:2], [320.0, 192.0], rtol=1e-6)  # 40 image pixels per map pixel
    assert r[3] == pytest.approx(0.0, abs=1e-6)  # bin 1: atan2(1, 0) - pi/2
    np.testing.assert_allclose(r[4:8], [20.0, 1.5, 1.6, 3.9])
    np.testing.assert_allclose(r[8:10], _map([4.0, 2.0], c, 1280.0), rtol=1e-6)  # full point transform

    res = ddd_post_process(_ddd_dets().copy(), [c], [s], [CALIB], opt)[0]
    assert res[2].shape == (0,) and res[1].shape == (1, 13) and res[3].shape == (1, 13)
    alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score = res[1][0]
    assert score == pytest.approx(0.9) and (h, w, l) == pytest.approx((1.5, 1.6, 3.9))
    # the 3D centre (bottom centre raised by h/2) projects back onto the detected centre
    centre = np.array([[X, Y - h / 2, Z]], np.float32)
    np.testing.assert_allclose(project_to_image(centre, CALIB)[0], [320.0, 192.0], atol=1e-2)
    assert Z == pytest.approx(20.0 - 0.005)
    assert rot_y == pytest.approx(alpha + math.atan2(320.0 - 600.0, 700.0), abs=1e-5)
    assert [x1, y1, x2, y2] == pytest.approx([320 - r[8] / 2, 192 - r[9] / 2, 320 + r[8] / 2, 192 + r[9] / 2])


def test_ddd_post_process_2d_without_wh():
    opt = types.SimpleNamespace(output_w=W, output_h=H, num_classes=3)
    c, s = np.array([640.0, 192.0], np.float32), np.array([1280, 384], np.int32)
    out = ddd_post_process_2d(_ddd_dets(with_wh=False).copy(), [c], [s], opt)[0]
    assert out[1].shape == (1, 8) and out[3].shape == (1, 8)
    assert out[3][0, 3] == pytest.approx(math.pi / 4 + math.pi / 2, abs=1e-6)
