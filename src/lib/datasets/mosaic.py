"""N x N mosaics of a COCO-layout split: a model trained at input R meets its training scale at input N * R."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np

from utils.errors import UserError
from utils.io import atomic_write

FILL = 127  # grey where an image is smaller than its cell


def tile_split(img_dir: str, annot_path: str, tiles: int, out_img_dir: str, out_annot_path: str) -> int:
    """Write mosaics of `tiles` x `tiles` consecutive images (by id; a last incomplete group is left out),
    each in a cell of the largest image's size, with the boxes moved along; returns the number written."""
    with open(annot_path) as f:
        data = json.load(f)
    images = sorted(data["images"], key=lambda i: i["id"])
    per = tiles * tiles
    if len(images) < per:
        raise UserError(f"{annot_path}: {len(images)} images make no {tiles} x {tiles} mosaic; "
                        f"use a split of at least {per} images or fewer tiles")
    by_image: dict[int, list[dict]] = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    cell_h = max(int(i["height"]) for i in images)
    cell_w = max(int(i["width"]) for i in images)
    os.makedirs(out_img_dir, exist_ok=True)
    out_images, out_anns = [], []
    for m in range(len(images) // per):
        canvas = np.full((tiles * cell_h, tiles * cell_w, 3), FILL, np.uint8)
        for k, info in enumerate(images[m * per:(m + 1) * per]):
            path = os.path.join(img_dir, info["file_name"])
            img = cv2.imread(path)
            if img is None:
                raise UserError(f"{path}: unreadable image; check the {img_dir} folder")
            y0, x0 = (k // tiles) * cell_h, (k % tiles) * cell_w
            canvas[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
            for ann in by_image.get(info["id"], []):
                x, y, w, h = ann["bbox"]
                moved = {**ann, "id": len(out_anns) + 1, "image_id": m + 1, "bbox": [x + x0, y + y0, w, h]}
                if "segmentation" in moved:  # polygons are not moved; the box evaluation does not read them
                    del moved["segmentation"]
                out_anns.append(moved)
        name = f"mosaic_{m + 1:05d}.png"  # lossless: the tiles' pixels stay the source images'
        ok, buf = cv2.imencode(".png", canvas)
        with atomic_write(os.path.join(out_img_dir, name), "wb") as f:
            f.write(buf.tobytes())
        out_images.append({"id": m + 1, "file_name": name, "height": canvas.shape[0], "width": canvas.shape[1]})
    os.makedirs(os.path.dirname(out_annot_path) or ".", exist_ok=True)
    with atomic_write(out_annot_path) as f:
        json.dump({**data, "images": out_images, "annotations": out_anns}, f)
    return len(out_images)
