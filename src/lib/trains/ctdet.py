"""CenterNet object detection: loss, training-time visualisation and predictions for --test."""
from __future__ import annotations

import numpy as np
import torch

from models.decode import ctdet_decode
from models.losses import FocalLoss, NormRegL1Loss, RegL1Loss, RegLoss, RegWeightedL1Loss
from models.utils import _sigmoid
from utils.debugger import Debugger
from utils.errors import UserError
from utils.oracle_utils import gen_oracle_map
from utils.post_process import ctdet_post_process

from .base_trainer import BaseTrainer


def make_reg_crit(opt) -> torch.nn.Module:
    """The sparse regression loss chosen by --reg_loss (l1 or sl1)."""
    if opt.reg_loss == 'l1':
        return RegL1Loss()
    if opt.reg_loss == 'sl1':
        return RegLoss()
    raise UserError(f'--reg_loss {opt.reg_loss}: unknown loss; use l1 or sl1')


def oracle_map(target: torch.Tensor, ind: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Dense ground-truth map shaped like `like`, flood-filled from each object's centre."""
    dense = gen_oracle_map(target.detach().cpu().numpy(), ind.detach().cpu().numpy(),
                           like.shape[3], like.shape[2])
    return torch.from_numpy(dense).to(like.device)


def denormalize(img_chw: torch.Tensor, opt, clip: bool = True) -> np.ndarray:
    """Network input (C x H x W, normalised) -> displayable uint8 BGR image."""
    img = img_chw.detach().cpu().numpy().transpose(1, 2, 0)
    img = (img * opt.std + opt.mean) * 255.
    return np.clip(img, 0, 255).astype(np.uint8) if clip else img.astype(np.uint8)


def new_debugger(opt, iter_id: int) -> Debugger:
    """Debugger for a training-time visualisation of iteration `iter_id`."""
    debugger = Debugger(dataset=opt.dataset, ipynb=(opt.debug == 3), theme=opt.debugger_theme,
                        out_dir=opt.debug_dir)
    debugger.out_prefix = f'{iter_id}'
    return debugger


def blend_heatmaps(debugger: Debugger, img: np.ndarray, output: dict, batch: dict, names: tuple[str, str],
                   key: str = 'hm', i: int = 0) -> None:
    """Predicted and target heatmaps `key` of sample i blended over `img`, as images names[0] / names[1]."""
    pred = debugger.gen_colormap(output[key][i].detach().cpu().numpy())
    gt = debugger.gen_colormap(batch[key][i].detach().cpu().numpy())
    debugger.add_blend_img(img, pred, names[0])
    debugger.add_blend_img(img, gt, names[1])


def draw_pred_and_gt(debugger: Debugger, img: np.ndarray, dets: np.ndarray, dets_gt: np.ndarray, thresh: float,
                     with_pose: bool = False) -> None:
    """Boxes (and skeletons) scoring above `thresh` on 'out_pred' (predictions) and 'out_gt' (targets)."""
    for img_id, rows in (('out_pred', dets), ('out_gt', dets_gt)):
        debugger.add_img(img, img_id=img_id)
        for row in rows:
            if row[4] > thresh:
                debugger.add_coco_bbox(row[:4], row[-1], row[4], img_id=img_id)
                if with_pose:
                    debugger.add_coco_hp(row[5:39], img_id=img_id)


def finish_debug(debugger: Debugger, opt, iter_id: int) -> None:
    """Save the visualisation (--debug 4) or show it and wait for a key."""
    if opt.debug == 4:
        debugger.save_all_imgs(opt.debug_dir, prefix=f'{iter_id}')
    else:
        debugger.show_all_imgs(pause=True)


class CtdetLoss(torch.nn.Module):
    """Focal (or MSE) heatmap loss + size + offset regression, averaged over the stacks."""

    def __init__(self, opt) -> None:
        super().__init__()
        self.crit = torch.nn.MSELoss() if opt.mse_loss else FocalLoss()
        self.crit_reg = make_reg_crit(opt)
        if opt.dense_wh:
            self.crit_wh = torch.nn.L1Loss(reduction='sum')
        elif opt.norm_wh:
            self.crit_wh = NormRegL1Loss()
        elif opt.cat_spec_wh:
            self.crit_wh = RegWeightedL1Loss()
        else:
            self.crit_wh = self.crit_reg
        self.opt = opt

    def forward(self, outputs: list[dict], batch: dict):
        """Return (weighted total, {'loss', 'hm_loss', 'wh_loss', 'off_loss'}); sigmoids `hm` in the outputs."""
        opt = self.opt
        hm_loss, wh_loss, off_loss = 0, 0, 0
        for s in range(opt.num_stacks):
            output = outputs[s]
            if not opt.mse_loss:
                output['hm'] = _sigmoid(output['hm'])
            if opt.eval_oracle_hm:
                output['hm'] = batch['hm']
            if opt.eval_oracle_wh:
                output['wh'] = oracle_map(batch['wh'], batch['ind'], output['wh'])
            if opt.eval_oracle_offset:
                output['reg'] = oracle_map(batch['reg'], batch['ind'], output['reg'])

            hm_loss += self.crit(output['hm'], batch['hm']) / opt.num_stacks
            if opt.wh_weight > 0:
                if opt.dense_wh:
                    mask = batch['dense_wh_mask']
                    wh_loss += (self.crit_wh(output['wh'] * mask, batch['dense_wh'] * mask)
                                / (mask.sum() + 1e-4)) / opt.num_stacks
                elif opt.cat_spec_wh:
                    wh_loss += self.crit_wh(output['wh'], batch['cat_spec_mask'], batch['ind'],
                                            batch['cat_spec_wh']) / opt.num_stacks
                else:
                    wh_loss += self.crit_wh(output['wh'], batch['reg_mask'], batch['ind'],
                                            batch['wh']) / opt.num_stacks
            if opt.reg_offset and opt.off_weight > 0:
                off_loss += self.crit_reg(output['reg'], batch['reg_mask'], batch['ind'],
                                          batch['reg']) / opt.num_stacks

        loss = opt.hm_weight * hm_loss + opt.wh_weight * wh_loss + opt.off_weight * off_loss
        loss_stats = {'loss': loss, 'hm_loss': hm_loss, 'wh_loss': wh_loss, 'off_loss': off_loss}
        return loss, loss_stats


class CtdetTrainer(BaseTrainer):
    """Trainer for ctdet."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__(opt, model, optimizer=optimizer)

    def _get_losses(self, opt):
        return ['loss', 'hm_loss', 'wh_loss', 'off_loss'], CtdetLoss(opt)

    def _decode(self, output: dict) -> np.ndarray:
        reg = output['reg'] if self.opt.reg_offset else None
        dets = ctdet_decode(output['hm'], output['wh'], reg=reg, cat_spec_wh=self.opt.cat_spec_wh, K=self.opt.K)
        return dets.detach().cpu().numpy().reshape(1, -1, dets.shape[2])

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Predicted/target heatmaps and boxes (input-image coordinates) of the first sample."""
        opt = self.opt
        dets = self._decode(output)
        dets[:, :, :4] *= opt.down_ratio
        dets_gt = batch['meta']['gt_det'].numpy().reshape(1, -1, dets.shape[2]).copy()
        dets_gt[:, :, :4] *= opt.down_ratio
        debugger = new_debugger(opt, iter_id)
        img = denormalize(batch['input'][0], opt)
        blend_heatmaps(debugger, img, output, batch, ('pred_hm', 'gt_hm'))
        draw_pred_and_gt(debugger, img, dets[0], dets_gt[0], opt.center_thresh)
        finish_debug(debugger, opt, iter_id)

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Decoded boxes mapped back to the original image, keyed by image id."""
        dets = self._decode(output)
        hm = output['hm']
        dets_out = ctdet_post_process(dets.copy(), batch['meta']['c'].cpu().numpy(),
                                      batch['meta']['s'].cpu().numpy(), hm.shape[2], hm.shape[3], hm.shape[1])
        results[batch['meta']['img_id'].cpu().numpy()[0]] = dets_out[0]
