"""utils.image: gaussian radius and drawing, affine geometry, colour augmentation."""
import random

import numpy as np
import pytest

from utils.image import (
    affine_transform,
    affine_transform_pts,
    color_aug,
    draw_dense_reg,
    draw_msra_gaussian,
    draw_umich_gaussian,
    flip,
    gaussian2D,
    gaussian_radius,
    get_affine_transform,
    msra_sigma,
    transform_preds,
)

EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], np.float32)
EIG_VEC = np.array([[-0.58752847, -0.69563484, 0.41340352], [-0.5832747, 0.00994535, -0.81221408],
                    [-0.56089297, 0.71832671, 0.41158938]], np.float32)


@pytest.mark.parametrize("hw,expected,as_int", [((10, 10), 2.7332, 2), ((20, 40), 7.3559, 7), ((100, 50), 18.3896, 18),
                                                ((3, 3), 0.82, 0), ((128, 128), 34.985, 34), ((7, 30), 3.2069, 3)])
def test_gaussian_radius_values(hw, expected, as_int):
    r = gaussian_radius(hw)
    h, w = hw
    closed = (np.sqrt(1.96 * (h + w) ** 2 + 3.36 * h * w) - 1.4 * (h + w)) / 2
    assert r == pytest.approx(closed, rel=1e-12)
    assert r == pytest.approx(expected, abs=1e-3)
    assert max(0, int(r)) == as_int


def test_gaussian_radius_vectorised_matches_scalar():
    h = np.array([1, 5, 17, 90])
    w = np.array([3, 5, 40, 12])
    np.testing.assert_array_equal(gaussian_radius((h, w)), [gaussian_radius((a, b)) for a, b in zip(h, w)])


def test_gaussian2d_and_umich_kernel():
    g = gaussian2D((5, 5), sigma=5 / 6)
    assert g[2, 2] == 1.0
    np.testing.assert_allclose(g[2], [0.056135, 0.486752, 1, 0.486752, 0.056135], atol=1e-6)
    assert g[0, 0] == pytest.approx(0.003151, abs=1e-6)
    hm = np.zeros((10, 12), np.float32)
    draw_umich_gaussian(hm, np.array([4, 3]), 2)
    assert hm.max() == 1.0 and hm[3, 4] == 1.0
    np.testing.assert_allclose(hm[1:6, 2:7], g.astype(np.float32))
    assert hm.sum() == pytest.approx(g.sum(), rel=1e-6)


def test_umich_clipped_at_border_and_max_merge():
    hm = np.zeros((6, 6), np.float32)
    draw_umich_gaussian(hm, np.array([0, 0]), 2)
    g = gaussian2D((5, 5), sigma=5 / 6)
    np.testing.assert_allclose(hm[:3, :3], g[2:, 2:].astype(np.float32))
    before = hm.copy()
    draw_umich_gaussian(hm, np.array([0, 0]), 2, k=0.5)  # lower peak: nothing changes
    np.testing.assert_array_equal(hm, before)


def test_msra_gaussian():
    hm = np.zeros((20, 20), np.float32)
    draw_msra_gaussian(hm, np.array([10.4, 5.6]), 2)
    assert np.unravel_index(hm.argmax(), hm.shape) == (6, 10)
    assert hm[6, 10] == 1.0
    assert hm[6, 12] == pytest.approx(np.exp(-4 / 8), rel=1e-6)
    assert hm[6, 17] == 0 and hm[6, 16] > 0  # window 3 sigma
    out = np.zeros((5, 5), np.float32)
    draw_msra_gaussian(out, np.array([40, 40]), 2)  # fully outside: untouched
    assert not out.any()
    assert msra_sigma(0) == 1 and msra_sigma(7) == 2 and msra_sigma(20) == 7


def test_dense_reg_writes_where_object_dominates():
    hm = np.zeros((10, 10), np.float32)
    reg = np.zeros((2, 10, 10), np.float32)
    draw_umich_gaussian(hm, np.array([3, 3]), 1)
    draw_dense_reg(reg, hm, np.array([3, 3]), [5.0, 7.0], 1)
    # float64 gaussian >= its float32 copy in hm: true where float32 rounding went down (as the original)
    g = gaussian2D((3, 3), sigma=0.5)
    take = g >= g.astype(np.float32)
    np.testing.assert_array_equal(reg[0, 2:5, 2:5], np.where(take, 5, 0))
    np.testing.assert_array_equal(reg[1, 2:5, 2:5], np.where(take, 7, 0))
    assert reg[0, 3, 3] == 5
    assert reg[:, 6:].sum() == 0
    off = np.zeros((2, 10, 10), np.float32)
    draw_dense_reg(off, np.zeros((10, 10), np.float32), np.array([5, 5]), [1.0, 2.0], 1, is_offset=True)
    assert off[0, 5, 4] == 1 + 1 and off[0, 5, 6] == 1 - 1 and off[1, 4, 5] == 2 + 1


def test_affine_closed_forms():
    c = np.array([320, 240], np.float32)
    np.testing.assert_allclose(get_affine_transform(c, 640, 0, [512, 512]), [[0.8, 0, 0], [0, 0.8, 64]], atol=1e-5)
    np.testing.assert_allclose(get_affine_transform(c, 640, 0, [128, 128], inv=1), [[5, 0, 0], [0, 5, -80]], atol=1e-4)
    np.testing.assert_allclose(get_affine_transform(c, 640, 30, [512, 512]),
                               [[0.69282, 0.4, -61.7025], [-0.4, 0.69282, 217.7231]], atol=1e-3)


@pytest.mark.parametrize("rot", [0, 15, -40])
def test_affine_round_trip(rot):
    c = np.array([200.5, 130.0], np.float32)
    fwd = get_affine_transform(c, 455.3, rot, [128, 96])
    inv = get_affine_transform(c, 455.3, rot, [128, 96], inv=1)
    pts = np.random.RandomState(0).uniform(0, 400, (20, 2)).astype(np.float32)
    there = affine_transform_pts(pts, fwd)
    back = affine_transform_pts(there, inv)
    np.testing.assert_allclose(back, pts, atol=1e-2)
    np.testing.assert_allclose(there[3], affine_transform(pts[3], fwd), rtol=1e-9)
    if rot == 0:
        res = transform_preds(np.concatenate([there, np.ones((20, 1))], 1), c, 455.3, [128, 96])
        np.testing.assert_allclose(res[:, :2], pts, atol=1e-2)
        assert (res[:, 2] == 0).all()


def test_color_aug_determinism_and_rng_use():
    img = np.random.RandomState(5).uniform(0, 1, (8, 9, 3)).astype(np.float32)

    def run(seed):
        rs = np.random.RandomState(seed)
        random.seed(seed)
        x = img.copy()
        color_aug(rs, x, EIG_VAL, EIG_VEC)
        return x, rs

    a, rs_a = run(3)
    b, _ = run(3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, img)
    # exactly three uniforms and three normals are drawn
    ref = np.random.RandomState(3)
    ref.uniform(size=3)
    ref.normal(size=3)
    assert rs_a.uniform() == ref.uniform()


def test_flip():
    x = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(flip(x), x[:, :, ::-1])
    assert flip(x).flags["C_CONTIGUOUS"]
