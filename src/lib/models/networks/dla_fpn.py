"""dla_34_fpn / dla_34_bifpn: the DLA-34 body with an FPN (P3-P7) or a BiFPN (P3-P5), carrying CenterNet2."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.centernet2.network import CenterNet2
from models.networks.pose_dla_dcn import dla34
from models.networks.resnet_fpn import add_fpn, centernet2_on, fpn_forward
from utils.errors import UserError

FPN_CHANNELS = 256
BIFPN_CHANNELS = 160  # CenterNet2's real-time DLA-BiFPN width
BIFPN_REPEATS = 4  # BiFPN layers of CenterNet2's DLA-BiFPN-P3 config
BIFPN_LEVELS = (3, 4, 5)
_DLA_WIDTHS = (128, 256, 512)  # DLA-34 levels 3-5: strides 8, 16, 32


class DLAFPN(nn.Module):
    """DLA-34 levels 3-5, FPN on them (P3-P5), P6 from P5 and P7 from P6 (stride-2 convs): ResNetFPN's contract."""

    def __init__(self, channels: int = FPN_CHANNELS, pretrained: bool = False) -> None:
        super().__init__()
        self.base = dla34(pretrained=pretrained)
        add_fpn(self, list(_DLA_WIDTHS), channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[P3, P4, P5, P6, P7] at strides 8 .. 128."""
        return fpn_forward(self, *self.base(x)[3:6])


def _conv_gn(in_ch: int, out_ch: int, kernel: int, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=bias), nn.GroupNorm(32, out_ch))


class FusionNode(nn.Module):
    """One BiFPN node: inputs resized to the target level, fast normalised weighted sum, swish, 3x3 conv + GN."""

    def __init__(self, num_inputs: int, channels: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(num_inputs))
        self.conv = _conv_gn(channels, channels, 3)

    def forward(self, inputs: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Fuse `inputs` (already `channels` wide; finer, same or coarser level) at the node level's `size`."""
        resized = []
        for x in inputs:
            if x.shape[-2] > size[0]:  # the finer neighbour: halve by 3x3 max pooling
                x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
            elif x.shape[-2:] != size:  # the coarser neighbour
                x = F.interpolate(x, size=size, mode="nearest")
            resized.append(x)
        w = F.relu(self.weights)
        w = w / (w.sum() + 1e-4)
        fused = sum(wi * x for wi, x in zip(w, resized))
        return self.conv(fused * fused.sigmoid())


def lateral_name(src: int, dst: int) -> str:
    """Key of the 1x1 conv + GN that brings level `src`'s input to the width of a node at level `dst`."""
    return f"p{src}_at{dst}"


class BiFPNLayer(nn.Module):
    """One BiFPN pass over P3-P5: top-down (P4', P3 out), then bottom-up (P4 out, P5 out).

    An input narrower or wider than `channels` (the raw DLA levels: first layer only) is first brought to
    `channels` by a 1x1 conv (with bias) + GN. There is one such conv per (input level, node level): P4's
    serves both level-4 nodes, while P5 has one for the level-4 node and another for the level-5 node.
    """

    def __init__(self, in_widths: list[int], channels: int) -> None:
        super().__init__()
        lateral = {}
        for src, dst in ((4, 4), (5, 4), (3, 3), (5, 5)):
            width = in_widths[src - 3]
            if width != channels:
                lateral[lateral_name(src, dst)] = _conv_gn(width, channels, 1, bias=True)
        self.lateral = nn.ModuleDict(lateral)
        self.td4 = FusionNode(2, channels)
        self.out3 = FusionNode(2, channels)
        self.out4 = FusionNode(3, channels)
        self.out5 = FusionNode(2, channels)

    def _at(self, x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
        name = lateral_name(src, dst)
        return self.lateral[name](x) if name in self.lateral else x

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[P3, P4, P5] in, [P3, P4, P5] out (same sizes, `channels` wide)."""
        p3, p4, p5 = feats
        size3, size4, size5 = (tuple(f.shape[-2:]) for f in feats)
        p4_at4 = self._at(p4, 4, 4)
        td4 = self.td4([p4_at4, self._at(p5, 5, 4)], size4)
        out3 = self.out3([self._at(p3, 3, 3), td4], size3)
        out4 = self.out4([p4_at4, td4, out3], size4)
        out5 = self.out5([self._at(p5, 5, 5), out4], size5)
        return [out3, out4, out5]


class DLABiFPN(nn.Module):
    """DLA-34 levels 3-5 -> `repeats` BiFPN layers of `channels`: [P3, P4, P5] only (no P6/P7).

    Module for module CenterNet2's FCOS-style 3-level BiFPN (its DLA-BiFPN-P3 configs), so that
    tools/convert_centernet2_weight.py can load those checkpoints; the DLA-34 body is the same network too.
    """

    def __init__(self, channels: int = BIFPN_CHANNELS, repeats: int = BIFPN_REPEATS, pretrained: bool = False) -> None:
        super().__init__()
        self.base = dla34(pretrained=pretrained)
        widths = list(_DLA_WIDTHS)
        layers = []
        for _ in range(repeats):
            layers.append(BiFPNLayer(widths, channels))
            widths = [channels] * 3
        self.bifpn = nn.ModuleList(layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[P3, P4, P5] at strides 8, 16, 32."""
        feats = list(self.base(x)[3:6])
        for layer in self.bifpn:
            feats = layer(feats)
        return feats


def _check_depth(num_layers: int, suffix: str) -> None:
    if num_layers != 34:
        raise UserError(f"--arch dla_{num_layers}_{suffix}: unsupported depth; use dla_34_{suffix}")


def get_pose_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 1024,
                 pretrained: bool = False) -> CenterNet2:
    """CenterNet2 on DLA-34-FPN (P3-P7, 256 channels); ImageNet DLA-34 weights from the hub cache if `pretrained`."""
    _check_depth(num_layers, "fpn")
    return centernet2_on(DLAFPN(pretrained=pretrained), heads, head_conv)


def get_bifpn_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 1024,
                  pretrained: bool = False) -> CenterNet2:
    """CenterNet2 on DLA-34-BiFPN (P3-P5, 160 channels, 4 layers); proposals and RoIs use levels 3-5."""
    _check_depth(num_layers, "bifpn")
    model = centernet2_on(DLABiFPN(pretrained=pretrained), heads, head_conv)
    model.settings.levels = list(BIFPN_LEVELS)
    return model
