"""CenterNet2 pieces against hand-computed values and loop references: GIoU, levels, targets, RoIAlign,
proposal decoding, cascade matching, the probabilistic score, and one training step of a small model."""
import math

import numpy as np
import pytest
import torch

from detectors.centernet2 import CenterNet2Detector
from models.centernet2.boxes import batched_nms, decode_deltas, encode_deltas, giou_loss_ltrb, nms, pairwise_iou
from models.centernet2.losses import first_stage_losses, heatmap_focal_loss, stage_losses
from models.centernet2.network import CenterNet2
from models.centernet2.postprocess import merge_flipped
from models.centernet2.proposals import decode_proposals
from models.centernet2.roi_align import assign_levels, multilevel_roi_align, roi_align
from models.centernet2.roi_heads import combine_scores, match_boxes, sample_rois
from models.centernet2.targets import (
    assign_fpn_level,
    first_stage_targets,
    flatten_levels,
    positive_indices,
    sizes_of_interest,
)
from models.model import create_model, save_model
from models.networks.msra_resnet import resnet_spec
from models.networks.resnet_fpn import ResNetFPN
from opts import opts

LEVELS = [3, 4, 5, 6, 7]
STRIDES = [8, 16, 32, 64, 128]


def test_giou_loss_hand_values():
    pred = torch.tensor([[1., 1, 1, 1], [1, 1, 1, 1], [0, 1, 2, 1]])
    target = torch.tensor([[1., 1, 1, 1], [2, 2, 2, 2], [1, 0, 1, 2]])
    # same box: 0; nested 2x2 in 4x4: IoU (4+1)/(16+1), hull = union; crossed 2x2 boxes: IoU 2/8, hull 9, union 7
    want = torch.tensor([0.0, 1 - 5 / 17, 1 - (0.25 - 2 / 9)])
    assert torch.allclose(giou_loss_ltrb(pred, target), want, atol=1e-6)


def test_level_assignment_by_half_diagonal():
    # 3-4-5 boxes: half diagonals 30, 70, 150, 600, 1000 pixels
    boxes = torch.tensor([[0., 0, 36, 48], [0, 0, 84, 112], [0, 0, 180, 240], [0, 0, 720, 960], [0, 0, 1200, 1600]])
    got = assign_fpn_level(boxes, sizes_of_interest(LEVELS)).int().tolist()
    assert got == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1]]
    # with P3-P5 only, the last level takes everything larger
    assert assign_fpn_level(boxes[4:], sizes_of_interest([3, 4, 5])).int().tolist() == [[0, 0, 1]]


def test_first_stage_targets_at_the_centre():
    shapes = [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]
    boxes = [torch.tensor([[8., 16, 40, 48]]), torch.zeros((0, 4))]  # centre (24, 32), half diagonal ~22.6: P3
    pos, heat, reg = first_stage_targets(boxes, shapes, STRIDES, sizes_of_interest(LEVELS))
    # P3 location (x 3, y 4) of image 0 holds the centre; image 1 has no objects
    assert pos.tolist() == [4 * 8 + 3]
    assert heat.shape == (2 * (64 + 16 + 4 + 1 + 1),)
    assert heat[35] == 1 and heat[64:128].max() == 0
    # distances from the location's pixel (28, 36) in strides: (20, 20, 12, 12) / 8
    assert torch.allclose(reg[35], torch.tensor([2.5, 2.5, 1.5, 1.5]))
    # the 3 x 3 cells around the centre regress, inside the box; nothing outside P3 or in image 1
    regressed = torch.nonzero(reg.max(dim=1).values >= 0).squeeze(1).tolist()
    assert regressed == [y * 8 + x for y in (3, 4, 5) for x in (2, 3, 4)]
    assert positive_indices(boxes, shapes, STRIDES, sizes_of_interest(LEVELS)).tolist() == [35]


def test_first_stage_losses_finite_and_zero_at_perfect_boxes():
    logits = torch.full((10,), -4.0)
    heat = torch.zeros(10)
    heat[3] = 1
    reg_t = torch.full((10, 4), -1e8)
    reg_t[3] = torch.tensor([1.0, 2, 3, 4])
    hm, giou = first_stage_losses(logits, reg_t.clamp(min=0), torch.tensor([3]), heat, reg_t)
    assert giou.item() == pytest.approx(0.0, abs=1e-6)
    pos, neg = heatmap_focal_loss(logits, heat, torch.tensor([3]))
    p = torch.sigmoid(torch.tensor(-4.0)).item()
    assert pos.item() == pytest.approx(0.25 * -math.log(p) * (1 - p) ** 2, rel=1e-5)
    assert neg.item() == pytest.approx(0.75 * 9 * -math.log(1 - p) * p ** 2, rel=1e-5)
    assert hm.item() == pytest.approx(0.5 * (pos + neg).item(), rel=1e-6)


