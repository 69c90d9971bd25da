"""Turn network output maps into detections: heat-map peak NMS, top-K and the per-task decoders.

All decoders expect heat maps that are already sigmoided and return coordinates in output-map units.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.utils import _tranpose_and_gather_feat


def _nms(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Zero every value that is not the maximum of its kernel x kernel neighbourhood (plateaus survive)."""
    pad = (kernel - 1) // 2
    hmax = F.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
    return heat * (hmax == heat).to(heat.dtype)


def _directional_aggregate(heat: torch.Tensor, dim: int, reverse: bool) -> torch.Tensor:
    """Sum of the monotonically rising run that ends at each position, excluding the position itself.

    Walking along `dim` (backwards if `reverse`), each value accumulates its predecessor's running sum
    as long as it is not smaller than that predecessor.
    """
    h = heat.movedim(dim, 0)
    acc = h.clone()
    n = h.shape[0]
    steps = range(n - 2, -1, -1) if reverse else range(1, n)
    prev = 1 if reverse else -1
    for i in steps:
        rising = (h[i] >= h[i + prev]).to(h.dtype)
        acc[i] += acc[i + prev] * rising
    return (acc - h).movedim(0, dim)


def _left_aggregate(heat: torch.Tensor) -> torch.Tensor:
    """Aggregation from the left along each row."""
    return _directional_aggregate(heat, 3, reverse=False)


def _right_aggregate(heat: torch.Tensor) -> torch.Tensor:
    """Aggregation from the right along each row."""
    return _directional_aggregate(heat, 3, reverse=True)


def _top_aggregate(heat: torch.Tensor) -> torch.Tensor:
    """Aggregation from the top along each column."""
    return _directional_aggregate(heat, 2, reverse=False)


def _bottom_aggregate(heat: torch.Tensor) -> torch.Tensor:
    """Aggregation from the bottom along each column."""
    return _directional_aggregate(heat, 2, reverse=True)


def _h_aggregate(heat: torch.Tensor, aggr_weight: float = 0.1) -> torch.Tensor:
    """Heat plus weighted left and right aggregations (used for top/bottom extreme points)."""
    return aggr_weight * _left_aggregate(heat) + aggr_weight * _right_aggregate(heat) + heat


def _v_aggregate(heat: torch.Tensor, aggr_weight: float = 0.1) -> torch.Tensor:
    """Heat plus weighted top and bottom aggregations (used for left/right extreme points)."""
    return aggr_weight * _top_aggregate(heat) + aggr_weight * _bottom_aggregate(heat) + heat


def _topk_channel(scores: torch.Tensor, K: int = 40):
    """Top-K peaks of every channel separately: (scores, flat indices, ys, xs), each B x C x K."""
    batch, cat, height, width = scores.size()
    topk_scores, topk_inds = torch.topk(scores.view(batch, cat, -1), K)
    # row and column of each flat index looked up in coordinate grids rather than divided out: the same
    # integers, and an ONNX export keeps the map size free (a division by a symbolic width does not export)
    rows = torch.arange(height, device=scores.device).view(height, 1).expand(height, width).reshape(-1)
    cols = torch.arange(width, device=scores.device).view(1, width).expand(height, width).reshape(-1)
    topk_ys = rows[topk_inds].float()
    topk_xs = cols[topk_inds].float()
    return topk_scores, topk_inds, topk_ys, topk_xs


def _topk(scores: torch.Tensor, K: int = 40):
    """Top-K peaks over all channels: (scores, flat spatial indices, classes (int32), ys, xs), each B x K."""
    batch = scores.size(0)
    topk_scores, topk_inds, topk_ys, topk_xs = _topk_channel(scores, K)
    # Two stages (per class, then over the C*K survivors) are cheaper than one top-K over C*H*W.
    topk_score, topk_ind = torch.topk(topk_scores.view(batch, -1), K)
    topk_clses = torch.div(topk_ind, K, rounding_mode="floor").int()
    topk_inds = topk_inds.view(batch, -1).gather(1, topk_ind)
    topk_ys = topk_ys.view(batch, -1).gather(1, topk_ind)
    topk_xs = topk_xs.view(batch, -1).gather(1, topk_ind)
    return topk_score, topk_inds, topk_clses, topk_ys, topk_xs


