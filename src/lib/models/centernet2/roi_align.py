"""RoIAlign (the 'aligned' variant) in plain PyTorch, so the model exports without extensions.

Two equal formulations: grid_sample at every sample point, and (bilinear weights being separable in y and
x) two matrix products per RoI, which are much faster on small maps and in the CPU backward pass.

Each output bin averages sampling_ratio x sampling_ratio bilinear samples. As in the CUDA/C++ kernels of
detectron2 and torchvision, a sample more than one pixel outside the map reads 0 and one within a pixel of
the border reads the border value. The sampling grid is fixed (sampling_ratio >= 1) rather than adaptive,
so its shape does not depend on the box sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# detectron2's rule: a 224 x 224 box pools from level 4; each halving / doubling of its side moves one level
CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4
_FAR = -4.0  # a normalised grid coordinate well outside [-1, 1]
# above this many map pixels a RoI's two matrix products cost more than sampling its points
SEPARABLE_MAX_PIXELS = 48 * 48
_CHUNK = 256  # RoIs per product, to bound the intermediate n x C x output x width tensor


def _sample_coords(start: torch.Tensor, length: torch.Tensor, bins: int, ratio: int) -> torch.Tensor:
    """Sample positions (n x bins*ratio) along one axis of each RoI: `ratio` evenly spaced per bin."""
    steps = (torch.arange(bins * ratio, dtype=start.dtype, device=start.device) + 0.5) / ratio
    return start[:, None] + steps[None, :] * (length / bins)[:, None]


def _axis_weights(start: torch.Tensor, length: torch.Tensor, bins: int, ratio: int, size: int) -> torch.Tensor:
    """n x bins x size: the bilinear weight of each map row (or column) in each bin, averaged over its samples.

    Bilinear interpolation is separable, so a bin's value is wy^T F wx with these weights.
    """
    coords = _sample_coords(start, length, bins, ratio)  # n x bins*ratio
    valid = ((coords >= -1) & (coords <= size)).to(coords.dtype)
    c = coords.clamp(min=0, max=size - 1)
    low = c.floor()
    frac = c - low
    high = (low + 1).clamp(max=size - 1)
    cells = torch.arange(size, dtype=coords.dtype, device=coords.device)
    w = ((cells == low[..., None]).to(coords.dtype) * (1 - frac)[..., None]
         + (cells == high[..., None]).to(coords.dtype) * frac[..., None]) * valid[..., None]
    return w.reshape(-1, bins, ratio, size).mean(dim=2)


def _roi_align_separable(feature: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float,
                         sampling_ratio: int) -> torch.Tensor:
    """RoIAlign as two matrix products per RoI (fast on small maps, and on the CPU also in backward)."""
    height, width = feature.shape[2], feature.shape[3]
    boxes = rois[:, 1:] * spatial_scale - 0.5
    wy = _axis_weights(boxes[:, 1], boxes[:, 3] - boxes[:, 1], output_size, sampling_ratio, height).to(feature.dtype)
    wx = _axis_weights(boxes[:, 0], boxes[:, 2] - boxes[:, 0], output_size, sampling_ratio, width).to(feature.dtype)
    channels = feature.shape[1]
    parts, order = [], []
    for b, idx in _rois_of_each_image(rois, feature.shape[0]):
        # rows of the map as one matrix: the y contraction of all RoIs is a single product
        fmap = feature[b].permute(1, 0, 2).reshape(height, channels * width)
        for chunk in idx.split(_CHUNK):
            n = chunk.numel()
            rows = (wy[chunk].reshape(n * output_size, height) @ fmap).reshape(n, output_size * channels, width)
            pooled = rows @ wx[chunk].transpose(1, 2)  # n x (p, c) x q
            parts.append(pooled.reshape(n, output_size, channels, output_size).permute(0, 2, 1, 3))
            order.append(chunk)
    return _in_order(parts, order)


def _rois_of_each_image(rois: torch.Tensor, num_images: int):
    """(image index, indices of its RoIs) for every image that has RoIs (column 0 of `rois` is the image)."""
    batch_index = rois[:, 0].long()
    for b in range(num_images):
        idx = torch.nonzero(batch_index == b).squeeze(1)
        if idx.numel():
            yield b, idx


def _in_order(parts: list[torch.Tensor], order: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate per-group results and put row i back at position order[i] (a gather, cheap to back-prop)."""
    out = torch.cat(parts)
    return out[torch.argsort(torch.cat(order))] if len(parts) > 1 else out


