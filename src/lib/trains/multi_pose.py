"""Loss and trainer for multi-person pose estimation."""
from __future__ import annotations

import torch

from models.decode import multi_pose_decode
from models.losses import RegWeightedL1Loss
from utils.debugger import debugger_for, denormalize
from utils.oracle_utils import oracle_map
from utils.post_process import multi_pose_post_process

from .base_trainer import BaseTrainer
from .common import blend_heatmaps, finish_debug, make_focal_crit, make_reg_crit, sigmoid_heatmap, zero_terms

LOSS_STATS = ["loss", "hm_loss", "hp_loss", "hm_hp_loss", "hp_offset_loss", "wh_loss", "off_loss"]


class MultiPoseLoss(torch.nn.Module):
    """Focal loss on the centre / joint heatmaps plus L1 regressions; terms averaged over stacks."""

    def __init__(self, opt):
        super().__init__()
        # *_from_logits (--focal_loss logsigmoid): that focal loss takes the raw logits, not the clamped sigmoid
        self.crit, self.hm_from_logits = make_focal_crit(opt)
        self.crit_hm_hp, self.hm_hp_from_logits = (
            (torch.nn.MSELoss(), False) if opt.mse_loss else make_focal_crit(opt))
        self.crit_kp = torch.nn.L1Loss(reduction="sum") if opt.dense_hp else RegWeightedL1Loss()
        self.crit_reg = make_reg_crit(opt)
        self.opt = opt

    def _apply_oracles(self, output: dict, batch: dict) -> None:
        """Replace outputs by ground truth as asked by the --eval_oracle_* options."""
        opt = self.opt
        if opt.eval_oracle_hmhp:
            output["hm_hp"] = batch["hm_hp"]
        if opt.eval_oracle_hm:
            output["hm"] = batch["hm"]
        if opt.eval_oracle_kps:
            if opt.dense_hp:
                output["hps"] = batch["dense_hps"]
            else:
                output["hps"] = oracle_map(batch["hps"], batch["ind"], output["hps"])
        if opt.eval_oracle_hp_offset:
            output["hp_offset"] = oracle_map(batch["hp_offset"], batch["hp_ind"], output["hp_offset"])

    def forward(self, outputs: list, batch: dict):
        """Return (total loss, {stat name: scalar tensor})."""
        opt = self.opt
        terms = dict(zip(LOSS_STATS[1:], zero_terms(outputs[0]["hm"], len(LOSS_STATS) - 1)))
        n = opt.num_stacks
        for s in range(n):
            output = outputs[s]
            hm_logits, hm_hp_logits = output["hm"], output.get("hm_hp")
            output["hm"] = sigmoid_heatmap(hm_logits, self.hm_from_logits)
            if opt.hm_hp and not opt.mse_loss:
                output["hm_hp"] = sigmoid_heatmap(hm_hp_logits, self.hm_hp_from_logits)
            self._apply_oracles(output, batch)

            # a logits loss reads the network's logits even when an oracle replaced the heat map
            hm_in = hm_logits if self.hm_from_logits else output["hm"]
            terms["hm_loss"] = terms["hm_loss"] + self.crit(hm_in, batch["hm"]) / n
            if opt.dense_hp:
                mask = batch["dense_hps_mask"]
                hp = self.crit_kp(output["hps"] * mask, batch["dense_hps"] * mask) / (mask.sum() + 1e-4)
            else:
                hp = self.crit_kp(output["hps"], batch["hps_mask"], batch["ind"], batch["hps"])
            terms["hp_loss"] = terms["hp_loss"] + hp / n
            if opt.wh_weight > 0:
                wh = self.crit_reg(output["wh"], batch["reg_mask"], batch["ind"], batch["wh"])
                terms["wh_loss"] = terms["wh_loss"] + wh / n
            if opt.reg_offset and opt.off_weight > 0:
                off = self.crit_reg(output["reg"], batch["reg_mask"], batch["ind"], batch["reg"])
                terms["off_loss"] = terms["off_loss"] + off / n
            if opt.reg_hp_offset and opt.off_weight > 0:
                hp_off = self.crit_reg(output["hp_offset"], batch["hp_mask"], batch["hp_ind"], batch["hp_offset"])
                terms["hp_offset_loss"] = terms["hp_offset_loss"] + hp_off / n
            if opt.hm_hp and opt.hm_hp_weight > 0:
                hm_hp_in = hm_hp_logits if self.hm_hp_from_logits else output["hm_hp"]
                terms["hm_hp_loss"] = terms["hm_hp_loss"] + self.crit_hm_hp(hm_hp_in, batch["hm_hp"]) / n
        loss = (opt.hm_weight * terms["hm_loss"] + opt.wh_weight * terms["wh_loss"]
                + opt.off_weight * terms["off_loss"] + opt.hp_weight * terms["hp_loss"]
                + opt.hm_hp_weight * terms["hm_hp_loss"] + opt.off_weight * terms["hp_offset_loss"])
        loss_stats = {"loss": loss, **terms}
        return loss, {name: loss_stats[name] for name in LOSS_STATS}


