"""DataParallel with per-GPU batch chunk sizes (--master_batch_size gives the first GPU a smaller share)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.scatter_gather import scatter_kwargs


class _DataParallel(nn.DataParallel):
    """torch.nn.DataParallel whose scatter cuts the batch into `chunk_sizes` pieces instead of even ones.

    Without CUDA it holds no devices and forward simply calls the wrapped module, like torch's class.
    """

    def __init__(self, module: nn.Module, device_ids: Sequence[int] | None = None, output_device: int | None = None,
                 dim: int = 0, chunk_sizes: Sequence[int] | None = None):
        super().__init__(module, device_ids, output_device, dim)
        self.dim = dim  # torch's __init__ returns before setting it when there is no GPU
        self.chunk_sizes = list(chunk_sizes) if chunk_sizes is not None else None

    def scatter(self, inputs: tuple, kwargs: dict | None, device_ids: Sequence[Any]) -> tuple[tuple, tuple]:
        """Split positional and keyword inputs by chunk_sizes over device_ids."""
        return scatter_kwargs(inputs, kwargs, device_ids, dim=self.dim, chunk_sizes=self.chunk_sizes)


def DataParallel(module: nn.Module, device_ids: Sequence[int] | None = None, output_device: int | None = None,
                 dim: int = 0, chunk_sizes: Sequence[int] | None = None) -> nn.DataParallel:
    """torch.nn.DataParallel when the chunks are even (or not given), else the uneven-chunk variant."""
    if chunk_sizes is None or all(c == chunk_sizes[0] for c in chunk_sizes):
        return torch.nn.DataParallel(module, device_ids, output_device, dim)
    return _DataParallel(module, device_ids, output_device, dim, chunk_sizes)
