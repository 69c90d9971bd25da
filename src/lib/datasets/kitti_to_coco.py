"""Convert KITTI object labels to the COCO-style json the ddd task reads (with the 3D fields).

For every split (3dop, subcnn) and set (train, val) the frame list comes from
<data_dir>/ImageSets_<split>/<set>.txt; each frame becomes an image entry
{file_name: '<id>.png', id, calib: P2 (3 x 4)} read from training/calib/<id>.txt, and each line of
training/label_2/<id>.txt an annotation {image_id, id (1-based running), category_id, dim [h, w, l],
bbox [x, y, w, h], depth (= location z), alpha, truncated (int() of the float, as the original),
occluded, location, rotation_y}. Written to <data_dir>/annotations/kitti_<split>_<set>.json.

Sets 'trainval' and 'test' (used with --trainval) are written to annotations/kitti_<set>.json, the
name the dataset reads; 'test' frames come from testing/ and carry no annotations.

The command line is src/tools/convert_kitti_to_coco.py.
"""
from __future__ import annotations

import json
import os

import numpy as np

from utils.errors import UserError
from utils.io import atomic_write

SPLITS = ["3dop", "subcnn"]
CATS = ["Pedestrian", "Car", "Cyclist", "Van", "Truck", "Person_sitting", "Tram", "Misc", "DontCare"]
CAT_IDS = {cat: i + 1 for i, cat in enumerate(CATS)}
CAT_INFO = [{"name": cat, "id": i + 1} for i, cat in enumerate(CATS)]
# set -> folder holding its calib / labels
CALIB_TYPE = {"train": "training", "val": "training", "trainval": "training", "test": "testing"}
DEFAULT_DATA_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "data", "kitti"))


def _bbox_to_coco_bbox(bbox: list[float]) -> list[float]:
    return [bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]]


def read_clib(calib_path: str) -> np.ndarray:
    """P2 (the left colour camera's 3 x 4 projection, third line of a KITTI calib file) as float32."""
    if not os.path.isfile(calib_path):
        raise UserError(f"{calib_path}: calibration file missing; download the KITTI calib archive")
    with open(calib_path) as f:
        lines = f.read().splitlines()
    rows = [ln for ln in lines if ln.startswith("P2:")] or lines[2:3]
    try:
        calib = np.array(rows[0].split()[1:13], dtype=np.float32).reshape(3, 4)
    except (IndexError, ValueError):
        raise UserError(f"{calib_path}: no P2 line with 12 numbers; not a KITTI calib file") from None
    return calib


def label_to_ann(fields: list[str], image_id: int, ann_id: int, where: str) -> dict:
    """One KITTI label line (split into fields) -> annotation dict."""
    if len(fields) < 15:
        raise UserError(f"{where}: {len(fields)} fields, a KITTI label line has 15")
    if fields[0] not in CAT_IDS:
        raise UserError(f"{where}: unknown object type '{fields[0]}'; expected one of {', '.join(CATS)}")
    try:
        v = [float(x) for x in fields[1:15]]
    except ValueError:
        raise UserError(f"{where}: non-numeric value in a label line") from None
    bbox = v[3:7]
    location = v[10:13]
    return {"image_id": image_id, "id": ann_id, "category_id": CAT_IDS[fields[0]], "dim": v[7:10],
            "bbox": _bbox_to_coco_bbox(bbox), "depth": location[2], "alpha": v[2], "truncated": int(v[0]),
            "occluded": int(fields[2]), "location": location, "rotation_y": v[13]}


def convert_set(data_dir: str, split: str, image_set: str) -> dict:
    """COCO-style dict of one split's set (train / val / trainval / test)."""
    list_path = os.path.join(data_dir, f"ImageSets_{split}", f"{image_set}.txt")
    if not os.path.isfile(list_path):
        raise UserError(f"{list_path}: frame list missing; put the {split} split files "
                        f"(ImageSets_{split}/{image_set}.txt) under {data_dir}")
    ret = {"images": [], "annotations": [], "categories": CAT_INFO}
    folder = os.path.join(data_dir, CALIB_TYPE[image_set])
    with open(list_path) as f:
        names = [ln.strip() for ln in f if ln.strip()]
    for name in names:
        image_id = int(name)
        calib = read_clib(os.path.join(folder, "calib", f"{name}.txt"))
        ret["images"].append({"file_name": f"{name}.png", "id": image_id, "calib": calib.tolist()})
        if image_set == "test":
            continue
        ann_path = os.path.join(folder, "label_2", f"{name}.txt")
        if not os.path.isfile(ann_path):
            raise UserError(f"{ann_path}: label file missing; download the KITTI label archive")
        with open(ann_path) as af:
            for line_no, line in enumerate(af, 1):
                fields = line.split()
                if not fields:
                    continue
                ret["annotations"].append(label_to_ann(fields, image_id, len(ret["annotations"]) + 1,
                                                       f"{ann_path}:{line_no}"))
    return ret


def output_path(data_dir: str, split: str, image_set: str) -> str:
    """Annotation file a split's set is written to (the name the KITTI dataset class reads)."""
    name = f"kitti_{image_set}.json" if image_set in ("trainval", "test") else f"kitti_{split}_{image_set}.json"
    return os.path.join(data_dir, "annotations", name)


def convert(data_dir: str = DEFAULT_DATA_DIR, splits=tuple(SPLITS), sets=("train", "val"),
            verbose: bool = True) -> list[str]:
    """Write the annotation json of every split x set; returns the paths written."""
    written = []
    for split in splits:
        for image_set in sets:
            if image_set not in CALIB_TYPE:
                raise UserError(f"set '{image_set}' is unknown; choose from {', '.join(CALIB_TYPE)}")
            ret = convert_set(data_dir, split, image_set)
            if verbose:
                print("# images: ", len(ret["images"]))
                print("# annotations: ", len(ret["annotations"]))
            out_path = output_path(data_dir, split, image_set)
            with atomic_write(out_path) as f:
                json.dump(ret, f)
            written.append(out_path)
    return written
