"""numba kernels of the KITTI object evaluation: box overlaps and the per-class precision / AOS curves.

Boxes are rows of BOX_COLS values: x1, y1, x2, y2 (image box), t1, t2, t3 (location, camera frame),
h, w, l (dimensions) and ry (rotation around the camera Y axis). Every image's boxes are stored back to
back; `*_off` arrays give each image's first row (length n_images + 1).
"""
from __future__ import annotations

import numba
import numpy as np

BOX_COLS = 11
METRIC_IMAGE, METRIC_GROUND, METRIC_3D = 0, 1, 2
N_SAMPLE_PTS = 41
NO_DETECTION = -10000000.0


@numba.njit(cache=True)
def overlap_ratio(inter: float, area_a: float, area_b: float, criterion: int) -> float:
    """The intersection as IoU (criterion -1), or over the first area (0) / the second area (1)."""
    if criterion == -1:
        return inter / (area_a + area_b - inter)
    if criterion == 0:
        return inter / area_a
    return inter / area_b


@numba.njit(cache=True)
def image_overlap(a: np.ndarray, b: np.ndarray, criterion: int) -> float:
    """2D box overlap: IoU (criterion -1), or the intersection over a's area (0) / b's area (1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return overlap_ratio(w * h, (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]), criterion)


@numba.njit(cache=True)
def ground_corners(box: np.ndarray) -> np.ndarray:
    """The four bird's-eye-view corners (x, z) of a box, in the devkit's order (clockwise for l, w > 0)."""
    c, s = np.cos(box[10]), np.sin(box[10])
    hl, hw = box[9] / 2.0, box[8] / 2.0
    xs = (hl, hl, -hl, -hl)
    zs = (hw, -hw, -hw, hw)
    out = np.empty((4, 2))
    for k in range(4):
        out[k, 0] = c * xs[k] + s * zs[k] + box[4]
        out[k, 1] = -s * xs[k] + c * zs[k] + box[6]
    return out


@numba.njit(cache=True)
def polygon_area(poly: np.ndarray, n: int) -> float:
    """Unsigned area of the first n vertices of a polygon (shoelace formula)."""
    acc = 0.0
    for i in range(n):
        j = (i + 1) % n
        acc += poly[i, 0] * poly[j, 1] - poly[j, 0] * poly[i, 1]
    return abs(acc) / 2.0


@numba.njit(cache=True)
def convex_intersection_area(p: np.ndarray, q: np.ndarray) -> float:
    """Area of the intersection of two convex quadrilaterals (Sutherland-Hodgman clipping of p by q)."""
    orient = 0.0
    for i in range(4):
        j = (i + 1) % 4
        orient += q[i, 0] * q[j, 1] - q[j, 0] * q[i, 1]
    if orient == 0.0:
        return 0.0
    sign = 1.0 if orient > 0 else -1.0
    cur = np.empty((16, 2))
    nxt = np.empty((16, 2))
    n = 4
    for i in range(4):
        cur[i, 0] = p[i, 0]
        cur[i, 1] = p[i, 1]
    for e in range(4):
        ax, ay = q[e, 0], q[e, 1]
        bx, by = q[(e + 1) % 4, 0], q[(e + 1) % 4, 1]
        m = 0
        for i in range(n):
            px, py = cur[i, 0], cur[i, 1]
            rx, ry = cur[(i + 1) % n, 0], cur[(i + 1) % n, 1]
            dp = sign * ((bx - ax) * (py - ay) - (by - ay) * (px - ax))
            dr = sign * ((bx - ax) * (ry - ay) - (by - ay) * (rx - ax))
            if dp >= 0:
                nxt[m, 0] = px
                nxt[m, 1] = py
                m += 1
            if (dp >= 0) != (dr >= 0):
                t = dp / (dp - dr)
                nxt[m, 0] = px + t * (rx - px)
                nxt[m, 1] = py + t * (ry - py)
                m += 1
        n = m
        if n < 3:
            return 0.0
        for i in range(n):
            cur[i, 0] = nxt[i, 0]
            cur[i, 1] = nxt[i, 1]
    return polygon_area(cur, n)


@numba.njit(cache=True)
def ground_overlap(det: np.ndarray, gt: np.ndarray, criterion: int) -> float:
    """Bird's-eye-view overlap of two rotated boxes: IoU (-1) or intersection over det's (0) / gt's (1) area."""
    dp = ground_corners(det)
    gp = ground_corners(gt)
    inter = convex_intersection_area(dp, gp)
    if inter <= 0.0:
        return 0.0
    return overlap_ratio(inter, polygon_area(dp, 4), polygon_area(gp, 4), criterion)


