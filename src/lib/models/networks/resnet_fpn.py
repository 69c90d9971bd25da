"""res_N_fpn: the res_N ResNet stages with an FPN (P3-P7), carrying the CenterNet2 detector."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.centernet2.network import CenterNet2
from models.networks.common import load_imagenet
from models.networks.msra_resnet import Bottleneck, PoseResNetBase, model_urls, resnet_spec
from utils.errors import UserError

FPN_CHANNELS = 256


def xavier_fill(conv: nn.Conv2d) -> None:
    """detectron2's FPN conv init: Kaiming-uniform (a=1) weights, zero bias."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    nn.init.constant_(conv.bias, 0)


def add_fpn(module: nn.Module, widths: list[int], channels: int) -> None:
    """Give `module` the FPN convs under detectron2's names: laterals and outputs of C3-C5, P6/P7 blocks."""
    for level, width in zip((3, 4, 5), widths):
        setattr(module, f"fpn_lateral{level}", nn.Conv2d(width, channels, 1))
        setattr(module, f"fpn_output{level}", nn.Conv2d(channels, channels, 3, padding=1))
    module.top_block_p6 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
    module.top_block_p7 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
    module.out_channels = channels
    for level in (3, 4, 5):
        xavier_fill(getattr(module, f"fpn_lateral{level}"))
        xavier_fill(getattr(module, f"fpn_output{level}"))
    xavier_fill(module.top_block_p6)
    xavier_fill(module.top_block_p7)


def fpn_forward(module: nn.Module, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
    """[P3, P4, P5, P6, P7] from C3-C5 through the convs add_fpn gave `module`."""
    top = module.fpn_lateral5(c5)
    outs = [module.fpn_output5(top)]
    for level, c in ((4, c4), (3, c3)):
        # nearest up-sampling to the lateral's own size, so inputs need not be multiples of 32
        top = getattr(module, f"fpn_lateral{level}")(c) + F.interpolate(top, size=c.shape[-2:], mode="nearest")
        outs.insert(0, getattr(module, f"fpn_output{level}")(top))
    p6 = module.top_block_p6(outs[-1])
    p7 = module.top_block_p7(F.relu(p6))
    return [*outs, p6, p7]


class ResNetFPN(PoseResNetBase):
    """ResNet stem + layer1..4 (res_N's), FPN on C3-C5, P6 from P5 and P7 from P6 (stride-2 convs)."""

    def __init__(self, block: type[nn.Module], layers: list[int], channels: int = FPN_CHANNELS) -> None:
        super().__init__()
        self._build_resnet(block, layers)
        add_fpn(self, [planes * block.expansion for planes in (128, 256, 512)], channels)
        # 1: bottleneck blocks stride in their 1x1 conv (detectron2's MSRA ResNets, set by the converter),
        # 0: in the 3x3 conv (torchvision's, as res_N). Kept in the checkpoint so converted weights run as trained.
        self.register_buffer("stride_in_1x1", torch.zeros((), dtype=torch.uint8))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.place_strides()

    def place_strides(self) -> None:
        """Put each down-sampling bottleneck's stride on its 1x1 or its 3x3 conv, as stride_in_1x1 says."""
        in_1x1 = bool(self.stride_in_1x1)
        for stage in (self.layer2, self.layer3, self.layer4):
            block = stage[0]
            if isinstance(block, Bottleneck):
                block.conv1.stride = (2, 2) if in_1x1 else (1, 1)
                block.conv2.stride = (1, 1) if in_1x1 else (2, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[P3, P4, P5, P6, P7] at strides 8 .. 128."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return fpn_forward(self, c3, c4, c5)


def get_pose_net(num_layers: int, heads: Mapping[str, int], head_conv: int = 1024,
                 pretrained: bool = False) -> CenterNet2:
    """CenterNet2 on ResNet-`num_layers`-FPN: heads['cls'] - 1 classes, heads['stages'] cascade stages,
    head_conv the width of the box heads' fully connected layers."""
    if num_layers not in resnet_spec:
        raise UserError(f"--arch res_{num_layers}_fpn: unsupported depth; use one of "
                        f"{', '.join(f'res_{n}_fpn' for n in resnet_spec)}")
    block, layers = resnet_spec[num_layers]
    backbone = ResNetFPN(block, layers)
    if not (pretrained and load_imagenet(backbone, model_urls[f"resnet{num_layers}"])):
        backbone.init_backbone_from_scratch()
    return centernet2_on(backbone, heads, head_conv)


def centernet2_on(backbone: nn.Module, heads: Mapping[str, int], head_conv: int) -> CenterNet2:
    """The CenterNet2 detector around an FPN `backbone`; --head_conv is the box heads' width (1024 if not set)."""
    fc_dim = head_conv if head_conv > 0 else 1024
    return CenterNet2(backbone, num_classes=heads["cls"] - 1, num_stages=heads.get("stages", 3), fc_dim=fc_dim)
