"""Test-time CenterNet object detector."""
from __future__ import annotations

import time

import numpy as np
import torch

from external import require_nms
from models.decode import ctdet_decode
from models.utils import flip_merge
from utils.debugger import Debugger
from utils.post_process import ctdet_post_process

from .base_detector import BaseDetector, keep_top_scores


class CtdetDetector(BaseDetector):
    """Centre heatmap + size + offset detector."""

    def __init__(self, opt) -> None:
        super().__init__(opt)

    def process(self, images: torch.Tensor, return_time: bool = False):
        """Forward, sigmoid, flip-average (if --flip_test) and decode the top K boxes."""
        with torch.no_grad():
            output = self._network_output(images)
            # in place, as the reference does: the returned output (used by debug) holds probabilities
            heat, sizes = output["hm"].sigmoid_(), output["wh"]
            offsets = output["reg"] if self.opt.reg_offset else None
            if self.opt.flip_test:
                heat, sizes = flip_merge(heat), flip_merge(sizes)
                # Offsets of the mirrored copy do not mirror cleanly: the original's are kept.
                offsets = None if offsets is None else offsets[:1]
            self._sync()
            forward_time = time.time()
            dets = ctdet_decode(heat, sizes, reg=offsets, cat_spec_wh=self.opt.cat_spec_wh, K=self.opt.K)
        if return_time:
            return output, dets, forward_time
        return output, dets

    def post_process(self, dets: torch.Tensor, meta: dict, scale: float = 1) -> dict:
        """{class 1..C: float32 n x 5 [x1, y1, x2, y2, score]} in original image pixels."""
        dets = dets.detach().cpu().numpy().reshape(1, -1, dets.shape[2])
        dets = ctdet_post_process(dets.copy(), [meta["c"]], [meta["s"]], meta["out_height"], meta["out_width"],
                                  self.opt.num_classes)
        out = {}
        for j in range(1, self.num_classes + 1):
            rows = np.array(dets[0][j], dtype=np.float32).reshape(-1, 5)
            rows[:, :4] /= scale
            out[j] = rows
        return out

    def merge_outputs(self, detections: list[dict]) -> dict:
        """Concatenate scales; soft-NMS for multi-scale or --nms; keep the best max_per_image boxes."""
        results = {}
        use_nms = len(self.scales) > 1 or self.opt.nms
        soft_nms = require_nms() if use_nms else None
        for j in range(1, self.num_classes + 1):
            results[j] = np.concatenate([d[j] for d in detections], axis=0).astype(np.float32)
            if use_nms:
                # In place; like the original the returned keep list is not applied.
                soft_nms(results[j], Nt=0.5, method=2)
        return keep_top_scores(results, self.max_per_image)

    def debug(self, debugger: Debugger, images: torch.Tensor, dets: torch.Tensor, output: dict,
              scale: float = 1) -> None:
        """Predicted heatmap and boxes above center_thresh in network-input coordinates."""
        detection = dets.detach().cpu().numpy().copy()
        detection[:, :, :4] *= self.opt.down_ratio
        img = self._blend_pred(debugger, images, output, f"pred_hm_{scale:.1f}")
        debugger.add_box_rows(img, detection[0], self.opt.center_thresh, f"out_pred_{scale:.1f}")

    def show_results(self, debugger: Debugger, image: np.ndarray, results: dict) -> None:
        """Boxes above vis_thresh on the original image (window 'ctdet')."""
        self._show_class_boxes(debugger, image, results, "ctdet")
