"""Training / validation samples for multi-person pose estimation (center + 17 joints)."""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
import torch.utils.data as data

from datasets.sample.ctdet import normalize_input
from utils.errors import UserError
from utils.image import (
    affine_transform,
    affine_transform_pts,
    draw_dense_reg,
    draw_msra_gaussian,
    draw_umich_gaussian,
    gaussian_radius,
    get_affine_transform,
    msra_sigma,
)


def mse_sigma(opt, radius: int) -> float:
    """Gaussian sigma used with --mse_loss.

    The original reads opt.hm_gauss, an option it never defines (AttributeError); honour it when it is
    set, otherwise derive sigma from the object's gaussian radius.
    """
    hm_gauss = getattr(opt, "hm_gauss", None)
    if hm_gauss is not None and hm_gauss > 0:
        return hm_gauss
    return msra_sigma(radius)


def dense_radius(opt, radius: int) -> int:
    """Radius of the dense joint-offset disc: the original uses opt.hm_gauss with --mse_loss."""
    hm_gauss = getattr(opt, "hm_gauss", None)
    if opt.mse_loss and hm_gauss is not None and hm_gauss > 0:
        return int(hm_gauss)
    return radius


class MultiPoseDataset(data.Dataset):
    """Sample generator for multi_pose: center heatmap, box size, joint offsets and joint heatmaps."""

    def _coco_box_to_bbox(self, box):
        return np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], dtype=np.float32)

    def _get_border(self, border: int, size: int) -> int:
        i = 1
        while size - border // i <= border // i:
            i *= 2
        return border // i

    def _augment(self, img: np.ndarray, c: np.ndarray, s: float):
        """Random crop/scale, rotation and flip of a training image (the original's RNG order)."""
        opt = self.opt
        height, width = img.shape[:2]
        rot = 0
        flipped = False
        if not opt.not_rand_crop:
            s = s * np.random.choice(np.arange(0.6, 1.4, 0.1))
            w_border = self._get_border(128, width)
            h_border = self._get_border(128, height)
            c[0] = np.random.randint(low=w_border, high=width - w_border)
            c[1] = np.random.randint(low=h_border, high=height - h_border)
        else:
            sf, cf = opt.scale, opt.shift
            c[0] += s * np.clip(np.random.randn() * cf, -2 * cf, 2 * cf)
            c[1] += s * np.clip(np.random.randn() * cf, -2 * cf, 2 * cf)
            s = s * np.clip(np.random.randn() * sf + 1, 1 - sf, 1 + sf)
        if np.random.random() < opt.aug_rot:
            rf = opt.rotate
            rot = np.clip(np.random.randn() * rf, -rf * 2, rf * 2)
        if np.random.random() < opt.flip:
            flipped = True
            img = img[:, ::-1, :]
            c[0] = width - c[0] - 1
        return img, c, s, rot, flipped

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        img_id = self.images[index]
        file_name = self.coco.loadImgs(ids=[img_id])[0]["file_name"]
        img_path = os.path.join(self.img_dir, file_name)
        anns = self.coco.loadAnns(ids=self.coco.getAnnIds(imgIds=[img_id]))
        num_objs = min(len(anns), self.max_objs)

        img = cv2.imread(img_path)
        if img is None:
            raise UserError(f"{img_path}: image missing or unreadable; restore the dataset's image folder")
        height, width = img.shape[:2]
        c = np.array([width / 2.0, height / 2.0], dtype=np.float32)
        s = max(height, width) * 1.0
        rot = 0
        flipped = False
        if self.split == "train":
            img, c, s, rot, flipped = self._augment(img, c, s)

        input_res = opt.input_res
        trans_input = get_affine_transform(c, s, rot, [input_res, input_res])
        inp = cv2.warpAffine(img, trans_input, (input_res, input_res), flags=cv2.INTER_LINEAR)
        augment = self.split == "train" and not opt.no_color_aug
        inp = normalize_input(inp, self.mean, self.std, self._data_rng if augment else None,
                              self._eig_val, self._eig_vec)

        output_res = opt.output_res
        num_joints = self.num_joints
        max_objs = self.max_objs
        trans_output_rot = get_affine_transform(c, s, rot, [output_res, output_res])
        trans_output = get_affine_transform(c, s, 0, [output_res, output_res])

        hm = np.zeros((self.num_classes, output_res, output_res), dtype=np.float32)
        hm_hp = np.zeros((num_joints, output_res, output_res), dtype=np.float32)
        dense_kps = np.zeros((num_joints, 2, output_res, output_res), dtype=np.float32)
        dense_kps_mask = np.zeros((num_joints, output_res, output_res), dtype=np.float32)
        wh = np.zeros((max_objs, 2), dtype=np.float32)
        kps = np.zeros((max_objs, num_joints * 2), dtype=np.float32)
        reg = np.zeros((max_objs, 2), dtype=np.float32)
        ind = np.zeros(max_objs, dtype=np.int64)
        reg_mask = np.zeros(max_objs, dtype=np.uint8)
        kps_mask = np.zeros((max_objs, num_joints * 2), dtype=np.uint8)
        hp_offset = np.zeros((max_objs * num_joints, 2), dtype=np.float32)
        hp_ind = np.zeros(max_objs * num_joints, dtype=np.int64)
        hp_mask = np.zeros(max_objs * num_joints, dtype=np.int64)

        draw_gaussian = draw_msra_gaussian if opt.mse_loss else draw_umich_gaussian

        gt_det = []
        for k in range(num_objs):
            ann = anns[k]
            bbox = self._coco_box_to_bbox(ann["bbox"])
            cls_id = int(ann["category_id"]) - 1
            pts = np.array(ann["keypoints"], np.float32).reshape(num_joints, 3)
            if flipped:
                bbox[[0, 2]] = width - bbox[[2, 0]] - 1
                pts[:, 0] = width - pts[:, 0] - 1
                left, right = np.array(self.flip_idx).T
                pts[np.concatenate([left, right])] = pts[np.concatenate([right, left])]
            bbox[:2] = affine_transform(bbox[:2], trans_output)
            bbox[2:] = affine_transform(bbox[2:], trans_output)
            bbox = np.clip(bbox, 0, output_res - 1)
            h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
            if not ((h > 0 and w > 0) or rot != 0):
                continue
            radius = max(0, int(gaussian_radius((math.ceil(h), math.ceil(w)))))
            # size of the centre / joint gaussians: a radius (umich) or a sigma (msra, --mse_loss)
            spread = mse_sigma(opt, radius) if opt.mse_loss else radius
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], dtype=np.float32)
            ct_int = ct.astype(np.int32)
            wh[k] = 1.0 * w, 1.0 * h
            ind[k] = ct_int[1] * output_res + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 1
            if pts[:, 2].sum() == 0:
                # people without labelled joints: ignored centre (the gaussian below restores 1.0)
                hm[cls_id, ct_int[1], ct_int[0]] = 0.9999
                reg_mask[k] = 0

            vis = pts[:, 2] > 0
            pts[vis, :2] = affine_transform_pts(pts[vis, :2], trans_output_rot)
            inside = vis & (pts[:, 0] >= 0) & (pts[:, 0] < output_res) & (pts[:, 1] >= 0) & (pts[:, 1] < output_res)
            joints = np.nonzero(inside)[0]
            if len(joints):
                xy = pts[joints, :2]
                pt_int = xy.astype(np.int32)
                cols = np.stack([joints * 2, joints * 2 + 1], axis=1).reshape(-1)
                kps[k, cols] = (xy - ct_int).reshape(-1)
                kps_mask[k, cols] = 1
                slots = k * num_joints + joints
                hp_offset[slots] = xy - pt_int
                hp_ind[slots] = pt_int[:, 1] * output_res + pt_int[:, 0]
                hp_mask[slots] = 1
                for j, p, p_int in zip(joints, xy, pt_int):
                    if opt.dense_hp:
                        # must come before the centre gaussian: it decides where the offsets are written
                        draw_dense_reg(dense_kps[j], hm[cls_id], ct_int, p - ct_int, dense_radius(opt, radius),
                                       is_offset=True)
                        draw_gaussian(dense_kps_mask[j], ct_int, spread)
                    draw_gaussian(hm_hp[j], p_int, spread)
            draw_gaussian(hm[cls_id], ct_int, spread)
            gt_det.append([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2, ct[1] + h / 2, 1]
                          + pts[:, :2].reshape(num_joints * 2).tolist() + [cls_id])
        if rot != 0:
            # rotated boxes are not axis aligned: centre heatmap and box/joint regression are ignored
            hm = hm * 0 + 0.9999
            reg_mask *= 0
            kps_mask *= 0

        ret = {"input": inp, "hm": hm, "reg_mask": reg_mask, "ind": ind, "wh": wh}
        if opt.dense_hp:
            ret["dense_hps"] = dense_kps.reshape(num_joints * 2, output_res, output_res)
            ret["dense_hps_mask"] = np.repeat(dense_kps_mask, 2, axis=0)
        else:
            ret["hps"] = kps
            ret["hps_mask"] = kps_mask
        if opt.reg_offset:
            ret["reg"] = reg
        if opt.hm_hp:
            ret["hm_hp"] = hm_hp
        if opt.reg_hp_offset:
            ret.update({"hp_offset": hp_offset, "hp_ind": hp_ind, "hp_mask": hp_mask})
        if opt.debug > 0 or not self.split == "train":
            gt_det = np.array(gt_det, dtype=np.float32) if len(gt_det) > 0 else np.zeros((1, 40), dtype=np.float32)
            ret["meta"] = {"c": c, "s": s, "gt_det": gt_det, "img_id": img_id}
        return ret
