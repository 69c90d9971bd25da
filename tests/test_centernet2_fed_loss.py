"""--sigmoid_ce and --fed_loss of the centernet2 RoI heads: class sampling, the loss terms, class counts, scores."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datasets.dataset.common import AnnotatedDataset
from models.centernet2.fed_loss import PRIOR_PROB, frequency_weights, sample_classes
from models.centernet2.losses import classification_loss
from models.centernet2.roi_heads import CascadeRoIHeads
from opts import opts
from utils.errors import UserError


def test_sample_classes_keeps_present_and_draws_by_weight():
    weights = frequency_weights(np.array([100, 0, 4, 9, 1, 16]), 0.5)
    assert weights.tolist() == [10.0, 0.0, 2.0, 3.0, 1.0, 4.0]
    labels = torch.tensor([4, 6, 6, 4, 2])  # 6 = background
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        mask = sample_classes(labels, 6, 4, weights, gen)
        assert mask[[2, 4]].all() and int(mask.sum()) == 4
        assert not mask[1]  # no training image holds class 1
    # more classes asked than have weight: every weighted class, never the unweighted one
    mask = sample_classes(labels, 6, 50, weights, gen)
    assert mask.tolist() == [True, False, True, True, True, True]
    # the present classes alone reach the count: nothing is drawn
    assert sample_classes(labels, 6, 2, weights, gen).tolist() == [False, False, True, False, True, False]


def test_sampling_follows_the_weights():
    weights = torch.tensor([1.0, 9.0, 0.0])
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([sample_classes(torch.tensor([3]), 3, 1, weights, gen) for _ in range(400)]).float()
    assert draws.sum(1).eq(1).all()
    assert 0.85 < draws[:, 1].mean() < 0.95 and draws[:, 2].sum() == 0


def test_sigmoid_loss_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5, 9.0], [0.0, 1.0, -2.0, -9.0]])  # 3 classes + unused background
    labels = torch.tensor([1, 3])  # the second box is background
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus: BCE of target 0 is softplus(x), of 1 softplus(-x)
    box0 = sp(2.0) + sp(1.0) + sp(0.5)
    box1 = sp(0.0) + sp(1.0) + sp(-2.0)
    assert classification_loss(logits, labels, sigmoid=True).item() == pytest.approx((box0 + box1) / 2, rel=1e-6)
    mask = torch.tensor([False, True, True])
    expect = (sp(1.0) + sp(0.5) + sp(1.0) + sp(-2.0)) / 2
    assert classification_loss(logits, labels, True, mask).item() == pytest.approx(expect, rel=1e-6)


def test_softmax_loss_with_mask_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.3], [0.0, 1.0, -2.0, 0.7], [1.0, 1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 3, 2])
    nll = -F.log_softmax(logits, dim=1)[torch.arange(3), labels]
    assert classification_loss(logits, labels).item() == pytest.approx(nll.mean().item(), rel=1e-6)
    # class 2 left out of this step: its box stops counting; background boxes always count
    mask = torch.tensor([True, False, False])
    expect = (nll[0] + nll[1]) / 2
    assert classification_loss(logits, labels, False, mask).item() == pytest.approx(expect.item(), rel=1e-6)


def test_class_image_counts():
    anns = {1: [{"category_id": 3}, {"category_id": 3}, {"category_id": 7}],
            2: [{"category_id": 7}], 3: [], 4: [{"category_id": 99}], 5: [{"category_id": 3}]}
    fake = SimpleNamespace(images=[1, 2, 3, 4], cat_ids={3: 0, 5: 1, 7: 2},
                           coco=SimpleNamespace(imgToAnns=anns))
    # image 5 is not in the split; class 99 is not a class of the dataset
    assert AnnotatedDataset.class_image_counts(fake).tolist() == [1, 0, 2]


def test_sigmoid_scores_and_prior():
    heads = CascadeRoIHeads(8, 5, fc_dim=16)
    logits = torch.randn(4, 6)
    assert torch.allclose(heads.class_probs(logits), logits.softmax(1))
    heads.sigmoid_ce = True
    assert torch.allclose(heads.class_probs(logits), logits.sigmoid())
    heads.set_class_prior(PRIOR_PROB)
    for predictor in heads.box_predictor:
        assert torch.allclose(predictor.cls_score.bias.sigmoid(), torch.full((6,), PRIOR_PROB))


def test_options():
    opt = opts().parse("centernet2 --arch res_18_fpn --sigmoid_ce --fed_loss".split())
    assert opt.sigmoid_ce and opt.fed_loss and opt.fed_loss_num_cat == 50 and opt.fed_loss_freq_weight == 0.5
    with pytest.raises(UserError, match="--fed_loss: an option of the centernet2"):
        opts().parse("ctdet --fed_loss".split())
    with pytest.raises(UserError, match="--fed_loss_num_cat 0"):
        opts().parse("centernet2 --arch res_18_fpn --fed_loss_num_cat 0".split())
