"""resdcn_N: ResNet backbone + three [DCN 3x3, bilinear x2 up-conv] stages + output heads (stride 4)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from models.networks.common import (
    fill_fc_weights,
    fill_up_weights,
    final_conv,
    is_heatmap_head,
    load_imagenet,
    make_head,
    set_heatmap_bias,
)
from models.networks.msra_resnet import BasicBlock, Bottleneck, model_urls, resnet_spec
from models.networks.msra_resnet import PoseResNet as _PlainPoseResNet
from models.networks.pose_dla_dcn import dcn3x3
from utils.errors import UserError

BN_MOMENTUM = 0.1

__all__ = ["BasicBlock", "Bottleneck", "PoseResNet", "get_pose_net", "model_urls", "resnet_spec"]


class PoseResNet(nn.Module):
    """ResNet stages, DCN + up-conv stages to stride 4 (64 channels) and one head per output; returns [dict]."""

    def __init__(self, block: type[nn.Module], layers: list[int], heads: Mapping[str, int], head_conv: int):
        super().__init__()
        self.inplanes = 64
        self.heads = heads
        self.deconv_with_bias = False

        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.deconv_layers = self._make_deconv_layer(3, [256, 128, 64], [4, 4, 4])

        for head, n_out in heads.items():
            fc = make_head(64, head_conv, n_out)
            if is_heatmap_head(head):
                set_heatmap_bias(final_conv(fc))
            else:
                fill_fc_weights(fc, std=0.001)
            setattr(self, head, fc)

    # The ResNet stages are built exactly as in res_N.
    _make_layer = _PlainPoseResNet._make_layer

    def _make_deconv_layer(self, num_layers: int, num_filters: list[int], num_kernels: list[int]) -> nn.Sequential:
        if not num_layers == len(num_filters) == len(num_kernels):
            raise ValueError("num_layers must match len(num_filters) and len(num_kernels)")
        layers: list[nn.Module] = []
        for planes, k in zip(num_filters, num_kernels):
            kernel, padding, output_padding = _PlainPoseResNet._get_deconv_cfg(k)
            # Not grouped: fill_up_weights makes only w[:, 0] bilinear and the rest stays random (as the original).
            up = nn.ConvTranspose2d(planes, planes, kernel_size=kernel, stride=2, padding=padding,
                                    output_padding=output_padding, bias=self.deconv_with_bias)
            fill_up_weights(up)
            layers += [
                dcn3x3(self.inplanes, planes),
                nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
                up,
                nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Raw head outputs at stride 4, as a one-element list (one stack)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        return [{head: getattr(self, head)(x) for head in self.heads}]

    def init_weights(self, num_layers: int, pretrained: bool = True) -> None:
        """ImageNet weights for the ResNet part (if `pretrained`, from the hub cache), then deconv BNs to 1 / 0."""
        if pretrained and load_imagenet(self, model_urls[f"resnet{num_layers}"]):
            print("=> init deconv weights from normal distribution")
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def get_pose_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 64,
                 pretrained: bool = False) -> PoseResNet:
    """resdcn of depth `num_layers` (18/34/50/101/152); ImageNet weights from the hub cache if pretrained."""
    if num_layers not in resnet_spec:
        raise UserError(f"--arch resdcn_{num_layers}: unsupported depth; use one of "
                        f"{', '.join(f'resdcn_{n}' for n in resnet_spec)}")
    block_class, layers = resnet_spec[num_layers]
    model = PoseResNet(block_class, layers, heads, head_conv=head_conv)
    model.init_weights(num_layers, pretrained=pretrained)
    return model