def _bilinear(feat, y, x):
    """detectron2's bilinear sample: 0 beyond one pixel outside, border value within it."""
    h, w = feat.shape[1:]
    if y < -1 or y > h or x < -1 or x > w:
        return np.zeros(feat.shape[0])
    y, x = min(max(y, 0), h - 1), min(max(x, 0), w - 1)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * feat[:, y0, x0] + (1 - ly) * lx * feat[:, y0, x1]
            + ly * (1 - lx) * feat[:, y1, x0] + ly * lx * feat[:, y1, x1])


def _roi_align_loop(feat, roi, size, scale, ratio):
    x1, y1, x2, y2 = (v * scale - 0.5 for v in roi)
    bw, bh = (x2 - x1) / size, (y2 - y1) / size
    out = np.zeros((feat.shape[0], size, size))
    for py in range(size):
        for px in range(size):
            acc = 0
            for iy in range(ratio):
                for ix in range(ratio):
                    y, x = y1 + (py + (iy + 0.5) / ratio) * bh, x1 + (px + (ix + 0.5) / ratio) * bw
                    acc = acc + _bilinear(feat, y, x)
            out[:, py, px] = acc / ratio ** 2
    return out


@pytest.mark.parametrize("method", ["separable", "sampled"])
def test_roi_align_matches_loop_reference_past_the_border(method):
    torch.manual_seed(0)
    feature = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    rois = torch.tensor([[0, 4.0, 6.0, 30.0, 20.0],      # inside
                         [1, -10.0, -6.0, 12.0, 9.0],     # past the top-left border
                         [0, 20.0, 15.0, 40.0, 33.0],     # past the bottom-right border
                         [1, 13.0, 11.0, 13.5, 11.2],     # tiny
                         [0, -40.0, -40.0, -20.0, -20.0]], dtype=torch.float64)  # fully outside
    got = roi_align(feature, rois, 3, 0.25, 2, method=method).numpy()
    for r, roi in enumerate(rois.numpy()):
        want = _roi_align_loop(feature[int(roi[0])].numpy(), roi[1:], 3, 0.25, 2)
        np.testing.assert_allclose(got[r], want, atol=1e-9, err_msg=f"roi {r}")
    assert np.all(got[4] == 0)


