"""Helpers shared by the task trainers: loss-term bookkeeping, the regression criterion, debug drawing."""
from __future__ import annotations

import numpy as np
import torch

from models.losses import FocalLoss, LogitFocalLoss, RegL1Loss, RegLoss
from models.utils import _sigmoid
from utils.debugger import Debugger
from utils.errors import UserError


def make_reg_crit(opt) -> torch.nn.Module:
    """The sparse regression loss chosen by --reg_loss (l1 or sl1)."""
    if opt.reg_loss == "l1":
        return RegL1Loss()
    if opt.reg_loss == "sl1":
        return RegLoss()
    raise UserError(f"--reg_loss {opt.reg_loss}: unknown loss; use l1 or sl1")


def make_focal_crit(opt) -> tuple[torch.nn.Module, bool]:
    """The heat-map focal loss chosen by --focal_loss, and whether it takes logits (else clamped sigmoids)."""
    if opt.focal_loss == "logsigmoid":
        return LogitFocalLoss(), True
    return FocalLoss(), False


def sigmoid_heatmap(logits: torch.Tensor, keep_logits: bool) -> torch.Tensor:
    """The clamped sigmoid that decoding and debug drawing read in place of a heat-map head's logits.

    The original computes it in place over the logits; a loss that takes the logits (keep_logits)
    still needs them for its backward pass, so the sigmoid then comes from a detached copy.
    """
    return _sigmoid(logits.detach().clone() if keep_logits else logits)


def zero_terms(like: torch.Tensor, count: int) -> list[torch.Tensor]:
    """`count` separate 0-dim zero tensors (dtype and device of `like`) to accumulate loss terms into.

    Every term starts as a tensor, so one whose weight is 0 (never accumulated) is still a tensor:
    the trainer logs it as 0 and DataParallel can gather it (the original's int 0 crashed on .mean()).
    """
    return [like.new_zeros(()) for _ in range(count)]


def blend_heatmaps(debugger: Debugger, img: np.ndarray, output: dict, batch: dict, names: tuple[str, str],
                   key: str = "hm", i: int = 0) -> None:
    """Predicted and target heatmaps `key` of sample i blended over `img`, as images names[0] / names[1]."""
    pred = debugger.gen_colormap(output[key][i].detach().cpu().numpy())
    gt = debugger.gen_colormap(batch[key][i].detach().cpu().numpy())
    debugger.add_blend_img(img, pred, names[0])
    debugger.add_blend_img(img, gt, names[1])


def finish_debug(debugger: Debugger, opt, iter_id: int) -> None:
    """Save the visualisation (--debug 4) or show it and wait for a key."""
    if opt.debug == 4:
        debugger.save_all_imgs(opt.debug_dir, prefix=f"{iter_id}")
    else:
        debugger.show_all_imgs(pause=True)
