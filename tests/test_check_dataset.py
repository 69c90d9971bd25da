"""check_dataset.py: every bad-input kind is counted in the table, errors exit 1, clean files exit 0."""
from __future__ import annotations

import json

import pytest
from custom_sets import run_tool, write_coco, write_yolo

from datasets.dataset.coco_audit import audit_json, first_error


@pytest.fixture
def clean(tmp_path):
    data = write_coco(tmp_path / "ann.json", tmp_path / "img", [7, 42], ["a", "b"], 4, 0, keypoints=True)
    return tmp_path, data


def _spoil(tmp_path, data, how) -> str:
    """Apply `how` to the json and write it as bad.json."""
    how(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return str(path)


def _row(stdout: str, label: str) -> list[str]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(label))
    return line[len(label):].split()


def test_clean_file_passes(clean, capfd):
    tmp_path, _ = clean
    res = run_tool("check_dataset", [tmp_path / "ann.json", "--img_dir", tmp_path / "img"], capfd)
    assert res.code == 0 and "no errors" in res.stdout and not res.traceback
    assert "4 images" in res.stdout


def _image_problems(tmp_path, data):
    (tmp_path / "img" / data["images"][0]["file_name"]).unlink()  # missing
    (tmp_path / "img" / data["images"][1]["file_name"]).write_bytes(b"not an image")  # unreadable
    data["images"][2]["width"] = 100  # size differs from the file


CASES = {
    "missing image files": _image_problems,
    "unreadable image files": _image_problems,
    "recorded width/height differ from the file": _image_problems,
    "boxes with zero or negative size": lambda _, d: d["annotations"][0].update(bbox=[1, 1, 0, 5]),
    "boxes outside their image": lambda _, d: d["annotations"][1].update(bbox=[50, 50, 40, 10]),
    "annotations of unknown category ids": lambda _, d: d["annotations"][0].update(category_id=3),
    "duplicate annotation ids": lambda _, d: d["annotations"][1].update(id=d["annotations"][0]["id"]),
    "duplicate image ids": lambda _, d: d["images"].append(dict(d["images"][0])),
    "duplicate category ids": lambda _, d: d["categories"].append(dict(d["categories"][0])),
    "keypoint counts that differ from the category": lambda _, d: d["annotations"][0].update(keypoints=[1, 2, 2]),
    "annotations of unknown image ids": lambda _, d: d["annotations"][0].update(image_id=999),
    "malformed records (missing or wrongly typed fields)": lambda _, d: d["annotations"][0].pop("bbox"),
}


@pytest.mark.parametrize("label", list(CASES))
def test_each_problem_kind_is_caught(clean, capfd, label):
    tmp_path, data = clean
    path = _spoil(tmp_path, data, lambda d: CASES[label](tmp_path, d))
    res = run_tool("check_dataset", [path, "--img_dir", tmp_path / "img"], capfd)
    assert res.code == 1 and not res.traceback, res.stderr
    count, status = _row(res.stdout, label)[:2]
    assert int(count) >= 1 and status == "ERROR"


def test_images_without_annotations_are_counted_not_errors(tmp_path, capfd):
    root = write_yolo(tmp_path / "yolo", ["a", "b"])
    assert run_tool("convert_yolo_to_coco", [root, "--out", tmp_path / "out"], capfd).code == 0
    res = run_tool("check_dataset", [tmp_path / "out" / "val.json", "--img_dir", root], capfd)
    assert res.code == 0, res.stdout
    assert _row(res.stdout, "images without annotations")[:2] == ["1", "note"]


def test_unreadable_json_is_one_error_line(tmp_path, capfd):
    (tmp_path / "x.json").write_text("{broken")
    res = run_tool("check_dataset", [tmp_path / "x.json", "--no_images"], capfd)
    assert res.code == 2 and len(res.lines("error:")) == 1 and "not a json file" in res.stderr


def test_first_error_names_kind_and_count(clean):
    _, data = clean
    for ann in data["annotations"][:2]:
        ann["bbox"][2] = -3
    err = first_error(audit_json(data), "ann.json")
    assert "ann.json: 2 boxes with zero or negative size" in str(err)
    assert "\n" not in str(err)
