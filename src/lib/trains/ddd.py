"""Monocular 3D detection (ddd): loss, training-time visualisation and predictions for --test."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from models.decode import ddd_decode
from models.losses import BinRotLoss, L1Loss
from utils.debugger import debugger_for, denormalize
from utils.oracle_utils import oracle_map
from utils.post_process import ddd_keep_above, ddd_post_process, depth_from_output

from .base_trainer import BaseTrainer
from .common import blend_heatmaps, finish_debug, make_focal_crit, sigmoid_heatmap, zero_terms

# The logged terms, in log order; each regression as (stat, output head, batch mask, batch targets).
_STATS = ("hm", "dep", "dim", "rot", "wh", "off")
_REGRESSIONS = (("dep", "dep", "reg_mask", ("dep",)), ("dim", "dim", "reg_mask", ("dim",)),
                ("rot", "rot", "rot_mask", ("rotbin", "rotres")), ("wh", "wh", "rot_mask", ("wh",)),
                ("off", "reg", "rot_mask", ("reg",)))


class DddLoss(torch.nn.Module):
    """Focal heatmap loss + depth, 3D size, two-bin rotation, 2D size and offset regression, per stack."""

    def __init__(self, opt) -> None:
        super().__init__()
        # hm_from_logits (--focal_loss logsigmoid): the loss takes the raw logits, not the clamped sigmoid
        self.crit, self.hm_from_logits = (torch.nn.MSELoss(), False) if opt.mse_loss else make_focal_crit(opt)
        self.crit_reg = L1Loss()
        self.crit_rot = BinRotLoss()
        self.opt = opt

    def forward(self, outputs: list[dict], batch: dict):
        """Return (weighted total, stats); replaces `hm` and `dep` in the outputs by their activations."""
        opt = self.opt
        # a regression is computed only when it counts: weight > 0, and for wh / off only with that head
        needs_head = {"wh": opt.reg_bbox, "off": opt.reg_offset}
        active = [term for term in _REGRESSIONS
                  if getattr(opt, f"{term[0]}_weight") > 0 and needs_head.get(term[0], True)]
        terms = dict(zip(_STATS, zero_terms(outputs[0]["hm"], len(_STATS))))
        for output in outputs[:opt.num_stacks]:
            # the original applies the clamped sigmoid with --mse_loss too
            hm_logits = output["hm"]
            output["hm"] = sigmoid_heatmap(hm_logits, self.hm_from_logits)
            output["dep"] = depth_from_output(output["dep"])
            if opt.eval_oracle_dep:
                output["dep"] = oracle_map(batch["dep"], batch["ind"], output["dep"])
            hm_in = hm_logits if self.hm_from_logits else output["hm"]
            terms["hm"] = terms["hm"] + self.crit(hm_in, batch["hm"]) / opt.num_stacks
            for stat, head, mask, targets in active:
                crit = self.crit_rot if stat == "rot" else self.crit_reg
                value = crit(output[head], batch[mask], batch["ind"], *(batch[t] for t in targets))
                terms[stat] = terms[stat] + value / opt.num_stacks
        # summed left to right in the order of _STATS, as the reference's one expression does
        loss = opt.hm_weight * terms["hm"]
        for stat in _STATS[1:]:
            loss = loss + getattr(opt, f"{stat}_weight") * terms[stat]
        return loss, {"loss": loss, **{f"{stat}_loss": value for stat, value in terms.items()}}


class DddTrainer(BaseTrainer):
    """Trainer for ddd."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__(opt, model, optimizer=optimizer)

    def _get_losses(self, opt):
        loss_states = ["loss", "hm_loss", "dep_loss", "dim_loss", "rot_loss", "wh_loss", "off_loss"]
        return loss_states, DddLoss(opt)

    def _decode(self, output: dict) -> np.ndarray:
        """Top-K rows [x, y, score, rot(8), depth, dim(3), (w, h), class] as a 1 x K x D array."""
        opt = self.opt
        wh = output["wh"] if opt.reg_bbox else None
        reg = output["reg"] if opt.reg_offset else None
        dets = ddd_decode(output["hm"], output["rot"], output["dep"], output["dim"], wh=wh, reg=reg, K=opt.K)
        return dets.detach().cpu().numpy().reshape(1, -1, dets.shape[2])

    def _post_process(self, dets: np.ndarray, meta: dict) -> list[dict]:
        return ddd_post_process(dets.copy(), meta["c"].detach().cpu().numpy(), meta["s"].detach().cpu().numpy(),
                                meta["calib"].detach().cpu().numpy(), self.opt)

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Heatmaps, centres/boxes, projected 3D boxes and the bird's-eye view of the first sample."""
        opt = self.opt
        meta = batch["meta"]
        dets = self._decode(output)
        calib = meta["calib"].detach().cpu().numpy()
        dets_pred = self._post_process(dets, meta)
        dets_gt = ddd_post_process(meta["gt_det"].detach().cpu().numpy().copy(), meta["c"].detach().cpu().numpy(),
                                   meta["s"].detach().cpu().numpy(), calib, opt)
        i = 0
        image_path = meta["image_path"][i]
        debugger = debugger_for(opt, opt.debug_dir, f"{iter_id}")
        img = denormalize(batch["input"][i], opt.mean, opt.std, clip=False)
        blend_heatmaps(debugger, img, output, batch, ("hm_pred", "hm_gt"), i=i)
        debugger.add_ct_detection(img, dets[i], show_box=opt.reg_bbox, center_thresh=opt.center_thresh,
                                  img_id="det_pred")
        debugger.add_ct_detection(img, meta["gt_det"][i].cpu().numpy().copy(), show_box=opt.reg_bbox,
                                  img_id="det_gt")
        debugger.add_3d_detection(image_path, dets_pred[i], calib[i], center_thresh=opt.center_thresh,
                                  img_id="add_pred")
        debugger.add_3d_detection(image_path, dets_gt[i], calib[i], center_thresh=opt.center_thresh,
                                  img_id="add_gt")
        debugger.add_bird_views(dets_pred[i], dets_gt[i], center_thresh=opt.center_thresh, img_id="bird_pred_gt")
        # gen_colormap's default size is (4h, 4w) read as (width, height): only right for square maps, so the
        # composite gets an explicitly input-sized heatmap and a bird's-eye view scaled to its height
        # (the original fails here for KITTI's 384 x 1280 input)
        pred_in = debugger.gen_colormap(output["hm"][i].detach().cpu().numpy(), (opt.input_w, opt.input_h))
        bev_id = "bird_pred_gt"
        if debugger.imgs[bev_id].shape[0] != pred_in.shape[0]:
            side = pred_in.shape[0]
            debugger.imgs["_bev"] = cv2.resize(debugger.imgs[bev_id], (side, side))
            bev_id = "_bev"
        debugger.compose_vis_add(image_path, dets_pred[i], calib[i], opt.center_thresh, pred_in, bev_id,
                                 img_id="out")
        debugger.imgs.pop("_bev", None)
        finish_debug(debugger, opt, iter_id)

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Post-processed 3D boxes scoring above center_thresh, keyed by image id."""
        dets = self._decode(output)
        dets_pred = self._post_process(dets, batch["meta"])
        img_id = batch["meta"]["img_id"].detach().cpu().numpy()[0]
        results[img_id] = ddd_keep_above(dets_pred[0], self.opt.center_thresh)
