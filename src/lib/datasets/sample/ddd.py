"""ddd (monocular 3D detection) training samples: heatmaps, depth, rotation bins, 3D size."""
from __future__ import annotations

import math
import os

import numpy as np

from datasets.sample.common import SampleDataset, read_image, scale_then_shift
from utils.errors import UserError
from utils.image import (
    affine_transform_pts,
    draw_msra_gaussian,
    draw_ttf_gaussian,
    draw_umich_gaussian,
    gaussian_radius,
    get_affine_transform,
)

# an ignore region is marked just below 1 so the focal loss treats it as a (vanishingly weighted) negative
IGNORE_VALUE = 0.9999
BIN_LIMIT = np.pi / 6.


def rotation_bins(alpha: float) -> tuple[list[int], list[float]]:
    """Two overlapping orientation bins (centres -pi/2 and +pi/2): active flags and residuals to the centre."""
    bins, res = [0, 0], [0., 0.]
    if alpha < BIN_LIMIT or alpha > 5 * BIN_LIMIT:
        bins[0], res[0] = 1, alpha + 0.5 * np.pi
    if alpha > -BIN_LIMIT or alpha < -5 * BIN_LIMIT:
        bins[1], res[1] = 1, alpha - 0.5 * np.pi
    return bins, res


def alpha_to_8(alpha: float) -> list[float]:
    """Ground-truth form of the 8-channel rotation output: [0, b1, sin r1, cos r1, 0, b2, sin r2, cos r2]."""
    out = [0, 0, 0, 1, 0, 0, 0, 1]
    bins, res = rotation_bins(alpha)
    for b in range(2):
        if bins[b]:
            out[4 * b + 1] = 1
            out[4 * b + 2], out[4 * b + 3] = np.sin(res[b]), np.cos(res[b])
    return out


