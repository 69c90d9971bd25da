"""Test-time CenterNet2: backbone -> proposals -> cascade RoI heads, each stage timed on its own."""
from __future__ import annotations

import time

import numpy as np
import torch

from deploy.runtime import ExportedModel
from models.centernet2.postprocess import merge_flipped, to_class_rows
from models.centernet2.roi_heads import MAX_DETECTIONS, NMS_THRESH
from utils.debugger import Debugger, denormalize

from .base_detector import BaseDetector
from .ctdet import CtdetDetector

# per-stage timings added to the result of run() (test.py and demo.py print them after the usual ones)
STAGE_STATS = ["backbone", "proposals", "roi_heads"]


class CenterNet2Detector(BaseDetector):
    """Two-stage probabilistic detector: objectness x cascade class probability."""

    def __init__(self, opt) -> None:
        super().__init__(opt)
        # an exported model (export.py centernet2) is the whole detector in one graph, configured at export
        self.exported = isinstance(self.model, ExportedModel)
        if not self.exported:
            self.model.configure(opt)
        self._stage_times = dict.fromkeys(STAGE_STATS, 0.0)

    def _timed(self, name: str, start: float) -> float:
        self._sync()
        now = time.time()
        self._stage_times[name] += now - start
        return now

    def process(self, images: torch.Tensor, return_time: bool = False):
        """Run the three stages; dets: (boxes, scores, classes) in input pixels (with --flip_test both views)."""
        flip = self.opt.flip_test and images.shape[0] == 2
        with torch.no_grad():
            self._sync()
            start = time.time()
            if self.exported:
                output, limits = self._forward_exported(images), (NMS_THRESH, MAX_DETECTIONS)
                self._sync()
                forward_time = time.time()
            else:
                output, forward_time = self._forward(images, start)
                limits = (self.model.roi_heads.nms_thresh, self.model.roi_heads.max_detections)
        if flip:
            output["detections"] = [merge_flipped(*output["detections"], images.shape[3], *limits)]
        dets = output["detections"][0]
        return (output, dets, forward_time) if return_time else (output, dets)

    def _forward(self, images: torch.Tensor, start: float) -> tuple[dict, float]:
        """(maps, proposals and detections per image, the time it ended), each stage timed."""
        model = self.model
        feats = model.features(self.network_input(images))
        start = self._timed("backbone", start)
        heat, reg = model.first_stage(feats)
        proposals = model.propose(heat, reg, training=False)
        start = self._timed("proposals", start)
        size = (images.shape[2], images.shape[3])
        detections = model.roi_heads.inference(feats, model.settings.levels, proposals, size)
        return {"heat": heat, "proposals": proposals, "detections": detections}, self._timed("roi_heads", start)

    def _forward_exported(self, images: torch.Tensor) -> dict:
        """Detections per image from the exported graph (one run, so no stage times): its rows minus the unused
        ones (score 0)."""
        out = self.model(images)[0]
        return {"detections": [(boxes[used], scores[used], classes[used].long()) for boxes, scores, classes, used in
                               zip(out["boxes"], out["scores"], out["classes"], out["scores"] > 0)]}

    def post_process(self, dets, meta: dict, scale: float = 1) -> dict:
        """{class 1..C: float32 n x 5 [x1, y1, x2, y2, score]} in original image pixels."""
        boxes, scores, classes = dets
        input_size = (meta["out_width"] * self.opt.down_ratio, meta["out_height"] * self.opt.down_ratio)
        return to_class_rows(boxes, scores, classes, meta["c"], meta["s"], input_size, self.num_classes, scale)

    # per-class rows as ctdet's: concatenate scales, soft-NMS for several scales or --nms, the best 100
    merge_outputs = CtdetDetector.merge_outputs

    def run(self, image_or_path_or_tensor, meta=None) -> dict:
        """BaseDetector.run plus the time of each stage ('backbone', 'proposals', 'roi_heads')."""
        if isinstance(image_or_path_or_tensor, (list, tuple)):
            return self._run_batch(list(image_or_path_or_tensor), meta)
        self._stage_times = dict.fromkeys(STAGE_STATS, 0.0)
        ret = super().run(image_or_path_or_tensor, meta)
        ret.update(self._stage_times)
        return ret

    def _run_batch(self, items: list, metas=None) -> list[dict]:
        """run() of a list, one image at a time: proposals differ per image, so the replayed batch outputs
        the base class slices by image do not apply; the results equal single runs by construction."""
        metas = [None] * len(items) if metas is None else list(metas)
        if len(metas) != len(items):
            raise ValueError(f"run: {len(items)} images but {len(metas)} calibrations")
        return [self.run(item, meta) for item, meta in zip(items, metas)]

    def debug(self, debugger: Debugger, images: torch.Tensor, dets, output: dict, scale: float = 1) -> None:
        """The network input with its detections above --vis_thresh (input pixels)."""
        img = denormalize(images[0], self.mean, self.std)
        boxes, scores, classes = dets
        rows = torch.cat([boxes, scores[:, None], classes[:, None].float()], dim=1).cpu().numpy()
        debugger.add_box_rows(img, rows, self.opt.vis_thresh, f"out_pred_{scale:.1f}")

    def show_results(self, debugger: Debugger, image: np.ndarray, results: dict) -> None:
        """Boxes above vis_thresh on the original image (window 'centernet2')."""
        self._show_class_boxes(debugger, image, results, "centernet2")
