"""multi_pose: sample targets, loss stats, detector flip merging / joint refinement, COCO keypoint evaluation."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from datasets.dataset.coco_hp import COCOHP
from datasets.dataset_factory import get_dataset
from opts import opts
from utils.errors import UserError

torch.set_num_threads(1)

FLIP_IDX = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
SWAP = list(range(17))
for a, b in FLIP_IDX:
    SWAP[a], SWAP[b] = b, a

# one labelled person in a 128 x 128 image: joints on a 4 px grid so output positions are exact
JOINTS = np.array([[60, 20], [64, 16], [56, 16], [68, 20], [52, 20], [76, 36], [44, 36], [84, 52], [36, 52],
                   [88, 68], [32, 68], [70, 72], [50, 72], [72, 92], [48, 92], [74, 110], [46, 112]], float)
JOINTS[:, 0] += 1.0  # + 1/4 output pixel of sub-pixel offset in x
VIS = np.full(17, 2)
VIS[3] = 0     # unlabelled
VIS[4] = 1     # labelled, occluded
JOINTS[3] = 0


def make_coco_hp(root, with_empty=True):
    """data_dir with coco/{train,val}2017 + person_keypoints jsons holding one image of two people."""
    img = np.full((128, 128, 3), 90, np.uint8)
    kps = np.concatenate([JOINTS, VIS[:, None]], axis=1)
    people = [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 5000.0,
               "bbox": [28.0, 8.0, 64.0, 108.0], "keypoints": kps.reshape(-1).tolist(), "num_keypoints": 16}]
    if with_empty:
        # a person with no labelled joints: its centre must be ignored by the regression losses
        people.append({"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 300.0,
                       "bbox": [100.0, 40.0, 20.0, 40.0], "keypoints": [0.0] * 51, "num_keypoints": 0})
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "width": 128, "height": 128}], "annotations": people,
           "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    for split in ("train", "val"):
        os.makedirs(root / "coco" / f"{split}2017", exist_ok=True)
        cv2.imwrite(str(root / "coco" / f"{split}2017" / "a.jpg"), img)
        os.makedirs(root / "coco" / "annotations", exist_ok=True)
        with open(root / "coco" / "annotations" / f"person_keypoints_{split}2017.json", "w") as f:
            json.dump(doc, f)
    return root


def make_opt(data_dir, *extra):
    opt = opts().init(["multi_pose", "--input_res", "128", *extra])
    opt.data_dir = str(data_dir)
    return opt


def sample(tmp_path, split="val", *extra):
    data = make_coco_hp(tmp_path)
    opt = make_opt(data, *extra)
    ds = get_dataset("coco_hp", "multi_pose")(opt, split)
    return opt, ds, ds[0]


def test_sample_shapes_and_keypoint_targets(tmp_path):
    opt, ds, ret = sample(tmp_path)
    assert ds.max_objs == 32 and ds.num_joints == 17 and len(ds) == 1
    assert ret["input"].shape == (3, 128, 128) and ret["hm"].shape == (1, 32, 32)
    assert ret["hps"].shape == (32, 34) and ret["hps_mask"].dtype == np.uint8
    assert ret["hm_hp"].shape == (17, 32, 32)
    assert ret["hp_offset"].shape == (544, 2) and ret["hp_ind"].dtype == np.int64 and ret["hp_mask"].dtype == np.int64
    # box (28, 8)-(92, 116) -> output (7, 2)-(23, 29): centre (15, 15.5)
    ct_int = np.array([15, 15])
    assert ret["ind"][0] == 15 * 32 + 15 and ret["reg_mask"][0] == 1
    np.testing.assert_allclose(ret["wh"][0], [16, 27])
    np.testing.assert_allclose(ret["reg"][0], [0, 0.5])
    assert ret["hm"][0, 15, 15] == 1.0
    out = JOINTS / 4
    for j in range(17):
        labelled = VIS[j] > 0
        assert ret["hps_mask"][0, 2 * j] == labelled and ret["hp_mask"][j] == labelled
        if not labelled:
            assert ret["hm_hp"][j].max() == 0
            continue
        np.testing.assert_allclose(ret["hps"][0, 2 * j:2 * j + 2], out[j] - ct_int, atol=1e-5)
        pt_int = out[j].astype(int)
        assert ret["hp_ind"][j] == pt_int[1] * 32 + pt_int[0]
        np.testing.assert_allclose(ret["hp_offset"][j], out[j] - pt_int, atol=1e-5)
        assert ret["hm_hp"][j, pt_int[1], pt_int[0]] == 1.0
    # the keypoint-less person: centre peak drawn, but no box/joint regression
    assert ret["reg_mask"][1] == 0 and ret["hm"][0].max() == 1.0 and ret["hps_mask"][1].sum() == 0
    assert ret["hm"][0, 15, 27] == 1.0  # (100..120, 40..80) -> centre (27.5, 15)
    gt = ret["meta"]["gt_det"]
    assert gt.shape == (2, 40) and ret["meta"]["img_id"] == 7
    np.testing.assert_allclose(gt[0, 5:7], out[0], atol=1e-5)


def test_flip_augmentation_swaps_left_and_right(tmp_path):
    np.random.seed(0)
    opt, ds, ret = sample(tmp_path, "train", "--flip", "1", "--not_rand_crop", "--scale", "0", "--shift", "0",
                          "--no_color_aug")
    # mirrored about x = 63.5 then mapped with centre x 63: output x = (128 - x) / 4
    flipped = np.stack([(128 - JOINTS[:, 0]) / 4, JOINTS[:, 1] / 4], axis=1)
    ct_int = ret["ind"][0] % 32, ret["ind"][0] // 32
    for j in range(17):
        src = SWAP[j]  # slot j now holds the mirrored joint of the other side
        assert ret["hps_mask"][0, 2 * j] == (VIS[src] > 0)
        if VIS[src] > 0:
            np.testing.assert_allclose(ret["hps"][0, 2 * j:2 * j + 2], flipped[src] - ct_int, atol=1e-4)
    # a person facing the camera has the left shoulder (5) on the image's right; the mirrored person too,
    # because the mirrored right shoulder becomes the left one
    assert JOINTS[5, 0] > JOINTS[6, 0] and ret["hps"][0, 10] > ret["hps"][0, 12]
    assert "meta" not in ret


def test_dense_hp_and_mse_variants(tmp_path):
    opt, ds, ret = sample(tmp_path, "val", "--dense_hp")
    assert "hps" not in ret and ret["dense_hps"].shape == (34, 32, 32) and ret["dense_hps_mask"].shape == (34, 32, 32)
    np.testing.assert_allclose(ret["dense_hps"][0:2, 15, 15], JOINTS[0] / 4 - 15, atol=1e-5)
    np.testing.assert_array_equal(ret["dense_hps_mask"][0], ret["dense_hps_mask"][1])
    assert ret["dense_hps_mask"][6].max() == 0  # joint 3 unlabelled
    # --mse_loss works without the hm_gauss option the original never defined
    ds.opt.mse_loss = True
    ret = ds[0]
    assert ret["hm"][0, 15, 15] == pytest.approx(1.0) and ret["hm_hp"].max() == pytest.approx(1.0)
    ds.opt.hm_gauss = 2
    wide = ds[0]["hm"][0]
    assert (wide > 0.01).sum() > (ret["hm"][0] > 0.01).sum()  # sigma 2 is wider than the derived one


def test_rotation_ignores_center_targets(tmp_path):
    np.random.seed(3)
    opt, ds, ret = sample(tmp_path, "train", "--aug_rot", "1", "--rotate", "20", "--no_color_aug")
    assert np.all(ret["hm"] == np.float32(0.9999))
    assert ret["reg_mask"].sum() == 0 and ret["hps_mask"].sum() == 0
    assert ret["hp_mask"].sum() > 0 and ret["hm_hp"].max() == 1.0


def _outputs(ret, opt, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {h: torch.randn(1, c, 32, 32, generator=g) for h, c in opt.heads.items()}


def _batch(ret):
    return {k: torch.from_numpy(np.asarray(v))[None] for k, v in ret.items() if k != "meta"}


def test_loss_stats_order_and_stack_average(tmp_path):
    from trains.multi_pose import MultiPoseLoss, MultiPoseTrainer

    opt, ds, ret = sample(tmp_path)
    batch = _batch(ret)
    loss_fn = MultiPoseLoss(opt)
    loss, stats = loss_fn([_outputs(ret, opt)], batch)
    assert list(stats) == ["loss", "hm_loss", "hp_loss", "hm_hp_loss", "hp_offset_loss", "wh_loss", "off_loss"]
    assert all(torch.isfinite(v) and v > 0 for v in stats.values())
    expected = (stats["hm_loss"] + 0.1 * stats["wh_loss"] + stats["off_loss"] + stats["hp_loss"]
                + stats["hm_hp_loss"] + stats["hp_offset_loss"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # two identical stacks average to the same figures (fresh maps: the sigmoid is applied in place)
    opt.num_stacks = 2
    loss2, stats2 = loss_fn([_outputs(ret, opt), _outputs(ret, opt)], batch)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-5)
    opt.num_stacks = 1
    # the trainer reports the same names
    names, _ = MultiPoseTrainer._get_losses(None, opt)
    assert names == list(stats)


def test_loss_without_joint_heatmaps_and_oracle(tmp_path):
    from trains.multi_pose import MultiPoseLoss

    opt, ds, ret = sample(tmp_path, "val", "--not_hm_hp")
    assert "hm_hp" not in opt.heads and "hp_offset" not in opt.heads and "hm_hp" not in ret
    loss, stats = MultiPoseLoss(opt)([_outputs(ret, opt)], _batch(ret))
    assert stats["hm_hp_loss"].item() == 0 and stats["hp_offset_loss"].item() == 0 and torch.isfinite(loss)
    # ground-truth joint offsets in place of the network's: no joint regression error
    opt.eval_oracle_kps = True
    _, stats = MultiPoseLoss(opt)([_outputs(ret, opt)], _batch(ret))
    assert stats["hp_loss"].item() == pytest.approx(0, abs=1e-6)


def test_mse_loss_trains_joint_heatmaps_without_sigmoid(tmp_path):
    from trains.multi_pose import MultiPoseLoss

    opt, ds, ret = sample(tmp_path, "val", "--mse_loss")
    out = _outputs(ret, opt)
    raw_hp = out["hm_hp"].clone()
    _, stats = MultiPoseLoss(opt)([out], _batch(ret))
    want = torch.mean((raw_hp - torch.from_numpy(ret["hm_hp"])[None]) ** 2)
    assert stats["hm_hp_loss"].item() == pytest.approx(want.item(), rel=1e-5)


class FakeNet(torch.nn.Module):
    """Returns fixed head maps (one stack) whatever the input."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def forward(self, x):
        return [{k: v.clone()[: x.shape[0]] for k, v in self.maps.items()}]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from models.model import create_model

    path = tmp_path_factory.mktemp("mp") / "model.pth"
    opt = opts().init(["multi_pose", "--arch", "res_18", "--input_res", "64"])
    torch.save({"epoch": 0, "state_dict": create_model("res_18", opt.heads, opt.head_conv).state_dict()}, path)
    return str(path)


