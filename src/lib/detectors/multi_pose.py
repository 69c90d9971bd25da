"""Test-time multi-person pose detector."""
from __future__ import annotations

import time

import numpy as np
import torch

from external import require_nms
from models.decode import multi_pose_decode
from models.utils import flip_merge, flip_merge_lr, flip_merge_lr_off
from utils.post_process import multi_pose_post_process

from .base_detector import BaseDetector


class MultiPoseDetector(BaseDetector):
    """Centre heatmap + joint regression / joint heatmap detector for people."""

    def __init__(self, opt):
        super().__init__(opt)
        self.flip_idx = opt.flip_idx
        self.num_joints = opt.heads["hps"] // 2  # 17 for COCO; a custom dataset's own count

    def process(self, images: torch.Tensor, return_time: bool = False):
        """Run the network, merge the flipped copy if any, and decode up to K people."""
        opt = self.opt
        with torch.no_grad():
            output = self._network_output(images)
            output["hm"] = output["hm"].sigmoid_()
            if opt.hm_hp and not opt.mse_loss:
                output["hm_hp"] = output["hm_hp"].sigmoid_()
            reg = output["reg"] if opt.reg_offset else None
            hm_hp = output["hm_hp"] if opt.hm_hp else None
            hp_offset = output["hp_offset"] if opt.reg_hp_offset else None
            self._sync()
            forward_time = time.time()

            if opt.flip_test:
                # second batch item is the mirrored image: un-mirror it (joints swap sides) and average
                output["hm"] = flip_merge(output["hm"])
                output["wh"] = flip_merge(output["wh"])
                output["hps"] = flip_merge_lr_off(output["hps"], self.flip_idx)
                if hm_hp is not None:
                    hm_hp = flip_merge_lr(hm_hp, self.flip_idx)
                # sub-pixel offsets do not mirror cleanly: keep the unflipped ones
                reg = reg[0:1] if reg is not None else None
                hp_offset = hp_offset[0:1] if hp_offset is not None else None

            dets = multi_pose_decode(output["hm"], output["wh"], output["hps"],
                                     reg=reg, hm_hp=hm_hp, hp_offset=hp_offset, K=opt.K)
        if return_time:
            return output, dets, forward_time
        return output, dets

    def post_process(self, dets: torch.Tensor, meta: dict, scale: float = 1) -> dict:
        """Map detections of one scale back to original image pixels: {class: float32 n x 39} (5 + 2 per joint)."""
        dets = dets.detach().cpu().numpy().reshape(1, -1, dets.shape[2])
        dets = multi_pose_post_process(dets.copy(), [meta["c"]], [meta["s"]], meta["out_height"], meta["out_width"],
                                       num_classes=self.num_classes)
        for j in range(1, self.num_classes + 1):
            rows = np.array(dets[0][j], dtype=np.float32).reshape(-1, 5 + 2 * self.num_joints)
            rows[:, :4] /= scale
            rows[:, 5:] /= scale
            dets[0][j] = rows
        return dets[0]

    def merge_outputs(self, detections: list) -> dict:
        """Concatenate the scales; soft-NMS when several scales or --nms (its keep list is unused)."""
        results = {}
        for j in range(1, self.num_classes + 1):
            people = np.concatenate([d[j] for d in detections], axis=0).astype(np.float32)
            if self.opt.nms or len(self.opt.test_scales) > 1:
                require_nms("soft_nms_39")(people, Nt=0.5, method=2)
            results[j] = people.tolist()
        return results

    def debug(self, debugger, images: torch.Tensor, dets: torch.Tensor, output: dict, scale: float = 1) -> None:
        """Blend the predicted centre and joint heatmaps over the network input."""
        img = self._blend_pred(debugger, images, output, "pred_hm")
        if self.opt.hm_hp:
            pred = debugger.gen_colormap_hp(output["hm_hp"][0].detach().cpu().numpy())
            debugger.add_blend_img(img, pred, "pred_hmhp")

    def show_results(self, debugger, image: np.ndarray, results: dict) -> None:
        """Draw boxes and skeletons above vis_thresh on the original image and show them."""
        debugger.add_img(image, img_id="multi_pose")
        for j in range(1, self.num_classes + 1):
            for row in results[j]:
                if row[4] > self.opt.vis_thresh:
                    debugger.add_coco_bbox(row[:4], j - 1, row[4], img_id="multi_pose")
                    debugger.add_coco_hp(row[5:5 + 2 * self.num_joints], img_id="multi_pose")
        debugger.show_all_imgs(pause=self.pause)