def _sample_grid(boxes: torch.Tensor, output_size: int, sampling_ratio: int, height, width, x_offset=0,
                 grid_height=None, grid_width=None) -> torch.Tensor:
    """n x side x side x 2 grid_sample coordinates (x, y) of every sample point of each box (map pixels).

    height, width: the map's size, numbers or per-box n x 1 tensors when the boxes read different maps laid
    side by side in one grid_height x grid_width atlas, each starting at its column x_offset (n x 1).
    """
    num = boxes.shape[0]
    xs = _sample_coords(boxes[:, 0], boxes[:, 2] - boxes[:, 0], output_size, sampling_ratio)
    ys = _sample_coords(boxes[:, 1], boxes[:, 3] - boxes[:, 1], output_size, sampling_ratio)
    grid_height = height if grid_height is None else grid_height
    grid_width = width if grid_width is None else grid_width
    # clamped into the map, a sample reads the border within one pixel outside it; one farther out is sent
    # far outside the map, where grid_sample's zero padding reads 0 (a clamped sample never touches the
    # padding, or a neighbouring map of the atlas: on the last pixel centre its neighbour's weight is 0)
    gx = torch.where((xs >= -1) & (xs <= width),
                     (2 * (torch.minimum(xs.clamp(min=0), width - 1 + xs.new_zeros(())) + x_offset) + 1) / grid_width
                     - 1, torch.full_like(xs, _FAR))
    gy = torch.where((ys >= -1) & (ys <= height),
                     (2 * torch.minimum(ys.clamp(min=0), height - 1 + ys.new_zeros(())) + 1) / grid_height - 1,
                     torch.full_like(ys, _FAR))
    side = output_size * sampling_ratio
    return torch.stack([gx[:, None, :].expand(num, side, side), gy[:, :, None].expand(num, side, side)], dim=3)


def _bin_means(samples: torch.Tensor, output_size: int, sampling_ratio: int) -> torch.Tensor:
    """n x C x side x side samples -> n x C x output_size x output_size bin averages."""
    return F.avg_pool2d(samples, sampling_ratio) if sampling_ratio > 1 else samples


def _roi_align_sampled(feature: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float,
                       sampling_ratio: int) -> torch.Tensor:
    """RoIAlign with grid_sample at every sample point (cheaper than the products on large maps)."""
    channels, height, width = feature.shape[1], feature.shape[2], feature.shape[3]
    grid = _sample_grid(rois[:, 1:] * spatial_scale - 0.5, output_size, sampling_ratio, height, width)
    side = output_size * sampling_ratio
    parts, order = [], []
    for b, idx in _rois_of_each_image(rois, feature.shape[0]):
        g = grid[idx].to(feature.dtype).reshape(1, -1, side, 2)
        s = F.grid_sample(feature[b:b + 1], g, mode="bilinear", padding_mode="zeros", align_corners=False)
        parts.append(s.reshape(channels, -1, side, side).permute(1, 0, 2, 3))
        order.append(idx)
    return _bin_means(_in_order(parts, order), output_size, sampling_ratio)


def roi_align_batched(feature: torch.Tensor, boxes: torch.Tensor, output_size: int, spatial_scale: float,
                      sampling_ratio: int = 2) -> torch.Tensor:
    """RoIAlign of n boxes per image (boxes B x n x 4, image pixels) -> B*n x C x s x s, image-major.

    Every shape is fixed by the inputs' shapes (no per-image selection), so the graph exports.
    """
    batch, num = boxes.shape[0], boxes.shape[1]
    channels, height, width = feature.shape[1], feature.shape[2], feature.shape[3]
    side = output_size * sampling_ratio
    grid = _sample_grid(boxes.reshape(-1, 4) * spatial_scale - 0.5, output_size, sampling_ratio, height, width)
    s = F.grid_sample(feature, grid.to(feature.dtype).reshape(batch, num * side, side, 2), mode="bilinear",
                      padding_mode="zeros", align_corners=False)
    samples = s.reshape(batch, channels, num, side, side).transpose(1, 2).reshape(batch * num, channels, side, side)
    return _bin_means(samples, output_size, sampling_ratio)


