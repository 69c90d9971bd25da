"""ExtremeNet-style detection (four extreme points + centre): loss and training-time visualisation."""
from __future__ import annotations

import numpy as np
import torch

from models.decode import agnex_ct_decode, exct_decode
from models.losses import RegL1Loss
from utils.debugger import debugger_for, denormalize

from .base_trainer import BaseTrainer
from .common import finish_debug, make_focal_crit, sigmoid_heatmap, zero_terms

EXDET_PARTS = ["t", "l", "b", "r", "c"]


class ExdetLoss(torch.nn.Module):
    """Focal (or MSE) loss on the five heatmaps + offset loss for the four extreme points."""

    def __init__(self, opt) -> None:
        super().__init__()
        # from_logits (--focal_loss logsigmoid): the loss takes the raw logits, not the clamped sigmoid
        self.crit, self.from_logits = (torch.nn.MSELoss(), False) if opt.mse_loss else make_focal_crit(opt)
        self.crit_reg = RegL1Loss()
        self.opt = opt
        self.parts = EXDET_PARTS

    def forward(self, outputs: list[dict], batch: dict):
        """Return (weighted total, {'loss', 'off_loss', 'hm_loss'}); sigmoids the heatmaps in the outputs."""
        opt = self.opt
        hm_loss, reg_loss = zero_terms(outputs[0]["hm_t"], 2)
        for s in range(opt.num_stacks):
            output = outputs[s]
            for p in self.parts:
                tag = f"hm_{p}"
                logits = output[tag]
                output[tag] = sigmoid_heatmap(logits, self.from_logits)
                hm_in = logits if self.from_logits else output[tag]
                hm_loss = hm_loss + self.crit(hm_in, batch[tag]) / opt.num_stacks
                if p != "c" and opt.reg_offset and opt.off_weight > 0:
                    reg_loss = reg_loss + self.crit_reg(output[f"reg_{p}"], batch["reg_mask"], batch[f"ind_{p}"],
                                                        batch[f"reg_{p}"]) / opt.num_stacks
        loss = opt.hm_weight * hm_loss + opt.off_weight * reg_loss
        return loss, {"loss": loss, "off_loss": reg_loss, "hm_loss": hm_loss}


class ExdetTrainer(BaseTrainer):
    """Trainer for exdet."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__(opt, model, optimizer=optimizer)
        self.decode = agnex_ct_decode if opt.agnostic_ex else exct_decode
        self.parts = EXDET_PARTS

    def _get_losses(self, opt):
        return ["loss", "hm_loss", "off_loss"], ExdetLoss(opt)

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Extreme-point and centre heatmaps and the decoded boxes of the first sample."""
        opt = self.opt
        regs = [output[f"reg_{p}"] for p in "tlbr"] if opt.reg_offset else []
        detections = self.decode(output["hm_t"], output["hm_l"], output["hm_b"], output["hm_r"], output["hm_c"],
                                 *regs, K=opt.K, scores_thresh=opt.scores_thresh,
                                 center_thresh=opt.center_thresh, aggr_weight=opt.aggr_weight)
        detections = detections.detach().cpu().numpy()
        detections[:, :, :4] *= opt.input_res / opt.output_res
        i = 0
        debugger = debugger_for(opt, opt.debug_dir, f"{iter_id}")
        img = denormalize(batch["input"][i], opt.mean, opt.std)
        h, w = img.shape[:2]
        pred_hm = np.zeros((h, w, 3), dtype=np.uint8)
        gt_hm = np.zeros((h, w, 3), dtype=np.uint8)
        for p in self.parts:
            tag = f"hm_{p}"
            pred = debugger.gen_colormap(output[tag][i].detach().cpu().numpy(), (w, h))
            gt = debugger.gen_colormap(batch[tag][i].detach().cpu().numpy(), (w, h))
            if p != "c":
                pred_hm = np.maximum(pred_hm, pred)
                gt_hm = np.maximum(gt_hm, gt)
            if p == "c" or opt.debug > 2:
                debugger.add_blend_img(img, pred, f"pred_{p}")
                debugger.add_blend_img(img, gt, f"gt_{p}")
        debugger.add_blend_img(img, pred_hm, "pred")
        debugger.add_blend_img(img, gt_hm, "gt")
        debugger.add_img(img, img_id="out")
        for det in detections[i]:
            if det[4] > 0.1:
                debugger.add_coco_bbox(det[:4], det[-1], det[4], img_id="out")
        finish_debug(debugger, opt, iter_id)
