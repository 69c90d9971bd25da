"""--dataset custom: classes, heads and keypoint layout from the json, id mapping, evaluation, load-time checks."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from catalogue import run_in_process
from custom_sets import write_coco

from datasets.dataset.custom import Custom
from datasets.dataset_factory import get_dataset
from opts import opts
from utils.debugger import debugger_for
from utils.errors import UserError

IDS, NAMES = [7, 42, 1000], ["apple", "pear", "plum"]


def _opt(task: str, *extra, train=None, val=None, img=None):
    args = [task, "--dataset", "custom", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--val_intervals", "0"]
    for flag, value in (("--custom_dataset_ann_path", train), ("--custom_dataset_val_ann_path", val),
                        ("--custom_dataset_img_path", img)):
        if value is not None:
            args += [flag, str(value)]
    with contextlib.redirect_stdout(io.StringIO()):
        opt = opts().parse([*args, *extra])
        return opts().update_dataset_info_and_set_heads(opt, Custom)


@pytest.fixture
def boxes(tmp_path):
    write_coco(tmp_path / "train.json", tmp_path / "img", IDS, NAMES, 3, 0)
    write_coco(tmp_path / "val.json", tmp_path / "img", IDS, NAMES, 3, 1)
    return tmp_path


@pytest.fixture
def poses(tmp_path):
    write_coco(tmp_path / "train.json", tmp_path / "img", [7, 42], ["box", "crate"], 3, 0, keypoints=True)
    write_coco(tmp_path / "val.json", tmp_path / "img", [7, 42], ["box", "crate"], 3, 1, keypoints=True)
    return tmp_path


def test_classes_come_from_the_json(boxes):
    opt = _opt("ctdet", train=boxes / "train.json", img=boxes / "img")
    assert opt.num_classes == 3 and opt.heads["hm"] == 3 and opt.class_names == NAMES
    assert (opt.input_h, opt.input_w) == (64, 64)
    assert np.allclose(opt.mean.reshape(-1), [0.408, 0.447, 0.470], atol=1e-3)  # COCO's figures
    assert _opt("ctdet", train=boxes / "train.json").input_h == 64
    with pytest.raises(UserError, match="--num_classes 2: .* has 3 categories"):
        _opt("ctdet", "--num_classes", "2", train=boxes / "train.json")
    with pytest.raises(UserError, match="--custom_dataset_ann_path"):
        _opt("ctdet")
    # no val json: fine while nothing validates (--val_intervals 0), an error once something does
    opt = _opt("ctdet", train=boxes / "train.json", img=boxes / "img")
    assert _dataset(opt, "val").annot_path == str(boxes / "train.json")
    opt.val_intervals = 1
    with pytest.raises(UserError, match="the val split needs --custom_dataset_val_ann_path"):
        _dataset(opt, "val")


def test_keypoint_layout_from_the_json(poses):
    opt = _opt("multi_pose", train=poses / "train.json")
    assert opt.heads["hps"] == 10 and opt.heads["hm_hp"] == 5 and opt.heads["hm"] == 2
    assert opt.flip_idx == [[1, 2], [3, 4]]  # left_/right_ names
    assert opt.skeleton == [[0, 1], [0, 2], [0, 3], [0, 4]] and opt.num_joints == 5
    assert _opt("multi_pose", "--flip_idx", "3-4", train=poses / "train.json").flip_idx == [[3, 4]]
    with pytest.raises(UserError, match="--flip_idx 3-9"):
        _opt("multi_pose", "--flip_idx", "3-9", train=poses / "train.json")
    with pytest.raises(UserError, match="--kpt_sigmas .*need 5"):
        _opt("multi_pose", "--kpt_sigmas", "0.1,0.1", train=poses / "train.json")
    debugger = debugger_for(opt, None, "x")
    assert debugger.names == ["box", "crate"] and debugger.num_joints == 5 and len(debugger.ec) == 4
    # training's --debug rows: box, score, 5 joints, class
    row = [4, 4, 40, 40, 0.9, 10, 10, 5, 5, 30, 5, 5, 30, 30, 30, 1]
    debugger.add_box_rows(np.zeros((64, 64, 3), np.uint8), np.array([row], np.float32), 0.1, "x", with_pose=True)
    assert debugger.imgs["x"].any()


def test_keypoint_categories_must_agree(tmp_path):
    data = write_coco(tmp_path / "train.json", tmp_path / "img", [1, 2], ["a", "b"], 1, 0, keypoints=True)
    data["categories"][1]["keypoints"] = ["x", "y"]
    (tmp_path / "train.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="different keypoint counts"):
        _opt("multi_pose", train=tmp_path / "train.json")
    with pytest.raises(UserError, match="'keypoints' list"):
        write_coco(tmp_path / "b.json", tmp_path / "img", [1], ["a"], 1, 0)
        _opt("multi_pose", train=tmp_path / "b.json")


def test_demo_init_reads_class_names(boxes):
    with contextlib.redirect_stdout(io.StringIO()):
        opt = opts().init(["ctdet", "--dataset", "custom", "--custom_dataset_ann_path", str(boxes / "val.json")])
    assert opt.class_names == NAMES and opt.num_classes == 3 and opt.input_h == 512


def _dataset(opt, split="val"):
    with contextlib.redirect_stdout(io.StringIO()):
        return Custom(opt, split)


def test_ids_mapped_back_and_per_class_table(boxes, capsys):
    opt = _opt("ctdet", train=boxes / "train.json", val=boxes / "val.json", img=boxes / "img")
    ds = _dataset(opt)
    assert ds.cat_ids == {7: 0, 42: 1, 1000: 2}
    results = {}  # the ground truth as detections: AP 1 only if every class maps back to its id
    for ann in ds.coco.dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        per_class = results.setdefault(ann["image_id"], {c: [] for c in (1, 2, 3)})
        per_class[ds.cat_ids[ann["category_id"]] + 1].append([x, y, x + w, y + h, 0.9])
    capsys.readouterr()
    stats = ds.run_eval(results, str(boxes))
    out = capsys.readouterr().out
    written = json.loads((boxes / "results.json").read_text())
    assert {r["category_id"] for r in written} <= set(IDS) and len(written) == len(ds.coco.dataset["annotations"])
    assert stats[0] == pytest.approx(1.0)
    counts = {c: sum(a["category_id"] == c for a in ds.coco.dataset["annotations"]) for c in IDS}
    table = out.split("per-class bbox AP:")[1].splitlines()
    assert table[1].split() == ["class", "AP", "AP50", "instances"]
    for line, cat_id, name in zip(table[2:5], IDS, NAMES):
        cells = line.split()
        assert cells[0] == name and int(cells[3]) == counts[cat_id]
        assert float(cells[1]) == (1.0 if counts[cat_id] else -1.0)


def test_keypoint_evaluation_with_uniform_sigmas(poses, capsys):
    opt = _opt("multi_pose", train=poses / "train.json", val=poses / "val.json", img=poses / "img")
    ds = _dataset(opt)
    results = {}
    for ann in ds.coco.dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        xy = np.array(ann["keypoints"]).reshape(-1, 3)[:, :2].reshape(-1).tolist()
        per_class = results.setdefault(ann["image_id"], {1: [], 2: []})
        per_class[ds.cat_ids[ann["category_id"]] + 1].append([x, y, x + w, y + h, 0.9, *xy])
    stats = ds.run_eval(results, str(poses))
    out = capsys.readouterr().out
    assert stats[0] == pytest.approx(1.0)  # keypoint AP first, as coco_hp
    assert "per-class keypoints AP:" in out and "per-class bbox AP:" in out
    assert {r["category_id"] for r in json.loads((poses / "results.json").read_text())} == {7, 42}


def test_bad_train_json_stops_main_with_one_line(boxes, capfd):
    data = json.loads((boxes / "train.json").read_text())
    for ann in data["annotations"][:2]:
        ann["bbox"][3] = 0
    (boxes / "train.json").write_text(json.dumps(data))
    args = ["ctdet", "--dataset", "custom", "--custom_dataset_img_path", str(boxes / "img"),
            "--custom_dataset_ann_path", str(boxes / "train.json"), "--custom_dataset_val_ann_path",
            str(boxes / "val.json"), "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--exp_root", str(boxes / "exp")]
    res = run_in_process("main", args, capfd)
    assert res.code == 2 and not res.traceback
    errors = res.lines("error:")
    assert len(errors) == 1 and "train.json: 2 boxes with zero or negative size" in errors[0]
    assert "check_dataset.py" in errors[0] and not (boxes / "exp").exists()

    res = run_in_process("test", [a for a in args if "val_ann" not in a and "val.json" not in a], capfd)
    assert res.code == 2 and "--custom_dataset_val_ann_path" in res.lines("error:")[0]


def test_ddd_and_exdet_read_their_fields(tmp_path):
    write_coco(tmp_path / "val.json", tmp_path / "img", IDS, NAMES, 2, 0, extras=True)
    opt = _opt("ddd", val=tmp_path / "val.json", img=tmp_path / "img")
    ds = _dataset(opt)
    # ddd rows: alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score -> COCO boxes with the json's ids
    row = [0.1, 10, 20, 30, 50, 1.5, 1.6, 3.9, 0, 1, 10, 0.2, 0.8]
    records = ds.convert_eval_format({100: {3: np.array([row], dtype=np.float32)}})
    assert records == [{"image_id": 100, "category_id": 1000, "bbox": [10.0, 20.0, 20.0, 30.0], "score": 0.8}]
    assert _dataset(_opt("exdet", val=tmp_path / "val.json", img=tmp_path / "img")).num_samples == 2

    data = json.loads((tmp_path / "val.json").read_text())
    data["images"][1].pop("calib")
    for ann in data["annotations"]:
        ann.pop("extreme_points")
    (tmp_path / "val.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="1 images have no 3x4 'calib'"):
        _dataset(opt)
    with pytest.raises(UserError, match="have no 'extreme_points'"):  # the exdet sample class asks for them
        get_dataset("custom", "exdet")(_opt("exdet", val=tmp_path / "val.json", img=tmp_path / "img"), "val")
