"""DCNv2's modulated deformable convolution written with standard ops only (GridSample + MatMul).

Runtimes without a DeformConv kernel (OpenVINO, and ONNX Runtime outside the CPU) read this form. With
align_corners=True a grid value maps to the pixel position exactly, and GridSample's zero padding gives
DCNv2's border rule: each of the four bilinear corners outside the image contributes zero.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _normalise(pos: torch.Tensor, size) -> torch.Tensor:
    """Pixel position -> GridSample coordinate in [-1, 1] (align_corners=True)."""
    # a plane of one pixel has no extent: any position maps to its centre, as GridSample would do
    return pos * (2.0 / max(size - 1, 1)) - 1.0 if isinstance(size, int) else pos * (2.0 / (size - 1)) - 1.0


def deform_conv_gridsample(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor, stride, padding, dilation, deformable_groups: int) -> torch.Tensor:
    """Same result as torch.ops.dcn_v2.modulated_deform_conv, from grid_sample and matmul."""
    n, c, h, w = input.shape
    co, _, kh, kw = weight.shape
    k = kh * kw
    g = int(deformable_groups)
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = offset.shape[2], offset.shape[3]
    opts = {"dtype": input.dtype, "device": input.device}
    # sampling positions: output pixel * stride - pad + tap * dilation + learned shift
    tap_y = (torch.arange(kh, **opts) * dh).repeat_interleave(kw).view(1, 1, k, 1, 1)
    tap_x = (torch.arange(kw, **opts) * dw).repeat(kh).view(1, 1, k, 1, 1)
    base_y = (torch.arange(ho, **opts) * sh - ph).view(1, 1, 1, ho, 1)
    base_x = (torch.arange(wo, **opts) * sw - pw).view(1, 1, 1, 1, wo)
    shift = offset.reshape(n, g, k, 2, ho, wo)
    y = base_y + tap_y + shift[:, :, :, 0]
    x = base_x + tap_x + shift[:, :, :, 1]
    grid = torch.stack((_normalise(x, w), _normalise(y, h)), dim=-1)  # (N, G, K, Ho, Wo, 2), x first
    grid = grid.reshape(n * g, k * ho, wo, 2)
    planes = input.reshape(n * g, c // g, h, w)
    samples = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    samples = samples.reshape(n, g, c // g, k, ho * wo) * mask.reshape(n, g, 1, k, ho * wo)
    cols = samples.reshape(n, c * k, ho * wo)  # row order (channel, tap) = the weight's flattening
    out = torch.matmul(weight.reshape(co, c * k), cols) + bias.view(1, co, 1)
    return out.reshape(n, co, ho, wo)