@numba.njit(cache=True)
def box3d_overlap(det: np.ndarray, gt: np.ndarray, criterion: int) -> float:
    """3D overlap: BEV intersection times the shared height range (y points down, t2 = bottom)."""
    inter = convex_intersection_area(ground_corners(det), ground_corners(gt))
    ymax = min(det[5], gt[5])
    ymin = max(det[5] - det[7], gt[5] - gt[7])
    inter_vol = inter * max(0.0, ymax - ymin)
    if inter_vol == 0.0:
        return 0.0
    return overlap_ratio(inter_vol, det[7] * det[8] * det[9], gt[7] * gt[8] * gt[9], criterion)


@numba.njit(cache=True)
def box_overlap(metric: int, det: np.ndarray, gt: np.ndarray, criterion: int) -> float:
    """Overlap of one detection with one ground-truth box under the given metric."""
    if metric == METRIC_IMAGE:
        return image_overlap(det[0:4], gt[0:4], criterion)
    if metric == METRIC_GROUND:
        return ground_overlap(det, gt, criterion)
    return box3d_overlap(det, gt, criterion)


@numba.njit(cache=True)
def all_overlaps(metric: int, gts: np.ndarray, dets: np.ndarray, gt_off: np.ndarray, det_off: np.ndarray,
                 ov_off: np.ndarray, criterion: int) -> np.ndarray:
    """Per image, the gt x det overlap matrix (row-major), all images concatenated (ov_off gives the starts)."""
    out = np.zeros(ov_off[-1])
    for im in range(len(gt_off) - 1):
        g0, g1 = gt_off[im], gt_off[im + 1]
        d0, d1 = det_off[im], det_off[im + 1]
        nd = d1 - d0
        base = ov_off[im]
        for i in range(g0, g1):
            for j in range(d0, d1):
                out[base + (i - g0) * nd + (j - d0)] = box_overlap(metric, dets[j], gts[i], criterion)
    return out


@numba.njit(cache=True)
def compute_statistics(ov: np.ndarray, dc_ov: np.ndarray, is_dc: np.ndarray, ignored_gt: np.ndarray,
                       ignored_det: np.ndarray, scores: np.ndarray, gt_alpha: np.ndarray, det_alpha: np.ndarray,
                       min_overlap: float, compute_fp: bool, compute_aos: bool, thresh: float,
                       tp_scores: np.ndarray):
    """One image's matching as the devkit does it; returns (tp, fp, fn, similarity, n_tp_scores).

    ov / dc_ov: gt x det overlaps (IoU / intersection over the detection); tp_scores receives the
    scores of true positives (used for the recall thresholds when compute_fp is False).
    """
    n_gt, n_det = ov.shape
    assigned = np.zeros(n_det, dtype=np.bool_)
    below = np.zeros(n_det, dtype=np.bool_)
    if compute_fp:
        for j in range(n_det):
            if scores[j] < thresh:
                below[j] = True
    tp = 0
    fp = 0
    fn = 0
    n_scores = 0
    delta = np.empty(n_gt)
    n_delta = 0
    for i in range(n_gt):
        if ignored_gt[i] == -1:
            continue
        det_idx = -1
        valid = NO_DETECTION
        max_overlap = 0.0
        assigned_ignored = False
        for j in range(n_det):
            if ignored_det[j] == -1 or assigned[j] or below[j]:
                continue
            o = ov[i, j]
            if not compute_fp and o > min_overlap and scores[j] > valid:
                det_idx = j
                valid = scores[j]
            elif compute_fp and o > min_overlap and (o > max_overlap or assigned_ignored) and ignored_det[j] == 0:
                max_overlap = o
                det_idx = j
                valid = 1.0
                assigned_ignored = False
            elif compute_fp and o > min_overlap and valid == NO_DETECTION and ignored_det[j] == 1:
                det_idx = j
                valid = 1.0
                assigned_ignored = True
        if valid == NO_DETECTION and ignored_gt[i] == 0:
            fn += 1
        elif valid != NO_DETECTION and (ignored_gt[i] == 1 or ignored_det[det_idx] == 1):
            assigned[det_idx] = True
        elif valid != NO_DETECTION:
            tp += 1
            tp_scores[n_scores] = scores[det_idx]
            n_scores += 1
            if compute_aos:
                delta[n_delta] = gt_alpha[i] - det_alpha[det_idx]
                n_delta += 1
            assigned[det_idx] = True
    similarity = 0.0
    if compute_fp:
        for j in range(n_det):
            if not (assigned[j] or ignored_det[j] == -1 or ignored_det[j] == 1 or below[j]):
                fp += 1
        n_stuff = 0
        for i in range(n_gt):
            if not is_dc[i]:
                continue
            for j in range(n_det):
                if assigned[j] or ignored_det[j] == -1 or ignored_det[j] == 1 or below[j]:
                    continue
                if dc_ov[i, j] > min_overlap:
                    assigned[j] = True
                    n_stuff += 1
        fp -= n_stuff
        if compute_aos:
            if tp > 0 or fp > 0:
                for k in range(n_delta):
                    similarity += (1.0 + np.cos(delta[k])) / 2.0
            else:
                similarity = -1.0
    return tp, fp, fn, similarity, n_scores


