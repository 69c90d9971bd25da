"""CenterNet2's MORE_POS (--more_pos): which 3 x 3 candidates become extra heat-map positives, and the loss."""
from types import SimpleNamespace

import pytest
import torch

from models.centernet2.boxes import giou_loss_ltrb
from models.centernet2.losses import first_stage_losses
from models.centernet2.more_pos import centre_candidates, more_positive_indices
from models.centernet2.network import ProposalSettings
from models.centernet2.targets import first_stage_targets, flatten_levels, sizes_of_interest
from opts import opts
from trains.centernet2 import CenterNet2Loss
from utils.errors import UserError

STRIDES = [8, 16]
SHAPES = [(8, 8), (4, 4)]  # one 64 x 64 image: P3 locations 0-63, P4 64-79
RANGES = sizes_of_interest([3, 4])
# centre (24, 32), half diagonal ~22.6: P3 only. P3 cell (3, 4) at pixel (28, 36): distances (2.5, 2.5, 1.5, 1.5)
# strides; P4 cell (1, 2) at pixel (24, 40): (1, 1.5, 1, 0.5), so P4's bottom row lies outside the box
BOX = torch.tensor([[8.0, 16, 40, 48]])


def _p3(x, y):
    return y * 8 + x


def _p4(x, y):
    return 64 + y * 4 + x


def _far_predictions():
    return torch.full((80, 4), 40.0)


def _target(index):
    index_, dists, valid, _ = centre_candidates([BOX], SHAPES, STRIDES, RANGES)
    hit = (index_ == index) & valid
    return dists[hit][0]


def test_candidates_cover_the_3x3_cells_inside_map_and_box():
    index, dists, valid, centre = centre_candidates([BOX], SHAPES, STRIDES, RANGES)
    assert index.shape == (1, 2, 9) and dists.shape == (1, 2, 9, 4)
    assert centre.tolist() == [[True, False]]
    assert index[0, 0].tolist() == [_p3(x, y) for y in (3, 4, 5) for x in (2, 3, 4)]
    assert torch.allclose(dists[0, 0, 4], torch.tensor([2.5, 2.5, 1.5, 1.5]))
    # one cell left: 1 stride less to the left edge, 1 more to the right one
    assert torch.allclose(dists[0, 0, 3], torch.tensor([1.5, 2.5, 2.5, 1.5]))
    assert valid[0, 0].all() and valid[0, 1].tolist() == [True] * 6 + [False] * 3
    # a box in the corner: the cells left of / above the map are not candidates
    _, _, valid, _ = centre_candidates([torch.tensor([[0.0, 0, 14, 14]])], SHAPES, STRIDES, RANGES)
    assert valid[0, 0].tolist() == [False, False, False, False, True, True, False, True, True]


def test_exact_boxes_are_chosen_and_far_ones_are_not():
    reg = _far_predictions()
    for index in (_p3(2, 4), _p3(4, 5), _p4(1, 2)):
        reg[index] = _target(index)
    # P4's cell below the centre is outside the box: an exact match of its (clamped) distances does not count
    reg[_p4(1, 3)] = torch.tensor([1.0, 2.5, 1.0, 0.0])
    extra = more_positive_indices([BOX], SHAPES, STRIDES, RANGES, reg, 0.2, 9)
    # as in CenterNet2, a level outside the object's size range still gives candidates (P4 here)
    assert sorted(extra.tolist()) == [_p3(2, 4), _p3(4, 5), _p4(1, 2)]
    # the centre itself is the regular positive: never repeated among the extras
    pos, _, _ = first_stage_targets([BOX], SHAPES, STRIDES, RANGES)
    assert pos.tolist() == [_p3(3, 4)] and _p3(3, 4) not in extra.tolist()
    assert more_positive_indices([BOX], SHAPES, STRIDES, RANGES, _far_predictions(), 0.2, 9).numel() == 0


def test_threshold_and_topk_cap():
    reg = _far_predictions()
    cells = [_p3(2, 3), _p3(3, 3), _p3(4, 3), _p3(2, 4)]
    losses = []
    for i, index in enumerate(cells):  # growing boxes: growing losses, all below 0.2
        target = _target(index)
        reg[index] = target * (1.02 + 0.02 * i)
        losses.append(giou_loss_ltrb(reg[index:index + 1], target[None]).item())
    assert losses == sorted(losses) and losses[-1] < 0.2
    assert sorted(more_positive_indices([BOX], SHAPES, STRIDES, RANGES, reg, 0.2, 9).tolist()) == sorted(cells)
    # the threshold: strictly below it
    between = (losses[1] + losses[2]) / 2
    assert sorted(more_positive_indices([BOX], SHAPES, STRIDES, RANGES, reg, between, 9).tolist()) == cells[:2]
    # top 3 counts the centre (ranked first) and stops strictly below the 3rd smallest loss: centre + 1 extra
    assert more_positive_indices([BOX], SHAPES, STRIDES, RANGES, reg, 0.2, 3).tolist() == cells[:1]
    # a topk above the number of candidates takes all of them
    assert more_positive_indices([BOX], SHAPES, STRIDES, RANGES, reg, 0.2, 100).numel() == 4


