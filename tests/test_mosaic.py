"""Mosaics of a val split (bench_infer.py --val_tiles): pixels and boxes of every tile where they belong."""
import json

import cv2
import numpy as np
import pytest

from datasets.mosaic import FILL, tile_split
from datasets.synthetic.shapes import generate_split, split_paths
from utils.errors import UserError


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth"))
    generate_split(out, "val", 9, seed=4)
    return split_paths(out, "val")


def test_tiles_keep_pixels_and_boxes(split, tmp_path):
    img_dir, annot = split
    out_dir, out_annot = str(tmp_path / "images"), str(tmp_path / "ann.json")
    assert tile_split(img_dir, annot, 2, out_dir, out_annot) == 2  # 9 images: two mosaics, the ninth left out
    src, dst = json.load(open(annot)), json.load(open(out_annot))
    cell_h = max(i["height"] for i in src["images"])
    cell_w = max(i["width"] for i in src["images"])
    assert [(i["height"], i["width"]) for i in dst["images"]] == [(2 * cell_h, 2 * cell_w)] * 2
    images = sorted(src["images"], key=lambda i: i["id"])[:8]
    kept = {i["id"] for i in images}
    assert len(dst["annotations"]) == sum(a["image_id"] in kept for a in src["annotations"])
    mosaics = {i["id"]: cv2.imread(f"{out_dir}/{i['file_name']}") for i in dst["images"]}
    for k, info in enumerate(images):
        tile = cv2.imread(f"{img_dir}/{info['file_name']}")
        m, pos = divmod(k, 4)
        y0, x0 = (pos // 2) * cell_h, (pos % 2) * cell_w
        mosaic = mosaics[m + 1]
        h, w = tile.shape[:2]
        assert np.array_equal(mosaic[y0:y0 + h, x0:x0 + w], tile)
        assert (mosaic[y0 + h:y0 + cell_h, x0:x0 + cell_w] == FILL).all()
        boxes = sorted(a["bbox"] for a in src["annotations"] if a["image_id"] == info["id"])
        in_tile = [a["bbox"] for a in dst["annotations"] if a["image_id"] == m + 1
                   and x0 <= a["bbox"][0] < x0 + cell_w and y0 <= a["bbox"][1] < y0 + cell_h]
        moved = sorted([x - x0, y - y0, w, h] for x, y, w, h in in_tile)
        np.testing.assert_allclose(np.array(moved).reshape(-1, 4), np.array(boxes).reshape(-1, 4), atol=1e-6)
    assert len({a["id"] for a in dst["annotations"]}) == len(dst["annotations"])


def test_too_few_images(split, tmp_path):
    with pytest.raises(UserError, match="make no 4 x 4 mosaic"):
        tile_split(*split, 4, str(tmp_path / "i"), str(tmp_path / "a.json"))
