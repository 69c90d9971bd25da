"""COCO 2017 detection (80 classes): paths, class tables, result conversion and COCO evaluation."""
from __future__ import annotations

import os

import numpy as np
import pycocotools.coco as coco

from datasets.dataset.common import (
    AnnotatedDataset,
    _to_float,
    run_coco_eval,
)


def run_coco_bbox_eval(coco_gt: coco.COCO, result_json: str):
    """bbox COCOeval of a results.json against `coco_gt`; prints the 12 figures and returns them (or None)."""
    return run_coco_eval(coco_gt, result_json, ("bbox",))


class COCO(AnnotatedDataset):
    """COCO 2017 boxes; the task's sample class (ctdet / exdet) supplies __getitem__."""

    num_classes = 80
    default_resolution = [512, 512]
    mean = np.array([0.40789654, 0.44719302, 0.47026115], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.28863828, 0.27408164, 0.27809835], dtype=np.float32).reshape(1, 1, 3)
    max_objs_default = 128
    class_name = [
        "__background__", "person", "bicycle", "car", "motorcycle", "airplane",
        "bus", "train", "truck", "boat", "traffic light", "fire hydrant",
        "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
        "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
        "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis",
        "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
        "skateboard", "surfboard", "tennis racket", "bottle", "wine glass",
        "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
        "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
        "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv",
        "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
        "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
        "scissors", "teddy bear", "hair drier", "toothbrush"]
    _valid_ids = (list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45))
                  + list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91)))
    missing_fix = ("download COCO 2017 into data/coco (see README.md), "
                   "or run `make data` and use --dataset synth for the synthetic set")
    # the 'test' split is test-dev: image information only, results go to the evaluation server
    test_split_labelled = False
    extreme_points_fix = ("exdet reads ExtremeNet's extreme-point annotations: put its "
                          "instances_extreme_<split>2017.json files into data/coco/annotations (see README.md)")

    def __init__(self, opt, split: str):
        super().__init__()
        self.data_dir, self.img_dir, self.annot_path = self._paths(opt, split)
        self._init_common(opt, split)
        self._valid_ids = list(type(self)._valid_ids)
        self.cat_ids = {v: i for i, v in enumerate(self._valid_ids)}

        self.coco = self._load_annotations(f"{self._title()} {split}")
        self._set_images(self.coco.getImgIds(), split)

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

    def run_eval(self, results: dict, save_dir: str):
        """Save results.json and print the 12 COCO bbox figures (returned as an array, None without detections)."""
        self.save_results(results, save_dir)
        return run_coco_bbox_eval(self.coco, os.path.join(save_dir, "results.json"))