def make_detector(ckpt, *extra):
    from detectors.detector_factory import detector_factory

    opt = opts().init(["multi_pose", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
                       "--load_model", ckpt, *extra])
    return detector_factory["multi_pose"](opt)


def _peak_maps(heads, batch, h=16, w=16):
    maps = {k: torch.zeros(batch, c, h, w) for k, c in heads.items()}
    maps["hm"][:] = -10.0
    return maps


def test_flip_test_merges_mirrored_joints(ckpt):
    det = make_detector(ckpt, "--flip_test", "--not_hm_hp")
    assert set(det.opt.heads) == {"hm", "wh", "hps", "reg"}
    x, y, W = 5, 6, 16
    off = np.stack([np.arange(17) * 0.25 - 2, np.arange(17) * -0.1 + 1], axis=1)
    maps = _peak_maps(det.opt.heads, 2)
    maps["hm"][0, 0, y, x] = 5.0
    maps["hm"][1, 0, y, W - 1 - x] = 5.0
    maps["wh"][:, :, y, x] = torch.tensor([4.0, 8.0])[None]
    maps["wh"][1, :, y, W - 1 - x] = torch.tensor([4.0, 8.0])
    for j in range(17):
        maps["hps"][0, 2 * j:2 * j + 2, y, x] = torch.tensor(off[j])
        # the mirrored image sees joint j on the other side, mirrored in x, in the partner's channels
        maps["hps"][1, 2 * SWAP[j], y, W - 1 - x] = -off[j, 0]
        maps["hps"][1, 2 * SWAP[j] + 1, y, W - 1 - x] = off[j, 1]
    det.model = FakeNet(maps)
    images = torch.zeros(2, 3, 64, 64)
    output, dets = det.process(images)
    top = dets[0, 0].numpy()
    assert top[4] == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item(), rel=1e-4)
    np.testing.assert_allclose(top[5:39].reshape(17, 2), np.array([x, y]) + off, atol=1e-5)
    np.testing.assert_allclose(top[:4], [x - 2, y - 4, x + 2, y + 4], atol=1e-5)
    assert output["hm"].shape[0] == 1


