"""Small shared helpers for the entry scripts: running averages and device selection."""
from __future__ import annotations

import os

import torch

from utils.errors import UserError


class AverageMeter:
    """Keeps the latest value and the running (weighted) average of a series."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        """Record `val` observed `n` times."""
        self.val = val
        self.sum += val * n
        self.count += n
        if self.count > 0:
            self.avg = self.sum / self.count


def select_device(opt) -> torch.device:
    """Set CUDA_VISIBLE_DEVICES from --gpus and return the device; fail in one line if the GPUs are absent."""
    gpus_str = getattr(opt, "gpus_str", ",".join(str(g) for g in opt.gpus))
    if opt.gpus[0] < 0:
        return torch.device("cpu")
    # Must happen before CUDA is initialised for the ids to be remapped (as the original does).
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus_str
    if not torch.cuda.is_available():
        raise UserError(f"--gpus {gpus_str}: no CUDA device available; use --gpus -1 for CPU")
    count = torch.cuda.device_count()
    if len(opt.gpus) > count:
        raise UserError(f"--gpus {gpus_str}: only {count} CUDA device(s) visible; "
                        f"name at most {count} GPU(s) or use --gpus -1 for CPU")
    return torch.device("cuda")
