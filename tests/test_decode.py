"""Heat-map NMS, top-K and the per-task decoders on small hand-built maps."""
import itertools

import numpy as np
import pytest
import torch

from models.decode import (
    _h_aggregate,
    _left_aggregate,
    _nms,
    _topk,
    _topk_channel,
    _v_aggregate,
    agnex_ct_decode,
    ctdet_decode,
    ddd_decode,
    exct_decode,
    multi_pose_decode,
)
from models.utils import (
    _gather_feat,
    _sigmoid,
    _tranpose_and_gather_feat,
    flip_lr,
    flip_lr_off,
    flip_merge,
    flip_merge_lr,
    flip_tensor,
)

torch.set_num_threads(1)


def _heat(b, c, h, w, peaks, base=0.01):
    """Map of `base` with the given (batch, class, y, x, score) peaks."""
    heat = torch.full((b, c, h, w), base)
    for bi, ci, y, x, s in peaks:
        heat[bi, ci, y, x] = s
    return heat


def test_sigmoid_is_in_place_and_clamped():
    x = torch.tensor([-100.0, 0.0, 100.0])
    y = _sigmoid(x)
    assert torch.allclose(y, torch.tensor([1e-4, 0.5, 1 - 1e-4]))
    assert x[1] == 0.5  # the sigmoid itself was applied to the input tensor


def test_gather_helpers():
    feat = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # B x C x H x W
    ind = torch.tensor([[3, 0], [1, 1]])
    got = _tranpose_and_gather_feat(feat, ind)
    assert got.shape == (2, 2, 3)
    assert got[0, 0].tolist() == feat[0, :, 1, 1].tolist()
    assert got[1, 1].tolist() == feat[1, :, 0, 1].tolist()
    rows = torch.arange(12.0).view(1, 4, 3)
    masked = _gather_feat(rows, torch.tensor([[2, 0]]), mask=torch.tensor([[True, False]]))
    assert masked.tolist() == [[6.0, 7.0, 8.0]]


def test_nms_keeps_local_maxima_and_plateaus():
    heat = torch.zeros(1, 1, 5, 5)
    heat[0, 0, 1, 1] = 0.9
    heat[0, 0, 1, 2] = 0.5  # neighbour of a stronger peak: suppressed
    heat[0, 0, 4, 4] = 0.7
    heat[0, 0, 3, 0] = heat[0, 0, 3, 1] = 0.3  # plateau: both survive
    out = _nms(heat)
    kept = {tuple(p) for p in torch.nonzero(out[0, 0]).tolist()}
    assert kept == {(1, 1), (4, 4), (3, 0), (3, 1)}
    assert out[0, 0, 1, 1] == pytest.approx(0.9)


def test_topk_returns_classes_and_coordinates():
    heat = _heat(1, 3, 4, 6, [(0, 2, 3, 5, 0.9), (0, 0, 1, 2, 0.8), (0, 1, 0, 0, 0.7)], base=0.0)
    scores, inds, clses, ys, xs = _topk(heat, K=3)
    assert scores[0].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert clses.dtype == torch.int32 and clses[0].tolist() == [2, 0, 1]
    assert ys[0].tolist() == [3.0, 1.0, 0.0] and xs[0].tolist() == [5.0, 2.0, 0.0]
    assert inds[0].tolist() == [3 * 6 + 5, 1 * 6 + 2, 0]
    s, i, y, x = _topk_channel(heat, K=1)
    assert s.shape == (1, 3, 1) and y[0, :, 0].tolist() == [1.0, 0.0, 3.0]


def test_ctdet_decode_recovers_boxes():
    h, w = 16, 20
    heat = _heat(1, 2, h, w, [(0, 1, 4, 6, 0.95), (0, 0, 10, 15, 0.8)])
    wh = torch.zeros(1, 2, h, w)
    wh[0, :, 4, 6] = torch.tensor([4.0, 2.0])
    wh[0, :, 10, 15] = torch.tensor([6.0, 8.0])
    reg = torch.zeros(1, 2, h, w)
    reg[0, :, 4, 6] = torch.tensor([0.25, 0.75])
    dets = ctdet_decode(heat, wh, reg=reg, K=5)
    assert dets.shape == (1, 5, 6)
    assert dets[0, 0].tolist() == pytest.approx([6.25 - 2, 4.75 - 1, 6.25 + 2, 4.75 + 1, 0.95, 1.0])
    assert dets[0, 1].tolist() == pytest.approx([15 - 3, 10 - 4, 15 + 3, 10 + 4, 0.8, 0.0])
    assert (dets[0, :, 4][1:] <= dets[0, :, 4][:-1]).all()

    no_reg = ctdet_decode(heat, wh, reg=None, K=2)
    assert no_reg[0, 0, :4].tolist() == pytest.approx([6.5 - 2, 4.5 - 1, 6.5 + 2, 4.5 + 1])