def test_joint_heatmap_refinement_and_switches(ckpt):
    det = make_detector(ckpt)
    assert {"hm_hp", "hp_offset"} <= set(det.opt.heads)
    x, y = 8, 8
    maps = _peak_maps(det.opt.heads, 1)
    maps["hm"][0, 0, y, x] = 5.0
    maps["wh"][0, :, y, x] = torch.tensor([10.0, 12.0])
    maps["hps"][0, :, y, x] = torch.tensor([1.0, 1.0] * 17)
    maps["hm_hp"][:] = -10.0
    maps["hm_hp"][0, 0, y + 2, x + 2] = 5.0  # nose peak near the regressed (9, 9)
    maps["hp_offset"][0, :, y + 2, x + 2] = torch.tensor([0.25, 0.5])
    det.model = FakeNet(maps)
    _, dets = det.process(torch.zeros(1, 3, 64, 64))
    kps = dets[0, 0, 5:39].numpy().reshape(17, 2)
    np.testing.assert_allclose(kps[0], [x + 2.25, y + 2.5], atol=1e-5)  # snapped to the joint peak
    np.testing.assert_allclose(kps[1], [x + 1, y + 1], atol=1e-5)  # no peak: regression kept
    # without joint offsets the peak's centre (+0.5) is used
    det.opt.reg_hp_offset = False
    _, dets = det.process(torch.zeros(1, 3, 64, 64))
    np.testing.assert_allclose(dets[0, 0, 5:7].numpy(), [x + 2.5, y + 2.5], atol=1e-5)
    # without joint heatmaps the regression is kept
    det.opt.hm_hp = False
    _, dets = det.process(torch.zeros(1, 3, 64, 64))
    np.testing.assert_allclose(dets[0, 0, 5:7].numpy(), [x + 1, y + 1], atol=1e-5)