def test_roi_align_methods_have_the_same_gradients():
    torch.manual_seed(1)
    feature = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    rois = torch.tensor([[1, -3.0, 2.0, 20.0, 30.0], [0, 5.0, 5.0, 9.0, 40.0], [1, 1.0, 1.0, 2.0, 2.0]],
                        dtype=torch.float64)
    grads = []
    for method in ("separable", "sampled"):
        f = feature.clone().requires_grad_()
        (roi_align(f, rois, 4, 0.25, 2, method=method) * torch.arange(16.0).view(1, 1, 4, 4).double()).sum().backward()
        grads.append(f.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_multilevel_roi_align_picks_levels_by_size():
    boxes = torch.tensor([[0., 0, 20, 20], [0, 0, 224, 224], [0, 0, 460, 460], [0, 0, 5000, 5000]])
    assert assign_levels(boxes, 3, 7).tolist() == [0, 1, 2, 4]
    feats = [torch.full((1, 2, 64 // s, 64 // s), float(i)) for i, s in enumerate((1, 2, 4, 8, 16))]
    pooled = multilevel_roi_align(feats, [boxes[:2] / 10], [3, 4, 5, 6, 7], output_size=2)
    assert pooled.shape == (2, 2, 2, 2) and pooled[0].max() == 0 and pooled[1].max() == 0  # both tiny: P3
    pooled = multilevel_roi_align(feats, [boxes[1:2]], [3, 4, 5, 6, 7], output_size=2)
    assert torch.all(pooled[pooled != 0] == 1)  # a 224-pixel box reads P4 (index 1)


def test_nms_and_per_class_nms():
    boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0, 0]), 0.5).tolist() == [3, 1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [3, 0, 1, 2]


def test_flip_merge_maps_mirrored_boxes_back_and_removes_duplicates():
    plain = (torch.tensor([[10., 10, 30, 30]]), torch.tensor([0.9]), torch.tensor([0]))
    # the mirror of the plain box (input width 100), found again, and a box of another class
    mirrored = (torch.tensor([[70., 10, 90, 30], [0, 0, 20, 20]]), torch.tensor([0.8, 0.6]), torch.tensor([0, 1]))
    boxes, scores, classes = merge_flipped(plain, mirrored, 100, 0.7, 100)
    assert boxes.tolist() == [[10, 10, 30, 30], [80, 0, 100, 20]]
    assert scores.tolist() == pytest.approx([0.9, 0.6]) and classes.tolist() == [0, 1]
    assert len(merge_flipped(plain, mirrored, 100, 0.7, 1)[0]) == 1


def _random_detector(tmp_path, *extra):
    torch.manual_seed(0)
    o = opts()
    opt = o.parse(["centernet2", "--arch", "res_18_fpn", "--gpus", "-1", "--head_conv", "32",
                   "--num_proposals_test", "16", "--exp_root", str(tmp_path), *extra])
    info = type("Info", (), {"default_resolution": [64, 64], "num_classes": 3,
                             "mean": np.full((1, 1, 3), 0.45, np.float32), "std": np.full((1, 1, 3), 0.27, np.float32)})
    opt = o.update_dataset_info_and_set_heads(opt, info)
    opt.load_model = str(tmp_path / "model.pth")
    save_model(opt.load_model, 0, create_model(opt.arch, opt.heads, opt.head_conv))
    return CenterNet2Detector(opt)


def test_flip_test_detections_are_mirror_symmetric(tmp_path):
    """--flip_test pools both views, so an image and its mirror give mirrored detections."""
    detector = _random_detector(tmp_path, "--flip_test")
    image = (np.random.RandomState(0).rand(64, 80, 3) * 255).astype(np.uint8)
    a = detector.run(image)["results"]
    b = detector.run(np.ascontiguousarray(image[:, ::-1]))["results"]
    assert sum(len(r) for r in a.values()) > 0
    for cls in a:
        ra = a[cls][np.argsort(-a[cls][:, 4])]
        rb = b[cls][np.argsort(-b[cls][:, 4])]
        mirrored = np.stack([80 - rb[:, 2], rb[:, 1], 80 - rb[:, 0], rb[:, 3], rb[:, 4]], axis=1)
        np.testing.assert_allclose(ra, mirrored, atol=1e-3)


def test_a_list_of_images_gives_the_single_results(tmp_path):
    detector = _random_detector(tmp_path)
    images = [(np.random.RandomState(i).rand(64, 64 + 16 * i, 3) * 255).astype(np.uint8) for i in range(2)]
    batched = detector.run(images)
    for image, ret in zip(images, batched):
        single = detector.run(image)["results"]
        assert set(ret) >= {"results", "backbone", "roi_heads"}
        for cls in single:
            np.testing.assert_array_equal(ret["results"][cls], single[cls])


def test_box_deltas_round_trip():
    props = torch.tensor([[10., 10, 50, 30], [0, 0, 5, 5]])
    gts = torch.tensor([[12., 8, 60, 33], [1, -1, 4, 7]])
    for weights in ((10., 10, 5, 5), (30., 30, 15, 15)):
        d = encode_deltas(props, gts, weights)
        assert torch.allclose(decode_deltas(d, props, weights), gts, atol=1e-4)


def test_cascade_matching_thresholds_and_sampling():
    gt = torch.tensor([[0., 0, 10, 10], [50, 50, 70, 70]])
    cls = torch.tensor([4, 2])
    # IoUs with gt 0: 1.0, 0.65, 0.75, 0.85; with nothing: 0
    boxes = torch.tensor([[0., 0, 10, 10], [0, 0, 10, 6.5], [0, 0, 10, 7.5], [0, 0, 10, 8.5], [30, 30, 40, 40]])
    assert torch.allclose(pairwise_iou(boxes[:4], gt[:1]).squeeze(1), torch.tensor([1.0, 0.65, 0.75, 0.85]))
    labels = {t: match_boxes(boxes, gt, cls, t, num_classes=5)[0].tolist() for t in (0.6, 0.7, 0.8)}
    assert labels == {0.6: [4, 4, 4, 4, 5], 0.7: [4, 5, 4, 4, 5], 0.8: [4, 5, 5, 4, 5]}
    assert match_boxes(boxes, gt[:0], cls[:0], 0.6, 5)[0].tolist() == [5] * 5
    lab = torch.tensor([0] * 10 + [5] * 30)
    keep = sample_rois(lab, 5, batch_size=16, positive_fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert len(keep) == 16 and (lab[keep] < 5).sum() == 4 and len(set(keep.tolist())) == 16


def test_probabilistic_score_combination():
    probs = [torch.tensor([[0.5, 0.3, 0.2]]), torch.tensor([[0.7, 0.1, 0.2]]), torch.tensor([[0.6, 0.2, 0.2]])]
    got = combine_scores(probs, torch.tensor([0.81]))
    assert torch.allclose(got, torch.tensor([[math.sqrt(0.6 * 0.81), math.sqrt(0.2 * 0.81), math.sqrt(0.2 * 0.81)]]))


def test_proposal_decoding_boxes_scores_and_nms():
    heat = [torch.full((1, 1, 2, 2), -20.0), torch.full((1, 1, 1, 1), -20.0)]
    heat[0][0, 0, 1, 0] = 2.0
    heat[1][0, 0, 0, 0] = 1.0
    reg = [torch.ones(1, 4, 2, 2), torch.full((1, 4, 1, 1), 0.5)]
    (boxes, scores), = decode_proposals(heat, reg, [8, 16], 1e-4, 10, 10, 0.9)
    # P3 location (x 0, y 1) -> pixel (4, 12) +- 8; P4 (8, 8) +- 8: different boxes, both kept, best first
    assert torch.allclose(boxes, torch.tensor([[-4., 4, 12, 20], [0, 0, 16, 16]]))
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([2.0, 1.0])).sqrt())
    (boxes, _), = decode_proposals(heat, reg, [8, 16], 1e-4, 10, 1, 0.9)
    assert boxes.shape == (1, 4)


def _tiny_model(num_classes=3):
    block, layers = resnet_spec[18]
    model = CenterNet2(ResNetFPN(block, layers, channels=32), num_classes, num_stages=3, fc_dim=16)
    model.settings.post_nms_train, model.settings.post_nms_test = 16, 8
    model.roi_heads.batch_size_per_image = 16
    return model


def two_image_training_loss(model):
    """(images, batch, training outputs, first- plus second-stage loss) of two 64x64 images, three boxes."""
    images = torch.randn(2, 3, 64, 64)
    batch = {"gt_boxes": torch.tensor([[[8., 8, 40, 50], [0, 0, 0, 0]], [[20, 30, 60, 63], [2, 2, 14, 12]]]),
             "gt_classes": torch.tensor([[1, 0], [2, 0]]), "gt_mask": torch.tensor([[1, 0], [1, 1]])}
    out = model(images, batch)[0]
    s = model.settings
    pos, heat, reg = first_stage_targets([batch["gt_boxes"][0, :1], batch["gt_boxes"][1]],
                                         [(h.shape[2], h.shape[3]) for h in out["heat"]], s.strides, s.ranges)
    hm, giou = first_stage_losses(flatten_levels(out["heat"]), flatten_levels(out["reg"]), pos, heat, reg)
    loss = hm + giou
    for stage in out["stages"]:
        loss = loss + sum(stage_losses(stage["logits"], stage["deltas"], stage["labels"], stage["target_deltas"]))
    return images, batch, out, loss


def test_train_step_and_inference_of_a_small_model():
    torch.manual_seed(0)
    model = _tiny_model()
    images, batch, out, loss = two_image_training_loss(model)
    assert [h.shape[-1] for h in out["heat"]] == [8, 4, 2, 1, 1]
    assert len(out["stages"]) == 3 and "detections" not in out
    for stage in out["stages"]:
        # the gt boxes are added to the proposals, so every stage has foreground to learn from
        assert (stage["labels"] < 3).sum() >= 3
    loss.backward()
    assert torch.isfinite(loss) and model.roi_heads.box_head[2].fc1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        dets = model(images)[0]["detections"]
        # validation in main.py: the loss of the trainer's module, and detections for save_result
        from trains.centernet2 import CenterNet2Loss, CenterNet2WithLoss

        out, val_loss, stats = CenterNet2WithLoss(model, CenterNet2Loss(None), keep_outputs=False).eval()(
            {"input": images, **batch})
    assert torch.isfinite(val_loss) and set(stats) == {"loss", "hm_loss", "giou_loss", "cls_loss", "box_loss"}
    assert len(out["stages"]) == 3 and len(out["detections"]) == 2
    assert len(dets) == 2
    for boxes, scores, classes in dets:
        assert boxes.shape[1] == 4 and len(scores) == len(classes) <= 100
        assert torch.all((scores > 0.05) & (scores <= 1)) and torch.all(classes < 3)


def test_options_of_the_task():
    from utils.errors import UserError

    opt = opts().init("centernet2 --arch res_18_fpn --dataset coco".split())
    assert opt.heads == {"agn_hm": 1, "reg": 4, "cls": 81, "stages": 3}
    assert opt.head_conv == 1024 and opt.fpn_levels == [3, 4, 5, 6, 7] and opt.cascade_ious == [0.6, 0.7, 0.8]
    assert (opt.num_proposals_train, opt.num_proposals_test) == (2000, 256)
    assert (opt.optim, opt.weight_decay, opt.warmup_iters, opt.clip_grad) == ("adam", 0.0, 0, 0.0)
    opt = opts().parse("centernet2 --arch res_50_fpn --optim sgd --cascade_ious 0.5,0.6 --fpn_levels 3,4,5".split())
    assert (opt.weight_decay, opt.warmup_iters, opt.clip_grad) == (1e-4, 4000, 1.0)
    assert opt.cascade_ious == [0.5, 0.6] and opt.fpn_levels == [3, 4, 5]
    for line, match in (("centernet2 --arch res_18", "FPN backbone"), ("ctdet --arch res_18_fpn", "use task"),
                        ("centernet2 --arch res_18_fpn --fpn_levels 3,5", "consecutive"),
                        ("centernet2 --arch res_18_fpn --cascade_ious 0.6,1.2", "between 0 and 1")):
        with pytest.raises(UserError, match=match):
            opts().parse(line.split())


def test_sgd_warmup_and_value_clipping():
    from types import SimpleNamespace

    from trains.optim import WARMUP_FACTOR, build_optimizer

    layer = torch.nn.Linear(2, 1)
    opt = SimpleNamespace(lr=0.1, optim="sgd", weight_decay=1e-4, warmup_iters=4, clip_grad=0.5)
    optimizer = build_optimizer(opt, layer)
    assert isinstance(optimizer, torch.optim.SGD)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]  # the bias does not decay
    lrs = []
    for _ in range(6):
        optimizer.zero_grad()
        (layer(torch.full((1, 2), 100.0)).sum() * 10).backward()
        optimizer.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        assert layer.weight.grad.abs().max() <= 0.5  # clipped before the step
    want = [0.1 * (WARMUP_FACTOR * (1 - a) + a) for a in (0, 0.25, 0.5, 0.75, 1, 1)]
    assert lrs == pytest.approx(want)
    plain = build_optimizer(SimpleNamespace(lr=0.1, optim="adam", weight_decay=0.0, warmup_iters=0, clip_grad=0.0),
                            layer)
    assert isinstance(plain, torch.optim.Adam) and len(plain.param_groups) == 1