def test_ctdet_decode_cat_spec_wh_picks_class_pair():
    h, w = 8, 8
    heat = _heat(1, 3, h, w, [(0, 2, 3, 3, 0.9)])
    wh = torch.ones(1, 6, h, w)
    wh[0, 4:6, 3, 3] = torch.tensor([2.0, 6.0])  # the pair of class 2
    dets = ctdet_decode(heat, wh, cat_spec_wh=True, K=1)
    assert dets[0, 0].tolist() == pytest.approx([3.5 - 1, 3.5 - 3, 3.5 + 1, 3.5 + 3, 0.9, 2.0])


def test_multi_pose_decode_joint_snapping():
    h, w, J = 24, 24, 2
    heat = _heat(1, 1, h, w, [(0, 0, 10, 10, 0.9)])
    wh = torch.zeros(1, 2, h, w)
    wh[0, :, 10, 10] = torch.tensor([10.0, 10.0])
    kps = torch.zeros(1, 2 * J, h, w)
    kps[0, :, 10, 10] = torch.tensor([-2.0, -2.0, 3.0, 3.0])  # joints at (8, 8) and (13, 13)
    plain = multi_pose_decode(heat, wh, kps, K=1)
    assert plain.shape == (1, 1, 5 + 2 * J + 1)
    assert plain[0, 0, 5:9].tolist() == pytest.approx([8.0, 8.0, 13.0, 13.0])

    hm_hp = torch.zeros(1, J, h, w)
    hm_hp[0, 0, 7, 9] = 0.8  # near joint 0 and inside the box: used
    hm_hp[0, 1, 2, 2] = 0.9  # outside the box: ignored
    snapped = multi_pose_decode(heat, wh, kps, hm_hp=hm_hp, K=1)
    assert snapped[0, 0, 5:9].tolist() == pytest.approx([9.5, 7.5, 13.0, 13.0])
    hp_offset = torch.zeros(1, 2, h, w)
    hp_offset[0, :, 7, 9] = torch.tensor([0.1, 0.2])
    off = multi_pose_decode(heat, wh, kps, hm_hp=hm_hp, hp_offset=hp_offset, K=1)
    assert off[0, 0, 5:7].tolist() == pytest.approx([9.1, 7.2])
    weak = hm_hp.clone()
    weak[0, 0, 7, 9] = 0.05  # below the 0.1 threshold: keep the regression
    assert multi_pose_decode(heat, wh, kps, hm_hp=weak, K=1)[0, 0, 5:7].tolist() == pytest.approx([8.0, 8.0])


def test_ddd_decode_layout():
    h, w = 6, 10
    heat = _heat(1, 3, h, w, [(0, 1, 2, 7, 0.9)])
    rot = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, h, w).contiguous()
    dep = torch.full((1, 1, h, w), 12.0)
    dim = torch.tensor([1.5, 1.6, 3.9]).view(1, 3, 1, 1).expand(1, 3, h, w).contiguous()
    wh = torch.full((1, 2, h, w), 5.0)
    dets = ddd_decode(heat, rot, dep, dim, wh=wh, K=2)
    assert dets.shape == (1, 2, 18)
    assert dets[0, 0].tolist() == pytest.approx([7.5, 2.5, 0.9, *range(8), 12.0, 1.5, 1.6, 3.9, 5.0, 5.0, 1.0])
    assert ddd_decode(heat, rot, dep, dim, K=2).shape == (1, 2, 16)


def _ref_aggregate_left(row):
    out = np.zeros_like(row)
    acc = row[0]
    for i in range(1, len(row)):
        acc = row[i] + (acc if row[i] >= row[i - 1] else 0.0)
        out[i] = acc - row[i]
    return out


def test_aggregations():
    rs = np.random.RandomState(0)
    heat = torch.from_numpy(rs.uniform(0, 1, (1, 2, 5, 7)).astype(np.float32))
    left = _left_aggregate(heat).numpy()
    for c, y in itertools.product(range(2), range(5)):
        np.testing.assert_allclose(left[0, c, y], _ref_aggregate_left(heat[0, c, y].numpy()), rtol=1e-5, atol=1e-6)
    # right = left of the mirrored row; vertical = horizontal of the transposed map
    right = _h_aggregate(heat, 1.0) - heat - _left_aggregate(heat)
    np.testing.assert_allclose(right.numpy(), flip_tensor(_left_aggregate(flip_tensor(heat))).numpy(), atol=1e-5)
    v = _v_aggregate(heat, 0.5)
    ht = _h_aggregate(heat.transpose(2, 3), 0.5).transpose(2, 3)
    np.testing.assert_allclose(v.numpy(), ht.numpy(), atol=1e-6)


