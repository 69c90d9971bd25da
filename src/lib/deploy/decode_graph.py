"""In-graph post-processing for `export.py --decode`: the network followed by the task's decode.

The exported graph then ends in detections per image (sigmoid, 3x3 max-pool peaks, top-K), in the
layout of models.decode (network-output pixels, before the affine map back to the image).
"""
from __future__ import annotations

import torch
from torch import nn

from models.decode import ctdet_decode, ddd_decode, multi_pose_decode
from utils.errors import UserError
from utils.post_process import depth_from_output

DECODE_TASKS = ("ctdet", "multi_pose", "ddd")
DETS_NAME = "dets"


class DecodedOutput(nn.Module):
    """Network + the task's decode: images (N, 3, H, W) -> dets (N, K, D)."""

    def __init__(self, model: nn.Module, opt) -> None:
        super().__init__()
        if opt.task not in DECODE_TASKS:
            raise UserError(f"--decode: in-graph decoding exists for {', '.join(DECODE_TASKS)}, not {opt.task}; "
                            "export without --decode")
        self.model = model
        self.task, self.K = opt.task, opt.K
        self.reg_offset, self.cat_spec_wh = opt.reg_offset, opt.cat_spec_wh
        self.hm_hp, self.sigmoid_hm_hp = opt.hm_hp, opt.hm_hp and not opt.mse_loss
        self.reg_hp_offset, self.reg_bbox = opt.reg_hp_offset, opt.reg_bbox

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Detections of every image, as the detectors' `process` computes them (without flip test)."""
        out = self.model(images)[-1]
        heat = out["hm"].sigmoid()
        reg = out["reg"] if self.reg_offset else None
        if self.task == "ctdet":
            return ctdet_decode(heat, out["wh"], reg=reg, cat_spec_wh=self.cat_spec_wh, K=self.K)
        if self.task == "multi_pose":
            hm_hp = None
            if self.hm_hp:
                hm_hp = out["hm_hp"].sigmoid() if self.sigmoid_hm_hp else out["hm_hp"]
            hp_offset = out["hp_offset"] if self.reg_hp_offset else None
            return multi_pose_decode(heat, out["wh"], out["hps"], reg=reg, hm_hp=hm_hp, hp_offset=hp_offset, K=self.K)
        wh = out["wh"] if self.reg_bbox else None
        return ddd_decode(heat, out["rot"], depth_from_output(out["dep"]), out["dim"], wh=wh, reg=reg, K=self.K)
