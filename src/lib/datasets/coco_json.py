"""Building COCO-layout jsons for the converters (VOC, YOLO): images, boxes, categories, atomic writing."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from utils.errors import UserError
from utils.io import atomic_write

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class CocoSplit:
    """One split's json under construction; category ids are 1..N in the order of `names`."""

    names: list[str]
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)

    def add_image(self, file_name: str, width: int, height: int) -> int:
        """Append an image record; returns its id (1, 2, ...)."""
        img_id = len(self.images) + 1
        self.images.append({"id": img_id, "file_name": file_name, "width": int(width), "height": int(height)})
        return img_id

    def add_box(self, img_id: int, cls_index: int, x1: float, y1: float, x2: float, y2: float,
                ignore: bool = False) -> None:
        """Append a box given by its corners (clipped to the image) for class index `cls_index` (0-based)."""
        image = self.images[img_id - 1]
        x1, x2 = (min(max(v, 0.0), image["width"]) for v in (x1, x2))
        y1, y2 = (min(max(v, 0.0), image["height"]) for v in (y1, y2))
        w, h = round(x2 - x1, 2), round(y2 - y1, 2)
        ann = {"id": len(self.annotations) + 1, "image_id": img_id, "category_id": cls_index + 1,
               "bbox": [round(x1, 2), round(y1, 2), w, h], "area": round(w * h, 2), "iscrowd": int(ignore)}
        if ignore:
            # COCOeval ignores crowd boxes: detections on them count neither way (VOC's 'difficult')
            ann["ignore"] = 1
        self.annotations.append(ann)

    def to_json(self) -> dict:
        """The COCO dict."""
        cats = [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(self.names)]
        return {"images": self.images, "annotations": self.annotations, "categories": cats}

    def counts(self) -> str:
        """'<n> images, <m> boxes (<k> ignored), <e> images without boxes'."""
        ignored = sum(a["iscrowd"] for a in self.annotations)
        boxed = {a["image_id"] for a in self.annotations}
        return (f"{len(self.images)} images, {len(self.annotations)} boxes ({ignored} ignored), "
                f"{len(self.images) - len(boxed)} images without boxes")


def write_splits(splits: dict[str, CocoSplit], out_dir: str) -> list[str]:
    """Write <out_dir>/<split>.json for each split (atomically) and print the counts; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, split in splits.items():
        path = os.path.join(out_dir, f"{name}.json")
        with atomic_write(path) as f:
            json.dump(split.to_json(), f)
        print(f"{path}: {split.counts()}")
        paths.append(path)
    names = next(iter(splits.values())).names if splits else []
    print(f"{len(names)} classes: {', '.join(names)}")
    return paths


def require_dir(path: str, what: str) -> None:
    """A UserError naming `path` when it is not a folder."""
    if not os.path.isdir(path):
        raise UserError(f"{path}: no such folder ({what}); check ROOT")


def parse_class_list(text: str) -> list[str]:
    """--classes 'a,b,c' -> ['a', 'b', 'c'] (blank entries dropped)."""
    return [n.strip() for n in text.split(",") if n.strip()]