def roi_align(feature: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float,
              sampling_ratio: int = 2, method: str = "auto") -> torch.Tensor:
    """Pool `rois` (n x 5: batch index, x1, y1, x2, y2 in image pixels) from `feature` (B x C x H x W).

    Returns n x C x output_size x output_size. method: 'separable' (matrix products), 'sampled'
    (grid_sample), or 'auto': separable up to SEPARABLE_MAX_PIXELS map pixels; both give the same values.
    """
    if rois.shape[0] == 0:
        return feature.new_zeros((0, feature.shape[1], output_size, output_size))
    if method == "auto":
        small = feature.shape[2] * feature.shape[3] <= SEPARABLE_MAX_PIXELS
        method = "separable" if small else "sampled"
    if method == "separable":
        return _roi_align_separable(feature, rois, output_size, spatial_scale, sampling_ratio)
    return _roi_align_sampled(feature, rois, output_size, spatial_scale, sampling_ratio)


def assign_levels(boxes: torch.Tensor, min_level: int, max_level: int) -> torch.Tensor:
    """Index (0 = min_level) of the FPN level each box pools from, by its size (detectron2's rule)."""
    side = torch.sqrt(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0))
    level = torch.floor(CANONICAL_LEVEL + torch.log2(side / CANONICAL_SIZE + 1e-8))
    return (level.clamp(min=min_level, max=max_level) - min_level).long()


def multilevel_roi_align(features: list[torch.Tensor], boxes: list[torch.Tensor], levels: list[int],
                         output_size: int = 7, sampling_ratio: int = 2) -> torch.Tensor:
    """Pool each image's boxes (list over images, n_i x 4) from its FPN level; rows in image-then-box order."""
    rois = torch.cat([torch.cat([b.new_full((len(b), 1), float(i)), b], dim=1) for i, b in enumerate(boxes)])
    if rois.shape[0] == 0:
        return features[0].new_zeros((0, features[0].shape[1], output_size, output_size))
    level_of = assign_levels(rois[:, 1:], levels[0], levels[-1])
    parts, order = [], []
    for index, (feature, level) in enumerate(zip(features, levels)):
        idx = torch.nonzero(level_of == index).squeeze(1)
        if idx.numel() == 0:
            continue
        parts.append(roi_align(feature, rois[idx], output_size, 1.0 / math.pow(2, level), sampling_ratio))
        order.append(idx)
    return _in_order(parts, order)


def multilevel_roi_align_batched(features: list[torch.Tensor], boxes: torch.Tensor, levels: list[int],
                                 output_size: int = 7, sampling_ratio: int = 2) -> torch.Tensor:
    """multilevel_roi_align for n boxes per image (B x n x 4) with fixed shapes, for export: the levels'
    maps are laid side by side in one atlas per image, and each box samples its own level's part of it."""
    num_levels = len(features)
    flat = boxes.reshape(-1, 4)
    level_of = assign_levels(flat, levels[0], levels[-1])
    height = features[0].shape[2]  # the finest level is the tallest
    atlas = torch.cat([F.pad(f, (0, 0, 0, height - f.shape[2])) for f in features], dim=3)
    # per-level sizes and atlas columns as tensors (the sizes may be symbolic in an export with free input size)
    heights = torch.stack([flat.new_full((), f.shape[2]) for f in features])
    widths = torch.stack([flat.new_full((), f.shape[3]) for f in features])
    starts = torch.cumsum(widths, 0) - widths
    scales = flat.new_tensor([1.0 / math.pow(2, level) for level in levels[:num_levels]])
    pick = level_of[:, None]
    grid = _sample_grid(flat * scales[pick] - 0.5, output_size, sampling_ratio, heights[pick], widths[pick],
                        starts[pick], height, atlas.shape[3])
    batch, num = boxes.shape[0], boxes.shape[1]
    side = output_size * sampling_ratio
    s = F.grid_sample(atlas, grid.to(atlas.dtype).reshape(batch, num * side, side, 2), mode="bilinear",
                      padding_mode="zeros", align_corners=False)
    samples = s.reshape(batch, -1, num, side, side).transpose(1, 2).reshape(batch * num, -1, side, side)
    return _bin_means(samples, output_size, sampling_ratio)
