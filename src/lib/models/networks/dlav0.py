"""DLA-34 with a plain (non-deformable) up path (arch ``dlav0``): the original's ``dlav0.DLASeg``."""
from __future__ import annotations

import math

import torch
from torch import nn

from models.networks.common import (
    add_heads,
    fill_up_weights,
)
from models.networks.pose_dla_dcn import DLA, BasicBlock, dla_up_stages
from utils.errors import UserError

BatchNorm = nn.BatchNorm2d


def init_conv_bn(module: nn.Module) -> None:
    """He init for every Conv2d (std sqrt(2 / (k*k*out))), BN weight 1 / bias 0; transposed convs untouched."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def dla34(pretrained: bool, **kwargs) -> DLA:
    """DLA-34 base, He-initialised; ImageNet weights for everything but the classifier if `pretrained`."""
    model = DLA([1, 1, 1, 2, 2, 1], [16, 32, 64, 128, 256, 512], block=BasicBlock, **kwargs)
    init_conv_bn(model)
    if pretrained:
        # The original loads the file's classifier into a temporary fc and then puts its own back.
        own_fc = {k: v.clone() for k, v in model.fc.state_dict().items()}
        if model.load_pretrained_model(data="imagenet", name="dla34", hash="ba72cf86"):
            model.fc.load_state_dict(own_fc)
    return model


class IDAUp(nn.Module):
    """Projects and up-samples every input to `out_dim` at the first input's scale, then chains 3x3 nodes."""

    def __init__(self, node_kernel: int, out_dim: int, channels: list[int], up_factors: list[int]):
        super().__init__()
        self.channels = list(channels)
        self.out_dim = out_dim
        for i, c in enumerate(channels):
            if c == out_dim:
                proj: nn.Module = nn.Identity()
            else:
                proj = nn.Sequential(
                    nn.Conv2d(c, out_dim, kernel_size=1, stride=1, bias=False),
                    BatchNorm(out_dim),
                    nn.ReLU(inplace=True),
                )
            f = int(up_factors[i])
            if f == 1:
                up: nn.Module = nn.Identity()
            else:
                up = nn.ConvTranspose2d(out_dim, out_dim, f * 2, stride=f, padding=f // 2, output_padding=0,
                                        groups=out_dim, bias=False)
                fill_up_weights(up)
            setattr(self, f"proj_{i}", proj)
            setattr(self, f"up_{i}", up)
        for i in range(1, len(channels)):
            node = nn.Sequential(
                nn.Conv2d(out_dim * 2, out_dim, kernel_size=node_kernel, stride=1, padding=node_kernel // 2,
                          bias=False),
                BatchNorm(out_dim),
                nn.ReLU(inplace=True),
            )
            setattr(self, f"node_{i}", node)
        init_conv_bn(self)

    def forward(self, layers: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(final merged map, every intermediate merge)."""
        if len(layers) != len(self.channels):
            raise ValueError(f"IDAUp expects {len(self.channels)} inputs, got {len(layers)}")
        ups = [getattr(self, f"up_{i}")(getattr(self, f"proj_{i}")(t)) for i, t in enumerate(layers)]
        x = ups[0]
        merged = []
        for i in range(1, len(ups)):
            x = getattr(self, f"node_{i}")(torch.cat([x, ups[i]], 1))
            merged.append(x)
        return x, merged


class DLAUp(nn.Module):
    """IDAUp stages merging the deepest levels down to the finest given one."""

    def __init__(self, channels: list[int], scales: list[int] = (1, 2, 4, 8, 16), in_channels: list[int] | None = None):
        super().__init__()
        self.channels = list(channels)
        for i, out_ch, in_ch, up_f in dla_up_stages(channels, scales, in_channels):
            setattr(self, f"ida_{i}", IDAUp(3, out_ch, in_ch, up_f))

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """The merged map at the finest input's scale."""
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError("DLAUp needs at least two levels")
        x = layers[0]
        for i in range(len(layers) - 1):
            x, merged = getattr(self, f"ida_{i}")(layers[-i - 2:])
            layers[-i - 1:] = merged
        return x


class DLASeg(nn.Module):
    """DLA base + DLAUp to stride `down_ratio`, then one head per output."""

    def __init__(self, base_name: str, heads: dict[str, int], pretrained: bool = True, down_ratio: int = 4,
                 head_conv: int = 256):
        super().__init__()
        if down_ratio not in (2, 4, 8, 16):
            raise UserError(f"--down_ratio {down_ratio}: DLA supports 2, 4, 8 or 16; use one of those")
        self.heads = heads
        self.first_level = int(math.log2(down_ratio))
        self.base = BASES[base_name](pretrained=pretrained, return_levels=True)
        channels = self.base.channels
        used = channels[self.first_level:]
        self.dla_up = DLAUp(used, scales=[2 ** i for i in range(len(used))])
        add_heads(self, heads, channels[self.first_level], head_conv)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One dict {head: raw output at stride down_ratio}, in a list (one stack)."""
        x = self.dla_up(self.base(x)[self.first_level:])
        return [{head: getattr(self, head)(x) for head in self.heads}]


BASES = {"dla34": dla34}


def get_pose_net(
    num_layers: int, heads: dict[str, int], head_conv: int = 256, down_ratio: int = 4, pretrained: bool = False
) -> DLASeg:
    """DLA-`num_layers` (only 34) with the plain up path; ImageNet base weights if `pretrained`."""
    if f"dla{num_layers}" not in BASES:
        raise UserError(f"--arch dlav0_{num_layers}: no such DLA depth; use dlav0_34")
    return DLASeg(f"dla{num_layers}", heads, pretrained=pretrained, down_ratio=down_ratio, head_conv=head_conv)
