"""The CenterNet2 network: backbone features -> proposals -> cascade RoI heads, with run-time settings."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .proposals import ProposalHead, decode_proposals
from .roi_heads import CascadeRoIHeads
from .targets import sizes_of_interest

ALL_LEVELS = (3, 4, 5, 6, 7)  # the backbone always computes P3-P7


@dataclass
class ProposalSettings:
    """How the first stage turns its maps into proposals (CenterNet2's defaults)."""

    levels: list[int] = field(default_factory=lambda: list(ALL_LEVELS))
    score_thresh: float = 1e-4
    pre_nms_train: int = 4000
    post_nms_train: int = 2000
    pre_nms_test: int = 1000
    post_nms_test: int = 256
    nms_thresh: float = 0.9

    @property
    def strides(self) -> list[int]:
        """Input pixels per location of each used level."""
        return [2 ** level for level in self.levels]

    @property
    def ranges(self) -> list[tuple[float, float]]:
        """Object size range of each used level."""
        return sizes_of_interest(self.levels)


class CenterNet2(nn.Module):
    """Backbone (list of P3..P7 maps), shared CenterNet proposal head, cascade of RoI box heads."""

    def __init__(self, backbone: nn.Module, num_classes: int, num_stages: int = 3, fc_dim: int = 1024) -> None:
        super().__init__()
        self.backbone = backbone
        channels = backbone.out_channels
        self.proposal_head = ProposalHead(channels, num_levels=len(ALL_LEVELS))
        self.roi_heads = CascadeRoIHeads(channels, num_classes, num_stages, fc_dim)
        self.settings = ProposalSettings()

    def configure(self, opt) -> CenterNet2:
        """Take the run-time settings (levels, proposal counts, IoU thresholds) from the options."""
        s = self.settings
        s.levels = list(getattr(opt, "fpn_levels", s.levels))
        s.post_nms_train = getattr(opt, "num_proposals_train", s.post_nms_train)
        s.post_nms_test = getattr(opt, "num_proposals_test", s.post_nms_test)
        s.pre_nms_train = max(s.pre_nms_train, s.post_nms_train)
        s.pre_nms_test = max(s.pre_nms_test, s.post_nms_test)
        if hasattr(opt, "cascade_ious"):
            self.roi_heads.ious = list(opt.cascade_ious)
        self.roi_heads.batch_size_per_image = getattr(opt, "roi_batch_size", self.roi_heads.batch_size_per_image)
        self.roi_heads.sigmoid_ce = getattr(opt, "sigmoid_ce", self.roi_heads.sigmoid_ce)
        return self

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The FPN maps of the used levels."""
        maps = self.backbone(images)
        return [maps[level - ALL_LEVELS[0]] for level in self.settings.levels]

    def first_stage(self, features: list[torch.Tensor]):
        """(heat-map logits, box distances in strides) per used level."""
        return self.proposal_head(features, [level - ALL_LEVELS[0] for level in self.settings.levels])

    def propose(self, heat, reg, training: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(boxes, objectness) per image from the first stage's maps."""
        s = self.settings
        pre, post = (s.pre_nms_train, s.post_nms_train) if training else (s.pre_nms_test, s.post_nms_test)
        return decode_proposals(heat, reg, s.strides, s.score_thresh, pre, post, s.nms_thresh)

    def forward(self, images: torch.Tensor, batch: dict | None = None) -> list[dict]:
        """[outputs]: first-stage maps and proposals; with `batch` (ground truth) the cascade's training
        outputs ('stages'); in eval mode the detections ('detections': (boxes, scores, classes) per image)."""
        feats = self.features(images)
        heat, reg = self.first_stage(feats)
        image_size = (images.shape[2], images.shape[3])
        proposals = self.propose(heat, reg, training=self.training)
        out = {"heat": heat, "reg": reg, "proposals": proposals}
        if batch is not None:
            gt_boxes, gt_classes = ground_truth(batch)
            out["stages"] = self.roi_heads.forward_train(feats, self.settings.levels, proposals, gt_boxes,
                                                         gt_classes, image_size)
        if not self.training:
            out["detections"] = self.roi_heads.inference(feats, self.settings.levels, proposals, image_size)
        return [out]


def ground_truth(batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(boxes n_i x 4, 0-based classes n_i) per image from a batch's padded gt_boxes / gt_classes / gt_mask."""
    mask = batch["gt_mask"].bool()
    boxes = [b[m].float() for b, m in zip(batch["gt_boxes"], mask)]
    classes = [c[m].long() for c, m in zip(batch["gt_classes"], mask)]
    return boxes, classes
