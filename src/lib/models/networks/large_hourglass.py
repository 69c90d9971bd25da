"""hourglass: the CornerNet/ExtremeNet Hourglass-104 (2 stacks, intermediate supervision), stride 4."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from models.networks.common import set_heatmap_bias


class convolution(nn.Module):
    """k x k conv (+ BN when with_bn, otherwise the conv has a bias) + ReLU."""

    def __init__(self, k: int, inp_dim: int, out_dim: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        pad = (k - 1) // 2
        self.conv = nn.Conv2d(inp_dim, out_dim, (k, k), padding=(pad, pad), stride=(stride, stride),
                              bias=not with_bn)
        # An empty Sequential keeps the attribute (and adds no keys) when there is no BN.
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(BN(conv(x)))."""
        return self.relu(self.bn(self.conv(x)))


class residual(nn.Module):
    """Two 3x3 conv+BN with a (projected when the shape changes) skip connection."""

    def __init__(self, k: int, inp_dim: int, out_dim: int, stride: int = 1, with_bn: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(inp_dim, out_dim, (3, 3), padding=(1, 1), stride=(stride, stride), bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, (3, 3), padding=(1, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        if stride != 1 or inp_dim != out_dim:
            self.skip = nn.Sequential(
                nn.Conv2d(inp_dim, out_dim, (1, 1), stride=(stride, stride), bias=False),
                nn.BatchNorm2d(out_dim),
            )
        else:
            self.skip = nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(bn2(conv2(relu(bn1(conv1(x))))) + skip(x))."""
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        # In place: BN's backward does not need its output, and this halves peak memory here.
        out += self.skip(x)
        return self.relu(out)


def make_layer(k: int, inp_dim: int, out_dim: int, modules: int, layer: type[nn.Module] = convolution,
               **kwargs) -> nn.Sequential:
    """`modules` layers, the first changing inp_dim -> out_dim."""
    layers = [layer(k, inp_dim, out_dim, **kwargs)]
    layers += [layer(k, out_dim, out_dim, **kwargs) for _ in range(1, modules)]
    return nn.Sequential(*layers)


def make_layer_revr(k: int, inp_dim: int, out_dim: int, modules: int, layer: type[nn.Module] = convolution,
                    **kwargs) -> nn.Sequential:
    """`modules` layers, the last changing inp_dim -> out_dim."""
    layers = [layer(k, inp_dim, inp_dim, **kwargs) for _ in range(modules - 1)]
    layers.append(layer(k, inp_dim, out_dim, **kwargs))
    return nn.Sequential(*layers)


def make_hg_layer(k: int, inp_dim: int, out_dim: int, modules: int, layer: type[nn.Module] = convolution,
                  **kwargs) -> nn.Sequential:
    """Down-sampling entry of a hourglass level: a stride-2 layer then modules-1 plain ones."""
    layers = [layer(k, inp_dim, out_dim, stride=2)]
    layers += [layer(k, out_dim, out_dim) for _ in range(modules - 1)]
    return nn.Sequential(*layers)


def make_kp_layer(cnv_dim: int, curr_dim: int, out_dim: int) -> nn.Sequential:
    """An output head: 3x3 conv with bias + ReLU, then a 1x1 conv."""
    return nn.Sequential(convolution(3, cnv_dim, curr_dim, with_bn=False), nn.Conv2d(curr_dim, out_dim, (1, 1)))


class kp_module(nn.Module):
    """One hourglass level: up1(x) + upsample(low3(low2(low1(x)))), low2 recursing n-1 times."""

    def __init__(self, n: int, dims: Sequence[int], modules: Sequence[int], layer: type[nn.Module] = residual):
        super().__init__()
        self.n = n
        curr_mod, next_mod = modules[0], modules[1]
        curr_dim, next_dim = dims[0], dims[1]
        self.up1 = make_layer(3, curr_dim, curr_dim, curr_mod, layer=layer)
        self.max1 = nn.Sequential()  # the stride-2 first layer of low1 does the down-sampling
        self.low1 = make_hg_layer(3, curr_dim, next_dim, curr_mod, layer=layer)
        if n > 1:
            self.low2 = kp_module(n - 1, dims[1:], modules[1:], layer=layer)
        else:
            self.low2 = make_layer(3, next_dim, next_dim, next_mod, layer=layer)
        self.low3 = make_layer_revr(3, next_dim, curr_dim, curr_mod, layer=layer)
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Hourglass level output, same shape as x."""
        up1 = self.up1(x)
        up2 = self.up2(self.low3(self.low2(self.low1(self.max1(x)))))
        # Accumulate into up2: nearest up-sampling's backward does not need its output (up1 is a ReLU
        # output that autograd keeps, so it must not be modified).
        up2 += up1
        return up2


class exkp(nn.Module):
    """Stacked hourglasses with per-stack heads; the stacks are chained through inters/inters_/cnvs_."""

    def __init__(self, n: int, nstack: int, dims: Sequence[int], modules: Sequence[int], heads: Mapping[str, int],
                 cnv_dim: int = 256, kp_layer: type[nn.Module] = residual):
        super().__init__()
        self.nstack = nstack
        self.heads = heads
        curr_dim = dims[0]

        self.pre = nn.Sequential(convolution(7, 3, 128, stride=2), residual(3, 128, 256, stride=2))
        self.kps = nn.ModuleList([kp_module(n, dims, modules, layer=kp_layer) for _ in range(nstack)])
        self.cnvs = nn.ModuleList([convolution(3, curr_dim, cnv_dim) for _ in range(nstack)])
        self.inters = nn.ModuleList([residual(3, curr_dim, curr_dim) for _ in range(nstack - 1)])
        self.inters_ = nn.ModuleList([
            nn.Sequential(nn.Conv2d(curr_dim, curr_dim, (1, 1), bias=False), nn.BatchNorm2d(curr_dim))
            for _ in range(nstack - 1)
        ])
        self.cnvs_ = nn.ModuleList([
            nn.Sequential(nn.Conv2d(cnv_dim, curr_dim, (1, 1), bias=False), nn.BatchNorm2d(curr_dim))
            for _ in range(nstack - 1)
        ])
        for head, n_out in heads.items():
            module = nn.ModuleList([make_kp_layer(cnv_dim, curr_dim, n_out) for _ in range(nstack)])
            self.__setattr__(head, module)
            if "hm" in head:
                for heat in module:
                    set_heatmap_bias(heat[-1])
        self.relu = nn.ReLU(inplace=True)

    def forward(self, image: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One dict of raw head outputs per stack (intermediate supervision); detectors use the last."""
        inter = self.pre(image)
        outs = []
        for ind in range(self.nstack):
            cnv = self.cnvs[ind](self.kps[ind](inter))
            outs.append({head: self.__getattr__(head)[ind](cnv) for head in self.heads})
            if ind < self.nstack - 1:
                nxt = self.inters_[ind](inter)
                nxt += self.cnvs_[ind](cnv)
                inter = self.inters[ind](self.relu(nxt))
        return outs


class HourglassNet(exkp):
    """Hourglass-104: 5 levels, dims 256-256-384-384-384-512, 2 residuals per level (4 at the bottom)."""

    def __init__(self, heads: Mapping[str, int], num_stacks: int = 2):
        super().__init__(5, num_stacks, [256, 256, 384, 384, 384, 512], [2, 2, 2, 2, 2, 4], heads,
                         cnv_dim=256, kp_layer=residual)


def get_large_hourglass_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 64,
                            pretrained: bool = False) -> HourglassNet:
    """The 2-stack hourglass; num_layers, head_conv and pretrained are ignored (no ImageNet weights exist)."""
    return HourglassNet(heads, 2)
