"""CenterNet object detection: loss, training-time visualisation and predictions for --test."""
from __future__ import annotations

import numpy as np
import torch

from models.decode import ctdet_decode
from models.losses import NormRegL1Loss, RegWeightedL1Loss
from utils.debugger import debugger_for, denormalize
from utils.oracle_utils import oracle_map
from utils.post_process import ctdet_post_process

from .base_trainer import BaseTrainer
from .common import blend_heatmaps, finish_debug, make_focal_crit, make_reg_crit, sigmoid_heatmap, zero_terms


class CtdetLoss(torch.nn.Module):
    """Focal (or MSE) heatmap loss + size + offset regression, averaged over the stacks."""

    def __init__(self, opt) -> None:
        super().__init__()
        # hm_from_logits (--focal_loss logsigmoid): the loss takes the raw logits, not the clamped sigmoid
        self.crit, self.hm_from_logits = (torch.nn.MSELoss(), False) if opt.mse_loss else make_focal_crit(opt)
        self.crit_reg = make_reg_crit(opt)
        if opt.dense_wh:
            self.crit_wh = torch.nn.L1Loss(reduction="sum")
        elif opt.norm_wh:
            self.crit_wh = NormRegL1Loss()
        elif opt.cat_spec_wh:
            self.crit_wh = RegWeightedL1Loss()
        else:
            self.crit_wh = self.crit_reg
        self.opt = opt

    def _size_loss(self, wh: torch.Tensor, batch: dict) -> torch.Tensor:
        """One stack's size term: over the dense map (--dense_wh), per class (--cat_spec_wh) or at the centres."""
        if self.opt.dense_wh:
            weight = batch["dense_wh_mask"]
            # the summed L1 over the gaussian-weighted map, normalised by the total weight
            return self.crit_wh(wh * weight, batch["dense_wh"] * weight) / (weight.sum() + 1e-4)
        if self.opt.cat_spec_wh:
            return self.crit_wh(wh, batch["cat_spec_mask"], batch["ind"], batch["cat_spec_wh"])
        # as the original: --norm_wh picks the loss of the per-class branch only, so alone it changes nothing
        return self.crit_reg(wh, batch["reg_mask"], batch["ind"], batch["wh"])

    def forward(self, outputs: list[dict], batch: dict):
        """Return (weighted total, {'loss', 'hm_loss', 'wh_loss', 'off_loss'}); sigmoids `hm` in the outputs."""
        opt = self.opt
        hm_loss, wh_loss, off_loss = zero_terms(outputs[0]["hm"], 3)
        for output in outputs[:opt.num_stacks]:
            hm_logits = output["hm"]
            if not opt.mse_loss:
                output["hm"] = sigmoid_heatmap(hm_logits, self.hm_from_logits)
            if opt.eval_oracle_hm:
                output["hm"] = batch["hm"]
            # --eval_oracle_wh / --eval_oracle_offset: ground truth spread over each object's area
            for key, oracle in (("wh", opt.eval_oracle_wh), ("reg", opt.eval_oracle_offset)):
                if oracle:
                    output[key] = oracle_map(batch[key], batch["ind"], output[key])

            # a logits loss reads the network's logits even when an oracle replaced the heat map
            hm_in = hm_logits if self.hm_from_logits else output["hm"]
            hm_loss = hm_loss + self.crit(hm_in, batch["hm"]) / opt.num_stacks
            if opt.wh_weight > 0:
                wh_loss = wh_loss + self._size_loss(output["wh"], batch) / opt.num_stacks
            if opt.reg_offset and opt.off_weight > 0:
                off_loss = off_loss + self.crit_reg(output["reg"], batch["reg_mask"], batch["ind"],
                                                    batch["reg"]) / opt.num_stacks

        loss = opt.hm_weight * hm_loss + opt.wh_weight * wh_loss + opt.off_weight * off_loss
        return loss, {"loss": loss, "hm_loss": hm_loss, "wh_loss": wh_loss, "off_loss": off_loss}


class CtdetTrainer(BaseTrainer):
    """Trainer for ctdet."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__(opt, model, optimizer=optimizer)

    def _get_losses(self, opt):
        return ["loss", "hm_loss", "wh_loss", "off_loss"], CtdetLoss(opt)

    def _decode(self, output: dict) -> np.ndarray:
        reg = output["reg"] if self.opt.reg_offset else None
        dets = ctdet_decode(output["hm"], output["wh"], reg=reg, cat_spec_wh=self.opt.cat_spec_wh, K=self.opt.K)
        return dets.detach().cpu().numpy().reshape(1, -1, dets.shape[2])

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Predicted/target heatmaps and boxes (input-image coordinates) of the first sample."""
        opt = self.opt
        dets = self._decode(output)
        dets[:, :, :4] *= opt.down_ratio
        dets_gt = batch["meta"]["gt_det"].numpy().reshape(1, -1, dets.shape[2]).copy()
        dets_gt[:, :, :4] *= opt.down_ratio
        debugger = debugger_for(opt, opt.debug_dir, f"{iter_id}")
        img = denormalize(batch["input"][0], opt.mean, opt.std)
        blend_heatmaps(debugger, img, output, batch, ("pred_hm", "gt_hm"))
        debugger.add_box_rows(img, dets[0], opt.center_thresh, "out_pred")
        debugger.add_box_rows(img, dets_gt[0], opt.center_thresh, "out_gt")
        finish_debug(debugger, opt, iter_id)

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Decoded boxes mapped back to the original image, keyed by image id."""
        dets = self._decode(output)
        hm = output["hm"]
        dets_out = ctdet_post_process(dets.copy(), batch["meta"]["c"].cpu().numpy(),
                                      batch["meta"]["s"].cpu().numpy(), hm.shape[2], hm.shape[3], hm.shape[1])
        results[batch["meta"]["img_id"].cpu().numpy()[0]] = dets_out[0]
