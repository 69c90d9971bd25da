"""convert_voc_to_coco.py: VOC xml -> COCO jsons (relative file_names, 0-based boxes, difficult ignored)."""
from __future__ import annotations

import json

from custom_sets import run_tool, write_voc


def test_voc_conversion(tmp_path, capfd):
    root = write_voc(tmp_path / "voc", ["dog", "cat"])
    res = run_tool("convert_voc_to_coco", [root, "--out", tmp_path / "out"], capfd)
    assert res.code == 0 and not res.traceback, res.stderr
    assert "train.json: 4 images" in res.stdout and "val.json: 2 images" in res.stdout
    assert "2 classes: cat, dog" in res.stdout  # names found, sorted
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    val = json.loads((tmp_path / "out" / "val.json").read_text())
    assert [c["name"] for c in train["categories"]] == ["cat", "dog"]
    for data in (train, val):
        for im in data["images"]:
            assert im["file_name"].startswith("JPEGImages/") and (root / im["file_name"]).is_file()
            assert (im["width"], im["height"]) == (64, 64)
    # 1-based inclusive VOC corners -> COCO [x, y, w, h]: xmin 5..xmax 20 covers x 4 to 20
    xml = (root / "Annotations" / "000000.xml").read_text()
    xmin = int(xml.split("<xmin>")[1].split("<")[0])
    xmax = int(xml.split("<xmax>")[1].split("<")[0])
    first = train["annotations"][0]
    assert first["bbox"][0] == xmin - 1 and first["bbox"][2] == xmax - xmin + 1
    # the difficult object is kept, as a crowd box COCOeval ignores
    crowd = [a for a in val["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1 and crowd[0]["ignore"] == 1
    assert "(1 ignored)" in res.stdout


def test_voc_fixed_classes_and_bad_inputs(tmp_path, capfd):
    root = write_voc(tmp_path / "voc", ["dog", "cat"])
    res = run_tool("convert_voc_to_coco", [root, "--out", tmp_path / "out", "--classes", "dog"], capfd)
    assert res.code == 0, res.stderr
    data = json.loads((tmp_path / "out" / "train.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["dog"]
    assert any("left out" in w and "cat (" in w for w in res.lines("warning:"))

    (root / "ImageSets" / "Main" / "val.txt").unlink()
    res = run_tool("convert_voc_to_coco", [root, "--out", tmp_path / "out2"], capfd)
    assert res.code == 2 and not res.traceback
    assert len(res.lines("error:")) == 1 and "val.txt" in res.lines("error:")[0]

    (root / "ImageSets" / "Main" / "val.txt").write_text("000004\n")
    (root / "Annotations" / "000004.xml").write_text("<annotation><object>")
    res = run_tool("convert_voc_to_coco", [root, "--out", tmp_path / "out2"], capfd)
    assert res.code == 2 and "000004.xml" in res.lines("error:")[0] and "not valid xml" in res.stderr