def _brute_extreme(heats, ct, K, scores_thresh, center_thresh, agnostic):
    """Plain-loop reference of the extreme-point grouping (no regression offsets)."""
    w = heats[0].shape[-1]
    tops = []
    for hm in heats:
        hm = _nms(hm)[0].numpy()
        flat = hm.reshape(-1)
        order = np.argsort(-flat, kind="stable")[:K]
        tops.append([(flat[o], o // (hm.shape[1] * w), (o % (hm.shape[1] * w)) // w, o % w) for o in order])
    ct = ct[0].numpy()
    rows = []
    for t, l, b, r in itertools.product(*tops):
        cx, cy = int((l[3] + r[3] + 0.5) / 2), int((t[2] + b[2] + 0.5) / 2)
        if agnostic:
            cs, cls = ct[:, cy, cx].max(), ct[:, cy, cx].argmax()
        else:
            cs, cls = ct[t[1], cy, cx], t[1]
        s = (t[0] + l[0] + b[0] + r[0] + 2 * cs) / 6
        s -= min(t[0], l[0], b[0], r[0]) < scores_thresh or cs < center_thresh
        if not agnostic:
            s -= not (t[1] == l[1] == b[1] == r[1])
        s -= t[2] > min(l[2], b[2], r[2])
        s -= l[3] > min(t[3], b[3], r[3])
        s -= b[2] < max(t[2], l[2], r[2])
        s -= r[3] < max(t[3], l[3], b[3])
        rows.append([l[3] + .5, t[2] + .5, r[3] + .5, b[2] + .5, s, t[3] + .5, t[2] + .5, l[3] + .5, l[2] + .5,
                     b[3] + .5, b[2] + .5, r[3] + .5, r[2] + .5, cls])
    rows = np.array(rows, np.float64)
    return rows[np.argsort(-rows[:, 4], kind="stable")]


@pytest.mark.parametrize("agnostic", [False, True])
def test_extreme_decoders_match_brute_force(agnostic):
    rs = np.random.RandomState(3)
    b, c, h, w, K = 1, 2, 9, 9, 3

    def rnd():
        return torch.from_numpy(rs.permutation(b * c * h * w).reshape(b, c, h, w).astype(np.float32) / (b * c * h * w))

    heats = [rnd() for _ in range(4)]
    ct = rnd()
    fn = agnex_ct_decode if agnostic else exct_decode
    got = fn(*[x.clone() for x in heats], ct, K=K, scores_thresh=0.3, center_thresh=0.2, num_dets=K ** 4)[0].numpy()
    want = _brute_extreme(heats, ct, K, 0.3, 0.2, agnostic)
    assert got.shape == (K ** 4, 14)
    np.testing.assert_allclose(got[:, 4], want[:, 4], atol=1e-5)
    key = np.lexsort(np.round(got, 4).T[::-1])
    key_w = np.lexsort(np.round(want, 4).T[::-1])
    np.testing.assert_allclose(got[key], want[key_w], atol=1e-4)


def test_extreme_decode_offsets_and_aggregation_run():
    rs = np.random.RandomState(5)
    maps = [torch.from_numpy(rs.uniform(0, 1, (1, 2, 8, 8)).astype(np.float32)) for _ in range(5)]
    regs = [torch.full((1, 2, 8, 8), 0.25) for _ in range(4)]
    dets = exct_decode(*maps, *regs, K=6, aggr_weight=0.1, num_dets=100)
    base = exct_decode(*maps, K=6, aggr_weight=0.1, num_dets=100)
    assert dets.shape == (1, 100, 14)
    np.testing.assert_allclose((dets[..., :4] - base[..., :4]).numpy(), -0.25, atol=1e-6)


def test_flip_helpers():
    x = torch.arange(2 * 4 * 1 * 3, dtype=torch.float32).view(2, 4, 1, 3)
    assert flip_tensor(x)[0, 0, 0].tolist() == [2.0, 1.0, 0.0]
    swapped = flip_lr(x, [[0, 1], [2, 3]])
    assert swapped[0, 0].tolist() == flip_tensor(x)[0, 1].tolist()
    off = flip_lr_off(x, [[0, 1]])  # 2 joints x (dx, dy)
    assert off[0, 0, 0].tolist() == [-8.0, -7.0, -6.0]  # dx of joint 1, mirrored and negated
    assert off[0, 1, 0].tolist() == [11.0, 10.0, 9.0]  # dy of joint 1, mirrored
    assert off[0, 3, 0].tolist() == [5.0, 4.0, 3.0]
    y = torch.stack([x[0], flip_tensor(x[0:1])[0]])
    assert torch.equal(flip_merge(y), x[0:1])
    z = torch.stack([x[0], flip_lr(x[0:1], [[0, 1]])[0]])
    assert torch.allclose(flip_merge_lr(z, [[0, 1]]), x[0:1])