def _refine_centers(xs, ys, reg, inds, batch, K):
    """Add the regressed sub-pixel offset at each peak (or half a pixel without `reg`) -> B x K x 1 each."""
    if reg is not None:
        off = _tranpose_and_gather_feat(reg, inds).view(batch, K, 2)
        return xs.view(batch, K, 1) + off[:, :, 0:1], ys.view(batch, K, 1) + off[:, :, 1:2]
    return xs.view(batch, K, 1) + 0.5, ys.view(batch, K, 1) + 0.5


def _boxes_from_centers(xs, ys, wh):
    """Corner boxes [x1, y1, x2, y2] from centers and sizes (B x K x 4)."""
    half_w = wh[..., 0:1] / 2
    half_h = wh[..., 1:2] / 2
    return torch.cat([xs - half_w, ys - half_h, xs + half_w, ys + half_h], dim=2)


def ctdet_decode(heat, wh, reg=None, cat_spec_wh=False, K=100):
    """CenterNet boxes: B x K x 6 rows [x1, y1, x2, y2, score, class] sorted by score."""
    batch, cat = heat.size(0), heat.size(1)
    heat = _nms(heat)
    scores, inds, clses, ys, xs = _topk(heat, K=K)
    xs, ys = _refine_centers(xs, ys, reg, inds, batch, K)
    wh = _tranpose_and_gather_feat(wh, inds)
    if cat_spec_wh:
        # one (w, h) pair per class: take the pair of the detected class
        pick = clses.view(batch, K, 1, 1).expand(batch, K, 1, 2).long()
        wh = wh.view(batch, K, cat, 2).gather(2, pick).view(batch, K, 2)
    else:
        wh = wh.view(batch, K, 2)
    bboxes = _boxes_from_centers(xs, ys, wh)
    return torch.cat([bboxes, scores.view(batch, K, 1), clses.view(batch, K, 1).float()], dim=2)


def _snap_joints_to_peaks(kps, bboxes, hm_hp, hp_offset, K, thresh=0.1):
    """Replace regressed joints (B x K x J x 2) by the nearest joint-heat-map peak when it is plausible.

    A peak is used unless it lies outside the person's box, scores below `thresh`, or is farther than
    0.3 x the longer box side from the regressed joint.
    """
    batch, num_joints = hm_hp.size(0), hm_hp.size(1)
    hm_hp = _nms(hm_hp)
    hm_score, hm_inds, hm_ys, hm_xs = _topk_channel(hm_hp, K=K)  # B x J x K
    if hp_offset is not None:
        off = _tranpose_and_gather_feat(hp_offset, hm_inds.view(batch, -1)).view(batch, num_joints, K, 2)
        hm_xs = hm_xs + off[..., 0]
        hm_ys = hm_ys + off[..., 1]
    else:
        hm_xs = hm_xs + 0.5
        hm_ys = hm_ys + 0.5
    strong = hm_score > thresh
    hm_score = torch.where(strong, hm_score, torch.full_like(hm_score, -1))
    far = torch.full_like(hm_xs, -10000)
    peaks = torch.stack([torch.where(strong, hm_xs, far), torch.where(strong, hm_ys, far)], dim=-1)  # B x J x K x 2

    reg_kps = kps.permute(0, 2, 1, 3)  # B x J x K(det) x 2
    # distance of every detection's joint to every peak of that joint: B x J x K(det) x K(peak)
    dist = ((reg_kps.unsqueeze(3) - peaks.unsqueeze(2)) ** 2).sum(dim=4) ** 0.5
    min_dist, min_ind = dist.min(dim=3)  # B x J x K(det)
    near_score = hm_score.gather(2, min_ind).unsqueeze(-1)
    near = peaks.gather(2, min_ind.unsqueeze(-1).expand(batch, num_joints, K, 2))

    l, t, r, b = (bboxes[:, :, i].view(batch, 1, K, 1) for i in range(4))
    reject = ((near[..., 0:1] < l) | (near[..., 0:1] > r) | (near[..., 1:2] < t) | (near[..., 1:2] > b)
              | (near_score < thresh) | (min_dist.unsqueeze(-1) > torch.max(b - t, r - l) * 0.3))
    snapped = torch.where(reject, reg_kps, near)
    return snapped.permute(0, 2, 1, 3)


