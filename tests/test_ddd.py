"""ddd task: training sample targets, loss, KITTI result files, the label converter and the detector."""
import json
import math
import os

import cv2
import numpy as np
import pytest
import torch

from datasets.dataset.kitti import KITTI, write_kitti_results
from datasets.dataset_factory import get_dataset
from datasets.sample.ddd import alpha_to_8, rotation_bins
from opts import opts
from trains.ddd import DddLoss
from utils.errors import UserError
from utils.post_process import ddd_keep_above

torch.set_num_threads(1)
W, H = 96, 32  # image size == input size, so the output map is the image / 4
CALIB = [[50., 0., 48., 0.], [0., 50., 16., 0.], [0., 0., 1., 0.]]


def ann(i, cat, bbox, alpha=0.3, depth=10., dim=(1.5, 1.6, 3.9)):
    return {"image_id": 1, "id": i, "category_id": cat, "bbox": bbox, "alpha": alpha, "depth": depth,
            "dim": list(dim), "location": [0., 1.5, depth], "rotation_y": alpha, "truncated": 0, "occluded": 0}


@pytest.fixture
def kitti_root(tmp_path):
    """A one-image KITTI layout: a car, a van (ignored for Car), a DontCare and a tram (skipped)."""
    root = tmp_path / "kitti"
    (root / "images" / "trainval").mkdir(parents=True)
    (root / "annotations").mkdir()
    cv2.imwrite(str(root / "images" / "trainval" / "000001.png"), np.full((H, W, 3), 128, np.uint8))
    anns = [ann(1, 2, [20., 8., 24., 16.], alpha=0.3),
            ann(2, 4, [60., 4., 16., 12.]),
            ann(3, 9, [4., 20., 8., 8.]),
            ann(4, 7, [40., 0., 8., 8.]),
            ann(5, 1, [44., 10., 8., 16.], alpha=math.pi / 2, depth=7., dim=(1.7, 0.6, 0.8))]
    data = {"images": [{"file_name": "000001.png", "id": 1, "calib": CALIB}], "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(
                ["Pedestrian", "Car", "Cyclist", "Van", "Truck", "Person_sitting", "Tram", "Misc", "DontCare"])]}
    for split in ("train", "val"):
        (root / "annotations" / f"kitti_3dop_{split}.json").write_text(json.dumps(data))
    return tmp_path


def make(data_dir, split="val", extra=()):
    opt = opts().parse(["ddd", "--gpus", "-1", "--input_h", str(H), "--input_w", str(W), *extra])
    Dataset = get_dataset("kitti", "ddd")
    opt = opts().update_dataset_info_and_set_heads(opt, Dataset)
    opt.data_dir = str(data_dir)
    return Dataset(opt, split)


def test_rotation_bins():
    assert rotation_bins(0.) == ([1, 1], [pytest.approx(math.pi / 2), pytest.approx(-math.pi / 2)])
    assert rotation_bins(math.pi / 2) == ([0, 1], [0., 0.])
    assert rotation_bins(-math.pi / 2) == ([1, 0], [0., 0.])
    bins, res = rotation_bins(math.pi)  # near +-pi both bins are active
    assert bins == [1, 1] and res == pytest.approx([1.5 * math.pi, 0.5 * math.pi])
    assert alpha_to_8(math.pi / 2) == pytest.approx([0, 0, 0, 1, 0, 1, 0, 1])