def test_run_maps_back_to_image_and_nms_switch(ckpt):
    det = make_detector(ckpt, "--not_hm_hp")
    maps = _peak_maps(det.opt.heads, 1)
    maps["hm"][0, 0, 8, 4] = 5.0
    maps["wh"][0, :, 8, 4] = torch.tensor([2.0, 4.0])
    maps["hps"][0, :, 8, 4] = torch.tensor([1.0, -1.0] * 17)
    det.model = FakeNet(maps)
    image = np.zeros((128, 256, 3), np.uint8)  # 64 px input = 256 px image scaled by 1/4; map stride 4 -> 16 px
    ret = det.run(image)
    rows = np.asarray(ret["results"][1])
    assert rows.shape == (100, 39) and set(ret) >= {"tot", "load", "pre", "net", "dec", "post", "merge"}
    best = rows[np.argmax(rows[:, 4])]
    # output map (16 x 16) covers the 256 x 256 square centred on the image: 1 map px = 16 image px, y shifted -64
    # (the reg head is 0 there, so the centre is the integer peak (4, 8))
    np.testing.assert_allclose(best[:4], [(4 - 1) * 16, (8 - 2) * 16 - 64, (4 + 1) * 16, (8 + 2) * 16 - 64], atol=1e-3)
    np.testing.assert_allclose(best[5:7], [(4 + 1) * 16, (8 - 1) * 16 - 64], atol=1e-3)
    # multi-scale (and --nms) needs the compiled soft-NMS: either it runs or a one-line UserError says how to build it
    det.scales = det.opt.test_scales = [1.0, 0.5]
    try:
        rows2 = np.asarray(det.run(image)["results"][1])
    except UserError as e:
        assert "make" in str(e)
        return
    assert rows2.shape == (200, 39)
    # soft-NMS re-orders in place: the best person comes first, untouched
    assert rows2[0, 4] == pytest.approx(best[4], rel=1e-6)
    np.testing.assert_allclose(rows2[0, :4], best[:4], atol=1e-3)