def _tiny_coco(root):
    import json
    import os

    import cv2

    img_dir = os.path.join(root, "coco", "val2017")
    os.makedirs(img_dir)
    os.makedirs(os.path.join(root, "coco", "annotations"))
    cv2.imwrite(os.path.join(img_dir, "a.jpg"), np.full((160, 200, 3), 128, np.uint8))
    anns = [{"id": i + 1, "image_id": 1, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
            for i, (box, cat) in enumerate((([20, 30, 60, 40], 1), ([120, 60, 50, 80], 3)))]
    with open(os.path.join(root, "coco", "annotations", "instances_val2017.json"), "w") as f:
        json.dump({"images": [{"id": 1, "file_name": "a.jpg", "height": 160, "width": 200}], "annotations": anns,
                   "categories": [{"id": c} for c in (1, 2, 3)]}, f)


def test_samples_carry_boxes_in_input_pixels(tmp_path):
    from datasets.dataset_factory import get_dataset

    _tiny_coco(str(tmp_path))
    opt = opts().init(["centernet2", "--arch", "res_18_fpn", "--input_res", "128", "--data_dir", str(tmp_path)])
    dataset = get_dataset("coco", "centernet2")(opt, "val")
    sample = dataset[0]
    assert sample["input"].shape == (3, 128, 128) and sample["gt_mask"][:3].tolist() == [1, 1, 0]
    # the 200 x 160 image is scaled by 128 / 200 around its centre
    np.testing.assert_allclose(sample["gt_boxes"][:2], [[12.8, 32, 51.2, 57.6], [76.8, 51.2, 108.8, 102.4]],
                               atol=1e-3)
    assert sample["gt_classes"][:2].tolist() == [0, 2] and sample["meta"]["input_size"].tolist() == [128, 128]

    opt.lsj = True
    dataset.split = "train"
    np.random.seed(0)
    widths = set()
    for _ in range(6):
        s = dataset[0]
        boxes = s["gt_boxes"][s["gt_mask"] == 1]
        assert np.all(boxes >= 0) and np.all(boxes <= 127)
        widths.update(np.round(boxes[:, 2] - boxes[:, 0]).tolist())
    assert len(widths) > 2  # the scale changes from sample to sample
