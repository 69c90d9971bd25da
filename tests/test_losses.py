"""Loss building blocks on tiny hand-computed cases."""
import math

import pytest
import torch
import torch.nn.functional as F

from models.losses import (
    BinRotLoss,
    FocalLoss,
    L1Loss,
    NormRegL1Loss,
    RegL1Loss,
    RegLoss,
    RegWeightedL1Loss,
    _neg_loss,
    _reg_loss,
    compute_rot_loss,
)

torch.set_num_threads(1)


# Independent formulations of the same losses, used as references for the library's.
def _slow_neg_loss(pred, gt):
    """Focal loss computed on the selected pixels only."""
    pos_inds = gt.eq(1)
    neg_inds = gt.lt(1)
    pos_pred = pred[pos_inds]
    neg_pred = pred[neg_inds]
    pos_loss = (torch.log(pos_pred) * torch.pow(1 - pos_pred, 2)).sum()
    neg_loss = (torch.log(1 - neg_pred) * torch.pow(neg_pred, 2) * torch.pow(1 - gt[neg_inds], 4)).sum()
    if pos_pred.nelement() == 0:
        return 0 - neg_loss
    return 0 - (pos_loss + neg_loss) / pos_inds.float().sum()


def _not_faster_neg_loss(pred, gt):
    """Focal loss as one masked expression."""
    pos = gt.eq(1).float()
    neg = gt.lt(1).float()
    num_pos = pos.sum()
    # a positive p contributes like a negative of probability 1 - p with weight 1
    flipped = pred * neg + (1 - pred) * pos
    weight = torch.pow(1 - gt, 4) * neg + pos
    total = (torch.log(1 - flipped) * torch.pow(flipped, 2) * weight).sum()
    if num_pos > 0:
        total = total / num_pos
    return 0 - total


def _slow_reg_loss(regr, gt_regr, mask):
    """Smooth-L1 over the masked objects only, normalised by the object count."""
    num = mask.float().sum()
    sel = mask.unsqueeze(2).expand_as(gt_regr).bool()
    loss = F.smooth_l1_loss(regr[sel], gt_regr[sel], reduction="sum")
    return loss / (num + 1e-4)


def _focal_by_hand(pred, gt):
    pos = neg = 0.0
    n = 0
    for p, g in zip(pred.flatten().tolist(), gt.flatten().tolist()):
        if g == 1:
            pos += math.log(p) * (1 - p) ** 2
            n += 1
        else:
            neg += math.log(1 - p) * p ** 2 * (1 - g) ** 4
    return -neg if n == 0 else -(pos + neg) / n


def test_focal_loss_value():
    pred = torch.tensor([0.8, 0.3, 0.1, 0.6, 0.5, 0.9]).view(1, 1, 2, 3)
    gt = torch.tensor([1.0, 0.5, 0.0, 1.0, 0.2, 0.9999]).view(1, 1, 2, 3)
    want = _focal_by_hand(pred, gt)
    for fn in (_neg_loss, _slow_neg_loss, _not_faster_neg_loss, FocalLoss()):
        assert float(fn(pred, gt)) == pytest.approx(want, rel=1e-5)


def test_focal_loss_without_positives_is_unnormalised():
    pred = torch.tensor([0.2, 0.4]).view(1, 1, 1, 2)
    gt = torch.tensor([0.0, 0.5]).view(1, 1, 1, 2)
    want = -(math.log(0.8) * 0.04 + math.log(0.6) * 0.16 * 0.5 ** 4)
    assert float(_neg_loss(pred, gt)) == pytest.approx(want, rel=1e-5)
    assert float(_slow_neg_loss(pred, gt)) == pytest.approx(want, rel=1e-5)


def _maps():
    # B=1, D=2, H=2, W=2; object 0 at index 3, object 1 at index 0 (masked out)
    out = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])
    ind = torch.tensor([[3, 0]])
    mask = torch.tensor([[1, 0]], dtype=torch.uint8)
    target = torch.tensor([[[3.0, 10.0], [100.0, 100.0]]])
    return out, mask, ind, target


def test_reg_l1_losses_with_mask():
    out, mask, ind, target = _maps()
    # pred at index 3 = (4, 8): |4-3| + |8-10| = 3 over 2 masked coordinates
    assert float(RegL1Loss()(out, mask, ind, target)) == pytest.approx(3 / (2 + 1e-4))
    # smooth-L1: 0.5 (|d| = 1 < beta) + 1.5, divided by one object
    assert float(RegLoss()(out, mask, ind, target)) == pytest.approx(2.0 / (1 + 1e-4))
    pred = torch.tensor([[[4.0, 8.0], [1.0, 5.0]]])
    assert float(_slow_reg_loss(pred, target, mask)) == pytest.approx(float(_reg_loss(pred, target, mask)))
    # relative error: |4/3 - 1| + |8/10 - 1|
    want = abs(4 / (3 + 1e-4) - 1) + abs(8 / (10 + 1e-4) - 1)
    assert float(NormRegL1Loss()(out, mask, ind, target)) == pytest.approx(want / (2 + 1e-4), rel=1e-5)
    # per-coordinate mask: only the x of object 0
    cmask = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert float(RegWeightedL1Loss()(out, cmask, ind, target)) == pytest.approx(1 / (1 + 1e-4))
    # ddd L1 is a mean over all B x N x D entries
    assert float(L1Loss()(out, mask, ind, target)) == pytest.approx(3 / 4)


def test_bin_rot_loss_by_hand():
    # one object (row 0) in bin 1 only, one masked row
    rot = torch.tensor([2.0, -1.0, 0.3, 0.9, 0.5, 0.5, -0.2, 0.1]).view(1, 8, 1, 1).expand(1, 8, 1, 2).contiguous()
    ind = torch.tensor([[0, 1]])
    mask = torch.tensor([[1, 0]], dtype=torch.uint8)
    rotbin = torch.tensor([[[1, 0], [0, 0]]])
    rotres = torch.tensor([[[0.4, 0.0], [0.0, 0.0]]])
    ce1 = -math.log(math.exp(-1.0) / (math.exp(2.0) + math.exp(-1.0)))  # class 1 of (2, -1)
    ce2 = -math.log(0.5)  # class 0 of (0.5, 0.5)
    masked = math.log(2)  # zero logits vs class 0
    bins = (ce1 + masked) / 2 + (ce2 + masked) / 2

    def sl1(d):
        return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5

    res = sl1(0.3 - math.sin(0.4)) + sl1(0.9 - math.cos(0.4))
    assert float(BinRotLoss()(rot, mask, ind, rotbin, rotres)) == pytest.approx(bins + res, rel=1e-5)
    no_res = compute_rot_loss(rot.view(1, 8, 2).transpose(1, 2), torch.zeros(1, 2, 2, dtype=torch.long),
                              rotres, mask)
    assert float(no_res) == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + math.exp(-1))) / 2 + masked / 2
                                          + ce2 / 2 + masked / 2, rel=1e-5)


def test_losses_backpropagate():
    out, mask, ind, target = _maps()
    out.requires_grad_(True)
    RegL1Loss()(out, mask, ind, target).backward()
    assert out.grad[0, 0, 1, 1] != 0 and out.grad[0, 0, 0, 0] == 0
