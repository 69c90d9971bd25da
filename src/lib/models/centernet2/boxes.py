"""Box arithmetic for CenterNet2: areas, IoUs, the GIoU loss, box <-> delta coding and plain-torch NMS."""
from __future__ import annotations

import math

import numpy as np
import torch

# largest log-scale step a box delta may apply (a box grows at most 1000/16 times per stage)
_MAX_LOG_STEP = math.log(1000.0 / 16)
_NMS_BLOCK = 1024


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of x1y1x2y2 boxes (n x 4), 0 for inverted ones."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of `a` (n x 4) with every box of `b` (m x 4): n x m, 0 where the union is empty."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def giou_loss_ltrb(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GIoU per row of two boxes given as distances (left, top, right, bottom) from the same point.

    As CenterNet2 does, the IoU is smoothed by +1 on intersection and union, so a loss of 0 needs an
    exact match and tiny boxes do not blow up.
    """
    pl, pt, pr, pb = pred.unbind(dim=1)
    tl, tt, tr, tb = target.unbind(dim=1)
    pred_area = (pl + pr) * (pt + pb)
    target_area = (tl + tr) * (tt + tb)
    inter = (torch.min(pl, tl) + torch.min(pr, tr)) * (torch.min(pt, tt) + torch.min(pb, tb))
    union = pred_area + target_area - inter
    hull = (torch.max(pl, tl) + torch.max(pr, tr)) * (torch.max(pt, tt) + torch.max(pb, tb))
    iou = (inter + 1.0) / (union + 1.0)
    return 1.0 - (iou - (hull - union) / hull.clamp(min=1e-12))


def encode_deltas(proposals: torch.Tensor, targets: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """R-CNN deltas (dx, dy, dw, dh), scaled by `weights`, that move `proposals` onto `targets`."""
    wx, wy, ww, wh = weights
    pw, ph = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    px, py = proposals[:, 0] + 0.5 * pw, proposals[:, 1] + 0.5 * ph
    tw, th = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    tx, ty = targets[:, 0] + 0.5 * tw, targets[:, 1] + 0.5 * th
    return torch.stack([wx * (tx - px) / pw, wy * (ty - py) / ph,
                        ww * torch.log(tw / pw), wh * torch.log(th / ph)], dim=1)


def decode_deltas(deltas: torch.Tensor, proposals: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """Boxes obtained by applying `deltas` (n x 4, scaled by `weights`) to `proposals` (inverse of encode)."""
    wx, wy, ww, wh = weights
    pw, ph = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    px, py = proposals[:, 0] + 0.5 * pw, proposals[:, 1] + 0.5 * ph
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = (deltas[:, 2] / ww).clamp(max=_MAX_LOG_STEP)
    dh = (deltas[:, 3] / wh).clamp(max=_MAX_LOG_STEP)
    cx, cy = px + dx * pw, py + dy * ph
    w, h = pw * torch.exp(dw), ph * torch.exp(dh)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=1)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boxes clipped to the image [0, width] x [0, height]."""
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float) -> torch.Tensor:
    """Indices of the boxes greedy NMS keeps (IoU above `thresh` suppresses), best score first."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ranked = boxes[order]
    # a boolean overlap matrix, built in row blocks so the float IoUs of thousands of boxes never coexist
    overlaps = np.concatenate([(pairwise_iou(ranked[i:i + _NMS_BLOCK], ranked) > thresh).cpu().numpy()
                               for i in range(0, len(ranked), _NMS_BLOCK)])
    # the IoU matrix comes from torch in one pass; the greedy sweep itself is sequential
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, thresh: float) -> torch.Tensor:
    """NMS within each label: boxes of different labels are shifted apart so they never overlap."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    offset = labels.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset, scores, thresh)
