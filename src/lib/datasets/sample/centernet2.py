"""centernet2 training samples: the augmented input and its ground-truth boxes in input pixels.

The first-stage targets (heat maps and box distances on every FPN level) and the cascade's matching
are computed by the model from these boxes, so the sample stays independent of the levels used.
"""
from __future__ import annotations

import numpy as np

from datasets.sample.common import SampleDataset, boxes_and_classes, input_frame, load_image_and_anns
from utils.image import get_affine_transform

LSJ_RANGE = (0.1, 2.0)  # large-scale jitter's scale range (detectron2's LSJ recipe)


class CenterNet2Dataset(SampleDataset):
    """Sample half of a centernet2 dataset class: combined with COCO / PascalVOC / Synth by get_dataset."""

    def __getitem__(self, index: int) -> dict:
        opt = self.opt
        img_id, _, img, anns = load_image_and_anns(self, index)
        height, width = img.shape[0], img.shape[1]
        c, s, input_h, input_w = input_frame(opt, height, width)

        flipped = False
        if self.split == "train" and opt.lsj:
            img, c, s, flipped = self._large_scale_jitter(img, s, input_w, input_h)
        elif self.split == "train":
            img, s, _, flipped = self._train_augment(img, c, s)
        inp = self._network_input(img, c, s, 0, input_w, input_h,
                                  self.split == "train" and not opt.no_color_aug)
        trans = get_affine_transform(c, s, 0, [input_w, input_h])

        slots = self.max_objs
        gt_boxes = np.zeros((slots, 4), np.float32)
        gt_classes = np.zeros(slots, np.int64)
        gt_mask = np.zeros(slots, np.uint8)
        gt_det = np.zeros((0, 6), np.float32)
        if anns:
            bbox, cls_ids = boxes_and_classes(anns, self.cat_ids, flipped, width, trans, input_w, input_h)
            # objects cropped away (or to a line) by the augmentation are dropped
            keep = np.nonzero((bbox[:, 2] - bbox[:, 0] > 1) & (bbox[:, 3] - bbox[:, 1] > 1))[0]
            n = len(keep)
            gt_boxes[:n], gt_classes[:n], gt_mask[:n] = bbox[keep], cls_ids[keep], 1
            gt_det = np.concatenate([bbox[keep], np.ones((n, 1), np.float32),
                                     cls_ids[keep, None].astype(np.float32)], axis=1)

        ret = {"input": inp, "gt_boxes": gt_boxes, "gt_classes": gt_classes, "gt_mask": gt_mask}
        if opt.debug > 0 or not self.split == "train":
            if len(gt_det) == 0:
                gt_det = np.zeros((1, 6), dtype=np.float32)
            ret["meta"] = {"c": c, "s": s, "gt_det": gt_det, "img_id": img_id,
                           "input_size": np.array([input_w, input_h], np.int64)}
        return ret

    def _large_scale_jitter(self, img: np.ndarray, s, input_w: int, input_h: int):
        """Scale by U(0.1, 2.0) and crop at random (or pad right / bottom) to the input; then the flip.

        Returns (img, centre, scale, flipped); the affine crop of _network_input does the resizing.
        """
        height, width = img.shape[0], img.shape[1]
        crop_w = float(np.max(s)) / np.random.uniform(LSJ_RANGE[0], LSJ_RANGE[1])
        crop_h = crop_w * input_h / input_w
        centre = []
        for extent, size in ((crop_w, width), (crop_h, height)):
            # a window larger than the image keeps the image at the top-left, as detectron2's crop pads
            centre.append(extent / 2 if extent >= size else np.random.uniform(extent / 2, size - extent / 2))
        c = np.array(centre, dtype=np.float32)
        flipped = False
        if np.random.random() < self.opt.flip:
            flipped = True
            img = img[:, ::-1, :]
            c[0] = width - c[0] - 1
        return img, c, crop_w, flipped
