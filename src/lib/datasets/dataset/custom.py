"""--dataset custom: any COCO-layout json (boxes, keypoints, or KITTI-style 3D fields) with no code.

Classes come from the json's categories, sorted by id and mapped to contiguous indices for training;
results.json maps them back to the json's ids. The fast audit (coco_audit.audit_json) runs on every
file loaded, so bad data stops with one line before anything is written.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pycocotools.coco as coco

from datasets.dataset.checks import ListField, check_categories, check_list_field
from datasets.dataset.coco import COCO
from datasets.dataset.coco_audit import audit_json, first_error
from datasets.dataset.common import _to_float
from datasets.dataset.custom_eval import evaluate
from datasets.dataset.custom_meta import CustomMeta, custom_meta, parse_flip_idx, parse_kpt_sigmas, read_json
from utils.errors import UserError

_HOWTO = "see README.md 'Train on your own data'"


def resolve_info(opt) -> SimpleNamespace:
    """The dataset figures opts needs (classes, resolution, mean/std, keypoints) from the custom json.

    Also sets opt.class_names and, for multi_pose, opt.num_joints, opt.skeleton and opt.keypoint_names,
    which the debugger draws with.
    """
    meta = custom_meta(opt)
    if opt.num_classes > 0 and opt.num_classes != meta.num_classes:
        raise UserError(f"--num_classes {opt.num_classes}: {meta.source} has {meta.num_classes} categories "
                        f"({', '.join(meta.names[:5])}{', ...' if meta.num_classes > 5 else ''}); drop "
                        "--num_classes (it is read from the json) or fix the categories")
    flip_idx = meta.flip_idx
    if isinstance(opt.flip_idx, list):  # already resolved (the options are set up a second time)
        flip_idx = opt.flip_idx
    elif opt.flip_idx and opt.task == "multi_pose":
        flip_idx = parse_flip_idx(opt.flip_idx, meta.num_joints)
    opt.class_names = list(meta.names)
    if opt.task == "multi_pose":
        opt.num_joints = meta.num_joints
        opt.skeleton = meta.skeleton
        opt.keypoint_names = meta.keypoint_names
        parse_kpt_sigmas(opt.kpt_sigmas, meta.num_joints)  # a wrong --kpt_sigmas stops the run here
    return SimpleNamespace(default_resolution=Custom.default_resolution, mean=Custom.mean, std=Custom.std,
                           num_classes=meta.num_classes, num_joints=meta.num_joints, flip_idx=flip_idx,
                           class_name=["__background__"] + meta.names)


def split_paths(opt, split: str, in_use: bool = True) -> tuple[str, str]:
    """(annotation json, image folder) of a split; val and test read the val json.

    A val split the run never reads (e.g. --val_intervals 0) may go without a val json: it then
    stands on the training file.
    """
    if split in ("train", "trainval") or (not in_use and not opt.custom_dataset_val_ann_path):
        ann, ann_opt = opt.custom_dataset_ann_path, "--custom_dataset_ann_path"
        img, img_opt = opt.custom_dataset_img_path, "--custom_dataset_img_path"
    else:
        ann, ann_opt = opt.custom_dataset_val_ann_path, "--custom_dataset_val_ann_path"
        img = opt.custom_dataset_val_img_path or opt.custom_dataset_img_path
        img_opt = "--custom_dataset_val_img_path" if opt.custom_dataset_val_img_path else "--custom_dataset_img_path"
    if not ann:
        raise UserError(f"--dataset custom: the {split} split needs {ann_opt} <json>"
                        + (" (or --val_intervals 0 to train without validation)" if split == "val" else "")
                        + f"; {_HOWTO}")
    if not img:
        raise UserError(f"--dataset custom: pass {img_opt} <folder>, the folder the json's file_names are "
                        f"relative to; {_HOWTO}")
    if not os.path.isdir(img):
        raise UserError(f"{img_opt} {img}: no such folder; pass the folder the json's file_names are relative to")
    return ann, img


def fill_eval_fields(data: dict) -> None:
    """Add what COCOeval reads but a hand-made json may lack: area, iscrowd, num_keypoints."""
    for ann in data.get("annotations") or []:
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
        ann.setdefault("iscrowd", 0)
        if "keypoints" in ann and "num_keypoints" not in ann:
            ann["num_keypoints"] = int(sum(1 for v in ann["keypoints"][2::3] if v > 0))


def coco_index(data: dict) -> coco.COCO:
    """A pycocotools COCO over an already parsed (and audited) json."""
    api = coco.COCO()
    api.dataset = data
    api.createIndex()
    return api


class Custom(COCO):
    """A COCO-layout json named on the command line; the task's sample class supplies __getitem__."""

    num_classes = 1  # the real figures come from the json (resolve_info / the instance)
    default_resolution = [512, 512]
    class_name = ["__background__"]
    missing_fix = _HOWTO
    test_split_labelled = True
    extreme_points_fix = ("exdet needs 'extreme_points' (8 values: top, left, bottom, right x, y) in every "
                          "annotation; use ctdet for boxes only")

    @classmethod
    def resolve_info(cls, opt) -> SimpleNamespace:
        """See resolve_info: opts calls this before any dataset is built."""
        return resolve_info(opt)

    def __init__(self, opt, split: str):
        data_cls = type(self)
        super(COCO, self).__init__()
        meta = custom_meta(opt)
        self._init_common(opt, split)
        self.annot_path, self.img_dir = split_paths(opt, split, self._split_in_use())
        self.data_dir = self.img_dir
        self._setup_classes(opt, meta)
        print(f"==> initializing custom {split} data from {self.annot_path}.")
        data = read_json(self.annot_path)
        problem = first_error(audit_json(data, require_keypoints=opt.task == "multi_pose"), self.annot_path,
                              self.img_dir)
        if problem is not None:
            raise problem
        anns = data.get("annotations") or []
        if anns:
            check_categories(anns, self.annot_path, self._valid_ids)
            for f in self._annotation_fields():
                check_list_field(anns, self.annot_path, f)
        if opt.task == "ddd":
            self._check_3d(data)
        fill_eval_fields(data)
        self.coco = coco_index(data)
        counts = [len(ids) for ids in self.coco.imgToAnns.values()]
        self.max_objs = max([data_cls.max_objs_default] + counts)
        image_ids = self.coco.getImgIds()
        if split == "train" and opt.task == "multi_pose":
            # as COCO keypoints: people-free images teach the pose heads nothing
            image_ids = [i for i in image_ids if self.coco.imgToAnns.get(i)]
        self._set_images(image_ids, split)

    def _setup_classes(self, opt, meta: CustomMeta) -> None:
        self.meta = meta
        self.class_name = ["__background__"] + meta.names
        self.num_classes = meta.num_classes
        self._valid_ids = list(meta.cat_ids)
        self.cat_ids = {v: i for i, v in enumerate(self._valid_ids)}
        self.alpha_in_degree = False  # ddd: alpha in radians, as KITTI's labels
        if opt.task == "multi_pose":
            self.num_joints = meta.num_joints
            self.flip_idx = opt.flip_idx if isinstance(opt.flip_idx, list) else meta.flip_idx
            self.edges = meta.skeleton
            self.kpt_sigmas = parse_kpt_sigmas(opt.kpt_sigmas, meta.num_joints)

    def dataset_fields(self) -> list[ListField]:
        """List fields of the task: keypoints of every object (multi_pose), 3D size (ddd)."""
        if self.opt.task == "multi_pose":
            return [ListField("keypoints", 3 * self.num_joints, "fix the annotation file",
                              f"x, y, visibility of {self.num_joints} keypoints")]
        if self.opt.task == "ddd":
            return [ListField("dim", 3, "fix the annotation file", "3D height, width, length in metres")]
        return []

    def _check_3d(self, data: dict) -> None:
        """ddd reads a 3x4 'calib' per image and 'alpha' and 'depth' per object."""
        no_calib = [im for im in data["images"] if np.asarray(im.get("calib", []), dtype=object).size != 12]
        if no_calib:
            raise UserError(f"{self.annot_path}: {len(no_calib)} images have no 3x4 'calib' (KITTI P2 matrix), "
                            f"e.g. image {no_calib[0].get('id')}; add it to every image for ddd")
        for key in ("alpha", "depth"):
            missing = [a for a in data.get("annotations") or [] if not isinstance(a.get(key), (int, float))]
            if missing:
                raise UserError(f"{self.annot_path}: {len(missing)} annotations have no number '{key}', e.g. "
                                f"annotation {missing[0].get('id')}; ddd needs alpha, depth and dim per object")

    def _category(self, cls_ind) -> int:
        return int(self._valid_ids[int(cls_ind) - 1])

    def convert_eval_format(self, all_bboxes: dict) -> list[dict]:
        """Detections {img_id: {class 1..C: rows}} -> COCO result records with the json's category ids."""
        task = self.opt.task
        if task in ("ctdet", "exdet"):
            return super().convert_eval_format(all_bboxes)
        detections = []
        for image_id, per_class in all_bboxes.items():
            for cls_ind, rows in per_class.items():
                for row in rows:
                    row = np.asarray(row, dtype=np.float64)
                    if task == "ddd":  # alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score
                        box, score = row[1:5], row[12]
                    else:
                        box, score = row[0:4], row[4]
                    record = {"image_id": int(image_id), "category_id": self._category(cls_ind),
                              "bbox": [_to_float(v) for v in (box[0], box[1], box[2] - box[0], box[3] - box[1])],
                              "score": _to_float(score)}
                    if task == "multi_pose":
                        kps = np.ones((self.num_joints, 3))
                        kps[:, :2] = row[5:5 + 2 * self.num_joints].reshape(-1, 2)
                        record["keypoints"] = [_to_float(v) for v in kps.reshape(-1)]
                    detections.append(record)
        return detections

    def run_eval(self, results: dict, save_dir: str):
        """Save results.json; print the COCO figures and per-class tables (bbox; keypoints for multi_pose)."""
        self.save_results(results, save_dir)
        names = dict(zip(self._valid_ids, self.class_name[1:]))
        iou_types = ("keypoints", "bbox") if self.opt.task == "multi_pose" else ("bbox",)
        return evaluate(self.coco, os.path.join(save_dir, "results.json"), iou_types, names,
                        getattr(self, "kpt_sigmas", None))
