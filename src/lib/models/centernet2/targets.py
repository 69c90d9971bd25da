"""First-stage training targets of CenterNet2: FPN level assignment, agnostic heat maps, box distances.

Locations of all levels are flattened level by level and, inside a level, image by image (the order of
`flatten_levels`). Heat-map targets are Gaussians exp(-d^2 / r^2) around every object centre on every
level; the positive of an object is the location holding its centre on each level its size belongs to;
the box distances (left, top, right, bottom, in units of the level's stride) are regressed on the 3 x 3
locations around the centre of the object on those levels.
"""
from __future__ import annotations

import torch

# CenterNet2's sizes of interest for P3..P7: half the box diagonal, in input pixels (ranges overlap)
SIZES_OF_INTEREST = {3: (0.0, 80.0), 4: (64.0, 160.0), 5: (128.0, 320.0), 6: (256.0, 640.0), 7: (512.0, 1e8)}
NO_TARGET = -1e8
MIN_OVERLAP = 0.8  # how much a box shifted within the Gaussian still overlaps the object
MIN_RADIUS = 4.0


def sizes_of_interest(levels: list[int]) -> list[tuple[float, float]]:
    """Size range of each level; the last level takes every larger object."""
    ranges = [SIZES_OF_INTEREST[level] for level in levels]
    ranges[-1] = (ranges[-1][0], 1e8)
    return ranges


def level_grids(shapes: list[tuple[int, int]], strides: list[int], device=None) -> list[torch.Tensor]:
    """Input-pixel (x, y) of every location of each level (h*w x 2, row-major): cell centres of the stride."""
    grids = []
    for (h, w), stride in zip(shapes, strides):
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
        grids.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1) * stride + stride // 2)
    return grids


def flatten_levels(maps: list[torch.Tensor]) -> torch.Tensor:
    """B x C x H x W maps of every level -> (sum over levels of B*H*W) x C."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(-1, m.shape[1]) for m in maps], dim=0)


def assign_fpn_level(boxes: torch.Tensor, ranges: list[tuple[float, float]]) -> torch.Tensor:
    """n x L mask: the levels whose size range holds half the diagonal of each box."""
    half_diag = ((boxes[:, 2:] - boxes[:, :2]) ** 2).sum(dim=1).sqrt() / 2
    bounds = boxes.new_tensor(ranges)
    return (half_diag[:, None] >= bounds[None, :, 0]) & (half_diag[:, None] <= bounds[None, :, 1])


def _discrete_centres(centres: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """M x n x 2: the centre of the stride cell holding each object centre, at each location's stride."""
    s = strides[:, None, None]
    return (centres[None] / s).int().float() * s + s / 2


def _image_targets(boxes: torch.Tensor, grids: torch.Tensor, strides: torch.Tensor, ranges: torch.Tensor):
    """(heat map M, box distances M x 4 in pixels or NO_TARGET) of one image with boxes n x 4."""
    m = grids.shape[0]
    if boxes.shape[0] == 0:
        return grids.new_zeros(m), grids.new_full((m, 4), NO_TARGET)
    x, y = grids[:, 0:1], grids[:, 1:2]
    dists = torch.stack([x - boxes[None, :, 0], y - boxes[None, :, 1], boxes[None, :, 2] - x,
                         boxes[None, :, 3] - y], dim=2)  # M x n x 4
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cells = _discrete_centres(centres, strides)
    offset = grids[:, None, :] - cells
    is_peak = (offset ** 2).sum(dim=2) == 0
    in_box = dists.min(dim=2).values > 0
    near_centre = (offset.abs() <= strides[:, None, None]).all(dim=2) & in_box
    half_diag = ((dists[:, :, :2] + dists[:, :, 2:]) ** 2).sum(dim=2).sqrt() / 2
    right_level = (half_diag >= ranges[:, 0:1]) & (half_diag <= ranges[:, 1:2])

    dist2 = ((grids[:, None, :] - centres[None]) ** 2).sum(dim=2)
    dist2 = torch.where(is_peak, torch.zeros_like(dist2), dist2)
    delta = (1 - MIN_OVERLAP) / (1 + MIN_OVERLAP)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    radius2 = (delta ** 2 * 2 * area).clamp(min=MIN_RADIUS ** 2)
    weighted = dist2 / radius2[None]

    heat = torch.exp(-weighted.min(dim=1).values)
    heat = torch.where(heat < 1e-4, torch.zeros_like(heat), heat)
    # each location regresses the nearest (Gaussian-weighted) object among those it may regress
    masked = torch.where(near_centre & right_level, weighted, torch.full_like(weighted, float("inf")))
    best, best_obj = masked.min(dim=1)
    reg = dists[torch.arange(m, device=grids.device), best_obj]
    reg = torch.where(torch.isinf(best)[:, None], torch.full_like(reg, NO_TARGET), reg)
    return heat, reg


def positive_indices(boxes_per_image: list[torch.Tensor], shapes: list[tuple[int, int]], strides: list[int],
                     ranges: list[tuple[float, float]]) -> torch.Tensor:
    """Flattened indices of each object's centre location on each level its size belongs to."""
    num_images = len(boxes_per_image)
    per_level = [h * w for h, w in shapes]
    bases = [sum(n * num_images for n in per_level[:i]) for i in range(len(shapes))]
    out = []
    for im, boxes in enumerate(boxes_per_image):
        if boxes.shape[0] == 0:
            continue
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        assigned = assign_fpn_level(boxes, ranges)
        for li, ((h, w), stride) in enumerate(zip(shapes, strides)):
            cell = (centres / stride).long()
            cx, cy = cell[:, 0].clamp(0, w - 1), cell[:, 1].clamp(0, h - 1)
            index = bases[li] + im * per_level[li] + cy * w + cx
            out.append(index[assigned[:, li]])
    if not out:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(out)


def first_stage_targets(boxes_per_image: list[torch.Tensor], shapes: list[tuple[int, int]], strides: list[int],
                        ranges: list[tuple[float, float]]):
    """(positive indices N, heat-map targets M, box-distance targets M x 4 in stride units or NO_TARGET).

    M counts the locations of all images and levels in flatten_levels order.
    """
    device = boxes_per_image[0].device if boxes_per_image else None
    grids = level_grids(shapes, strides, device)
    counts = [len(g) for g in grids]
    all_grids = torch.cat(grids)
    all_strides = torch.cat([torch.full((n,), float(s), device=device) for n, s in zip(counts, strides)])
    all_ranges = torch.cat([torch.tensor([r], device=device).expand(n, 2) for n, r in zip(counts, ranges)])
    heats, regs = [], []
    for boxes in boxes_per_image:
        heat, reg = _image_targets(boxes, all_grids, all_strides, all_ranges)
        heats.append(heat.split(counts))
        regs.append(reg.split(counts))
    # image-major -> level-major, matching flatten_levels; distances in units of the level's stride
    heat = torch.cat([torch.cat([h[li] for h in heats]) for li in range(len(shapes))])
    reg_levels = []
    for li, stride in enumerate(strides):
        level = torch.cat([r[li] for r in regs])
        reg_levels.append(torch.where(level > NO_TARGET / 2, level / stride, level))
    reg = torch.cat(reg_levels)
    pos = positive_indices(boxes_per_image, shapes, strides, ranges).to(all_grids.device)
    return pos, heat, reg
