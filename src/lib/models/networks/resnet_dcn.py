"""resdcn_N: ResNet backbone + three [DCN 3x3, bilinear x2 up-conv] stages + output heads (stride 4)."""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from models.networks.common import add_heads, fill_up_weights, load_imagenet
from models.networks.msra_resnet import (
    PoseResNetBase,
    build_pose_resnet,
    model_urls,
)
from models.networks.pose_dla_dcn import dcn3x3

BN_MOMENTUM = 0.1


class PoseResNet(PoseResNetBase):
    """ResNet stages, DCN + up-conv stages to stride 4 (64 channels) and one head per output; returns [dict]."""

    def __init__(self, block: type[nn.Module], layers: list[int], heads: Mapping[str, int], head_conv: int):
        super().__init__()
        self.heads = heads
        self.deconv_with_bias = False

        self._build_resnet(block, layers)
        self.deconv_layers = self._make_deconv_layer(3, [256, 128, 64], [4, 4, 4])
        add_heads(self, heads, 64, head_conv)

    def _make_deconv_layer(self, num_layers: int, num_filters: list[int], num_kernels: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for planes, kernel, padding, output_padding in self._deconv_specs(num_layers, num_filters, num_kernels):
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

    def init_weights(self, num_layers: int, pretrained: bool = True) -> None:
        """ImageNet weights for the ResNet part (if `pretrained`, from the hub cache), then deconv BNs to 1 / 0."""
        if pretrained and load_imagenet(self, model_urls[f"resnet{num_layers}"]):
            print("=> init deconv weights from normal distribution")
        else:
            self.init_backbone_from_scratch()
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def get_pose_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 64,
                 pretrained: bool = False) -> PoseResNet:
    """resdcn of depth `num_layers` (18/34/50/101/152); ImageNet weights from the hub cache if pretrained."""
    return build_pose_resnet(PoseResNet, "resdcn", num_layers, heads, head_conv, pretrained)
