"""convert_yolo_to_coco.py: YOLO txt labels -> COCO jsons (sizes from the files, names from classes/data.yaml)."""
from __future__ import annotations

import json

import pytest
from custom_sets import SIZE, run_tool, write_yolo


@pytest.mark.parametrize("yaml", [False, True])
def test_yolo_conversion(tmp_path, capfd, yaml):
    root = write_yolo(tmp_path / "yolo", ["ship", "plane", "car"], yaml=yaml)
    res = run_tool("convert_yolo_to_coco", [root, "--out", tmp_path / "out"], capfd)
    assert res.code == 0 and not res.traceback, res.stderr
    assert "val.json: 2 images" in res.stdout and "1 images without boxes" in res.stdout
    assert "3 classes: ship, plane, car" in res.stdout
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    assert [(c["id"], c["name"]) for c in train["categories"]] == [(1, "ship"), (2, "plane"), (3, "car")]
    im = train["images"][0]
    assert im["file_name"] == "images/train/im0.png" and (im["width"], im["height"]) == (SIZE, SIZE)
    # normalised centre/size -> pixel corners
    cls, cx, cy, w, h = (float(v) for v in (root / "labels/train/im0.txt").read_text().split("\n")[0].split())
    ann = train["annotations"][0]
    assert ann["category_id"] == int(cls) + 1
    assert ann["bbox"] == pytest.approx([(cx - w / 2) * SIZE, (cy - h / 2) * SIZE, w * SIZE, h * SIZE], abs=0.02)


def test_yolo_bad_inputs(tmp_path, capfd):
    root = write_yolo(tmp_path / "yolo", ["ship", "plane"])
    (root / "labels/train/im1.txt").write_text("5 0.5 0.5 0.1 0.1\n")
    res = run_tool("convert_yolo_to_coco", [root, "--out", tmp_path / "out"], capfd)
    assert res.code == 2 and not res.traceback
    assert "im1.txt:1: class 5" in res.lines("error:")[0]
    (root / "labels/train/im1.txt").write_text("0 0.5 0.5 0.1 0.1 0.3 0.3 0.2\n")
    res = run_tool("convert_yolo_to_coco", [root, "--out", tmp_path / "out"], capfd)
    assert "expected 'class cx cy w h'" in res.lines("error:")[0]
    (root / "classes.txt").unlink()
    res = run_tool("convert_yolo_to_coco", [root, "--out", tmp_path / "out"], capfd)
    assert res.code == 2 and "classes.txt" in res.lines("error:")[0]


@pytest.mark.parametrize("text", [
    "names: ['ship', 'plane']\nnc: 2\n",
    "nc: 2\nnames:\n  - ship\n  - 'plane'\ntrain: images/train\n",
    "names:\n  0: ship\n  1: plane  # comment\n",
])
def test_data_yaml_forms(tmp_path, text):
    from datasets.yolo_to_coco import class_names

    (tmp_path / "data.yaml").write_text(text)
    assert class_names(str(tmp_path)) == ["ship", "plane"]
