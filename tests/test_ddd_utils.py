"""3D box geometry round trips and the oracle-map flood fill."""
import math

import numpy as np
import pytest

from utils.ddd_utils import (
    alpha2rot_y,
    compute_box_3d,
    compute_orientation_3d,
    ddd2locrot,
    ddd2locrot_batch,
    draw_box_3d,
    project_3d_bbox,
    project_to_image,
    rot_y2alpha,
    unproject_2d_to_3d,
)
from utils.oracle_utils import gen_oracle_map

CALIB = np.array([[721.5, 0.0, 609.6, 44.9], [0.0, 721.5, 172.9, 0.2], [0.0, 0.0, 1.0, 0.003]], np.float32)


def test_box_corners_axis_aligned():
    box = compute_box_3d([1.5, 1.6, 4.0], [1.0, 2.0, 10.0], 0.0)
    assert box.shape == (8, 3) and box.dtype == np.float32
    np.testing.assert_allclose(box[0], [3.0, 2.0, 10.8], atol=1e-6)
    np.testing.assert_allclose(box[6], [-1.0, 0.5, 9.2], atol=1e-6)  # top face is h above the bottom
    np.testing.assert_allclose(box.mean(0), [1.0, 2.0 - 0.75, 10.0], atol=1e-6)


def test_box_rotation_and_orientation():
    box = compute_box_3d([1.0, 2.0, 4.0], [0.0, 0.0, 0.0], math.pi / 2)
    # yaw pi/2 turns the length axis (x) into -z
    np.testing.assert_allclose(box[0], [1.0, 0.0, -2.0], atol=1e-6)
    seg = compute_orientation_3d([1.0, 2.0, 4.0], [1.0, 0.0, 5.0], math.pi / 2)
    np.testing.assert_allclose(seg, [[1.0, 0.0, 5.0], [1.0, 0.0, 1.0]], atol=1e-6)


def test_unproject_then_project_is_identity():
    for u, v, depth in [(600.0, 180.0, 10.0), (100.5, 300.2, 35.5), (1200.0, 20.0, 4.2)]:
        pt = unproject_2d_to_3d(np.array([u, v], np.float32), depth, CALIB)
        back = project_to_image(pt.reshape(1, 3), CALIB)[0]
        np.testing.assert_allclose(back, [u, v], atol=1e-3)
        assert pt[2] == pytest.approx(depth - CALIB[2, 3], rel=1e-6)


@pytest.mark.parametrize("alpha", [-3.1, -1.0, 0.0, 0.7, 3.1])
@pytest.mark.parametrize("x", [10.0, 609.0, 1200.0])
def test_alpha_rot_y_round_trip(alpha, x):
    ry = alpha2rot_y(alpha, x, CALIB[0, 2], CALIB[0, 0])
    assert -math.pi <= ry <= math.pi
    assert rot_y2alpha(ry, x, CALIB[0, 2], CALIB[0, 0]) == pytest.approx(alpha, abs=1e-5)


def test_angle_wrap_for_arrays():
    alphas = np.array([3.1, -3.1, 0.0], np.float32)
    xs = np.array([1200.0, 10.0, 609.6], np.float32)
    ry = alpha2rot_y(alphas, xs, CALIB[0, 2], CALIB[0, 0])
    for a, x, r in zip(alphas, xs, ry):
        assert r == pytest.approx(alpha2rot_y(float(a), float(x), CALIB[0, 2], CALIB[0, 0]), abs=1e-5)


def test_ddd2locrot_matches_batch_and_projects_back():
    centers = np.array([[600.0, 180.0], [50.0, 200.0]], np.float32)
    alphas = np.array([0.3, -2.5], np.float32)
    dims = np.array([[1.5, 1.6, 3.9], [1.8, 0.6, 0.9]], np.float32)
    depths = np.array([12.0, 7.0], np.float32)
    locs, rys = ddd2locrot_batch(centers, alphas, dims, depths, CALIB)
    for k in range(2):
        loc, ry = ddd2locrot(centers[k], alphas[k], dims[k], depths[k], CALIB)
        np.testing.assert_allclose(locs[k], loc, rtol=1e-6)
        assert rys[k] == pytest.approx(ry, abs=1e-6)
        # the bottom-centre location raised by h/2 projects onto the 2D centre
        mid = (loc - np.array([0, dims[k, 0] / 2, 0], np.float32)).reshape(1, 3)
        np.testing.assert_allclose(project_to_image(mid, CALIB)[0], centers[k], atol=1e-2)


def test_project_3d_bbox_and_draw():
    corners = project_3d_bbox([1.0, 1.6, 12.0], [1.5, 1.6, 3.9], 0.3, CALIB)
    assert corners.shape == (8, 2)
    img = np.zeros((375, 1242, 3), np.uint8)
    out = draw_box_3d(img, corners, c=(0, 255, 0))
    assert out is img and img[..., 1].sum() > 0 and img[..., 0].sum() == 0


def test_oracle_map_bfs():
    w, h = 5, 3
    feat = np.array([[[1.0, 10.0], [2.0, 20.0], [9.0, 90.0]]], np.float32)  # B x N x D
    ind = np.array([[0 * w + 1, 2 * w + 4, 0]], np.int64)  # the third entry (index 0) is not an object
    out = gen_oracle_map(feat, ind, w, h)
    assert out.shape == (1, 2, h, w)
    want = np.array([[1, 1, 1, 1, 2],
                     [1, 1, 1, 2, 2],
                     [1, 1, 2, 2, 2]], np.float32)
    np.testing.assert_array_equal(out[0, 0], want)
    np.testing.assert_array_equal(out[0, 1], want * 10)
    assert not gen_oracle_map(feat, np.zeros((1, 3), np.int64), w, h).any()  # no objects: all zeros
