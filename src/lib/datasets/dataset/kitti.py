"""KITTI 3D object detection (Pedestrian, Car, Cyclist) for the ddd task: paths, tables, result files, evaluation.

Layout (as the original): data/kitti/images/trainval/ (a link to training/image_2),
data/kitti/annotations/kitti_<3dop|subcnn>_<train|val>.json (made by src/tools/convert_kitti_to_coco.py),
ground truth data/kitti/training/label_2/. With --trainval: images/<trainval|test>/ and
annotations/kitti_<trainval|test>.json.

run_eval writes <save_dir>/results/<id:06d>.txt and calls the Python evaluator evaluation.kitti
against training/label_2 (the original shells out to a compiled devkit; see evaluation/kitti/evaluate.py
for why the folder is label_2 and not label_val).
"""
from __future__ import annotations

import os

import numpy as np

from datasets.dataset.common import AnnotatedDataset
from utils.errors import UserError
from utils.io import atomic_write


def write_kitti_results(results: dict, results_dir: str, class_name: list[str]) -> list[str]:
    """Write one KITTI label file per image id (`<id:06d>.txt`, atomically); returns the paths.

    Each row of results[img_id][cls] is [alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score] and becomes
    `<ClassName> 0.0 0` followed by each value formatted `{:.2f}` (truncation 0.0, occlusion 0).
    """
    os.makedirs(results_dir, exist_ok=True)
    paths = []
    for img_id, per_class in results.items():
        lines = []
        for cls_ind in per_class:
            name = class_name[cls_ind]
            for row in per_class[cls_ind]:
                lines.append(f"{name} 0.0 0" + "".join(f" {v:.2f}" for v in row) + "\n")
        path = os.path.join(results_dir, f"{int(img_id):06d}.txt")
        with atomic_write(path) as f:
            f.write("".join(lines))
        paths.append(path)
    return paths


class KITTI(AnnotatedDataset):
    """KITTI object boxes with 3D fields; the ddd sample class supplies __getitem__."""

    num_classes = 3
    default_resolution = [384, 1280]
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 1, 3)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 1, 3)
    max_objs_default = 50
    class_name = ["__background__", "Pedestrian", "Car", "Cyclist"]
    # json category ids follow convert_kitti_to_coco.py: 1 Pedestrian .. 9 DontCare; negative = ignore region
    cat_ids = {1: 0, 2: 1, 3: 2, 4: -3, 5: -3, 6: -2, 7: -99, 8: -99, 9: -1}
    dataset_name = "kitti"
    # KITTI's test frames (--trainval) have no public labels
    test_split_labelled = False
    evaluated_on_annotations = False  # run_eval reads training/label_2
    missing_fix = ("download KITTI object (images, labels, calib) into data/kitti and run "
                   "src/tools/convert_kitti_to_coco.py (see README.md), or generate data with "
                   "`python src/tools/gen_synthetic.py --kind kitti` and use --dataset synth_kitti")

    def __init__(self, opt, split: str):
        super().__init__()
        self.data_dir = os.path.join(opt.data_dir, self.dataset_name)
        if opt.trainval:
            split = "trainval" if split == "train" else "test"
        self.img_dir, self.annot_path = self._paths(opt, split)
        self._init_common(opt, split)
        self.cat_ids = dict(type(self).cat_ids)
        self.alpha_in_degree = False

        self.coco = self._load_annotations(f"kitti {opt.kitti_split}, {split}")
        self._set_images(self.coco.getImgIds(), split)

    def _paths(self, opt, split: str) -> tuple[str, str]:
        """(img_dir, annot_path) of `split` ('trainval' / 'test' when --trainval)."""
        ann_dir = os.path.join(self.data_dir, "annotations")
        if opt.trainval:
            return os.path.join(self.data_dir, "images", split), os.path.join(ann_dir, f"kitti_{split}.json")
        if opt.kitti_split not in ("3dop", "subcnn"):
            raise UserError(f"--kitti_split {opt.kitti_split} is unknown; choose 3dop or subcnn")
        img_dir = os.path.join(self.data_dir, "images", "trainval")
        return img_dir, os.path.join(ann_dir, f"kitti_{opt.kitti_split}_{split}.json")

    @property
    def label_dir(self) -> str:
        """Ground-truth KITTI label folder used by run_eval."""
        return os.path.join(self.data_dir, "training", "label_2")

    def convert_eval_format(self, all_bboxes):
        """Nothing to convert: KITTI results are written as label files (as the original, returns None)."""
        return None

    def save_results(self, results: dict, save_dir: str) -> list[str]:
        """Write <save_dir>/results/<id:06d>.txt for every image id in `results`."""
        return write_kitti_results(results, os.path.join(save_dir, "results"), self.class_name)

    def run_eval(self, results: dict, save_dir: str):
        """Save the result files and print the KITTI evaluation (2D AP, AOS, BEV AP, 3D AP)."""
        self.save_results(results, save_dir)
        if self.split == "test" and not self.test_split_labelled:
            # --trainval tests on KITTI's test frames, whose labels are not public
            print(f"no ground truth for the test split; results written to {os.path.join(save_dir, 'results')}")
            return None
        if not os.path.isdir(self.label_dir):
            raise UserError(f"{self.label_dir} not found: the KITTI ground-truth labels are needed for evaluation; "
                            f"{self.missing_fix}")
        # imported on use: numba is slow to load and only evaluation needs it (not training, not loader workers)
        from evaluation.kitti.evaluate import evaluate

        return evaluate(self.label_dir, os.path.join(save_dir, "results"))