def decode_output(output: dict, opt) -> torch.Tensor:
    """multi_pose_decode of a training-time output dict (heatmaps already through _sigmoid)."""
    return multi_pose_decode(
        output["hm"], output["wh"], output["hps"],
        reg=output["reg"] if opt.reg_offset else None,
        hm_hp=output["hm_hp"] if opt.hm_hp else None,
        hp_offset=output["hp_offset"] if opt.reg_hp_offset else None, K=opt.K)


class MultiPoseTrainer(BaseTrainer):
    """BaseTrainer with the multi_pose loss, debug drawing and result collection."""

    def __init__(self, opt, model, optimizer=None):
        super().__init__(opt, model, optimizer=optimizer)

    def _get_losses(self, opt):
        return list(LOSS_STATS), MultiPoseLoss(opt)

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Draw predicted and ground-truth heatmaps, boxes and skeletons of the first sample."""
        opt = self.opt
        dets = decode_output(output, opt).detach().cpu().numpy()
        dets = dets.reshape(1, -1, dets.shape[2])
        ratio = opt.input_res / opt.output_res
        end = 5 + opt.heads["hps"]  # box, score, then x, y of every joint
        dets[:, :, :4] *= ratio
        dets[:, :, 5:end] *= ratio
        dets_gt = batch["meta"]["gt_det"].numpy().copy().reshape(1, -1, dets.shape[2])
        dets_gt[:, :, :4] *= ratio
        dets_gt[:, :, 5:end] *= ratio
        i = 0
        debugger = debugger_for(opt, opt.debug_dir, f"{iter_id}")
        img = denormalize(batch["input"][i], opt.mean, opt.std)
        blend_heatmaps(debugger, img, output, batch, ("pred_hm", "gt_hm"))
        debugger.add_box_rows(img, dets[i], opt.center_thresh, "out_pred", with_pose=True)
        debugger.add_box_rows(img, dets_gt[i], opt.center_thresh, "out_gt", with_pose=True)
        if opt.hm_hp:
            pred = debugger.gen_colormap_hp(output["hm_hp"][i].detach().cpu().numpy())
            gt = debugger.gen_colormap_hp(batch["hm_hp"][i].detach().cpu().numpy())
            debugger.add_blend_img(img, pred, "pred_hmhp")
            debugger.add_blend_img(img, gt, "gt_hmhp")
        finish_debug(debugger, opt, iter_id)

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Decode and map back the prediction of a batch-1 sample into results[img_id]."""
        dets = decode_output(output, self.opt).detach().cpu().numpy()
        dets = dets.reshape(1, -1, dets.shape[2])
        dets_out = multi_pose_post_process(
            dets.copy(), batch["meta"]["c"].cpu().numpy(), batch["meta"]["s"].cpu().numpy(),
            output["hm"].shape[2], output["hm"].shape[3], num_classes=self.opt.num_classes)
        results[batch["meta"]["img_id"].cpu().numpy()[0]] = dets_out[0]