@numba.njit(cache=True)
def get_thresholds(scores: np.ndarray, n_gt: int) -> np.ndarray:
    """Scores at which the recall passes each of the N_SAMPLE_PTS evenly spaced recall steps."""
    v = np.sort(scores)[::-1]
    out = np.empty(len(v))
    m = 0
    current = 0.0
    for i in range(len(v)):
        left = (i + 1) / n_gt
        right = (i + 2) / n_gt if i < len(v) - 1 else left
        if (right - current) < (current - left) and i < len(v) - 1:
            continue
        out[m] = v[i]
        m += 1
        current += 1.0 / (N_SAMPLE_PTS - 1.0)
    return out[:m]


@numba.njit(cache=True)
def eval_class(ov: np.ndarray, dc_ov: np.ndarray, ov_off: np.ndarray, gt_off: np.ndarray, det_off: np.ndarray,
               is_dc: np.ndarray, ignored_gt: np.ndarray, ignored_det: np.ndarray, scores: np.ndarray,
               gt_alpha: np.ndarray, det_alpha: np.ndarray, n_gt: int, min_overlap: float, compute_aos: bool):
    """Precision and AOS at the 41 recall samples (max-filtered from the right), over all images."""
    n_img = len(gt_off) - 1
    all_tp = np.empty(len(scores))
    n_all = 0
    buf = np.empty(max(1, len(scores)))
    for im in range(n_img):
        g0, g1, d0, d1 = gt_off[im], gt_off[im + 1], det_off[im], det_off[im + 1]
        m = (ov[ov_off[im]:ov_off[im + 1]]).reshape(g1 - g0, d1 - d0)
        dm = (dc_ov[ov_off[im]:ov_off[im + 1]]).reshape(g1 - g0, d1 - d0)
        res = compute_statistics(m, dm, is_dc[g0:g1], ignored_gt[g0:g1], ignored_det[d0:d1], scores[d0:d1],
                                 gt_alpha[g0:g1], det_alpha[d0:d1], min_overlap, False, False, 0.0, buf)
        for k in range(res[4]):
            all_tp[n_all] = buf[k]
            n_all += 1
    thresholds = get_thresholds(all_tp[:n_all], n_gt)
    n_t = min(len(thresholds), int(N_SAMPLE_PTS))
    tp = np.zeros(n_t)
    fp = np.zeros(n_t)
    fn = np.zeros(n_t)
    sim = np.zeros(n_t)
    for im in range(n_img):
        g0, g1, d0, d1 = gt_off[im], gt_off[im + 1], det_off[im], det_off[im + 1]
        m = (ov[ov_off[im]:ov_off[im + 1]]).reshape(g1 - g0, d1 - d0)
        dm = (dc_ov[ov_off[im]:ov_off[im + 1]]).reshape(g1 - g0, d1 - d0)
        for t in range(n_t):
            res = compute_statistics(m, dm, is_dc[g0:g1], ignored_gt[g0:g1], ignored_det[d0:d1], scores[d0:d1],
                                     gt_alpha[g0:g1], det_alpha[d0:d1], min_overlap, True, compute_aos,
                                     thresholds[t], buf)
            tp[t] += res[0]
            fp[t] += res[1]
            fn[t] += res[2]
            if res[3] != -1.0:
                sim[t] += res[3]
    precision = np.zeros(int(N_SAMPLE_PTS))
    aos = np.zeros(int(N_SAMPLE_PTS))
    for t in range(n_t):
        # 0/0 (no counted detection at this threshold) reads as 0 rather than the devkit's NaN
        if tp[t] + fp[t] > 0:
            precision[t] = tp[t] / (tp[t] + fp[t])
            aos[t] = sim[t] / (tp[t] + fp[t])
    for t in range(n_t):
        precision[t] = precision[t:].max()
        aos[t] = aos[t:].max()
    return precision, aos