def test_sample_targets(kitti_root):
    ds = make(kitti_root)
    ret = ds[0]
    assert ret["input"].shape == (3, H, W) and ret["hm"].shape == (3, H // 4, W // 4)
    assert ret["wh"].shape == (50, 2) and ret["reg"].shape == (50, 2) and ret["rotbin"].dtype == np.int64
    # the car: box (20, 8)-(44, 24) -> output map (5, 2)-(11, 6), centre (8, 4)
    assert ret["hm"][1, 4, 8] == 1.0
    assert ret["ind"][0] == 4 * (W // 4) + 8 and ret["reg_mask"][0] == 1 and ret["rot_mask"][0] == 1
    np.testing.assert_allclose(ret["wh"][0], [6., 4.])
    np.testing.assert_allclose(ret["dep"][0], [10.]) and np.testing.assert_allclose(ret["dim"][0], [1.5, 1.6, 3.9])
    assert list(ret["rotbin"][0]) == [1, 1]
    np.testing.assert_allclose(ret["rotres"][0], [0.3 + math.pi / 2, 0.3 - math.pi / 2], rtol=1e-6)
    # the pedestrian at alpha = pi/2 only uses the second bin
    assert list(ret["rotbin"][4]) == [0, 1] and ret["hm"][0].max() == 1.0
    # van: ignore mark on the Car map only; DontCare: on every map; tram: skipped entirely
    assert ret["hm"][1, 2, 17] == pytest.approx(0.9999) and ret["hm"][0, 2, 17] == 0
    assert all(ret["hm"][c, 6, 2] == pytest.approx(0.9999) for c in range(3))
    assert ret["reg_mask"][1:4].sum() == 0 and ret["rot_mask"][3] == 0
    meta = ret["meta"]
    assert meta["gt_det"].shape == (2, 18) and meta["img_id"] == 1
    np.testing.assert_allclose(meta["calib"], CALIB)
    np.testing.assert_allclose(meta["gt_det"][0, :3], [8., 4., 1.])


def test_sample_options(kitti_root):
    rect = make(kitti_root, extra=["--rect_mask"])[0]
    # the van's whole box (15, 1)-(19, 4) on the Car map is marked
    assert np.all(rect["hm"][1, 1:5, 15:20] == np.float32(0.9999))
    no_wh = make(kitti_root, extra=["--not_reg_bbox"])[0]
    assert "wh" not in no_wh and no_wh["meta"]["gt_det"].shape == (2, 16)
    np.random.seed(0)
    train = make(kitti_root, "train", extra=["--aug_ddd", "1"])[0]
    # augmented samples keep the rotation loss but drop depth/size (reg_mask) and carry no meta
    assert "meta" not in train and train["reg_mask"].sum() == 0 and train["rot_mask"].sum() == 2


def test_dataset_errors(kitti_root, tmp_path):
    with pytest.raises(UserError, match="kitti_3dop_val.json"):
        make(tmp_path / "nowhere")
    with pytest.raises(UserError, match="kitti_split"):
        make(kitti_root, extra=["--kitti_split", "mine"])


def test_loss_terms():
    opt = opts().init(["ddd", "--gpus", "-1", "--dataset", "kitti"])
    b, n, oh, ow = 2, 4, 4, 6
    torch.manual_seed(0)
    out = {"hm": torch.zeros(b, 3, oh, ow), "dep": torch.zeros(b, 1, oh, ow), "rot": torch.zeros(b, 8, oh, ow),
           "dim": torch.ones(b, 3, oh, ow), "wh": torch.zeros(b, 2, oh, ow), "reg": torch.zeros(b, 2, oh, ow)}
    batch = {"hm": torch.zeros(b, 3, oh, ow), "ind": torch.zeros(b, n, dtype=torch.int64),
             "dep": torch.ones(b, n, 1), "dim": torch.ones(b, n, 3), "wh": torch.full((b, n, 2), 2.),
             "reg": torch.zeros(b, n, 2), "reg_mask": torch.zeros(b, n, dtype=torch.uint8),
             "rot_mask": torch.zeros(b, n, dtype=torch.uint8), "rotbin": torch.zeros(b, n, 2, dtype=torch.int64),
             "rotres": torch.zeros(b, n, 2)}
    batch["reg_mask"][:, 0] = 1
    batch["rot_mask"][:, 0] = 1
    loss, stats = DddLoss(opt)([dict(out)], batch)
    assert list(stats) == ["loss", "hm_loss", "dep_loss", "dim_loss", "rot_loss", "wh_loss", "off_loss"]
    # depth 1 / sigmoid(0) - 1 = 1 matches the target; dims match too
    assert stats["dep_loss"].item() == pytest.approx(0., abs=1e-5) and stats["dim_loss"].item() == 0.
    # wh: |0 - 2| on 2 of the 2 x 4 x 2 entries -> mean 2 * 4 / 16
    assert stats["wh_loss"].item() == pytest.approx(0.5)
    # rotation: zero logits -> ln 2 per bin; residual targets sin 0 = 0 / cos 0 = 1 vs outputs 0 -> not counted
    assert stats["rot_loss"].item() == pytest.approx(2 * math.log(2), rel=1e-5)
    # no positive in the heatmap: focal loss of the negatives only
    p = 1 / (1 + math.exp(0))
    assert stats["hm_loss"].item() == pytest.approx(-b * 3 * oh * ow * math.log(1 - p) * p ** 2, rel=1e-4)
    total = stats["hm_loss"] + stats["rot_loss"] + 0.1 * stats["wh_loss"]
    assert loss.item() == pytest.approx(total.item(), rel=1e-5)


def test_loss_with_zero_weight_keeps_int_stat():
    opt = opts().init(["ddd", "--gpus", "-1", "--dataset", "kitti", "--dep_weight", "0"])
    out = {"hm": torch.zeros(1, 3, 2, 2), "dep": torch.zeros(1, 1, 2, 2), "rot": torch.zeros(1, 8, 2, 2),
           "dim": torch.zeros(1, 3, 2, 2), "wh": torch.zeros(1, 2, 2, 2), "reg": torch.zeros(1, 2, 2, 2)}
    batch = {"hm": torch.zeros(1, 3, 2, 2), "ind": torch.zeros(1, 1, dtype=torch.int64),
             "dep": torch.ones(1, 1, 1), "dim": torch.ones(1, 1, 3), "wh": torch.ones(1, 1, 2),
             "reg": torch.zeros(1, 1, 2), "reg_mask": torch.ones(1, 1, dtype=torch.uint8),
             "rot_mask": torch.ones(1, 1, dtype=torch.uint8), "rotbin": torch.zeros(1, 1, 2, dtype=torch.int64),
             "rotres": torch.zeros(1, 1, 2)}
    _, stats = DddLoss(opt)([out], batch)
    assert stats["dep_loss"] == 0 and torch.is_tensor(stats["dim_loss"])


def test_kitti_result_files(tmp_path):
    rows = np.array([[0.5, 10, 20, 30, 40, 1.5, 1.6, 3.9, 1.0, 1.65, 20.0, 0.55, 0.91]], np.float32)
    results = {np.int32(7): {1: np.zeros((0, 13), np.float32), 2: rows, 3: np.array([], np.float32)},
               12: {1: np.zeros((0, 13), np.float32)}}
    paths = write_kitti_results(results, str(tmp_path / "results"), KITTI.class_name)
    assert [os.path.basename(p) for p in paths] == ["000007.txt", "000012.txt"]
    text = (tmp_path / "results" / "000007.txt").read_text()
    assert text == ("Car 0.0 0 0.50 10.00 20.00 30.00 40.00 1.50 1.60 3.90 1.00 1.65 20.00 0.55 0.91\n")
    assert (tmp_path / "results" / "000012.txt").read_text() == ""
    assert sorted(os.listdir(tmp_path / "results")) == ["000007.txt", "000012.txt"]  # no temp files left
    kept = ddd_keep_above({1: rows, 2: np.array([], np.float32)}, 0.95)
    assert kept[1].shape == (0, 13) and kept[2].shape == (0, 13)


def test_converter(tmp_path):
    from datasets import kitti_to_coco as conv

    root = tmp_path / "kitti"
    for d in ("training/calib", "training/label_2", "testing/calib", "ImageSets_3dop"):
        (root / d).mkdir(parents=True)
    p2 = " ".join(str(v) for v in np.arange(12) + 0.5)
    for folder in ("training", "testing"):
        (root / folder / "calib" / "000003.txt").write_text(f"P0: {p2}\nP1: {p2}\nP2: {p2}\nP3: {p2}\n")
    (root / "training/label_2/000003.txt").write_text(
        "Car 0.88 1 -1.57 100.00 50.00 150.00 90.00 1.50 1.60 3.90 2.00 1.70 15.00 -1.44\n"
        "DontCare -1 -1 -10 10.00 20.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10\n")
    for name in ("train", "val", "trainval", "test"):
        (root / "ImageSets_3dop" / f"{name}.txt").write_text("000003\n")
    written = conv.convert(str(root), splits=("3dop",), sets=("train", "trainval", "test"), verbose=False)
    assert [os.path.basename(p) for p in written] == ["kitti_3dop_train.json", "kitti_trainval.json",
                                                      "kitti_test.json"]
    data = json.loads((root / "annotations" / "kitti_3dop_train.json").read_text())
    assert data["images"] == [{"file_name": "000003.png", "id": 3, "calib": (np.arange(12) + 0.5).reshape(3, 4)
                               .tolist()}]
    car, dc = data["annotations"]
    assert car == {"image_id": 3, "id": 1, "category_id": 2, "dim": [1.5, 1.6, 3.9], "bbox": [100., 50., 50., 40.],
                   "depth": 15.0, "alpha": -1.57, "truncated": 0, "occluded": 1, "location": [2.0, 1.7, 15.0],
                   "rotation_y": -1.44}
    assert dc["category_id"] == 9 and dc["id"] == 2 and len(data["categories"]) == 9
    assert json.loads((root / "annotations" / "kitti_test.json").read_text())["annotations"] == []
    (root / "training/label_2/000003.txt").write_text("Boat 0 0 0 1 2 3 4 1 1 1 0 0 5 0\n")
    with pytest.raises(UserError, match="Boat"):
        conv.convert(str(root), splits=("3dop",), sets=("train",), verbose=False)
    with pytest.raises(UserError, match="ImageSets_subcnn"):
        conv.convert(str(root), splits=("subcnn",), verbose=False)


def test_detector_pre_and_post(tmp_path):
    from detectors.detector_factory import detector_factory
    from models.model import create_model

    args = ["ddd", "--gpus", "-1", "--dataset", "synth_kitti", "--arch", "res_18", "--head_conv", "8"]
    opt = opts().init(args)
    ckpt = str(tmp_path / "model.pth")
    torch.save({"epoch": 0, "state_dict": create_model(opt.arch, opt.heads, opt.head_conv).state_dict()}, ckpt)
    opt = opts().init(args + ["--load_model", ckpt])
    det = detector_factory["ddd"](opt)
    image = np.full((64, 200, 3), 100, np.uint8)
    images, meta = det.pre_process(image, 1.0)
    assert images.shape == (1, 3, opt.input_h, opt.input_w)
    np.testing.assert_allclose(meta["c"], [100., 32.]) and list(meta["s"]) == [200, 64]
    assert meta["calib"][0, 0] == pytest.approx(707.0493)
    _, meta2 = det.pre_process(image, 1.0, CALIB)
    np.testing.assert_allclose(meta2["calib"], CALIB)
    rows = np.zeros((3, 13), np.float32)
    rows[:, -1] = [0.1, 0.25, 0.9]
    merged = det.merge_outputs([{1: rows, 2: np.array([], np.float32), 3: rows[:1]}])
    assert merged[1][:, -1].tolist() == pytest.approx([0.25, 0.9]) and merged[2].shape == (0, 13)
    out = det.run(image, CALIB)
    assert set(out["results"]) == {1, 2, 3} and all(r.shape[1] == 13 for r in out["results"].values())
