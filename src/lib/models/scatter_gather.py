"""Scatter a batch over devices with explicit (possibly uneven) per-device chunk sizes."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.parallel._functions import Scatter


def split_sizes(total: int, n_targets: int, chunk_sizes: Sequence[int] | None = None) -> list[int]:
    """Sizes of the non-empty pieces a batch of `total` is cut into for `n_targets` devices.

    Without chunk_sizes: torch.chunk's even split. With them: the chunk sizes are taken as per-device
    capacities filled in order, so a short last batch uses the first devices only; a batch larger than
    their sum falls back to the even split.
    """
    if n_targets < 1:
        raise ValueError("scatter needs at least one target device")
    if chunk_sizes is not None:
        if len(chunk_sizes) > n_targets:
            raise ValueError(f"{len(chunk_sizes)} chunk sizes for {n_targets} devices")
        if any(c < 0 for c in chunk_sizes):
            raise ValueError(f"negative chunk size in {list(chunk_sizes)}")
        if sum(chunk_sizes) >= total:
            sizes, left = [], total
            for c in chunk_sizes:
                take = min(c, left)
                if take == 0:
                    break
                sizes.append(take)
                left -= take
            return sizes
        n_targets = len(chunk_sizes)
    if total == 0:
        return []
    step = math.ceil(total / n_targets)
    return [min(step, total - i) for i in range(0, total, step)]


def _is_cuda_target(device: int | str | torch.device) -> bool:
    if isinstance(device, int):
        return device >= 0
    return torch.device(device).type == "cuda"


def _scatter_tensor(t: torch.Tensor, target_gpus: Sequence[Any], dim: int,
                    chunk_sizes: Sequence[int] | None) -> tuple[torch.Tensor, ...]:
    sizes = split_sizes(t.size(dim), len(target_gpus), chunk_sizes)
    if not sizes:
        return ()
    targets = list(target_gpus[:len(sizes)])
    if all(_is_cuda_target(d) for d in targets):
        # torch's own autograd-aware scatter (gradients are gathered back in backward).
        return Scatter.apply(targets, sizes, dim, t)
    # CPU targets (no GPU, or tests): plain differentiable slicing and copies.
    return tuple(piece.to(d) for piece, d in zip(t.split(sizes, dim), targets))


def scatter(inputs: Any, target_gpus: Sequence[Any], dim: int = 0,
            chunk_sizes: Sequence[int] | None = None) -> list:
    """Slice tensors (inside tuples, lists and dicts) into chunk_sizes pieces, one per device.

    Objects that are not tensors are referenced by every device's piece.
    """

    def scatter_map(obj: Any) -> list:
        if isinstance(obj, torch.Tensor):
            return list(_scatter_tensor(obj, target_gpus, dim, chunk_sizes))
        if isinstance(obj, tuple) and len(obj) > 0:
            if hasattr(obj, "_fields"):  # namedtuple
                return [type(obj)(*args) for args in zip(*map(scatter_map, obj))]
            return list(zip(*map(scatter_map, obj)))
        if isinstance(obj, list) and len(obj) > 0:
            return [list(i) for i in zip(*map(scatter_map, obj))]
        if isinstance(obj, dict) and len(obj) > 0:
            return [type(obj)(i) for i in zip(*map(scatter_map, obj.items()))]
        return [obj for _ in target_gpus]

    # Clear the recursive closure afterwards so it does not keep itself (and the tensors) alive.
    try:
        return scatter_map(inputs)
    finally:
        scatter_map = None  # noqa: F841


def scatter_kwargs(inputs: tuple, kwargs: dict | None, target_gpus: Sequence[Any], dim: int = 0,
                   chunk_sizes: Sequence[int] | None = None) -> tuple[tuple, tuple]:
    """scatter() for positional and keyword arguments; pads the shorter side with empty ones."""
    inputs = scatter(inputs, target_gpus, dim, chunk_sizes) if inputs else []
    kwargs = scatter(kwargs, target_gpus, dim, chunk_sizes) if kwargs else []
    if len(inputs) < len(kwargs):
        inputs.extend(() for _ in range(len(kwargs) - len(inputs)))
    elif len(kwargs) < len(inputs):
        kwargs.extend({} for _ in range(len(inputs) - len(kwargs)))
    return tuple(inputs), tuple(kwargs)
