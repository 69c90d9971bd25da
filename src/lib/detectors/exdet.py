"""Test-time extreme-point detector (ExtremeNet-style grouping on CenterNet heads).

The original is broken as shipped (soft_nms not imported; post-processing assumes --flip_test);
here both single and flipped inputs work, and the extreme points are mapped like the boxes.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from external import require_nms
from models.decode import agnex_ct_decode, exct_decode
from utils.debugger import Debugger, denormalize
from utils.image import transform_preds

from .base_detector import BaseDetector, keep_top_scores

# Row layout: [l.x, t.y, r.x, b.y, score, t.x, t.y, l.x, l.y, b.x, b.y, r.x, r.y, class].
_X_COLS = [0, 2, 5, 7, 9, 11]
_POINT_PAIRS = [(0, 1), (2, 3), (5, 6), (7, 8), (9, 10), (11, 12)]


def unmirror_extremes(dets: np.ndarray, width: float) -> np.ndarray:
    """Map rows decoded on a left-right mirrored map back (x -> width - x; left and right swap)."""
    out = dets.copy()
    out[:, 0] = width - dets[:, 2]
    out[:, 2] = width - dets[:, 0]
    out[:, 5] = width - dets[:, 5]
    out[:, 9] = width - dets[:, 9]
    out[:, 7], out[:, 8] = width - dets[:, 11], dets[:, 12]
    out[:, 11], out[:, 12] = width - dets[:, 7], dets[:, 8]
    return out


class ExdetDetector(BaseDetector):
    """Four extreme-point heatmaps + centre heatmap, grouped into boxes."""

    def __init__(self, opt) -> None:
        super().__init__(opt)
        self.decode = agnex_ct_decode if opt.agnostic_ex else exct_decode

    def process(self, images: torch.Tensor, return_time: bool = False):
        """Forward, sigmoid the five heatmaps and group extreme points (each batch item separately)."""
        opt = self.opt
        with torch.no_grad():
            output = self._network_output(images)
            heats = [output[f"hm_{p}"].sigmoid_() for p in "tlbrc"]
            self._sync()
            forward_time = time.time()
            regs = [output[f"reg_{p}"] for p in "tlbr"] if opt.reg_offset else []
            num_dets = min(1000, opt.K ** 4)
            dets = self.decode(*heats, *regs, K=opt.K, scores_thresh=opt.scores_thresh,
                               center_thresh=opt.center_thresh, aggr_weight=opt.aggr_weight, num_dets=num_dets)
        if return_time:
            return output, dets, forward_time
        return output, dets

    def post_process(self, dets: torch.Tensor, meta: dict, scale: float = 1) -> np.ndarray:
        """Un-mirror the flipped copy, map boxes and extreme points to original pixels: n x 14."""
        out_width, out_height = meta["out_width"], meta["out_height"]
        dets = dets.detach().cpu().numpy()
        parts = [dets[0]]
        if dets.shape[0] > 1:
            parts.append(unmirror_extremes(dets[1], out_width))
        dets = np.concatenate(parts, axis=0)
        for x, y in _POINT_PAIRS:
            dets[:, [x, y]] = transform_preds(dets[:, [x, y]], meta["c"], meta["s"], (out_width, out_height))
        dets[:, 0:4] /= scale
        dets[:, 5:13] /= scale
        return dets

    def merge_outputs(self, detections: list[np.ndarray]) -> dict:
        """Positive-score rows per class, soft-NMS, keep the best max_per_image: {class: n x 5}."""
        detections = np.concatenate(detections, axis=0).astype(np.float32)
        detections = detections[detections[:, 4] > 0]
        classes = detections[:, -1]
        soft_nms = require_nms()
        results = {}
        for j in range(self.num_classes):
            rows = np.ascontiguousarray(detections[classes == j][:, 0:7]).astype(np.float32)
            soft_nms(rows, Nt=0.5, method=2)
            results[j + 1] = rows[:, 0:5]
        return keep_top_scores(results, self.max_per_image)

    def debug(self, debugger: Debugger, images: torch.Tensor, dets: torch.Tensor, output: dict,
              scale: float = 1) -> None:
        """Centre and combined extreme heatmaps and the grouped boxes (score > 0.01) for one scale."""
        detection = dets.detach().cpu().numpy().copy()
        detection[:, :, :4] *= self.opt.down_ratio
        i = 0
        inp_height, inp_width = images.shape[2], images.shape[3]
        pred_hm = np.zeros((inp_height, inp_width, 3), dtype=np.uint8)
        img = denormalize(images[i], self.mean, self.std)
        for p in "tlbrc":
            pred = debugger.gen_colormap(output[f"hm_{p}"][i].detach().cpu().numpy(), (inp_width, inp_height))
            if p != "c":
                pred_hm = np.maximum(pred_hm, pred)
            else:
                debugger.add_blend_img(img, pred, f"pred_{p}_{scale:.1f}")
        debugger.add_blend_img(img, pred_hm, f"pred_{scale:.1f}")
        debugger.add_box_rows(img, detection[i], 0.01, f"out_{scale:.1f}")

    def show_results(self, debugger: Debugger, image: np.ndarray, results: dict) -> None:
        """Boxes above vis_thresh on the original image (window 'exdet')."""
        self._show_class_boxes(debugger, image, results, "exdet")