def test_two_images_and_an_empty_one_index_their_own_locations():
    reg = torch.full((160, 4), 40.0)
    boxes = [torch.zeros((0, 4)), BOX]
    index, _, valid, _ = centre_candidates(boxes, SHAPES, STRIDES, RANGES)
    # image 1's P3 follows image 0's 64 locations; its P4 follows both images' P3
    assert index[0, 0, 4].item() == 64 + _p3(3, 4) and index[0, 1, 4].item() == 128 + 16 + 2 * 4 + 1
    reg[64 + _p3(2, 4)] = _target(_p3(2, 4))
    assert more_positive_indices(boxes, SHAPES, STRIDES, RANGES, reg, 0.2, 9).tolist() == [64 + _p3(2, 4)]
    assert more_positive_indices([torch.zeros((0, 4))], SHAPES, STRIDES, RANGES, reg[:80], 0.2, 9).numel() == 0


def _outputs_and_batch(reg):
    torch.manual_seed(0)
    heat = [torch.randn(1, 1, 8, 8), torch.randn(1, 1, 4, 4)]
    maps = [reg[:64].reshape(1, 8, 8, 4).permute(0, 3, 1, 2), reg[64:].reshape(1, 4, 4, 4).permute(0, 3, 1, 2)]
    outputs = [{"heat": heat, "reg": maps, "settings": ProposalSettings(levels=[3, 4]), "stages": []}]
    batch = {"gt_boxes": BOX[None], "gt_classes": torch.tensor([[0]]), "gt_mask": torch.tensor([[1]])}
    return outputs, batch


def test_flag_off_keeps_the_loss_and_on_adds_the_extra_positives():
    reg = _far_predictions()
    reg[_p3(2, 4)] = _target(_p3(2, 4))
    outputs, batch = _outputs_and_batch(reg)
    pos, heat_t, reg_t = first_stage_targets([BOX], SHAPES, STRIDES, RANGES)
    logits = flatten_levels(outputs[0]["heat"])
    assert torch.allclose(flatten_levels(outputs[0]["reg"]), reg)
    hm, giou = first_stage_losses(logits, reg, pos, heat_t, reg_t)
    off = SimpleNamespace(more_pos=False, more_pos_thresh=0.2, more_pos_topk=9)
    for opt in (None, off):
        _, stats = CenterNet2Loss(opt)(outputs, batch)
        assert torch.equal(stats["hm_loss"], hm) and torch.equal(stats["giou_loss"], giou)
    on = SimpleNamespace(more_pos=True, more_pos_thresh=0.2, more_pos_topk=9)
    _, stats = CenterNet2Loss(on)(outputs, batch)
    want, _ = first_stage_losses(logits, reg, torch.cat([pos, torch.tensor([_p3(2, 4)])]), heat_t, reg_t)
    assert torch.allclose(stats["hm_loss"], want) and not torch.allclose(want, hm)
    assert torch.equal(stats["giou_loss"], giou)


def test_options():
    opt = opts().parse("centernet2 --arch res_18_fpn".split())
    assert (opt.more_pos, opt.more_pos_thresh, opt.more_pos_topk) == (False, 0.2, 9)
    opt = opts().parse("centernet2 --arch res_18_fpn --more_pos --more_pos_thresh 0.3 --more_pos_topk 5".split())
    assert (opt.more_pos, opt.more_pos_thresh, opt.more_pos_topk) == (True, 0.3, 5)
    for extra, match in (("--more_pos_thresh 0", "--more_pos_thresh 0: must be above 0"),
                         ("--more_pos_topk 0", "--more_pos_topk 0: must be at least 1")):
        with pytest.raises(UserError, match=match):
            opts().parse(f"centernet2 --arch res_18_fpn {extra}".split())


def test_a_training_step_with_more_pos():
    from models.centernet2.network import CenterNet2
    from models.networks.msra_resnet import resnet_spec
    from models.networks.resnet_fpn import ResNetFPN
    from trains.centernet2 import CenterNet2WithLoss

    torch.manual_seed(0)
    block, layers = resnet_spec[18]
    model = CenterNet2(ResNetFPN(block, layers, channels=32), 3, num_stages=1, fc_dim=16)
    model.settings.post_nms_train = 16
    model.roi_heads.batch_size_per_image = 16
    batch = {"input": torch.randn(2, 3, 64, 64),
             "gt_boxes": torch.tensor([[[8., 8, 40, 50], [0, 0, 0, 0]], [[20, 30, 60, 63], [2, 2, 14, 12]]]),
             "gt_classes": torch.tensor([[1, 0], [2, 0]]), "gt_mask": torch.tensor([[1, 0], [1, 1]])}
    # a threshold of 2 (the largest GIoU loss) admits every candidate below the 9th: extras are certain
    opt = opts().parse("centernet2 --arch res_18_fpn --more_pos --more_pos_thresh 2".split())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    step = CenterNet2WithLoss(model, CenterNet2Loss(opt), keep_outputs=False)
    _, loss, stats = step(batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    assert all(p.grad is not None for p in model.proposal_head.parameters())
    with torch.no_grad():
        _, _, plain = CenterNet2WithLoss(model, CenterNet2Loss(None), keep_outputs=False)(batch)
        _, _, more = step(batch)
    assert more["hm_loss"] != plain["hm_loss"]
