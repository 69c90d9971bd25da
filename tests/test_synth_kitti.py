"""Synthetic KITTI data: generator output, the synth_kitti dataset, and ddd end to end on the CPU."""
import glob
import math
import os

import numpy as np
import pytest
from script_runner import run_script

from datasets.dataset_factory import get_dataset
from datasets.synthetic.kitti import generate, scaled_calib
from opts import opts
from utils.ddd_utils import compute_box_3d, project_to_image


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth_kitti")
    generate(str(base / "synth_kitti"), n_train=6, n_val=3, seed=3)
    return base


def read_labels(path):
    return [ln.split() for ln in open(path).read().splitlines()]


def test_layout_and_labels(synth):
    root = synth / "synth_kitti"
    p2, (w, h) = scaled_calib(0.5)
    assert len(os.listdir(root / "training" / "image_2")) == 9
    for name in ("kitti_3dop_train.json", "kitti_3dop_val.json", "kitti_subcnn_val.json", "kitti_trainval.json"):
        assert (root / "annotations" / name).is_file()
    assert (root / "ImageSets_3dop" / "val.txt").read_text().split() == ["000006", "000007", "000008"]
    calib_lines = (root / "training" / "calib" / "000000.txt").read_text().splitlines()
    assert calib_lines[2].startswith("P2: ")
    np.testing.assert_allclose(np.array(calib_lines[2].split()[1:], float).reshape(3, 4), p2, rtol=1e-9)
    n_objects = 0
    for path in sorted(glob.glob(str(root / "training" / "label_2" / "*.txt"))):
        for f in read_labels(path):
            assert len(f) == 15 and f[0] in ("Car", "Pedestrian", "Cyclist", "Van", "DontCare")
            if f[0] == "DontCare":
                continue
            n_objects += 1
            v = [float(x) for x in f[1:]]
            dim, loc, ry = v[7:10], v[10:13], v[13]
            # the 2D box is the clipped projection of the 3D box (labels round everything to 2 decimals)
            uv = project_to_image(compute_box_3d(dim, loc, ry), p2)
            box = [max(uv[:, 0].min(), 0), max(uv[:, 1].min(), 0), min(uv[:, 0].max(), w - 1),
                   min(uv[:, 1].max(), h - 1)]
            np.testing.assert_allclose(v[3:7], box, atol=1.0)
            # alpha = rotation_y minus the viewing ray's angle
            assert math.cos(v[2] - (ry - math.atan2(loc[0], loc[2]))) == pytest.approx(1, abs=1e-3)
            assert 0 <= v[0] <= 0.7 and int(f[2]) in (0, 1, 2, 3)
    assert n_objects >= 9 * 2


def test_deterministic(tmp_path, synth):
    generate(str(tmp_path / "again"), n_train=6, n_val=3, seed=3)
    for sub in ("label_2/000004.txt", "image_2/000004.png"):
        assert (tmp_path / "again" / "training" / sub).read_bytes() == \
            (synth / "synth_kitti" / "training" / sub).read_bytes()


def test_synth_kitti_dataset(synth):
    opt = opts().parse(["ddd", "--dataset", "synth_kitti", "--gpus", "-1", "--data_dir", str(synth)])
    Dataset = get_dataset("synth_kitti", "ddd")
    opt = opts().update_dataset_info_and_set_heads(opt, Dataset)
    assert (opt.input_h, opt.input_w) == (128, 384)
    ds = Dataset(opt, "val")
    assert len(ds) == 3 and ds.images == [6, 7, 8]
    ret = ds[0]
    assert ret["hm"].shape == (3, 32, 96) and ret["hm"].max() == 1.0 and ret["meta"]["calib"].shape == (3, 4)
    opt.trainval = True
    assert len(Dataset(opt, "train")) == 9 and Dataset(opt, "val").split == "test"


def run(args):
    return run_script(args).stdout


def test_train_test_demo_end_to_end(synth):
    common = ["--dataset", "synth_kitti", "--exp_id", "e2e", "--arch", "res_18", "--gpus", "-1", "--head_conv", "16",
              "--data_dir", str(synth), "--exp_root", str(synth / "exp")]
    save_dir = synth / "exp" / "ddd" / "e2e"
    run(["main.py", "ddd", *common, "--batch_size", "2", "--num_epochs", "1", "--num_iters", "2",
         "--num_workers", "0"])
    assert (save_dir / "model_last.pth").is_file()
    log = open(glob.glob(str(save_dir / "logs_*" / "log.txt"))[0]).read()
    assert "dep_loss" in log and "rot_loss" in log
    # a low threshold so the barely trained model reports boxes and every metric is evaluated
    out = run(["test.py", "ddd", *common, "--resume", "--peak_thresh", "0.01"])
    assert "number of files for evaluation: 3" in out
    assert sorted(os.listdir(save_dir / "results")) == ["000006.txt", "000007.txt", "000008.txt"]
    rows = [ln.split() for ln in (save_dir / "results" / "000006.txt").read_text().splitlines()]
    assert rows and all(len(r) == 16 and r[1:3] == ["0.0", "0"] for r in rows)
    assert any(ln.endswith("_detection_3d AP: " + ln.split("AP: ")[1]) for ln in out.splitlines() if "AP:" in ln)
    demo_out = synth / "demo_out"
    image = synth / "synth_kitti" / "training" / "image_2" / "000007.png"
    run(["demo.py", "ddd", *common, "--resume", "--demo", str(image), "--demo_out_dir", str(demo_out),
         "--vis_thresh", "0.01"])
    assert sorted(os.listdir(demo_out)) == ["000007_add_pred.png", "000007_bird_pred.png"]
    # training-time visualisation written to disk (--debug 4)
    run(["main.py", "ddd", *common, "--exp_id", "dbg", "--num_epochs", "1", "--num_iters", "1", "--debug", "4"])
    written = sorted(os.listdir(synth / "exp" / "ddd" / "dbg" / "debug"))
    assert written == ["0add_gt.png", "0add_pred.png", "0bird_pred_gt.png", "0det_gt.png", "0det_pred.png",
                       "0hm_gt.png", "0hm_pred.png", "0out.png"]
