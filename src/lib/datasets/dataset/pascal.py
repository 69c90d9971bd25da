"""Pascal VOC 07+12 (20 classes) in COCO json layout; evaluated with the VOC07 11-point AP (tools/reval.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch.utils.data as data

from datasets.dataset.coco import EIG_VAL, EIG_VEC, _to_float, check_dataset_files, load_coco_api
from utils.errors import UserError
from utils.io import atomic_write

_TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                      "tools")


class PascalVOC(data.Dataset):
    """VOC images under data/voc/images, annotations pascal_trainval0712.json / pascal_test2007.json."""

    num_classes = 20
    default_resolution = [384, 384]
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 1, 3)
    max_objs_default = 50
    class_name = ['__background__', "aeroplane", "bicycle", "bird", "boat",
                  "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
                  "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                  "train", "tvmonitor"]
    _ann_name = {'train': 'trainval0712', 'val': 'test2007'}
    missing_fix = "download Pascal VOC with src/tools/get_pascal_voc.sh into data/voc (see README.md)"

    def __init__(self, opt, split: str):
        super().__init__()
        if split not in self._ann_name:
            raise UserError(f"pascal: no '{split}' split (only train and val); drop --trainval for pascal")
        self.data_dir = os.path.join(opt.data_dir, 'voc')
        self.img_dir = os.path.join(self.data_dir, 'images')
        self.annot_path = os.path.join(self.data_dir, 'annotations', f'pascal_{self._ann_name[split]}.json')
        self.max_objs = self.max_objs_default
        self.class_name = list(type(self).class_name)
        self._valid_ids = np.arange(1, 21, dtype=np.int32)
        self.cat_ids = {v: i for i, v in enumerate(self._valid_ids)}
        self._data_rng = np.random.RandomState(123)
        self._eig_val = EIG_VAL.copy()
        self._eig_vec = EIG_VEC.copy()
        self.split = split
        self.opt = opt

        check_dataset_files(self.annot_path, self.img_dir, self.missing_fix)
        print(f'==> initializing pascal {self._ann_name[split]} data.')
        self.coco = load_coco_api(self.annot_path)
        self.images = sorted(self.coco.getImgIds())
        self.num_samples = len(self.images)
        print(f'Loaded {split} {self.num_samples} samples')

    def _to_float(self, x) -> float:
        return _to_float(x)

    def convert_eval_format(self, all_bboxes: dict) -> list:
        """Nested list detections[cls][image index] of [x1, y1, x2, y2, score] rows; class 0 left empty."""
        detections = [[[] for _ in range(self.num_samples)] for _ in range(self.num_classes + 1)]
        for i, img_id in enumerate(self.images):
            for j in range(1, self.num_classes + 1):
                rows = all_bboxes[img_id][j]
                detections[j][i] = rows.tolist() if isinstance(rows, np.ndarray) else rows
        return detections

    def __len__(self) -> int:
        return self.num_samples

    def save_results(self, results: dict, save_dir: str) -> None:
        """Write <save_dir>/results.json atomically."""
        with atomic_write(os.path.join(save_dir, 'results.json')) as f:
            json.dump(self.convert_eval_format(results), f)

    def run_eval(self, results: dict, save_dir: str) -> None:
        """Save results.json, then run the VOC07 evaluation (tools/reval.py) on it in a child process."""
        self.save_results(results, save_dir)
        devkit = os.path.join(self.data_dir, 'VOCdevkit')
        subprocess.call([sys.executable, os.path.join(_TOOLS, 'reval.py'),
                         os.path.join(save_dir, 'results.json'), '--devkit', devkit])
