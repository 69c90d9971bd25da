"""The step learning-rate schedule of training, shared by the per-epoch drop and by resuming."""
from __future__ import annotations

from collections.abc import Iterable


def lr_at_epoch(base_lr: float, lr_step: Iterable[int], epoch: int) -> float:
    """The lr in use once `epoch` has finished: `base_lr` divided by 10 for every step s with epoch >= s.

    The drop after an lr-step epoch and the lr a resumed run restarts with both come from here, so a
    run that was stopped and resumed continues with the lr it would have had.
    """
    passed = sum(1 for step in lr_step if epoch >= step)
    # one power rather than repeated x0.1: the same float as the original's opt.lr * 0.1 ** (index + 1)
    return base_lr * 0.1 ** passed