def multi_pose_decode(heat, wh, kps, reg=None, hm_hp=None, hp_offset=None, K=100):
    """Person boxes with joints: B x K x (6 + 2J) rows [x1, y1, x2, y2, score, j0x, j0y, ..., class]."""
    batch = heat.size(0)
    num_joints = kps.shape[1] // 2
    heat = _nms(heat)
    scores, inds, clses, ys, xs = _topk(heat, K=K)

    # joints are regressed relative to the integer peak position (before the center offset)
    joints = _tranpose_and_gather_feat(kps, inds).view(batch, K, num_joints, 2)
    joints = joints + torch.stack([xs, ys], dim=2).view(batch, K, 1, 2)
    xs, ys = _refine_centers(xs, ys, reg, inds, batch, K)
    wh = _tranpose_and_gather_feat(wh, inds).view(batch, K, 2)
    bboxes = _boxes_from_centers(xs, ys, wh)
    if hm_hp is not None:
        joints = _snap_joints_to_peaks(joints, bboxes, hm_hp, hp_offset, K)
    joints = joints.reshape(batch, K, num_joints * 2)
    return torch.cat([bboxes, scores.view(batch, K, 1), joints, clses.view(batch, K, 1).float()], dim=2)


def ddd_decode(heat, rot, depth, dim, wh=None, reg=None, K=40):
    """3D detections: B x K x 18 rows [x, y, score, rot(8), depth, dim(3), w, h, class] (16 without wh)."""
    batch = heat.size(0)
    heat = _nms(heat)
    scores, inds, clses, ys, xs = _topk(heat, K=K)
    xs, ys = _refine_centers(xs, ys, reg, inds, batch, K)
    parts = [xs, ys, scores.view(batch, K, 1),
             _tranpose_and_gather_feat(rot, inds).view(batch, K, 8),
             _tranpose_and_gather_feat(depth, inds).view(batch, K, 1),
             _tranpose_and_gather_feat(dim, inds).view(batch, K, 3)]
    if wh is not None:
        parts.append(_tranpose_and_gather_feat(wh, inds).view(batch, K, 2))
    parts.append(clses.view(batch, K, 1).float())
    return torch.cat(parts, dim=2)


