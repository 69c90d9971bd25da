"""ctdet training samples: augmented input, center heatmaps, sizes, offsets."""
from __future__ import annotations

import numpy as np

from datasets.sample.common import SampleDataset, boxes_and_classes, input_frame, load_image_and_anns, mse_sigma
from utils.image import (
    draw_dense_reg,
    draw_msra_gaussian,
    draw_ttf_gaussian,
    draw_umich_gaussian,
    gaussian_radius,
    get_affine_transform,
)


class CTDetDataset(SampleDataset):
    """Sample half of a ctdet dataset class: combined with COCO / PascalVOC / ... by get_dataset."""

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        img_id, _, img, anns = load_image_and_anns(self, index)
        num_objs = len(anns)

        height, width = img.shape[0], img.shape[1]
        c, s, input_h, input_w = input_frame(opt, height, width)

        flipped = False
        if self.split == "train":
            img, s, _, flipped = self._train_augment(img, c, s)
        inp = self._network_input(img, c, s, 0, input_w, input_h,
                                  self.split == "train" and not opt.no_color_aug)

        output_h, output_w = input_h // opt.down_ratio, input_w // opt.down_ratio
        trans_output = get_affine_transform(c, s, 0, [output_w, output_h])

        # maps at output resolution; object targets in max_objs slots (slot k is annotation k, reg_mask marks it)
        slots, wh_cols = self.max_objs, 2 * self.num_classes  # a (w, h) column pair per class
        hm = np.zeros((self.num_classes, output_h, output_w), dtype=np.float32)
        dense_wh = np.zeros((2, output_h, output_w), dtype=np.float32)
        wh, reg = np.zeros((slots, 2), np.float32), np.zeros((slots, 2), np.float32)
        ind, reg_mask = np.zeros(slots, np.int64), np.zeros(slots, np.uint8)
        cat_spec_wh, cat_spec_mask = np.zeros((slots, wh_cols), np.float32), np.zeros((slots, wh_cols), np.uint8)
        gt_det = np.zeros((0, 6), dtype=np.float32)

        if num_objs > 0:
            bbox, cls_ids = boxes_and_classes(anns, self.cat_ids, flipped, width, trans_output, output_w, output_h)
            h = bbox[:, 3] - bbox[:, 1]
            w = bbox[:, 2] - bbox[:, 0]
            keep = np.nonzero((h > 0) & (w > 0))[0]
            radii = np.maximum(0, gaussian_radius((np.ceil(h[keep]).astype(np.int64),
                                                   np.ceil(w[keep]).astype(np.int64)))).astype(np.int64)
            ct = np.stack([(bbox[keep, 0] + bbox[keep, 2]) / 2, (bbox[keep, 1] + bbox[keep, 3]) / 2], axis=1)
            ct_int = ct.astype(np.int32)

            wh[keep, 0], wh[keep, 1] = w[keep], h[keep]
            ind[keep] = ct_int[:, 1] * output_w + ct_int[:, 0]
            reg[keep] = ct - ct_int
            reg_mask[keep] = 1
            cols = 2 * cls_ids[keep]
            cat_spec_wh[keep, cols] = w[keep]
            cat_spec_wh[keep, cols + 1] = h[keep]
            cat_spec_mask[keep, cols] = 1
            cat_spec_mask[keep, cols + 1] = 1
            hw = np.stack([w[keep], h[keep]], axis=1) / 2
            gt_det = np.concatenate([ct - hw, ct + hw, np.ones((len(keep), 1), np.float32),
                                     cls_ids[keep, None].astype(np.float32)], axis=1).astype(np.float32)

            # per-class max of all gaussians drawn so far == hm.max(axis=0), kept up to date cheaply
            hm_any = np.zeros((output_h, output_w), dtype=np.float32) if opt.dense_wh else None
            for j, k in enumerate(keep):
                radius = int(radii[j])
                cls_id = cls_ids[k]
                if opt.mse_loss:
                    radius = mse_sigma(opt, radius)
                # --gaussian ttfnet: elliptical centre target from the box size (dense_wh keeps the radius)
                if opt.gaussian == "ttfnet":
                    draw_ttf_gaussian(hm[cls_id], ct_int[j], w[k], h[k])
                elif opt.mse_loss:
                    draw_msra_gaussian(hm[cls_id], ct_int[j], radius)
                else:
                    draw_umich_gaussian(hm[cls_id], ct_int[j], radius)
                if opt.dense_wh:
                    if opt.mse_loss:
                        draw_msra_gaussian(hm_any, ct_int[j], radius)
                    else:
                        draw_umich_gaussian(hm_any, ct_int[j], radius)
                    draw_dense_reg(dense_wh, hm_any, ct_int[j], wh[k], radius)

        ret = {"input": inp, "hm": hm, "reg_mask": reg_mask, "ind": ind, "wh": wh}
        if opt.dense_wh:
            hm_a = hm.max(axis=0, keepdims=True)
            ret.update({"dense_wh": dense_wh, "dense_wh_mask": np.concatenate([hm_a, hm_a], axis=0)})
            del ret["wh"]
        elif opt.cat_spec_wh:
            ret.update({"cat_spec_wh": cat_spec_wh, "cat_spec_mask": cat_spec_mask})
            del ret["wh"]
        if opt.reg_offset:
            ret.update({"reg": reg})
        if opt.debug > 0 or not self.split == "train":
            if len(gt_det) == 0:
                gt_det = np.zeros((1, 6), dtype=np.float32)
            ret["meta"] = {"c": c, "s": s, "gt_det": gt_det, "img_id": img_id}
        return ret