def test_convert_eval_and_run_eval(tmp_path, capsys):
    data = make_coco_hp(tmp_path, with_empty=False)
    opt = make_opt(data)
    ds = COCOHP(opt, "val")
    row = [28.0, 8.0, 92.0, 116.0, 0.876] + JOINTS.reshape(-1).tolist()
    records = ds.convert_eval_format({7: {1: [list(row)]}})
    assert records[0]["bbox"] == [28.0, 8.0, 64.0, 108.0] and records[0]["score"] == 0.88
    assert records[0]["keypoints"][:3] == [61.0, 20.0, 1.0] and len(records[0]["keypoints"]) == 51
    stats = ds.run_eval({7: {1: [list(row)]}}, str(tmp_path))
    assert stats[0] == pytest.approx(1.0)  # perfect joints: OKS AP 1
    assert json.load(open(tmp_path / "results.json")) == records
    assert capsys.readouterr().out.count("Average ") == 22  # 10 keypoint + 12 bbox summary lines


def test_missing_annotations_is_a_user_error(tmp_path):
    opt = make_opt(tmp_path)
    with pytest.raises(UserError, match="person_keypoints_val2017.json"):
        COCOHP(opt, "val")


def test_trainer_debug_and_save_result(tmp_path):
    from trains.multi_pose import MultiPoseLoss, MultiPoseTrainer

    opt, ds, ret = sample(tmp_path, "val", "--debug", "4")
    opt.debug_dir = str(tmp_path / "debug")
    os.makedirs(opt.debug_dir)
    trainer = MultiPoseTrainer(opt, torch.nn.Identity(), None)
    batch = _batch(ret)
    batch["meta"] = {k: torch.as_tensor(np.asarray(v))[None] for k, v in ret["meta"].items()}
    out = _outputs(ret, opt)
    MultiPoseLoss(opt)([out], batch)  # applies the sigmoids the way training does
    trainer.debug(batch, out, 3)
    names = sorted(os.listdir(opt.debug_dir))
    assert names == sorted(f"3{n}.png" for n in ("pred_hm", "gt_hm", "out_pred", "out_gt", "pred_hmhp", "gt_hmhp"))
    results = {}
    trainer.save_result(out, batch, results)
    rows = np.asarray(results[7][1])
    assert rows.shape == (100, 39)
    assert rows[:, [0, 2]].min() >= -1e-3 - 64 and rows[:, [0, 2]].max() <= 128 + 64  # original image pixels


def test_eval_tool(tmp_path):
    import subprocess
    import sys

    data = make_coco_hp(tmp_path, with_empty=False)
    ds = COCOHP(make_opt(data), "val")
    ds.save_results({7: {1: [[28.0, 8.0, 92.0, 116.0, 0.9] + JOINTS.reshape(-1).tolist()]}}, str(tmp_path))
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "tools", "eval_coco_hp.py")
    annot = str(data / "coco" / "annotations" / "person_keypoints_val2017.json")
    proc = subprocess.run([sys.executable, tool, str(tmp_path / "results.json"), "--annot", annot],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.count("Average ") == 22
    proc = subprocess.run([sys.executable, tool, str(tmp_path / "nope.json"), "--annot", annot],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope.json" in proc.stderr and "Traceback" not in proc.stderr
