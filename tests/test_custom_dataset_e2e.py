"""Your own data end to end: VOC / YOLO folders converted, trained, tested and shown; a 5-keypoint pose set."""
from __future__ import annotations

import json

import pytest
from catalogue import run_in_process
from custom_sets import run_tool, write_coco, write_voc, write_yolo

from utils.debugger import Debugger

TINY = ["--arch", "res_18", "--head_conv", "8", "--input_res", "64", "--gpus", "-1", "--num_workers", "0",
        "--batch_size", "1", "--num_epochs", "1", "--num_iters", "2", "--lr_step", "2", "--val_intervals", "0"]


def _custom(root, ann_dir, exp_root) -> list[str]:
    return ["--dataset", "custom", "--custom_dataset_img_path", str(root), "--custom_dataset_ann_path",
            str(ann_dir / "train.json"), "--custom_dataset_val_ann_path", str(ann_dir / "val.json"),
            "--exp_root", str(exp_root), "--exp_id", "own"]


def _ok(res) -> str:
    shown = f"{res.stdout[-1500:]}\n{res.stderr[-1500:]}\n{res.traceback}"
    assert res.code == 0 and not res.traceback and not res.lines("error:"), shown
    return res.stdout


@pytest.fixture
def drawn_labels(monkeypatch):
    """Every class label the debugger draws."""
    labels = []
    original = Debugger._class_name

    def record(self, cat):
        labels.append(original(self, cat))
        return labels[-1]

    monkeypatch.setattr(Debugger, "_class_name", record)
    return labels


def _per_class(stdout: str, kind: str = "bbox") -> dict[str, list[str]]:
    """{class name: [AP, AP50, instances]} of the per-class table printed after the COCO figures."""
    rows = {}
    for line in stdout.split(f"per-class {kind} AP:")[1].splitlines()[2:]:
        cells = line.split()
        if len(cells) != 4 or not cells[3].isdigit():
            break
        rows[cells[0]] = cells[1:]
    return rows


def test_voc_folder_to_trained_tested_model(tmp_path, capfd, drawn_labels):
    root = write_voc(tmp_path / "voc", ["dog", "cat"])
    _ok(run_tool("convert_voc_to_coco", [root, "--out", tmp_path / "ann"], capfd))
    args = _custom(root, tmp_path / "ann", tmp_path / "exp")
    _ok(run_in_process("main", ["ctdet", *args, *TINY], capfd))
    save_dir = tmp_path / "exp" / "ctdet" / "own"
    assert (save_dir / "model_last.pth").is_file()

    out = _ok(run_in_process("test", ["ctdet", *args, *TINY, "--resume"], capfd))
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in out
    table = _per_class(out)
    assert set(table) == {"cat", "dog"}
    val = json.loads((tmp_path / "ann" / "val.json").read_text())
    for name, cat_id in (("cat", 1), ("dog", 2)):
        gt = sum(a["category_id"] == cat_id and not a["iscrowd"] for a in val["annotations"])
        assert int(table[name][2]) == gt  # difficult objects are not counted
    assert {r["category_id"] for r in json.loads((save_dir / "results.json").read_text())} <= {1, 2}

    _ok(run_in_process("demo", ["ctdet", *args, *TINY, "--resume", "--vis_thresh", "0", "--K", "5",
                                "--demo", str(root / "JPEGImages" / "000004.jpg")], capfd))
    assert (save_dir / "demo" / "000004_ctdet.png").is_file()
    assert drawn_labels and set(drawn_labels) <= {"cat", "dog"}


def test_yolo_folder_evaluates(tmp_path, capfd):
    root = write_yolo(tmp_path / "yolo", ["ship", "plane", "car"], yaml=True)
    _ok(run_tool("convert_yolo_to_coco", [root, "--out", tmp_path / "ann"], capfd))
    args = _custom(root, tmp_path / "ann", tmp_path / "exp")
    # training is the VOC test's; here the validation loop of main.py --test evaluates an untrained model
    out = _ok(run_in_process("main", ["ctdet", *args, *TINY, "--test"], capfd))
    assert "maxDets=100 ]" in out and set(_per_class(out)) == {"ship", "plane", "car"}


def test_five_keypoint_pose_set(tmp_path, capfd, drawn_labels):
    img = tmp_path / "img"
    write_coco(tmp_path / "train.json", img, [7, 42], ["box", "crate"], 4, 0, keypoints=True)
    write_coco(tmp_path / "val.json", img, [7, 42], ["box", "crate"], 1, 1, keypoints=True)
    args = _custom(img, tmp_path, tmp_path / "exp")
    _ok(run_in_process("main", ["multi_pose", *args, *TINY], capfd))
    out = _ok(run_in_process("test", ["multi_pose", *args, *TINY, "--resume", "--flip_test"], capfd))
    assert set(_per_class(out, "keypoints")) == {"box", "crate"} and set(_per_class(out)) == {"box", "crate"}
    results = json.loads((tmp_path / "exp" / "multi_pose" / "own" / "results.json").read_text())
    assert results and {r["category_id"] for r in results} <= {7, 42}
    assert all(len(r["keypoints"]) == 15 for r in results)
    _ok(run_in_process("demo", ["multi_pose", *args, *TINY, "--resume", "--vis_thresh", "0", "--K", "3",
                                "--demo", str(img / "val_0.png")], capfd))
    assert (tmp_path / "exp" / "multi_pose" / "own" / "demo" / "val_0_multi_pose.png").is_file()
    assert set(drawn_labels) <= {"box", "crate"} and drawn_labels
