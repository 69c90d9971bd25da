"""Loss building blocks: penalty-reduced focal loss on heat maps and masked regression losses.

The per-task loss modules (trains/<task>.py) combine these.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.utils import _tranpose_and_gather_feat


def _focal_terms(pred: torch.Tensor, gt: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
    """Summed positive and negative focal terms (alpha = 2, beta = 4) for float masks `pos`, `neg`."""
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * torch.pow(1 - gt, 4) * neg).sum()
    return pos_loss, neg_loss


def _neg_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet) over whole B x C x H x W tensors.

    Peaks (gt == 1) are positives; every other pixel is a negative down-weighted by (1 - gt)^4.
    The sum is normalised by the number of positives (not at all when there are none).
    """
    pos = gt.eq(1).float()
    neg = gt.lt(1).float()
    pos_loss, neg_loss = _focal_terms(pred, gt, pos, neg)
    num_pos = pos.sum()
    if num_pos == 0:
        return 0 - neg_loss
    return 0 - (pos_loss + neg_loss) / num_pos


def _logit_neg_loss(logits: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """`_neg_loss` of sigmoid(logits) computed from the logits with logsigmoid (no clamp).

    Same terms, alpha = 2, beta = 4 and normalisation by the number of positives. Half-precision
    inputs are computed in float32 (and the result returned in float32): log(1 - sigmoid(x)) is taken as
    logsigmoid(-x), so saturated logits give large finite losses and gradients instead of log(0).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    x, gt = logits.to(dtype), gt.to(dtype)
    log_p, log_not_p = F.logsigmoid(x), F.logsigmoid(-x)
    pos = gt.eq(1).to(dtype)
    neg = gt.lt(1).to(dtype)
    pos_loss = (log_p * torch.exp(log_not_p).pow(2) * pos).sum()
    neg_loss = (log_not_p * torch.exp(log_p).pow(2) * torch.pow(1 - gt, 4) * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return 0 - neg_loss
    return 0 - (pos_loss + neg_loss) / num_pos


def _reg_loss(regr: torch.Tensor, gt_regr: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 of masked B x N x D predictions, summed and divided by the number of objects."""
    num = mask.float().sum()
    m = mask.unsqueeze(2).expand_as(gt_regr).float()
    loss = F.smooth_l1_loss(regr * m, gt_regr * m, reduction="sum")
    return loss / (num + 1e-4)


class FocalLoss(nn.Module):
    """Module form of `_neg_loss(out, target)`."""

    def __init__(self):
        super().__init__()
        self.neg_loss = _neg_loss

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of sigmoided predictions against the Gaussian target heat map."""
        return self.neg_loss(out, target)


class LogitFocalLoss(nn.Module):
    """Module form of `_logit_neg_loss(logits, target)`: the focal loss of --focal_loss logsigmoid."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of raw heat-map logits against the Gaussian target heat map."""
        return _logit_neg_loss(logits, target)


class RegLoss(nn.Module):
    """Smooth-L1 regression at object centres: output B x D x H x W, mask/ind B x N, target B x N x D."""

    def forward(self, output, mask, ind, target):
        """Loss summed over masked objects' coordinates / number of objects."""
        return _reg_loss(_tranpose_and_gather_feat(output, ind), target, mask)


class RegL1Loss(nn.Module):
    """L1 regression at object centres, normalised by the number of masked coordinates."""

    def forward(self, output, mask, ind, target):
        """sum |pred - target| over masked objects / (D x objects + 1e-4)."""
        pred = _tranpose_and_gather_feat(output, ind)
        m = mask.unsqueeze(2).expand_as(pred).float()
        return F.l1_loss(pred * m, target * m, reduction="sum") / (m.sum() + 1e-4)


class NormRegL1Loss(nn.Module):
    """L1 of the prediction relative to the target (pred / target vs 1) at object centres."""

    def forward(self, output, mask, ind, target):
        """sum |pred / (target + 1e-4) - 1| over masked objects / (D x objects + 1e-4)."""
        pred = _tranpose_and_gather_feat(output, ind)
        m = mask.unsqueeze(2).expand_as(pred).float()
        ratio = pred / (target + 1e-4)
        ones = target * 0 + 1
        return F.l1_loss(ratio * m, ones * m, reduction="sum") / (m.sum() + 1e-4)


class RegWeightedL1Loss(nn.Module):
    """L1 regression whose mask is already per coordinate (B x N x D)."""

    def forward(self, output, mask, ind, target):
        """sum |pred - target| over masked coordinates / (number of masked coordinates + 1e-4)."""
        pred = _tranpose_and_gather_feat(output, ind)
        m = mask.float()
        return F.l1_loss(pred * m, target * m, reduction="sum") / (m.sum() + 1e-4)


class L1Loss(nn.Module):
    """Masked L1 averaged over all B x N x D entries (not over the objects; used by ddd)."""

    def forward(self, output, mask, ind, target):
        """mean |pred * mask - target * mask|."""
        pred = _tranpose_and_gather_feat(output, ind)
        m = mask.unsqueeze(2).expand_as(pred).float()
        return F.l1_loss(pred * m, target * m, reduction="mean")


class BinRotLoss(nn.Module):
    """Two-bin orientation loss (bin classification + sin/cos residual) at object centres."""

    def forward(self, output, mask, ind, rotbin, rotres):
        """compute_rot_loss of the 8 rotation channels gathered at `ind`."""
        return compute_rot_loss(_tranpose_and_gather_feat(output, ind), rotbin, rotres, mask)


def compute_res_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean smooth-L1 of a residual."""
    return F.smooth_l1_loss(output, target, reduction="mean")


def compute_bin_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of bin logits averaged over all rows; masked-out rows see all-zero logits."""
    m = mask.expand_as(output).float()
    return F.cross_entropy(output * m, target, reduction="mean")


def compute_rot_loss(output: torch.Tensor, target_bin: torch.Tensor, target_res: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    """Bin + residual rotation loss.

    output: B x N x 8 [bin1 logit0, bin1 logit1, bin1 sin, bin1 cos, bin2 logit0, bin2 logit1, bin2 sin, bin2 cos];
    target_bin, target_res: B x N x 2 (per bin: inside flag, angle relative to the bin centre); mask: B x N.
    """
    rows, row_mask = output.view(-1, 8), mask.view(-1, 1)
    in_bin, angles = target_bin.view(-1, 2), target_res.view(-1, 2)
    bin_loss = (compute_bin_loss(rows[:, 0:2], in_bin[:, 0], row_mask)
                + compute_bin_loss(rows[:, 4:6], in_bin[:, 1], row_mask))
    res_loss = torch.zeros_like(bin_loss)
    # residuals only count for rows whose angle falls inside that bin (mask is not applied here)
    for b, (sin_col, cos_col) in enumerate(((2, 3), (6, 7))):
        idx = in_bin[:, b].nonzero()[:, 0]
        if idx.shape[0] > 0:
            picked = rows.index_select(0, idx)
            angle = angles.index_select(0, idx)[:, b]
            res_loss = res_loss + (compute_res_loss(picked[:, sin_col], torch.sin(angle))
                                   + compute_res_loss(picked[:, cos_col], torch.cos(angle)))
    return bin_loss + res_loss
