"""Synthetic people keypoint data: generator, SynthHP dataset, and multi_pose end to end on the CPU."""
import glob
import json
import os

import numpy as np
import pytest
import torch
from script_runner import gen_synthetic
from script_runner import run_script as run

from datasets.dataset_factory import get_dataset
from datasets.synthetic import people
from opts import opts

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth_hp")
    gen_synthetic(base / "synth_hp", "hp", 12, 4, seed=3)
    return base


def load(data_dir, split):
    with open(data_dir / "synth_hp" / "annotations" / f"person_keypoints_{split}.json") as f:
        return json.load(f)


def test_layout_and_annotations(data_dir):
    doc = load(data_dir, "train")
    assert len(doc["images"]) == 12 and len(load(data_dir, "val")["images"]) == 4
    cat = doc["categories"][0]
    assert cat["id"] == 1 and cat["name"] == "person" and len(cat["keypoints"]) == 17
    sizes = {im["id"]: (im["width"], im["height"]) for im in doc["images"]}
    for im in doc["images"]:
        assert os.path.isfile(data_dir / "synth_hp" / "images" / "train" / im["file_name"])
    vis_seen = set()
    for a in doc["annotations"]:
        w, h = sizes[a["image_id"]]
        kps = np.array(a["keypoints"]).reshape(17, 3)
        vis_seen |= set(kps[:, 2].astype(int).tolist())
        assert set(kps[:, 2]) <= {0, 1, 2} and a["num_keypoints"] == int((kps[:, 2] > 0).sum())
        assert np.all(kps[kps[:, 2] == 0] == 0)  # COCO: unlabelled joints are (0, 0, 0)
        lab = kps[kps[:, 2] > 0]
        assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= w - 1) & (lab[:, 1] >= 0) & (lab[:, 1] <= h - 1))
        x, y, bw, bh = a["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 0 and bh > 0 and a["area"] > 0
        # people face the camera: COCO's left shoulder is on the image's right
        if kps[5, 2] > 0 and kps[6, 2] > 0:
            assert kps[5, 0] > kps[6, 0]
    assert vis_seen == {0, 1, 2}


def test_deterministic_and_independent_of_count(tmp_path):
    people.generate(str(tmp_path / "a"), n_train=3, n_val=1, seed=5)
    people.generate(str(tmp_path / "b"), n_train=2, n_val=1, seed=5)
    a = json.load(open(tmp_path / "a" / "annotations" / "person_keypoints_train.json"))
    b = json.load(open(tmp_path / "b" / "annotations" / "person_keypoints_train.json"))
    assert a["images"][:2] == b["images"]
    assert [x for x in a["annotations"] if x["image_id"] in (1, 2)] == b["annotations"]
    img_a = open(tmp_path / "a" / "images" / "train" / a["images"][0]["file_name"], "rb").read()
    img_b = open(tmp_path / "b" / "images" / "train" / b["images"][0]["file_name"], "rb").read()
    assert img_a == img_b


def test_synth_hp_dataset_samples(data_dir):
    opt = opts().init(["multi_pose", "--dataset", "synth_hp"])
    assert opt.dataset == "synth_hp" and opt.input_res == 256
    opt.data_dir = str(data_dir)
    Dataset = get_dataset("synth_hp", "multi_pose")
    assert Dataset.default_resolution == [256, 256] and Dataset.num_joints == 17
    ds = Dataset(opt, "val")
    ret = ds[0]
    assert ret["input"].shape == (3, 256, 256) and ret["hm_hp"].shape == (17, 64, 64)
    assert ret["hm"].max() == 1.0 and ret["hp_mask"].sum() > 0
    np.random.seed(0)
    train = Dataset(opt, "train")
    assert len(train) > 0 and train[0]["input"].shape == (3, 256, 256)


def test_train_test_demo_end_to_end(data_dir, tmp_path):
    args = ["--dataset", "synth_hp", "--exp_id", "e2e_hp", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--data_dir", str(data_dir), "--exp_root", str(tmp_path / "exp")]
    save_dir = tmp_path / "exp" / "multi_pose" / "e2e_hp"
    run(["main.py", "multi_pose", *args, "--batch_size", "2", "--num_epochs", "1", "--num_iters", "2",
         "--val_intervals", "1", "--num_workers", "0"])
    log = open(glob.glob(str(save_dir / "logs_*" / "log.txt"))[0]).read()
    for name in ("hm_loss", "hp_loss", "hm_hp_loss", "hp_offset_loss", "wh_loss", "off_loss"):
        assert log.count(f"| {name} ") + log.count(f"|{name} ") == 2  # train and val
    ckpt = torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=False)
    assert "hm_hp.2.bias" in ckpt["state_dict"] and "hp_offset.2.bias" in ckpt["state_dict"]

    out = run(["test.py", "multi_pose", *args, "--resume", "--flip_test"]).stdout
    assert out.count("Average Precision") == 11  # keypoint (5) + bbox (6) summaries
    results = json.load(open(save_dir / "results.json"))
    assert results and len(results[0]["keypoints"]) == 51 and results[0]["category_id"] == 1

    one = sorted(glob.glob(str(data_dir / "synth_hp" / "images" / "val" / "*.jpg")))[0]
    demo_out = tmp_path / "demo"
    run(["demo.py", "multi_pose", *args, "--resume", "--demo", one, "--demo_out_dir", str(demo_out)])
    assert glob.glob(str(demo_out / "*multi_pose*"))
