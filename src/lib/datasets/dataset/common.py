"""What every dataset class shares: PCA lighting figures, annotation loading and checks, results.json, COCOeval."""
from __future__ import annotations

import json
import os

import numpy as np
import pycocotools.coco as coco
import torch.utils.data as data
from pycocotools.cocoeval import COCOeval

from utils.errors import UserError
from utils.io import atomic_write

# PCA lighting figures shared by every dataset (ImageNet RGB eigen-decomposition, applied to BGR as is)
EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], dtype=np.float32)
EIG_VEC = np.array([
    [-0.58752847, -0.69563484, 0.41340352],
    [-0.5832747, 0.00994535, -0.81221408],
    [-0.56089297, 0.71832671, 0.41158938],
], dtype=np.float32)


def check_dataset_files(annot_path: str, img_dir: str, fix: str) -> None:
    """Raise a UserError naming the missing annotation file or image folder, with how to get it."""
    if not os.path.isfile(annot_path):
        raise UserError(f"{annot_path} not found; {fix}")
    if not os.path.isdir(img_dir):
        raise UserError(f"{img_dir} (image folder) not found; {fix}")


def load_coco_api(annot_path: str) -> coco.COCO:
    """pycocotools COCO index of `annot_path`; a corrupt file becomes a UserError."""
    try:
        return coco.COCO(annot_path)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{annot_path}: not a COCO annotation file ({type(e).__name__}: {e}); "
                        "re-download or regenerate it") from None


def _to_float(x) -> float:
    """Two-decimal rounding through text, exactly as the result files are written."""
    return float(f"{x:.2f}")


def run_coco_eval(coco_gt: coco.COCO, result_json: str, iou_types: tuple[str, ...]):
    """COCOeval of a results.json for each of `iou_types` in turn, printing each summary.

    Returns the first type's figures, or None when the file holds no detections.
    """
    with open(result_json) as f:
        dets = json.load(f)
    if len(dets) == 0:
        # loadRes cannot index an empty list; with nothing detected every figure would be 0
        print("no detections: COCO evaluation skipped")
        return None
    coco_dets = coco_gt.loadRes(result_json)
    stats = None
    for iou_type in iou_types:
        coco_eval = COCOeval(coco_gt, coco_dets, iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        stats = coco_eval.stats if stats is None else stats
    return stats


def synthetic_paths(opt, name: str, split: str, split_paths) -> tuple[str, str, str]:
    """(data_dir, img_dir, annot_path) of a generated set under <data_dir>/<name>.

    Its val split has full ground truth, so every split but train (e.g. 'test' with --trainval) reads val.
    """
    data_dir = os.path.join(opt.data_dir, name)
    img_dir, annot_path = split_paths(data_dir, "train" if split == "train" else "val")
    return data_dir, img_dir, annot_path


class AnnotatedDataset(data.Dataset):
    """Base of the dataset classes: common attributes, annotation loading, results.json writing."""

    max_objs_default = 128
    missing_fix = "see README.md for how to get this dataset"

    def _init_common(self, opt, split: str) -> None:
        """The attributes every dataset class sets the same way (paths and category tables are its own)."""
        self.max_objs = self.max_objs_default
        self.class_name = list(type(self).class_name)
        self._data_rng = np.random.RandomState(123)
        self._eig_val = EIG_VAL.copy()
        self._eig_vec = EIG_VEC.copy()
        self.split = split
        self.opt = opt

    def _load_annotations(self, title: str) -> coco.COCO:
        """Check that the annotation file and image folder exist, then index the annotations."""
        check_dataset_files(self.annot_path, self.img_dir, self.missing_fix)
        print(f"==> initializing {title} data.")
        return load_coco_api(self.annot_path)

    def _set_images(self, images: list, split: str) -> None:
        """Keep the sample image ids and report how many there are."""
        self.images = images
        self.num_samples = len(images)
        print(f"Loaded {split} {self.num_samples} samples")

    def __len__(self) -> int:
        return self.num_samples

    def _to_float(self, x) -> float:
        return _to_float(x)

    def save_results(self, results: dict, save_dir: str) -> None:
        """Write <save_dir>/results.json (the converted results, compact) atomically."""
        with atomic_write(os.path.join(save_dir, "results.json")) as f:
            json.dump(self.convert_eval_format(results), f)
