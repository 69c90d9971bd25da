"""CenterNet2's MORE_POS: extra heat-map positives near each object centre where the box is already good.

For every object, the 3 x 3 locations around the cell holding its centre on every level are candidates
(inside the map and inside the box). The GIoU loss of the box predicted there against the object is
measured without gradient; the object's centre on the levels its size belongs to counts as loss 0. The
candidates whose loss is below both the threshold and the object's topk-th smallest loss become positives
of the focal loss. As in CenterNet2, the size ranges only pick the real centres: a candidate on another
level still qualifies by its loss, and the strict "below the topk-th" leaves at most topk - 1 per object.
"""
from __future__ import annotations

import torch

from .boxes import giou_loss_ltrb
from .targets import assign_fpn_level

INVALID_LOSS = 1e8
CENTRE_SLOT = 4  # the middle of the 3 x 3 candidates, in row-major order


def _neighbour_offsets(device=None) -> torch.Tensor:
    """9 x 2 (dx, dy) of the 3 x 3 neighbourhood, row by row."""
    dy, dx = torch.meshgrid(torch.arange(-1, 2, device=device), torch.arange(-1, 2, device=device), indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1)


def centre_candidates(boxes_per_image: list[torch.Tensor], shapes: list[tuple[int, int]], strides: list[int],
                      ranges: list[tuple[float, float]], device=None):
    """(flat indices N x L x 9, box distances N x L x 9 x 4 in strides, valid N x L x 9, real centre N x L).

    N counts the objects of all images, L the levels; indices follow flatten_levels' order and are 0 where
    not valid (outside the map or outside the box); 'real centre' marks the levels the object's size
    belongs to, where its centre cell lies inside the box.
    """
    num_images, num_levels = len(boxes_per_image), len(shapes)
    offsets = _neighbour_offsets(device)
    per_level = torch.tensor([h * w for h, w in shapes], device=device)
    bases = torch.cumsum(per_level * num_images, dim=0) - per_level * num_images
    heights = torch.tensor([h for h, _ in shapes], device=device)
    widths = torch.tensor([w for _, w in shapes], device=device)
    s = torch.tensor(strides, dtype=torch.float32, device=device)
    # moving one cell right adds a stride to the left distance and takes one from the right one, etc.
    shift = torch.cat([offsets, -offsets], dim=1).float()  # 9 x 4
    out = ([], [], [], [])
    for im, boxes in enumerate(boxes_per_image):
        if boxes.shape[0] == 0:
            continue
        boxes = boxes.to(device).float()
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        cell = (centres[:, None, :] / s[None, :, None]).long()  # n x L x 2
        pixel = cell.float() * s[None, :, None] + (s // 2)[None, :, None]
        dist = torch.cat([pixel - boxes[:, None, :2], boxes[:, None, 2:] - pixel], dim=2) / s[None, :, None]
        dists = dist[:, :, None, :] + shift  # n x L x 9 x 4
        cx = cell[:, :, 0:1] + offsets[:, 0]  # n x L x 9
        cy = cell[:, :, 1:2] + offsets[:, 1]
        w, h = widths[None, :, None], heights[None, :, None]
        valid = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h) & (dists.min(dim=3).values >= 0)
        index = bases[None, :, None] + im * per_level[None, :, None] + cy * w + cx
        out[0].append(torch.where(valid, index, torch.zeros_like(index)))
        out[1].append(dists)
        out[2].append(valid)
        out[3].append(assign_fpn_level(boxes, ranges) & (dist.min(dim=2).values >= 0))
    if not out[0]:
        return (torch.zeros((0, num_levels, 9), dtype=torch.long, device=device),
                torch.zeros((0, num_levels, 9, 4), device=device),
                torch.zeros((0, num_levels, 9), dtype=torch.bool, device=device),
                torch.zeros((0, num_levels), dtype=torch.bool, device=device))
    return tuple(torch.cat(parts) for parts in out)


@torch.no_grad()
def more_positive_indices(boxes_per_image: list[torch.Tensor], shapes: list[tuple[int, int]], strides: list[int],
                          ranges: list[tuple[float, float]], reg_pred: torch.Tensor, thresh: float,
                          topk: int) -> torch.Tensor:
    """Flat indices of the extra heat-map positives (the objects' regular centre positives left out).

    reg_pred: the predicted box distances of every location (M x 4 in strides, flatten_levels' order).
    """
    index, dists, valid, centre = centre_candidates(boxes_per_image, shapes, strides, ranges, reg_pred.device)
    n, num_levels, k = valid.shape
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=reg_pred.device)
    pred = reg_pred.detach().float()[index.reshape(-1)]
    loss = giou_loss_ltrb(pred, dists.reshape(-1, 4).clamp(min=0)).reshape(n, num_levels, k)
    loss = torch.where(valid, loss, torch.full_like(loss, INVALID_LOSS))
    # the real centres rank first, whatever their box
    loss[:, :, CENTRE_SLOT] = torch.where(centre, torch.zeros_like(centre, dtype=loss.dtype), loss[:, :, CENTRE_SLOT])
    flat = loss.reshape(n, -1)
    kth = flat.kthvalue(min(topk, flat.shape[1]), dim=1).values.clamp(max=thresh)
    chosen = loss < kth[:, None, None]
    # the centre on its own levels is a regular positive already
    chosen[:, :, CENTRE_SLOT] &= ~centre
    return index[chosen]
