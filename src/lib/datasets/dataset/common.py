"""What every dataset class shares: PCA lighting figures, annotation loading and checks, results.json, COCOeval."""
from __future__ import annotations

import json
import os

import numpy as np
import pycocotools.coco as coco
import torch.utils.data as data
from pycocotools.cocoeval import COCOeval

from datasets.dataset.checks import ListField, check_annotations
from utils.errors import UserError, warn
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


def nothing_to_evaluate(coco_gt: coco.COCO, result_json: str) -> bool:
    """Whether COCOeval must be skipped (said in one line): no detections, or no ground truth in the split."""
    with open(result_json) as f:
        dets = json.load(f)
    if len(dets) == 0:
        # loadRes cannot index an empty list; with nothing detected every figure would be 0. A model that
        # detects nothing is a finding, not bad input: the (empty) results file stays for inspection.
        print(f"no detections: COCO evaluation skipped ({result_json} holds an empty list)")
        return True
    if not coco_gt.dataset.get("annotations"):
        # an unlabelled test split (test-dev): every figure would be -1; the results go to the server
        print(f"no ground truth for this split: COCO evaluation skipped; results written to {result_json}")
        return True
    return False


def run_coco_eval(coco_gt: coco.COCO, result_json: str, iou_types: tuple[str, ...]):
    """COCOeval of a results.json for each of `iou_types` in turn, printing each summary.

    Returns the first type's figures, or None when the file holds no detections or there is no ground truth.
    """
    if nothing_to_evaluate(coco_gt, result_json):
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
    """Base of the dataset classes: common attributes, annotation loading and checks, results.json writing."""

    max_objs_default = 128
    missing_fix = "see README.md for how to get this dataset"
    # False where the 'test' split (--trainval) is a benchmark's unlabelled test set
    test_split_labelled = True
    # False where run_eval reads its ground truth elsewhere (VOCdevkit xml, KITTI label files)
    evaluated_on_annotations = True
    # what to do when exdet finds no extreme points in the annotations
    extreme_points_fix = ("exdet needs annotations with extreme points: use --dataset coco with ExtremeNet's "
                          "instances_extreme_<split>2017.json files (see README.md), or --dataset synth")

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
        """Check that the annotation file and image folder exist, index the annotations and check them.

        Annotations the samples cannot use stop here with one error line; boxes they silently drop
        (empty, or outside the image) are counted in one warning line.
        """
        check_dataset_files(self.annot_path, self.img_dir, self.missing_fix)
        print(f"==> initializing {title} data.")
        api = load_coco_api(self.annot_path)
        boxes = check_annotations(api.dataset, self.annot_path, self.cat_ids, self._annotation_fields())
        if boxes.dropped:
            warn(boxes.warning(self.annot_path))
        return api

    def class_image_counts(self) -> np.ndarray:
        """Per class (index order): how many of the split's images hold at least one of its objects."""
        pairs = {(img_id, self.cat_ids[a["category_id"]]) for img_id in self.images
                 for a in self.coco.imgToAnns.get(img_id, ()) if a["category_id"] in self.cat_ids}
        classes = np.fromiter((c for _, c in pairs), dtype=np.int64, count=len(pairs))
        return np.bincount(classes, minlength=len(self.cat_ids))

    def dataset_fields(self) -> list[ListField]:
        """List fields the dataset's annotations must hold (e.g. keypoints); none for boxes only."""
        return []

    def _annotation_fields(self) -> list[ListField]:
        """The dataset's list fields, then the task's (the sample class's task_fields, when combined)."""
        fields = {f.name: f for f in self.dataset_fields()}
        task_fields = getattr(self, "task_fields", None)
        for f in task_fields() if task_fields is not None else []:
            fields.setdefault(f.name, f)
        return list(fields.values())

    def _set_images(self, images: list, split: str) -> None:
        """Keep the sample image ids and report how many there are; a split this run reads must have some."""
        self.images = images
        self.num_samples = len(images)
        print(f"Loaded {split} {self.num_samples} samples")
        if self._split_in_use():
            self.require_samples()

    def _split_in_use(self) -> bool:
        """Whether main.py reads this split: always for training, for val only when it tests or validates."""
        # test.py calls require_samples itself, whatever these options say
        if self.split in ("train", "trainval") or getattr(self.opt, "test", False):
            return True
        interval = getattr(self.opt, "val_intervals", 0)
        return 0 < interval <= getattr(self.opt, "num_epochs", 0)

    def needs_annotations(self) -> bool:
        """Whether the split is useless without annotations: training, or evaluation against this file."""
        if self.split in ("train", "trainval"):
            return True
        return self.evaluated_on_annotations and (self.split != "test" or self.test_split_labelled)

    def require_samples(self) -> None:
        """Raise a UserError naming the annotation file when the split has no images, or lacks its annotations."""
        dataset = self.coco.dataset
        num_images = len(dataset.get("images") or [])
        if num_images == 0:
            raise UserError(f"{self.annot_path}: the {self.split} split has no images; {self.missing_fix}")
        if self.needs_annotations() and not dataset.get("annotations"):
            purpose = "train on" if self.split in ("train", "trainval") else "evaluate against"
            raise UserError(f"{self.annot_path}: the {self.split} split has {num_images} images but no annotations, "
                            f"nothing to {purpose}; use the annotated file ({self.missing_fix})")
        if self.num_samples == 0:
            # e.g. COCOHP's training split, which keeps only images with at least one annotation
            raise UserError(f"{self.annot_path}: none of the {num_images} images of the {self.split} split has an "
                            f"annotation; check that the annotations' image_id values match the images' ids")

    def __len__(self) -> int:
        return self.num_samples

    def save_results(self, results: dict, save_dir: str) -> None:
        """Write <save_dir>/results.json (the converted results, compact) atomically."""
        with atomic_write(os.path.join(save_dir, "results.json")) as f:
            json.dump(self.convert_eval_format(results), f)
