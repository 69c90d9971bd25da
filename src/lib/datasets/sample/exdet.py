"""exdet training samples: extreme-point (top, left, bottom, right) and center heatmaps."""
from __future__ import annotations

import numpy as np

from datasets.dataset.checks import ListField
from datasets.sample.common import SampleDataset, load_image_and_anns
from utils.image import (
    affine_transform_pts,
    draw_msra_gaussian,
    draw_ttf_gaussian,
    draw_umich_gaussian,
    gaussian_radius,
    get_affine_transform,
)


class EXDetDataset(SampleDataset):
    """Sample half of an exdet dataset class (COCO with `extreme_points` annotations)."""

    def task_fields(self) -> list[ListField]:
        """The four extreme points of every object; the dataset class says where to get them."""
        return [ListField("extreme_points", 8, self.extreme_points_fix,
                          "x, y of the top, left, bottom and right points")]

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        _, _, img, anns = load_image_and_anns(self, index)
        height, width = img.shape[0], img.shape[1]
        c = np.array([width / 2., height / 2.])
        s = max(height, width) * 1.0

        flipped = False
        if self.split == "train":
            # unlike ctdet: scale before shift, the shift is relative to the image size, and (as the
            # original) a flip mirrors the image but not the crop centre
            img, s, _, flipped = self._train_augment(img, c, s, shift_by_image=True, flip_centre=False)
        inp = self._network_input(img, c, s, 0, opt.input_res, opt.input_res,
                                  self.split == "train" and not opt.no_color_aug)

        output_res = opt.output_res
        num_classes = opt.num_classes
        trans_output = get_affine_transform(c, s, 0, [output_res, output_res])
        num_hm = 1 if opt.agnostic_ex else num_classes

        hms = np.zeros((4, num_hm, output_res, output_res), dtype=np.float32)  # t, l, b, r
        hm_c = np.zeros((num_classes, output_res, output_res), dtype=np.float32)
        regs = np.zeros((4, self.max_objs, 2), dtype=np.float32)
        inds = np.zeros((4, self.max_objs), dtype=np.int64)
        reg_mask = np.zeros((self.max_objs), dtype=np.uint8)

        if len(anns) > 0:
            pts = np.array([ann["extreme_points"] for ann in anns], dtype=np.float32).reshape(-1, 4, 2)
            cls_ids = np.array([int(self.cat_ids[ann["category_id"]]) for ann in anns], dtype=np.int64)
            if flipped:
                pts[:, :, 0] = width - pts[:, :, 0] - 1
                pts = pts[:, [0, 3, 2, 1]]  # left and right swap sides
            pts = affine_transform_pts(pts.reshape(-1, 2), trans_output).astype(np.float32).reshape(-1, 4, 2)
            pts = np.clip(pts, 0, output_res - 1)
            h = pts[:, 2, 1] - pts[:, 0, 1]
            w = pts[:, 3, 0] - pts[:, 1, 0]
            keep = np.nonzero((h > 0) & (w > 0))[0]
            radii = np.maximum(0, gaussian_radius((np.ceil(h[keep]).astype(np.int64),
                                                   np.ceil(w[keep]).astype(np.int64)))).astype(np.int64)
            pt_int = pts[keep].astype(np.int32)
            regs[:, keep] = (pts[keep] - pt_int).transpose(1, 0, 2)
            inds[:, keep] = (pt_int[:, :, 1] * output_res + pt_int[:, :, 0]).T
            reg_mask[keep] = 1
            for j, k in enumerate(keep):
                radius = int(radii[j])
                cls_id = cls_ids[k]
                hm_id = 0 if opt.agnostic_ex else cls_id
                ct = [int((pts[k, 3, 0] + pts[k, 1, 0]) / 2), int((pts[k, 0, 1] + pts[k, 2, 1]) / 2)]
                if opt.mse_loss:
                    # the radius is the sigma, as in the original; radius 0 would give NaN maps there
                    sigma = max(radius, 1)
                    for p in range(4):
                        draw_msra_gaussian(hms[p, hm_id], pt_int[j, p], sigma)
                    if opt.gaussian != "ttfnet":
                        draw_msra_gaussian(hm_c[cls_id], ct, sigma)
                else:
                    for p in range(4):
                        draw_umich_gaussian(hms[p, hm_id], pt_int[j, p], radius)
                    if opt.gaussian != "ttfnet":
                        draw_umich_gaussian(hm_c[cls_id], ct, radius)
                if opt.gaussian == "ttfnet":
                    # elliptical centre target from the box size; the extreme points keep the radius
                    draw_ttf_gaussian(hm_c[cls_id], ct, w[k], h[k])

        ret = {"input": inp, "hm_t": hms[0], "hm_l": hms[1], "hm_b": hms[2], "hm_r": hms[3], "hm_c": hm_c}
        if opt.reg_offset:
            ret.update({"reg_mask": reg_mask,
                        "reg_t": regs[0], "reg_l": regs[1], "reg_b": regs[2], "reg_r": regs[3],
                        "ind_t": inds[0], "ind_l": inds[1], "ind_b": inds[2], "ind_r": inds[3]})
        return ret
