"""Test-time monocular 3D detector (ddd): KITTI-style 3D boxes from one image and its camera matrix."""
from __future__ import annotations

import time

import cv2
import numpy as np
import torch

from models.decode import ddd_decode
from utils.debugger import Debugger
from utils.image import get_affine_transform
from utils.post_process import DDD_RESULT_COLS, ddd_post_process, depth_from_output

from .base_detector import BaseDetector

# KITTI's typical P2 (used when no calibration is given, e.g. by demo.py)
DEFAULT_CALIB = np.array([[707.0493, 0, 604.0814, 45.75831],
                          [0, 707.0493, 180.5066, -0.3454157],
                          [0, 0, 1., 0.004981016]], dtype=np.float32)


class DddDetector(BaseDetector):
    """Centre heatmap + depth + rotation bins + 3D size (+ 2D size, offset) detector."""

    def __init__(self, opt) -> None:
        super().__init__(opt)
        self.calib = DEFAULT_CALIB.copy()
        self.this_calib = self.calib

    def pre_process(self, image: np.ndarray, scale: float, calib=None) -> tuple[torch.Tensor, dict]:
        """Warp the whole image to the input size (`scale` is ignored, no flip); meta carries the calib."""
        opt = self.opt
        if isinstance(calib, dict):
            # the base run() hands back the previous scale's meta
            calib = calib.get("calib")
        height, width = image.shape[0:2]
        inp_height, inp_width = opt.input_h, opt.input_w
        c = np.array([width / 2, height / 2], dtype=np.float32)
        if opt.keep_res:
            s = np.array([inp_width, inp_height], dtype=np.int32)
        else:
            s = np.array([width, height], dtype=np.int32)
        trans_input = get_affine_transform(c, s, 0, [inp_width, inp_height])
        inp_image = cv2.warpAffine(image, trans_input, (inp_width, inp_height), flags=cv2.INTER_LINEAR)
        inp_image = (inp_image.astype(np.float32) / 255.)
        inp_image = (inp_image - self.mean) / self.std
        images = torch.from_numpy(np.ascontiguousarray(inp_image.transpose(2, 0, 1)[np.newaxis, ...]))
        calib = np.array(calib, dtype=np.float32).reshape(3, 4) if calib is not None else self.calib
        meta = {"c": c, "s": s, "out_height": inp_height // opt.down_ratio,
                "out_width": inp_width // opt.down_ratio, "calib": calib}
        return images, meta

    def process(self, images: torch.Tensor, return_time: bool = False):
        """Forward, sigmoid the heatmap, map depth to metres and decode the top K centres."""
        opt = self.opt
        with torch.no_grad():
            output = self._network_output(images)
            output["hm"] = output["hm"].sigmoid_()
            output["dep"] = depth_from_output(output["dep"])
            wh = output["wh"] if opt.reg_bbox else None
            reg = output["reg"] if opt.reg_offset else None
            self._sync()
            forward_time = time.time()
            dets = ddd_decode(output["hm"], output["rot"], output["dep"], output["dim"], wh=wh, reg=reg, K=opt.K)
        if return_time:
            return output, dets, forward_time
        return output, dets

    def post_process(self, dets: torch.Tensor, meta: dict, scale: float = 1) -> dict:
        """{class 1..3: float32 n x 13 [alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score]}."""
        dets = dets.detach().cpu().numpy()
        detections = ddd_post_process(dets.copy(), [meta["c"]], [meta["s"]], [meta["calib"]], self.opt)
        self.this_calib = meta["calib"]
        return detections[0]

    def merge_outputs(self, detections: list[dict]) -> dict:
        """First scale only; rows scoring above --peak_thresh."""
        results = detections[0]
        for j in range(1, self.num_classes + 1):
            rows = np.asarray(results.get(j, []), dtype=np.float32).reshape(-1, DDD_RESULT_COLS)
            results[j] = rows[rows[:, -1] > self.opt.peak_thresh]
        return results

    def debug(self, debugger: Debugger, images: torch.Tensor, dets: torch.Tensor, output: dict,
              scale: float = 1) -> None:
        """Predicted heatmap and centres (with 2D boxes when regressed) in network-input coordinates."""
        detection = dets.detach().cpu().numpy()
        img = self._blend_pred(debugger, images, output, "pred_hm")
        debugger.add_ct_detection(img, detection[0], show_box=self.opt.reg_bbox, center_thresh=self.opt.vis_thresh,
                                  img_id="det_pred")

    def show_results(self, debugger: Debugger, image: np.ndarray, results: dict) -> None:
        """Projected 3D boxes ('add_pred') and the bird's-eye view ('bird_pred') above vis_thresh."""
        debugger.add_3d_detection(image, results, self.this_calib, center_thresh=self.opt.vis_thresh,
                                  img_id="add_pred")
        debugger.add_bird_view(results, center_thresh=self.opt.vis_thresh, img_id="bird_pred")
        debugger.show_all_imgs(pause=self.pause)
