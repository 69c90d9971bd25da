"""DLA-34 backbone with deformable-convolution up-sampling (arch ``dla``): the original's ``DLASeg``.

The DLA base (BasicBlock, Root, Tree, DLA) is also used by ``dlav0``, which differs only in its
initialisation and in its non-deformable up path.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.networks.common import (
    add_heads,
    fill_up_weights,
    load_imagenet,
)
from utils.errors import UserError

BN_MOMENTUM = 0.1
DLA_MODEL_ROOT = "http://dl.yf.io/dla/models"


def get_model_url(data: str = "imagenet", name: str = "dla34", hash: str = "ba72cf86") -> str:
    """URL of a released DLA checkpoint, e.g. the ImageNet DLA-34."""
    return f"{DLA_MODEL_ROOT}/{data}/{name}-{hash}.pth"


def dcn3x3(chi: int, cho: int) -> nn.Module:
    """A 3x3 stride-1 modulated deformable convolution (imported late: the C++ extension is optional)."""
    from models.networks.DCNv2.dcn_v2 import DCN

    return DCN(chi, cho, kernel_size=(3, 3), stride=1, padding=1, dilation=1, deformable_groups=1)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a residual that the caller may supply (DLA blocks have no downsample)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.stride = stride

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + residual), residual defaulting to x."""
        shortcut = x if residual is None else residual
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Root(nn.Module):
    """Aggregation node: 1x1 conv over the channel concat of its inputs, BN, optional residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, residual: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=1, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Fuse the inputs (the first one is the residual when enabled)."""
        out = self.bn(self.conv(torch.cat(inputs, 1)))
        if self.residual:
            out = out + inputs[0]
        return self.relu(out)