def _extreme_decode(t_heat, l_heat, b_heat, r_heat, ct_heat, regrs, K, scores_thresh, center_thresh,
                    aggr_weight, num_dets, agnostic):
    """Group top/left/bottom/right extreme points into boxes scored with the center heat map (ExtremeNet)."""
    batch, _, height, width = t_heat.size()
    if aggr_weight > 0:
        t_heat = _h_aggregate(t_heat, aggr_weight=aggr_weight)
        l_heat = _v_aggregate(l_heat, aggr_weight=aggr_weight)
        b_heat = _h_aggregate(b_heat, aggr_weight=aggr_weight)
        r_heat = _v_aggregate(r_heat, aggr_weight=aggr_weight)

    peaks = []
    for h in (t_heat, l_heat, b_heat, r_heat):
        h = _nms(h)
        h = torch.where(h > 1, torch.ones_like(h), h)
        peaks.append(_topk(h, K=K))  # (scores, inds, clses, ys, xs), each B x K

    def axis(v, slot):
        """View a B x K tensor along combination axis `slot` of B x K x K x K x K."""
        shape = [batch, 1, 1, 1, 1]
        shape[slot + 1] = K
        return v.view(shape)

    (t_s, t_i, t_c, t_y, t_x), (l_s, l_i, l_c, l_y, l_x), (b_s, b_i, b_c, b_y, b_x), (r_s, r_i, r_c, r_y, r_x) = peaks
    ty, tx, ly, lx = axis(t_y, 0), axis(t_x, 0), axis(l_y, 1), axis(l_x, 1)
    by, bx, ry, rx = axis(b_y, 2), axis(b_x, 2), axis(r_y, 3), axis(r_x, 3)
    full = (batch, K, K, K, K)

    ct_x = ((lx + rx + 0.5) / 2).long()
    ct_y = ((ty + by + 0.5) / 2).long()
    if agnostic:
        ct_map, ct_cls_map = torch.max(ct_heat, dim=1, keepdim=True)
        ct_inds = (ct_y * width + ct_x).expand(full).reshape(batch, -1)
        ct_scores = ct_map.reshape(batch, -1).gather(1, ct_inds)
    else:
        tc = axis(t_c, 0).long()
        ct_inds = (tc * (height * width) + ct_y * width + ct_x).expand(full).reshape(batch, -1)
        ct_scores = ct_heat.reshape(batch, -1).gather(1, ct_inds)
    ct_scores = ct_scores.view(full)

    ts, ls, bs, rs = axis(t_s, 0), axis(l_s, 1), axis(b_s, 2), axis(r_s, 3)
    scores = (ts + ls + bs + rs + 2 * ct_scores) / 6

    low_score = ((ts < scores_thresh) | (ls < scores_thresh) | (bs < scores_thresh) | (rs < scores_thresh)
                 | (ct_scores < center_thresh))
    bad_top = (ty > ly) | (ty > by) | (ty > ry)
    bad_left = (lx > tx) | (lx > bx) | (lx > rx)
    bad_bottom = (by < ty) | (by < ly) | (by < ry)
    bad_right = (rx < tx) | (rx < lx) | (rx < bx)
    # each violated rule costs a full point; the subtraction order is kept for identical rounding
    penalties = [low_score]
    if not agnostic:
        penalties.append((axis(t_c, 0) != axis(l_c, 1)) | (axis(t_c, 0) != axis(b_c, 2))
                         | (axis(t_c, 0) != axis(r_c, 3)))
    penalties += [bad_top, bad_left, bad_bottom, bad_right]
    for p in penalties:
        scores = scores - p.to(scores.dtype)

    scores, inds = torch.topk(scores.reshape(batch, -1), num_dets)
    # unravel the winning combinations into the four per-point top-K slots
    ti = torch.div(inds, K ** 3, rounding_mode="floor")
    li = torch.div(inds, K ** 2, rounding_mode="floor") % K
    bi = torch.div(inds, K, rounding_mode="floor") % K
    ri = inds % K

    if all(r is not None for r in regrs):
        offsets = [_tranpose_and_gather_feat(r, i) for r, i in zip(regrs, (t_i, l_i, b_i, r_i))]  # B x K x 2
        pts = [(x + o[..., 0], y + o[..., 1]) for (x, y), o in zip(((t_x, t_y), (l_x, l_y), (b_x, b_y), (r_x, r_y)),
                                                                    offsets)]
    else:
        pts = [(x + 0.5, y + 0.5) for x, y in ((t_x, t_y), (l_x, l_y), (b_x, b_y), (r_x, r_y))]
    (tX, tY), (lX, lY), (bX, bY), (rX, rY) = [(x.gather(1, sel), y.gather(1, sel))
                                              for (x, y), sel in zip(pts, (ti, li, bi, ri))]

    if agnostic:
        sel_ct_x = ((l_x.gather(1, li) + r_x.gather(1, ri) + 0.5) / 2).long()
        sel_ct_y = ((t_y.gather(1, ti) + b_y.gather(1, bi) + 0.5) / 2).long()
        clses = ct_cls_map.reshape(batch, -1).gather(1, sel_ct_y * width + sel_ct_x).float()
    else:
        clses = t_c.gather(1, ti).float()

    cols = [lX, tY, rX, bY, scores, tX, tY, lX, lY, bX, bY, rX, rY, clses]
    return torch.stack(cols, dim=2)


def exct_decode(t_heat, l_heat, b_heat, r_heat, ct_heat, t_regr=None, l_regr=None, b_regr=None, r_regr=None,
                K=40, scores_thresh=0.1, center_thresh=0.1, aggr_weight=0.0, num_dets=1000):
    """Class-aware extreme-point decoding: B x num_dets x 14 rows [l.x, t.y, r.x, b.y, score, t, l, b, r, class]."""
    return _extreme_decode(t_heat, l_heat, b_heat, r_heat, ct_heat, (t_regr, l_regr, b_regr, r_regr), K,
                           scores_thresh, center_thresh, aggr_weight, num_dets, agnostic=False)


def agnex_ct_decode(t_heat, l_heat, b_heat, r_heat, ct_heat, t_regr=None, l_regr=None, b_regr=None, r_regr=None,
                    K=40, scores_thresh=0.1, center_thresh=0.1, aggr_weight=0.0, num_dets=1000):
    """Class-agnostic extreme-point decoding; the class comes from the strongest center channel."""
    return _extreme_decode(t_heat, l_heat, b_heat, r_heat, ct_heat, (t_regr, l_regr, b_regr, r_regr), K,
                           scores_thresh, center_thresh, aggr_weight, num_dets, agnostic=True)
