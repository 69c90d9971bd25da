"""Training / validation samples for multi-person pose estimation (center + num_joints joints, 17 for COCO)."""
from __future__ import annotations

import math

import numpy as np

from datasets.sample.common import SampleDataset, load_image_and_anns, mse_sigma
from utils.image import (
    affine_transform,
    affine_transform_pts,
    draw_dense_reg,
    draw_msra_gaussian,
    draw_ttf_gaussian,
    draw_umich_gaussian,
    gaussian_radius,
    get_affine_transform,
)


def dense_radius(opt, radius: int) -> int:
    """Radius of the dense joint-offset disc: the original uses opt.hm_gauss with --mse_loss."""
    hm_gauss = getattr(opt, "hm_gauss", None)
    if opt.mse_loss and hm_gauss is not None and hm_gauss > 0:
        return int(hm_gauss)
    return radius


class MultiPoseDataset(SampleDataset):
    """Sample generator for multi_pose: center heatmap, box size, joint offsets and joint heatmaps."""

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        img_id, _, img, anns = load_image_and_anns(self, index)
        num_objs = len(anns)

        height, width = img.shape[:2]
        c = np.array([width / 2.0, height / 2.0], dtype=np.float32)
        s = max(height, width) * 1.0
        rot = 0
        flipped = False
        if self.split == "train":
            img, s, rot, flipped = self._train_augment(img, c, s, rotate=True)
        inp = self._network_input(img, c, s, rot, opt.input_res, opt.input_res,
                                  self.split == "train" and not opt.no_color_aug)

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
            cls_id = int(self.cat_ids[ann["category_id"]])
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
            if opt.gaussian == "ttfnet":
                # elliptical centre target from the box size; the joint maps keep the radius
                draw_ttf_gaussian(hm[cls_id], ct_int, w, h)
            else:
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
            gt_det = (np.array(gt_det, dtype=np.float32) if len(gt_det) > 0
                      else np.zeros((1, 6 + 2 * num_joints), dtype=np.float32))
            ret["meta"] = {"c": c, "s": s, "gt_det": gt_det, "img_id": img_id}
        return ret