class Tree(nn.Module):
    """Hierarchical deep aggregation stage of `levels` levels."""

    def __init__(
        self,
        levels: int,
        block: type[nn.Module],
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        level_root: bool = False,
        root_dim: int = 0,
        root_kernel_size: int = 1,
        dilation: int = 1,
        root_residual: bool = False,
    ):
        super().__init__()
        root_dim = root_dim or 2 * out_channels
        if level_root:
            root_dim += in_channels
        if levels == 1:
            self.tree1 = block(in_channels, out_channels, stride, dilation=dilation)
            self.tree2 = block(out_channels, out_channels, 1, dilation=dilation)
            self.root = Root(root_dim, out_channels, root_kernel_size, root_residual)
        else:
            sub = dict(root_kernel_size=root_kernel_size, dilation=dilation, root_residual=root_residual)
            self.tree1 = Tree(levels - 1, block, in_channels, out_channels, stride, root_dim=0, **sub)
            self.tree2 = Tree(levels - 1, block, out_channels, out_channels, root_dim=root_dim + out_channels, **sub)
        self.level_root = level_root
        self.root_dim = root_dim
        self.levels = levels
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        self.project = None
        if in_channels != out_channels:
            self.project = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False),
                nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            )

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None, children: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Run both sub-trees and aggregate; `residual` is recomputed here (a caller's value is ignored)."""
        children = [] if children is None else children
        bottom = x if self.downsample is None else self.downsample(x)
        # Computed even when tree1 is a Tree (which projects again itself): the original does the same.
        residual = bottom if self.project is None else self.project(bottom)
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            return self.root(self.tree2(x1), x1, *children)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA(nn.Module):
    """Deep Layer Aggregation backbone; forward returns the six level outputs (strides 1..32)."""

    def __init__(
        self,
        levels: list[int],
        channels: list[int],
        num_classes: int = 1000,
        block: type[nn.Module] = BasicBlock,
        residual_root: bool = False,
        return_levels: bool = True,
        pool_size: int = 7,
        with_fc: bool = True,
    ):
        super().__init__()
        self.channels = channels
        self.num_classes = num_classes
        self.return_levels = return_levels
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], kernel_size=7, stride=1, padding=3, bias=False),
            nn.BatchNorm2d(channels[0], momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.level0 = self._make_conv_level(channels[0], channels[0], levels[0])
        self.level1 = self._make_conv_level(channels[0], channels[1], levels[1], stride=2)
        for i in range(2, 6):
            # level2 does not feed its input to its root; the deeper levels do.
            tree = Tree(levels[i], block, channels[i - 1], channels[i], 2, level_root=i > 2,
                        root_residual=residual_root)
            setattr(self, f"level{i}", tree)
        self.avgpool = nn.AvgPool2d(pool_size)
        # The ImageNet classifier exists when ImageNet weights are asked for (the original's loader creates it,
        # so checkpoints trained from ImageNet carry base.fc; it is unused by the detector).
        if with_fc:
            self.fc = nn.Conv2d(channels[-1], num_classes, kernel_size=1, stride=1, padding=0, bias=True)

    @staticmethod
    def _make_conv_level(inplanes: int, planes: int, convs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        modules: list[nn.Module] = []
        for i in range(convs):
            modules += [
                nn.Conv2d(inplanes if i == 0 else planes, planes, kernel_size=3, stride=stride if i == 0 else 1,
                          padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
        return nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        """The six level outputs, or ImageNet logits when return_levels is False."""
        x = self.base_layer(x)
        levels = []
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            levels.append(x)
        if self.return_levels:
            return levels
        return self.fc(self.avgpool(x)).flatten(1)

    def load_pretrained_model(self, data: str = "imagenet", name: str = "dla34", hash: str = "ba72cf86") -> bool:
        """Load released weights (classifier included) strictly from the torch hub cache; False if absent."""
        return load_imagenet(self, get_model_url(data, name, hash), strict=True)


def dla34(pretrained: bool = True, **kwargs) -> DLA:
    """DLA-34: levels [1, 1, 1, 2, 2, 1], channels [16, 32, 64, 128, 256, 512]."""
    kwargs.setdefault("with_fc", pretrained)
    model = DLA([1, 1, 1, 2, 2, 1], [16, 32, 64, 128, 256, 512], block=BasicBlock, **kwargs)
    if pretrained:
        model.load_pretrained_model(data="imagenet", name="dla34", hash="ba72cf86")
    return model


class DeformConv(nn.Module):
    """Deformable 3x3 conv followed by BN + ReLU (``actf`` is registered first, as in the checkpoints)."""

    def __init__(self, chi: int, cho: int):
        super().__init__()
        self.actf = nn.Sequential(nn.BatchNorm2d(cho, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
        self.conv = dcn3x3(chi, cho)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """actf(conv(x))."""
        return self.actf(self.conv(x))


class IDAUp(nn.Module):
    """Iterative deep aggregation: projects, up-samples and merges layers[startp+1:endp] in place."""

    def __init__(self, o: int, channels: list[int], up_f: list[int]):
        super().__init__()
        for i in range(1, len(channels)):
            f = int(up_f[i])
            up = nn.ConvTranspose2d(o, o, f * 2, stride=f, padding=f // 2, output_padding=0, groups=o, bias=False)
            fill_up_weights(up)
            setattr(self, f"proj_{i}", DeformConv(channels[i], o))
            setattr(self, f"up_{i}", up)
            setattr(self, f"node_{i}", DeformConv(o, o))

    def forward(self, layers: list[torch.Tensor], startp: int, endp: int) -> None:
        """layers[i] = node(up(proj(layers[i])) + layers[i - 1]) for i in startp+1 .. endp-1 (in place)."""
        for i in range(startp + 1, endp):
            k = i - startp
            merged = getattr(self, f"up_{k}")(getattr(self, f"proj_{k}")(layers[i]))
            layers[i] = getattr(self, f"node_{k}")(merged + layers[i - 1])


def dla_up_stages(channels: list[int], scales, in_channels: list[int] | None = None):
    """(index, output width, input widths, up factors) of each IDAUp of a DLAUp, deepest merge first."""
    in_ch = list(channels if in_channels is None else in_channels)
    scales = [int(s) for s in scales]
    n = len(channels)
    for i in range(n - 1):
        j = n - 2 - i
        yield i, channels[j], in_ch[j:], [s // scales[j] for s in scales[j:]]
        # Everything above level j now lives at level j's width and scale.
        scales[j + 1:] = [scales[j]] * (n - j - 1)
        in_ch[j + 1:] = [channels[j]] * (n - j - 1)


class DLAUp(nn.Module):
    """Stack of IDAUp modules merging the deepest levels down to level `startp`."""

    def __init__(self, startp: int, channels: list[int], scales: list[int], in_channels: list[int] | None = None):
        super().__init__()
        self.startp = startp
        self.channels = list(channels)
        for i, out_ch, in_ch, up_f in dla_up_stages(channels, scales, in_channels):
            setattr(self, f"ida_{i}", IDAUp(out_ch, in_ch, up_f))

    def forward(self, layers: list[torch.Tensor]) -> list[torch.Tensor]:
        """Merge in place; returns the merged maps from level `startp` (finest) to the deepest."""
        n = len(layers)
        out = [layers[-1]]
        for i in range(n - self.startp - 1):
            getattr(self, f"ida_{i}")(layers, n - i - 2, n)
            out.insert(0, layers[-1])
        return out


BASES = {"dla34": dla34}


class DLASeg(nn.Module):
    """DLA base + DLAUp + IDAUp to stride `down_ratio`, then one head per output."""

    def __init__(
        self,
        base_name: str,
        heads: dict[str, int],
        pretrained: bool,
        down_ratio: int,
        final_kernel: int,
        last_level: int,
        head_conv: int,
        out_channel: int = 0,
    ):
        super().__init__()
        if down_ratio not in (2, 4, 8, 16):
            raise UserError(f"--down_ratio {down_ratio}: DLA supports 2, 4, 8 or 16; use one of those")
        self.first_level = int(math.log2(down_ratio))
        self.last_level = last_level
        self.base = BASES[base_name](pretrained=pretrained)
        channels = self.base.channels
        used = channels[self.first_level:]
        self.dla_up = DLAUp(self.first_level, used, [2 ** i for i in range(len(used))])
        out_channel = out_channel or channels[self.first_level]
        self.ida_up = IDAUp(
            out_channel,
            channels[self.first_level:self.last_level],
            [2 ** i for i in range(self.last_level - self.first_level)],
        )
        self.heads = heads
        # this arch only zeroes the non-heatmap heads' biases (fc_std=None keeps the default weights)
        add_heads(self, heads, channels[self.first_level], head_conv, final_kernel, fc_std=None)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One dict {head: raw output at stride down_ratio}, in a list (one stack)."""
        x = self.dla_up(self.base(x))
        y = [x[i].clone() for i in range(self.last_level - self.first_level)]
        self.ida_up(y, 0, len(y))
        return [{head: getattr(self, head)(y[-1]) for head in self.heads}]


def get_pose_net(
    num_layers: int, heads: dict[str, int], head_conv: int = 256, down_ratio: int = 4, pretrained: bool = False
) -> DLASeg:
    """DLA-`num_layers` with DCN up path (only 34 exists); ImageNet base weights if `pretrained`."""
    if f"dla{num_layers}" not in BASES:
        raise UserError(f"--arch dla_{num_layers}: no such DLA depth; use dla_34")
    return DLASeg(f"dla{num_layers}", heads, pretrained=pretrained, down_ratio=down_ratio, final_kernel=1,
                  last_level=5, head_conv=head_conv)
