"""The optimizer of main.py: the original's Adam by default, or CenterNet2's SGD recipe (warm-up, clipping)."""
from __future__ import annotations

import torch

WARMUP_FACTOR = 0.00025  # the first step's lr, as a fraction of --lr (CenterNet2's 1x config)
SGD_MOMENTUM = 0.9


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weights of convolutions and linear layers decay; biases and normalisation parameters do not."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else plain).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(opt, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam (--optim adam, the original's) or SGD with momentum; then --warmup_iters and --clip_grad."""
    weight_decay = getattr(opt, "weight_decay", 0.0)
    if getattr(opt, "optim", "adam") == "sgd":
        optimizer = torch.optim.SGD(_param_groups(model, weight_decay), lr=opt.lr, momentum=SGD_MOMENTUM)
    elif weight_decay > 0:
        optimizer = torch.optim.Adam(_param_groups(model, weight_decay), lr=opt.lr)
    else:
        optimizer = torch.optim.Adam(model.parameters(), opt.lr)
    warmup, clip = getattr(opt, "warmup_iters", 0), getattr(opt, "clip_grad", 0.0)
    if warmup > 0 or clip > 0:
        optimizer.register_step_pre_hook(_StepHook(warmup, clip))
    return optimizer


class _StepHook:
    """Before each step: clip gradient values, and scale the lr during the warm-up of a fresh run.

    A run that resumes (the optimizer already holds state) does not warm up again.
    """

    def __init__(self, warmup_iters: int, clip: float) -> None:
        self.warmup_iters, self.clip = warmup_iters, clip
        self.step = 0
        self.base_lrs: list[float] | None = None
        self.active = warmup_iters > 0

    def __call__(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        if self.clip > 0:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_value_(params, self.clip)
        if not self.active:
            return
        if self.base_lrs is None:
            if optimizer.state:  # resumed: the warm-up happened in the earlier run
                self.active = False
                return
            self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        alpha = min(self.step / self.warmup_iters, 1.0)
        factor = WARMUP_FACTOR * (1 - alpha) + alpha
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        self.step += 1
        if alpha >= 1.0:
            self.active = False
