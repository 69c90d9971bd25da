"""res_N: ResNet backbone + three stride-2 deconvolutions + output heads (stride 4), no DCN."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from models.networks.common import load_imagenet, make_head, set_heatmap_bias
from utils.errors import UserError

BN_MOMENTUM = 0.1

# torchvision's ImageNet files, named by depth and the hash prefix the hub cache file names carry
_IMAGENET_DIGESTS = {18: "5c106cde", 34: "333f7ec4", 50: "19c8e357", 101: "5d3b4d8f", 152: "b121ed2d"}
model_urls = {f"resnet{depth}": f"https://download.pytorch.org/models/resnet{depth}-{digest}.pth"
              for depth, digest in _IMAGENET_DIGESTS.items()}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the momentum all these networks use."""
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = batch_norm(planes)
        self.downsample, self.stride = downsample, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += residual
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, with a residual (ResNet-50+)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        width, out_planes = planes, planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = batch_norm(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = batch_norm(width)
        self.conv3 = nn.Conv2d(width, out_planes, kernel_size=1, bias=False)
        self.bn3 = batch_norm(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample, self.stride = downsample, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += residual
        return self.relu(out)


class PoseResNetBase(nn.Module):
    """ResNet stem and four stages plus the forward pass shared by res_N and resdcn_N (they differ in the up path)."""

    def _build_resnet(self, block: type[nn.Module], layers: list[int]) -> None:
        """Register the stem and layer1..layer4 (registration order fixes the checkpoint's key order)."""
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # stage i doubles the width of stage i - 1; all but the first halve the resolution
        for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            setattr(self, f"layer{stage}", self._make_layer(block, planes, blocks, stride=1 if stage == 1 else 2))

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                batch_norm(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def init_backbone_from_scratch(self) -> None:
        """He init for the stem and the four stages, and each residual block's last BN scale at 0.

        Used when no ImageNet weights are loaded (torchvision's from-scratch ResNet recipe with
        zero_init_residual): every block starts as the identity, so conv1's colour and edge features reach
        the heads from the first step instead of being re-learned through 8-50 random blocks.
        """
        for stage in (self.conv1, self.bn1, self.layer1, self.layer2, self.layer3, self.layer4):
            for m in stage.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                nn.init.zeros_((block.bn3 if isinstance(block, Bottleneck) else block.bn2).weight)

    @staticmethod
    def _get_deconv_cfg(deconv_kernel: int) -> tuple[int, int, int]:
        """(kernel, padding, output_padding) that exactly doubles the resolution."""
        return {4: (4, 1, 0), 3: (3, 1, 1), 2: (2, 0, 0)}[deconv_kernel]

    def _deconv_specs(self, num_layers: int, num_filters: list[int], num_kernels: list[int]):
        """(planes, kernel, padding, output_padding) of each up-sampling stage."""
        if not num_layers == len(num_filters) == len(num_kernels):
            raise ValueError("num_layers must match len(num_filters) and len(num_kernels)")
        return [(planes, *self._get_deconv_cfg(k)) for planes, k in zip(num_filters, num_kernels)]

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Raw head outputs at stride 4, as a one-element list (one stack)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        return [{head: getattr(self, head)(x) for head in self.heads}]


class PoseResNet(PoseResNetBase):
    """ResNet stages, deconv up-sampling to stride 4 and one head per output; returns [dict]."""

    def __init__(self, block: type[nn.Module], layers: list[int], heads: Mapping[str, int], head_conv: int,
                 **kwargs):
        super().__init__()
        self.deconv_with_bias = False
        self.heads = heads

        self._build_resnet(block, layers)
        self.deconv_layers = self._make_deconv_layer(3, [256, 256, 256], [4, 4, 4])

        # Registered in sorted name order (this fixes the checkpoint's key order); forward follows `heads`.
        for head in sorted(self.heads):
            self.__setattr__(head, make_head(256, head_conv, self.heads[head]))

    def _make_deconv_layer(self, num_layers: int, num_filters: list[int], num_kernels: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for planes, kernel, padding, output_padding in self._deconv_specs(num_layers, num_filters, num_kernels):
            layers.append(nn.ConvTranspose2d(self.inplanes, planes, kernel_size=kernel, stride=2, padding=padding,
                                             output_padding=output_padding, bias=self.deconv_with_bias))
            layers.append(batch_norm(planes))
            layers.append(nn.ReLU(inplace=True))
            self.inplanes = planes
        return nn.Sequential(*layers)

    def init_weights(self, num_layers: int, pretrained: bool = True) -> None:
        """Deconv N(0, 0.001) + BN 1/0, heads (hm bias -2.19, others N(0, 0.001)/0), then ImageNet or scratch init."""
        for layer in self.deconv_layers:
            if isinstance(layer, nn.BatchNorm2d):
                nn.init.ones_(layer.weight)
                nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.ConvTranspose2d):
                nn.init.normal_(layer.weight, std=0.001)
                if layer.bias is not None:  # only with deconv_with_bias
                    nn.init.zeros_(layer.bias)
        for head, n_out in self.heads.items():
            for m in getattr(self, head).modules():
                # The final conv is recognised by its output width, as in the original.
                if isinstance(m, nn.Conv2d) and m.weight.shape[0] == n_out:
                    if "hm" in head:
                        set_heatmap_bias(m)
                    else:
                        nn.init.normal_(m.weight, std=0.001)
                        nn.init.constant_(m.bias, 0)
        if not (pretrained and load_imagenet(self, model_urls[f"resnet{num_layers}"])):
            self.init_backbone_from_scratch()


resnet_spec = {18: (BasicBlock, [2, 2, 2, 2]),
               34: (BasicBlock, [3, 4, 6, 3]),
               50: (Bottleneck, [3, 4, 6, 3]),
               101: (Bottleneck, [3, 4, 23, 3]),
               152: (Bottleneck, [3, 8, 36, 3])}


def build_pose_resnet(model_class: type[PoseResNetBase], arch: str, num_layers: int, heads: Mapping[str, int],
                      head_conv: int, pretrained: bool) -> PoseResNetBase:
    """`model_class` of depth `num_layers`, initialised; an unsupported depth is a UserError naming --arch."""
    if num_layers not in resnet_spec:
        raise UserError(f"--arch {arch}_{num_layers}: unsupported depth; use one of "
                        f"{', '.join(f'{arch}_{n}' for n in resnet_spec)}")
    block_class, layers = resnet_spec[num_layers]
    model = model_class(block_class, layers, heads, head_conv=head_conv)
    model.init_weights(num_layers, pretrained=pretrained)
    return model


def get_pose_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 64,
                 pretrained: bool = False) -> PoseResNet:
    """PoseResNet of depth `num_layers` (18/34/50/101/152); ImageNet weights from the hub cache if pretrained."""
    return build_pose_resnet(PoseResNet, "res", num_layers, heads, head_conv, pretrained)
