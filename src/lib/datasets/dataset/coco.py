"""COCO 2017 detection (80 classes): paths, class tables, result conversion and COCO evaluation."""
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


def run_coco_bbox_eval(coco_gt: coco.COCO, result_json: str):
    """bbox COCOeval of a results.json against `coco_gt`; prints the 12 figures and returns them (or None)."""
    with open(result_json) as f:
        dets = json.load(f)
    if len(dets) == 0:
        # loadRes cannot index an empty list; with nothing detected every figure would be 0
        print("no detections: COCO evaluation skipped")
        return None
    coco_dets = coco_gt.loadRes(result_json)
    coco_eval = COCOeval(coco_gt, coco_dets, "bbox")
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval.stats


class COCO(data.Dataset):
    """COCO 2017 boxes; the task's sample class (ctdet / exdet) supplies __getitem__."""

    num_classes = 80
    default_resolution = [512, 512]
    mean = np.array([0.40789654, 0.44719302, 0.47026115], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.28863828, 0.27408164, 0.27809835], dtype=np.float32).reshape(1, 1, 3)
    max_objs_default = 128
    class_name = [
        '__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane',
        'bus', 'train', 'truck', 'boat', 'traffic light', 'fire hydrant',
        'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse',
        'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack',
        'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis',
        'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove',
        'skateboard', 'surfboard', 'tennis racket', 'bottle', 'wine glass',
        'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
        'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
        'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv',
        'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave',
        'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase',
        'scissors', 'teddy bear', 'hair drier', 'toothbrush']
    _valid_ids = (list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45))
                  + list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91)))
    missing_fix = ("download COCO 2017 into data/coco (see README.md), "
                   "or run `make data` and use --dataset synth for the synthetic set")

    def __init__(self, opt, split: str):
        super().__init__()
        self.data_dir, self.img_dir, self.annot_path = self._paths(opt, split)
        self.max_objs = self.max_objs_default
        self.class_name = list(type(self).class_name)
        self._valid_ids = list(type(self)._valid_ids)
        self.cat_ids = {v: i for i, v in enumerate(self._valid_ids)}
        self.voc_color = [(v // 32 * 64 + 64, (v // 8) % 4 * 64, v % 8 * 32)
                          for v in range(1, self.num_classes + 1)]
        self._data_rng = np.random.RandomState(123)
        self._eig_val = EIG_VAL.copy()
        self._eig_vec = EIG_VEC.copy()
        self.split = split
        self.opt = opt

        check_dataset_files(self.annot_path, self.img_dir, self.missing_fix)
        print(f"==> initializing {self._title()} {split} data.")
        self.coco = load_coco_api(self.annot_path)
        self.images = self.coco.getImgIds()
        self.num_samples = len(self.images)
        print(f"Loaded {split} {self.num_samples} samples")

    def _paths(self, opt, split: str) -> tuple[str, str, str]:
        """(data_dir, img_dir, annot_path) of `split`."""
        data_dir = os.path.join(opt.data_dir, "coco")
        img_dir = os.path.join(data_dir, f"{split}2017")
        if split == "test":
            name = "image_info_test-dev2017.json"
        elif opt.task == "exdet":
            name = f"instances_extreme_{split}2017.json"
        else:
            name = f"instances_{split}2017.json"
        return data_dir, img_dir, os.path.join(data_dir, "annotations", name)

    def _title(self) -> str:
        return "coco 2017"

    def _to_float(self, x) -> float:
        return _to_float(x)

    def convert_eval_format(self, all_bboxes: dict) -> list[dict]:
        """{img_id: {cls (1-based): rows x1,y1,x2,y2,score[,extreme pts]}} -> COCO result records.

        As the original, boxes are turned into x,y,w,h in place in the passed rows.
        """
        detections = []
        for image_id in all_bboxes:
            for cls_ind in all_bboxes[image_id]:
                category_id = int(self._valid_ids[cls_ind - 1])
                rows = all_bboxes[image_id][cls_ind]
                if isinstance(rows, np.ndarray) and rows.ndim == 2:
                    rows[:, 2] -= rows[:, 0]
                    rows[:, 3] -= rows[:, 1]
                else:
                    for bbox in rows:
                        bbox[2] -= bbox[0]
                        bbox[3] -= bbox[1]
                for bbox in rows:
                    detection = {
                        "image_id": int(image_id),
                        "category_id": category_id,
                        "bbox": [_to_float(v) for v in bbox[0:4]],
                        "score": _to_float(bbox[4]),
                    }
                    if len(bbox) > 5:
                        detection["extreme_points"] = [_to_float(v) for v in bbox[5:13]]
                    detections.append(detection)
        return detections

    def __len__(self) -> int:
        return self.num_samples

    def save_results(self, results: dict, save_dir: str) -> None:
        """Write <save_dir>/results.json (compact COCO result list) atomically."""
        with atomic_write(os.path.join(save_dir, "results.json")) as f:
            json.dump(self.convert_eval_format(results), f)

    def run_eval(self, results: dict, save_dir: str):
        """Save results.json and print the 12 COCO bbox figures (returned as an array, None without detections)."""
        self.save_results(results, save_dir)
        return run_coco_bbox_eval(self.coco, os.path.join(save_dir, "results.json"))
