"""Synthetic shapes generator: determinism, valid COCO json, and the Synth dataset class."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
from pycocotools.coco import COCO

from datasets.dataset_factory import get_dataset
from datasets.synthetic import shapes
from opts import opts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digest(folder):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(dirpath, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def test_generation_is_deterministic(tmp_path):
    shapes.generate(str(tmp_path / "a"), n_train=6, n_val=2, seed=3)
    shapes.generate(str(tmp_path / "b"), n_train=6, n_val=2, seed=3)
    shapes.generate(str(tmp_path / "c"), n_train=6, n_val=2, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    # an image does not depend on how many were requested
    shapes.generate(str(tmp_path / "d"), n_train=3, n_val=0, seed=3)
    with open(tmp_path / "a" / "images" / "train" / "000002.jpg", "rb") as f1, \
            open(tmp_path / "d" / "images" / "train" / "000002.jpg", "rb") as f2:
        assert f1.read() == f2.read()


def test_valid_coco_json(tmp_path):
    paths = shapes.generate(str(tmp_path), n_train=12, n_val=3, seed=0)
    api = COCO(paths["train"])
    assert len(api.getImgIds()) == 12 and len(api.getCatIds()) == 6
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == shapes.CLASS_NAMES
    for img in api.loadImgs(api.getImgIds()):
        assert 256 <= img["width"] <= 320 and 256 <= img["height"] <= 320
        anns = api.loadAnns(api.getAnnIds(imgIds=[img["id"]]))
        assert 1 <= len(anns) <= 6
        for a in anns:
            x, y, w, h = a["bbox"]
            assert x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
            lo, hi = shapes.OBJECT_SIZE
            assert 0.5 * lo < max(w, h) < 1.5 * hi and a["area"] > 0 and a["iscrowd"] == 0
            assert len(a["extreme_points"]) == 8
    assert len(json.load(open(paths["val"]))["images"]) == 3
    assert os.path.isfile(tmp_path / "images" / "val" / "000003.jpg")


def test_object_size_range(tmp_path):
    """object_size bounds the rendered objects (box side within the aspect and rotation slack)."""
    small = COCO(shapes.generate(str(tmp_path / "s"), n_train=8, n_val=0, seed=2, object_size=(30, 34))["train"])
    big = COCO(shapes.generate(str(tmp_path / "b"), n_train=8, n_val=0, seed=2, object_size=(90, 100))["train"])
    small_sides = [max(a["bbox"][2:]) for a in small.loadAnns(small.getAnnIds())]
    big_sides = [max(a["bbox"][2:]) for a in big.loadAnns(big.getAnnIds())]
    assert 20 < min(small_sides) and max(small_sides) < 50
    assert 60 < min(big_sides) and max(big_sides) < 150


def test_synth_dataset_class(tmp_path):
    shapes.generate(str(tmp_path / "synth"), n_train=4, n_val=2, seed=0)
    opt = opts().init(["ctdet", "--dataset", "synth"])
    assert opt.num_classes == 6 and opt.input_h == 256
    opt.data_dir = str(tmp_path)
    ds = get_dataset("synth", "ctdet")(opt, "train")
    assert len(ds) == 4 and ds.class_name[1:] == shapes.CLASS_NAMES and ds.cat_ids == {i: i - 1 for i in range(1, 7)}
    np.random.seed(0)
    ret = ds[0]
    assert ret["input"].shape == (3, 256, 256) and ret["hm"].shape == (6, 64, 64)
    assert ret["reg_mask"].sum() >= 1 and ret["hm"].max() == 1.0
    test_split = get_dataset("synth", "ctdet")(opt, "test")  # --trainval evaluation reads val
    assert len(test_split) == 2


def test_cli(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "src", "tools", "gen_synthetic.py"), "--kind", "det",
                           "--out", str(out), "--train", "3", "--val", "1", "--seed", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 train + 1 val" in proc.stdout
    assert os.path.isfile(out / "annotations" / "instances_train.json")
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "src", "tools", "gen_synthetic.py"), "--train", "-1",
                          "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
