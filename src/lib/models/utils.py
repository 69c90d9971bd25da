"""Tensor helpers shared by losses, decoders and detectors: clamped sigmoid, gathers, flips."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Sigmoid applied in place on `x`, then clamped to [1e-4, 1 - 1e-4] (keeps focal-loss logs finite)."""
    return torch.clamp(x.sigmoid_(), min=1e-4, max=1 - 1e-4)


def _gather_feat(feat: torch.Tensor, ind: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pick rows `ind` (B x N) of `feat` (B x M x D) -> B x N x D; with `mask` keep only masked rows (-> n x D)."""
    dim = feat.size(2)
    out = feat.gather(1, ind.unsqueeze(2).expand(ind.size(0), ind.size(1), dim))
    if mask is not None:
        out = out[mask.unsqueeze(2).expand_as(out)].view(-1, dim)
    return out


def _tranpose_and_gather_feat(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """Gather the channel vectors of a B x C x H x W map at flat spatial indices `ind` (B x N) -> B x N x C."""
    b, c = feat.size(0), feat.size(1)
    flat = feat.permute(0, 2, 3, 1).reshape(b, -1, c)
    return _gather_feat(flat, ind)


def flip_tensor(x: torch.Tensor) -> torch.Tensor:
    """Mirror a B x C x H x W tensor left-right."""
    return torch.flip(x, [3])


def _swap_permutation(num_channels: int, flip_idx: Sequence[Sequence[int]]) -> list[int]:
    """Channel order obtained by swapping every pair of `flip_idx` in turn."""
    perm = list(range(num_channels))
    for a, b in flip_idx:
        perm[a], perm[b] = perm[b], perm[a]
    return perm


def flip_lr(x: torch.Tensor, flip_idx: Sequence[Sequence[int]]) -> torch.Tensor:
    """Mirror left-right and swap the left/right joint channels listed in `flip_idx` (joint heat maps)."""
    perm = torch.as_tensor(_swap_permutation(x.shape[1], flip_idx), device=x.device)
    return torch.flip(x, [3]).index_select(1, perm)


def flip_lr_off(x: torch.Tensor, flip_idx: Sequence[Sequence[int]]) -> torch.Tensor:
    """Mirror joint offsets (channels = joints x (dx, dy)): flip width, negate dx, swap left/right joints."""
    b, c, h, w = x.shape
    joints = c // 2
    t = torch.flip(x, [3]).reshape(b, joints, 2, h, w)
    sign = torch.tensor([-1.0, 1.0], dtype=x.dtype, device=x.device).view(1, 1, 2, 1, 1)
    t = t * sign
    perm = torch.as_tensor(_swap_permutation(joints, flip_idx), device=x.device)
    return t.index_select(1, perm).reshape(b, c, h, w)


def flip_merge(x: torch.Tensor) -> torch.Tensor:
    """Average a batch [original, mirrored] of maps into one map (1 x C x H x W) in original orientation."""
    return (x[0:1] + flip_tensor(x[1:2])) / 2


def flip_merge_lr(x: torch.Tensor, flip_idx: Sequence[Sequence[int]]) -> torch.Tensor:
    """flip_merge for joint heat maps: the mirrored copy also gets its left/right joints swapped."""
    return (x[0:1] + flip_lr(x[1:2], flip_idx)) / 2


def flip_merge_lr_off(x: torch.Tensor, flip_idx: Sequence[Sequence[int]]) -> torch.Tensor:
    """flip_merge for joint offsets (dx negated, left/right joints swapped in the mirrored copy)."""
    return (x[0:1] + flip_lr_off(x[1:2], flip_idx)) / 2
