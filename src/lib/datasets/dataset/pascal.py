"""Pascal VOC 07+12 (20 classes) in COCO json layout; evaluated with the VOC07 11-point AP (evaluation.voc)."""
from __future__ import annotations

import os

import numpy as np

from datasets.dataset.common import AnnotatedDataset
from evaluation.voc import evaluate_detections
from utils.errors import UserError


class PascalVOC(AnnotatedDataset):
    """VOC images under data/voc/images, annotations pascal_trainval0712.json / pascal_test2007.json."""

    num_classes = 20
    default_resolution = [384, 384]
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 1, 3)
    max_objs_default = 50
    class_name = ["__background__", "aeroplane", "bicycle", "bird", "boat",
                  "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
                  "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                  "train", "tvmonitor"]
    _ann_name = {"train": "trainval0712", "val": "test2007"}
    missing_fix = "download Pascal VOC with src/tools/get_pascal_voc.sh into data/voc (see README.md)"
    evaluated_on_annotations = False  # run_eval reads the VOCdevkit xml files

    def __init__(self, opt, split: str):
        super().__init__()
        if split not in self._ann_name:
            raise UserError(f"pascal: no '{split}' split (only train and val); drop --trainval for pascal")
        self.data_dir = os.path.join(opt.data_dir, "voc")
        self.img_dir = os.path.join(self.data_dir, "images")
        self.annot_path = os.path.join(self.data_dir, "annotations", f"pascal_{self._ann_name[split]}.json")
        self._init_common(opt, split)
        self._valid_ids = np.arange(1, 21, dtype=np.int32)
        self.cat_ids = {v: i for i, v in enumerate(self._valid_ids)}

        self.coco = self._load_annotations(f"pascal {self._ann_name[split]}")
        self._set_images(sorted(self.coco.getImgIds()), split)

    def convert_eval_format(self, all_bboxes: dict) -> list:
        """Nested list detections[cls][image index] of [x1, y1, x2, y2, score] rows; class 0 left empty."""
        detections = [[[] for _ in range(self.num_samples)] for _ in range(self.num_classes + 1)]
        for i, img_id in enumerate(self.images):
            for j in range(1, self.num_classes + 1):
                rows = all_bboxes[img_id][j]
                detections[j][i] = rows.tolist() if isinstance(rows, np.ndarray) else rows
        return detections

    def run_eval(self, results: dict, save_dir: str) -> None:
        """Save results.json, then print the VOC07 evaluation of the same detections against the VOCdevkit xml."""
        self.save_results(results, save_dir)
        devkit = os.path.join(self.data_dir, "VOCdevkit")
        if not os.path.isdir(os.path.join(devkit, "VOC2007")):
            raise UserError(f"{os.path.join(devkit, 'VOC2007')} not found: the VOC2007 test annotations are needed "
                            f"for evaluation; {self.missing_fix}")
        # what `reval.py results.json --devkit <devkit>` prints, as the original ran it after saving
        print("Evaluating detections")
        evaluate_detections(self.convert_eval_format(results), devkit)
