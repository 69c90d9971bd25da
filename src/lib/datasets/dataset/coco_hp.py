"""COCO person keypoints (17 joints) for the multi_pose task."""
from __future__ import annotations

import os

import numpy as np
import pycocotools.coco as coco

from datasets.dataset.checks import ListField
from datasets.dataset.common import AnnotatedDataset, _to_float, run_coco_eval


def coco_eval_hp(coco_gt: coco.COCO, result_json: str):
    """Print the keypoint (OKS) then the bbox COCOeval summaries of a results.json.

    Returns the 10 keypoint figures (None when there is nothing to evaluate).
    """
    return run_coco_eval(coco_gt, result_json, ("keypoints", "bbox"))


class COCOHP(AnnotatedDataset):
    """COCO 2017 person keypoints; samples come from the multi_pose sample class."""

    num_classes = 1
    num_joints = 17
    default_resolution = [512, 512]
    mean = np.array([0.40789654, 0.44719302, 0.47026115], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.28863828, 0.27408164, 0.27809835], dtype=np.float32).reshape(1, 1, 3)
    flip_idx = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
    max_objs_default = 32
    class_name = ["__background__", "person"]
    _valid_ids = [1]
    # how to obtain the data when it is missing (subclasses name their own generator)
    missing_fix = ("download COCO 2017 images and person_keypoints annotations into data/coco (see README.md), "
                   "or generate data with `python src/tools/gen_synthetic.py --kind hp` and use --dataset synth_hp")
    # the 'test' split is test-dev: image information only
    test_split_labelled = False

    def __init__(self, opt, split: str):
        super().__init__()
        self.edges = [[0, 1], [0, 2], [1, 3], [2, 4], [4, 6], [3, 5], [5, 6], [5, 7], [7, 9], [6, 8], [8, 10],
                      [6, 12], [5, 11], [11, 12], [12, 14], [14, 16], [11, 13], [13, 15]]
        self.acc_idxs = list(range(1, 17))
        self.data_dir, self.img_dir, self.annot_path = self._paths(opt, split)
        self._init_common(opt, split)
        self._valid_ids = list(type(self)._valid_ids)
        self.cat_ids = {v: i for i, v in enumerate(self._valid_ids)}

        self.coco = self._load_annotations(f"{self._title()} {split}")
        image_ids = self.coco.getImgIds()
        if split == "train":
            # training only uses images with at least one annotation (crowd ones count)
            image_ids = [i for i in image_ids if len(self.coco.getAnnIds(imgIds=[i])) > 0]
        self._set_images(image_ids, split)

    def _title(self) -> str:
        """Name printed when loading."""
        return "coco 2017"

    def dataset_fields(self) -> list[ListField]:
        """Every person needs x, y and visibility of each joint: the samples and the OKS evaluation read them."""
        return [ListField("keypoints", 3 * self.num_joints, f"fix the file, or {self.missing_fix}",
                          f"x, y, visibility of {self.num_joints} joints")]

    def _paths(self, opt, split: str) -> tuple[str, str, str]:
        """(data_dir, img_dir, annot_path) of a split."""
        data_dir = os.path.join(opt.data_dir, "coco")
        img_dir = os.path.join(data_dir, f"{split}2017")
        name = "image_info_test-dev2017.json" if split == "test" else f"person_keypoints_{split}2017.json"
        return data_dir, img_dir, os.path.join(data_dir, "annotations", name)

    def convert_eval_format(self, all_bboxes: dict) -> list[dict]:
        """Detector/trainer results {img_id: {cls: rows of 39}} -> COCO keypoint result records."""
        detections = []
        for image_id in all_bboxes:
            for cls_ind in all_bboxes[image_id]:
                for dets in all_bboxes[image_id][cls_ind]:
                    x1, y1, x2, y2 = (float(v) for v in dets[:4])
                    kps = np.ones((17, 3), dtype=np.float32)
                    kps[:, :2] = np.asarray(dets[5:39], dtype=np.float32).reshape(17, 2)
                    detections.append({
                        "image_id": int(image_id),
                        "category_id": 1,
                        "bbox": [_to_float(v) for v in (x1, y1, x2 - x1, y2 - y1)],
                        "score": _to_float(float(dets[4])),
                        "keypoints": [_to_float(float(v)) for v in kps.reshape(51)],
                    })
        return detections

    def run_eval(self, results: dict, save_dir: str):
        """Save results.json, print COCO keypoint and bbox evaluation; return the keypoint figures."""
        self.save_results(results, save_dir)
        return coco_eval_hp(self.coco, os.path.join(save_dir, "results.json"))