class DddDataset(SampleDataset):
    """Sample half of the KITTI dataset class: combined with KITTI / SynthKITTI by get_dataset."""

    def _convert_alpha(self, alpha: float) -> float:
        return math.radians(alpha + 45) if self.alpha_in_degree else alpha

    def _alpha_to_8(self, alpha: float) -> list[float]:
        return alpha_to_8(alpha)

    def _calib(self, img_info: dict) -> np.ndarray:
        if "calib" in img_info:
            return np.array(img_info["calib"], dtype=np.float32)
        calib = getattr(self, "calib", None)
        if calib is None:
            raise UserError(f"{self.annot_path}: image {img_info.get('id')} has no 'calib' (3x4 P2 matrix); "
                            "regenerate the annotations with src/tools/convert_kitti_to_coco.py")
        return calib

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        img_id = self.images[index]
        img_info = self.coco.loadImgs(ids=[img_id])[0]
        img_path = os.path.join(self.img_dir, img_info["file_name"])
        img = read_image(img_path)
        calib = self._calib(img_info)

        height, width = img.shape[0], img.shape[1]
        c = np.array([width / 2., height / 2.])
        if opt.keep_res:
            s = np.array([opt.input_w, opt.input_h], dtype=np.int32)
        else:
            s = np.array([width, height], dtype=np.int32)

        # shift/scale augmentation only for the split named exactly 'train' (not 'trainval')
        aug = False
        if self.split == "train" and np.random.random() < opt.aug_ddd:
            aug = True
            s = scale_then_shift(c, s, width, height, opt.scale, opt.shift)
        inp = self._network_input(img, c, s, 0, opt.input_w, opt.input_h, augment_color=False)

        num_classes = opt.num_classes
        out_h, out_w = opt.output_h, opt.output_w
        trans_output = get_affine_transform(c, s, 0, [out_w, out_h])

        max_objs = self.max_objs
        hm = np.zeros((num_classes, out_h, out_w), dtype=np.float32)
        wh = np.zeros((max_objs, 2), dtype=np.float32)
        reg = np.zeros((max_objs, 2), dtype=np.float32)
        dep = np.zeros((max_objs, 1), dtype=np.float32)
        rotbin = np.zeros((max_objs, 2), dtype=np.int64)
        rotres = np.zeros((max_objs, 2), dtype=np.float32)
        dim = np.zeros((max_objs, 3), dtype=np.float32)
        ind = np.zeros((max_objs), dtype=np.int64)
        reg_mask = np.zeros((max_objs), dtype=np.uint8)
        rot_mask = np.zeros((max_objs), dtype=np.uint8)

        anns = self.coco.loadAnns(ids=self.coco.getAnnIds(imgIds=[img_id]))[:max_objs]
        gt_det = []
        if len(anns) > 0:
            boxes = np.array([ann["bbox"] for ann in anns], dtype=np.float64).reshape(-1, 4)
            bbox = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]],
                            axis=1).astype(np.float32)
            bbox = affine_transform_pts(bbox.reshape(-1, 2), trans_output).astype(np.float32).reshape(-1, 4)
            bbox[:, [0, 2]] = np.clip(bbox[:, [0, 2]], 0, out_w - 1)
            bbox[:, [1, 3]] = np.clip(bbox[:, [1, 3]], 0, out_h - 1)
            hs = bbox[:, 3] - bbox[:, 1]
            ws = bbox[:, 2] - bbox[:, 0]
            cts = np.stack([(bbox[:, 0] + bbox[:, 2]) / 2, (bbox[:, 1] + bbox[:, 3]) / 2], axis=1)
        for k, ann in enumerate(anns):
            cls_id = int(self.cat_ids[ann["category_id"]])
            if cls_id <= -99:
                continue
            h, w = hs[k], ws[k]
            if not (h > 0 and w > 0):
                continue
            radius = max(0, int(gaussian_radius((h, w))))
            ct = cts[k]
            ct_int = ct.astype(np.int32)
            if cls_id < 0:
                self._mark_ignored(hm, cls_id, bbox[k], ct, ct_int, radius)
                continue
            self._draw_gaussian(hm[cls_id], ct, radius, (w, h))

            wh[k] = w, h
            alpha = self._convert_alpha(ann["alpha"])
            row = [ct[0], ct[1], 1] + self._alpha_to_8(alpha) + [ann["depth"]] + list(ann["dim"])
            if opt.reg_bbox:
                row += [w, h]
            gt_det.append(row + [cls_id])
            bins, res = rotation_bins(alpha)
            rotbin[k] = bins
            rotres[k] = res
            dep[k] = ann["depth"]
            dim[k] = ann["dim"]
            ind[k] = ct_int[1] * out_w + ct_int[0]
            reg[k] = ct - ct_int
            # an augmented (shifted / rescaled) image has a wrong depth-to-size relation: no depth / size loss
            reg_mask[k] = 0 if aug else 1
            rot_mask[k] = 1

        ret = {"input": inp, "hm": hm, "dep": dep, "dim": dim, "ind": ind, "rotbin": rotbin, "rotres": rotres,
               "reg_mask": reg_mask, "rot_mask": rot_mask}
        if opt.reg_bbox:
            ret["wh"] = wh
        if opt.reg_offset:
            ret["reg"] = reg
        if opt.debug > 0 or "train" not in self.split:
            gt_det = (np.array(gt_det, dtype=np.float32) if len(gt_det) > 0
                      else np.zeros((1, 18), dtype=np.float32))
            ret["meta"] = {"c": c, "s": s, "gt_det": gt_det, "calib": calib, "image_path": img_path,
                           "img_id": img_id}
        return ret

    def _draw_gaussian(self, heatmap: np.ndarray, center, radius: int, box_wh) -> None:
        # --gaussian ttfnet: elliptical target from the box size (w, h) instead of the radius
        if self.opt.gaussian == "ttfnet":
            draw_ttf_gaussian(heatmap, center, box_wh[0], box_wh[1])
        # with --mse_loss the radius is used as the MSRA sigma, as the original does
        elif self.opt.mse_loss:
            draw_msra_gaussian(heatmap, center, radius)
        else:
            draw_umich_gaussian(heatmap, center, radius)

    def _mark_ignored(self, hm: np.ndarray, cls_id: int, box: np.ndarray, ct, ct_int, radius: int) -> None:
        """DontCare (-1: every class) / Van, Truck (-3: Car) / Person_sitting (-2: Pedestrian) regions."""
        ignore_ids = list(range(hm.shape[0])) if cls_id == -1 else [-cls_id - 2]
        if self.opt.rect_mask:
            hm[ignore_ids, int(box[1]):int(box[3]) + 1, int(box[0]):int(box[2]) + 1] = IGNORE_VALUE
            return
        for cc in ignore_ids:
            self._draw_gaussian(hm[cc], ct, radius, (box[2] - box[0], box[3] - box[1]))
        hm[ignore_ids, ct_int[1], ct_int[0]] = IGNORE_VALUE
