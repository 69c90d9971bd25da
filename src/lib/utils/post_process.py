"""Map decoded detections (output-map units) back to image pixels and group them by class, per task."""
from __future__ import annotations

import numpy as np

from utils.ddd_utils import ddd2locrot_batch
from utils.image import transform_preds

# Columns of a ddd result row: alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score.
DDD_RESULT_COLS = 13


def depth_from_output(dep):
    """ddd's network depth channel (tensor) -> metres: 1 / sigmoid(x) - 1 (the 1e-6 keeps it finite)."""
    return 1. / (dep.sigmoid() + 1e-6) - 1.


def get_pred_depth(depth: np.ndarray) -> np.ndarray:
    """Depth as decoded (depth_from_output is applied to the network output before decoding)."""
    return depth


def get_alpha(rot: np.ndarray) -> np.ndarray:
    """Observation angle from the 8 rotation outputs: use the bin whose logit rot[1] / rot[5] is larger."""
    # rot: n x 8 [bin1 logit0, bin1 logit1, bin1 sin, bin1 cos, bin2 logit0, bin2 logit1, bin2 sin, bin2 cos]
    first_bin = rot[:, 1] > rot[:, 5]
    alpha1 = np.arctan2(rot[:, 2], rot[:, 3]) + (-0.5 * np.pi)
    alpha2 = np.arctan2(rot[:, 6], rot[:, 7]) + (0.5 * np.pi)
    # the original blends the two with integer weights, which yields float64
    return np.where(first_bin, alpha1, alpha2).astype(np.float64)


def _class_masks(classes: np.ndarray, num_classes: int):
    """(1-based class id, boolean row mask) for every class."""
    return ((j + 1, classes == j) for j in range(num_classes))


def ddd_post_process_2d(dets: np.ndarray, c, s, opt) -> list[dict]:
    """Per image: {class 1..C: float32 n x 8 [x, y, score, alpha, depth, h, w, l] (+ w, h)} in image pixels."""
    ret = []
    include_wh = dets.shape[2] > 16
    out_size = (opt.output_w, opt.output_h)
    for i in range(dets.shape[0]):
        dets[i, :, :2] = transform_preds(dets[i, :, 0:2], c[i], s[i], out_size)
        # size is mapped with the full point transform, translation included (as the original does)
        wh = transform_preds(dets[i, :, 15:17], c[i], s[i], out_size).astype(np.float32) if include_wh else None
        rows = [dets[i, :, :3].astype(np.float32),
                get_alpha(dets[i, :, 3:11])[:, np.newaxis].astype(np.float32),
                get_pred_depth(dets[i, :, 11:12]).astype(np.float32),
                dets[i, :, 12:15].astype(np.float32)]
        if include_wh:
            rows.append(wh)
        table = np.concatenate(rows, axis=1)
        ret.append({cls: table[mask] for cls, mask in _class_masks(dets[i, :, -1], opt.num_classes)})
    return ret


def ddd_post_process_3d(dets: list[dict], calibs) -> list[dict]:
    """Per image: {class: float32 n x 13 [alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score]}.

    Every image is lifted to 3D with the first calibration (as the original does).
    """
    ret = []
    calib = calibs[0]
    for per_class in dets:
        preds = {}
        for cls_ind, rows in per_class.items():
            if len(rows) == 0:
                preds[cls_ind] = np.array([], dtype=np.float32)
                continue
            center, score, alpha, depth = rows[:, :2], rows[:, 2], rows[:, 3], rows[:, 4]
            dims, wh = rows[:, 5:8], rows[:, 8:10]
            locations, rotation_y = ddd2locrot_batch(center, alpha, dims, depth, calib)
            half = wh / 2
            bbox = np.concatenate([center - half, center + half], axis=1)
            preds[cls_ind] = np.concatenate(
                [alpha[:, None], bbox, dims, locations, np.asarray(rotation_y)[:, None], score[:, None]],
                axis=1).astype(np.float32)
        ret.append(preds)
    return ret


def ddd_post_process(dets: np.ndarray, c, s, calibs, opt) -> list[dict]:
    """ddd_post_process_2d followed by ddd_post_process_3d."""
    return ddd_post_process_3d(ddd_post_process_2d(dets, c, s, opt), calibs)


def ddd_keep_above(per_class: dict, thresh: float) -> dict:
    """ddd result rows (score last) scoring above `thresh`; empty classes become 0 x 13 arrays."""
    out = {}
    for cls, rows in per_class.items():
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, DDD_RESULT_COLS)
        out[cls] = rows[rows[:, -1] > thresh]
    return out


def ctdet_post_process(dets: np.ndarray, c, s, h, w, num_classes) -> list[dict]:
    """Per image: {class 1..C: list of [x1, y1, x2, y2, score]} in image pixels (dets is updated in place)."""
    ret = []
    for i in range(dets.shape[0]):
        dets[i, :, :2] = transform_preds(dets[i, :, 0:2], c[i], s[i], (w, h))
        dets[i, :, 2:4] = transform_preds(dets[i, :, 2:4], c[i], s[i], (w, h))
        table = dets[i, :, :5].astype(np.float32)
        ret.append({cls: table[mask].tolist() for cls, mask in _class_masks(dets[i, :, -1], num_classes)})
    return ret


def multi_pose_post_process(dets: np.ndarray, c, s, h, w, num_classes: int = 1) -> list[dict]:
    """Per image: {1: list of [x1, y1, x2, y2, score, j0x, j0y, ...]} in image pixels.

    With num_classes > 1 (several keypoint categories of a custom dataset) the rows go to their class 1..C.
    """
    ret = []
    num_coords = dets.shape[2] - 6  # columns between the score and the class are joint coordinates
    for i in range(dets.shape[0]):
        bbox = transform_preds(dets[i, :, :4].reshape(-1, 2), c[i], s[i], (w, h))
        pts = transform_preds(dets[i, :, 5:5 + num_coords].reshape(-1, 2), c[i], s[i], (w, h))
        top_preds = np.concatenate([bbox.reshape(-1, 4), dets[i, :, 4:5], pts.reshape(-1, num_coords)],
                                   axis=1).astype(np.float32).tolist()
        if num_classes == 1:
            ret.append({np.ones(1, dtype=np.int32)[0]: top_preds})
            continue
        classes = dets[i, :, -1].astype(np.int64)
        ret.append({j + 1: [row for row, cl in zip(top_preds, classes) if cl == j] for j in range(num_classes)})
    return ret
