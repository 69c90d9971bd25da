"""CenterNet2's losses: agnostic heat-map focal loss, GIoU on box distances, cascade CE + L1 box deltas."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import giou_loss_ltrb

# CenterNet2's proposal-loss settings (Base-CenterNet2.yaml)
FOCAL_ALPHA, FOCAL_BETA, FOCAL_GAMMA = 0.25, 4.0, 2.0
SIGMOID_CLAMP = 1e-4
IGNORE_HIGH_FP = 0.85
POS_WEIGHT = NEG_WEIGHT = 0.5


def heatmap_focal_loss(logits: torch.Tensor, target: torch.Tensor, pos_inds: torch.Tensor):
    """(positive, negative) focal-loss sums of flattened agnostic heat-map logits against Gaussian targets.

    Positives are the listed locations; every location is a negative weighted by (1 - target)^beta, and
    negatives the network already scores above IGNORE_HIGH_FP (likely unlabelled objects) are ignored.
    """
    pred = logits.float().sigmoid().clamp(min=SIGMOID_CLAMP, max=1 - SIGMOID_CLAMP)
    pos_pred = pred[pos_inds]
    pos = -(torch.log(pos_pred) * (1 - pos_pred) ** FOCAL_GAMMA).sum()
    neg_terms = torch.log(1 - pred) * pred ** FOCAL_GAMMA * (1 - target.float()) ** FOCAL_BETA
    neg_terms = neg_terms * (pred < IGNORE_HIGH_FP).float()
    neg = -neg_terms.sum()
    return FOCAL_ALPHA * pos, (1 - FOCAL_ALPHA) * neg


def first_stage_losses(logits: torch.Tensor, reg_pred: torch.Tensor, pos_inds: torch.Tensor, heat: torch.Tensor,
                       reg_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(heat-map loss, GIoU loss): the focal terms per positive, the GIoU mean over regressed locations."""
    num_pos = max(float(pos_inds.numel()), 1.0)
    pos, neg = heatmap_focal_loss(logits.reshape(-1), heat, pos_inds)
    hm_loss = (POS_WEIGHT * pos + NEG_WEIGHT * neg) / num_pos
    regressed = reg_target.max(dim=1).values >= 0
    count = max(float(regressed.sum()), 1.0)
    giou = giou_loss_ltrb(reg_pred[regressed].float(), reg_target[regressed].float()).sum() / count
    return hm_loss, giou


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, sigmoid: bool = False,
                        class_mask: torch.Tensor | None = None) -> torch.Tensor:
    """A cascade stage's classification term: softmax CE over classes + background (last), or with `sigmoid`
    one binary CE per class (the background column unused) summed per box and averaged over boxes.

    `class_mask` (federated loss) keeps only the masked classes' terms; background boxes always count.
    """
    num_classes = logits.shape[1] - 1
    logits = logits.float()
    if not sigmoid:
        if class_mask is None:
            return F.cross_entropy(logits, labels)
        weight = torch.cat([class_mask.float(), class_mask.new_ones(1, dtype=torch.float32)])
        return F.cross_entropy(logits, labels, weight=weight)
    target = F.one_hot(labels, num_classes + 1)[:, :num_classes].float()
    terms = F.binary_cross_entropy_with_logits(logits[:, :num_classes], target, reduction="none")
    if class_mask is not None:
        terms = terms * class_mask.float()[None]
    return terms.sum() / logits.shape[0]


def stage_losses(logits: torch.Tensor, deltas: torch.Tensor, labels: torch.Tensor, target_deltas: torch.Tensor,
                 sigmoid: bool = False, class_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(classification loss, L1 box-delta loss) of one cascade stage; background is the last class.

    The box term sums over foreground boxes and divides by all sampled boxes, as Fast R-CNN does.
    """
    if logits.shape[0] == 0:
        zero = logits.sum() * 0
        return zero, zero
    cls_loss = classification_loss(logits, labels, sigmoid, class_mask)
    fg = labels < logits.shape[1] - 1
    box_loss = (deltas[fg].float() - target_deltas[fg]).abs().sum() / max(labels.numel(), 1)
    return cls_loss, box_loss
