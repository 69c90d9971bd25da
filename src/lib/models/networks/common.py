"""Pieces shared by the networks: output heads, their initialisation, bilinear up-sampling, ImageNet weights."""
from __future__ import annotations

import math
import os

import torch
from torch import nn

from utils.errors import UserError, warn

HEATMAP_BIAS = -2.19  # about -log((1 - 0.1) / 0.1): heat maps start at a prior of 0.1


def make_head(in_ch: int, head_conv: int, n_out: int, final_kernel: int = 1) -> nn.Module:
    """An output head: conv3x3 + ReLU + final conv (keys .0 / .2), or one final conv when head_conv is 0."""
    pad = final_kernel // 2
    if head_conv > 0:
        return nn.Sequential(
            nn.Conv2d(in_ch, head_conv, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_conv, n_out, kernel_size=final_kernel, stride=1, padding=pad, bias=True),
        )
    return nn.Conv2d(in_ch, n_out, kernel_size=final_kernel, stride=1, padding=pad, bias=True)


def final_conv(head: nn.Module) -> nn.Conv2d:
    """The last convolution of a head built by make_head."""
    return head[-1] if isinstance(head, nn.Sequential) else head


def is_heatmap_head(name: str) -> bool:
    """Heads whose name contains 'hm' predict heat maps (hm, hm_hp, hm_t, ...)."""
    return "hm" in name


def set_heatmap_bias(conv: nn.Conv2d, value: float = HEATMAP_BIAS) -> None:
    """Fill a heat-map head's final bias with the focal-loss prior."""
    nn.init.constant_(conv.bias, value)


def fill_fc_weights(module: nn.Module, std: float | None = 0.001) -> None:
    """Every Conv2d in `module`: weight ~ N(0, std) (kept as is when std is None), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if std is not None:
                nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)


def add_heads(model: nn.Module, heads, in_ch: int, head_conv: int, final_kernel: int = 1,
              fc_std: float | None = 0.001) -> None:
    """Register one make_head per output in `heads` order: heat-map heads get the prior bias, others fill_fc_weights."""
    for head, n_out in heads.items():
        fc = make_head(in_ch, head_conv, n_out, final_kernel)
        if is_heatmap_head(head):
            set_heatmap_bias(final_conv(fc))
        else:
            fill_fc_weights(fc, std=fc_std)
        setattr(model, head, fc)


def fill_up_weights(up: nn.ConvTranspose2d) -> None:
    """Bilinear kernel in w[0, 0], copied to w[c, 0] for every input channel c (other slices untouched)."""
    w = up.weight.data
    k = w.size(2)
    f = math.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(k, dtype=torch.float64) / f - c)
    kernel = torch.outer(ramp, ramp)
    w[:, 0, :, :] = kernel.to(w.dtype)


def hub_checkpoint_path(url: str) -> str:
    """Where torch.hub keeps the file of `url` (TORCH_HOME/hub/checkpoints/<name>)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


_warned: set[str] = set()


def load_imagenet(model: nn.Module, url: str, strict: bool = False) -> bool:
    """Load ImageNet weights for `url` from the torch hub cache only; warn once and keep random init if absent."""
    path = hub_checkpoint_path(url)
    if not os.path.isfile(path):
        if path not in _warned:
            _warned.add(path)
            warn(f"ImageNet weights {os.path.basename(url)} are not in the torch hub cache ({path}); training "
                 "starts from random init; put the file there (or set TORCH_HOME) to use them")
        return False
    print(f"=> loading pretrained model {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated download, not a weights file
        raise UserError(f"{path}: not a readable ImageNet weights file ({type(e).__name__}); delete it to start "
                        "from random init, or download it again") from None
    model.load_state_dict(state, strict=strict)
    return True
