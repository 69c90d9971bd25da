"""Monocular 3D detection (ddd): loss, training-time visualisation and predictions for --test."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from models.decode import ddd_decode
from models.losses import BinRotLoss, FocalLoss, L1Loss
from models.utils import _sigmoid
from utils.debugger import debugger_for, denormalize
from utils.oracle_utils import oracle_map
from utils.post_process import ddd_keep_above, ddd_post_process, depth_from_output

from .base_trainer import BaseTrainer
from .common import blend_heatmaps, finish_debug, zero_terms


class DddLoss(torch.nn.Module):
    """Focal heatmap loss + depth, 3D size, two-bin rotation, 2D size and offset regression, per stack."""

    def __init__(self, opt) -> None:
        super().__init__()
        self.crit = torch.nn.MSELoss() if opt.mse_loss else FocalLoss()
        self.crit_reg = L1Loss()
        self.crit_rot = BinRotLoss()
        self.opt = opt

    def forward(self, outputs: list[dict], batch: dict):
        """Return (weighted total, stats); replaces `hm` and `dep` in the outputs by their activations."""
        opt = self.opt
        hm_loss, dep_loss, rot_loss, dim_loss, wh_loss, off_loss = zero_terms(outputs[0]['hm'], 6)
        for s in range(opt.num_stacks):
            output = outputs[s]
            # the original applies the clamped sigmoid with --mse_loss too
            output['hm'] = _sigmoid(output['hm'])
            output['dep'] = depth_from_output(output['dep'])
            if opt.eval_oracle_dep:
                output['dep'] = oracle_map(batch['dep'], batch['ind'], output['dep'])

            hm_loss = hm_loss + self.crit(output['hm'], batch['hm']) / opt.num_stacks
            if opt.dep_weight > 0:
                dep_loss = dep_loss + self.crit_reg(output['dep'], batch['reg_mask'], batch['ind'],
                                                    batch['dep']) / opt.num_stacks
            if opt.dim_weight > 0:
                dim_loss = dim_loss + self.crit_reg(output['dim'], batch['reg_mask'], batch['ind'],
                                                    batch['dim']) / opt.num_stacks
            if opt.rot_weight > 0:
                rot_loss = rot_loss + self.crit_rot(output['rot'], batch['rot_mask'], batch['ind'], batch['rotbin'],
                                                    batch['rotres']) / opt.num_stacks
            if opt.reg_bbox and opt.wh_weight > 0:
                wh_loss = wh_loss + self.crit_reg(output['wh'], batch['rot_mask'], batch['ind'],
                                                  batch['wh']) / opt.num_stacks
            if opt.reg_offset and opt.off_weight > 0:
                off_loss = off_loss + self.crit_reg(output['reg'], batch['rot_mask'], batch['ind'],
                                                    batch['reg']) / opt.num_stacks
        loss = (opt.hm_weight * hm_loss + opt.dep_weight * dep_loss + opt.dim_weight * dim_loss
                + opt.rot_weight * rot_loss + opt.wh_weight * wh_loss + opt.off_weight * off_loss)
        loss_stats = {'loss': loss, 'hm_loss': hm_loss, 'dep_loss': dep_loss, 'dim_loss': dim_loss,
                      'rot_loss': rot_loss, 'wh_loss': wh_loss, 'off_loss': off_loss}
        return loss, loss_stats


class DddTrainer(BaseTrainer):
    """Trainer for ddd."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        super().__init__(opt, model, optimizer=optimizer)

    def _get_losses(self, opt):
        loss_states = ['loss', 'hm_loss', 'dep_loss', 'dim_loss', 'rot_loss', 'wh_loss', 'off_loss']
        return loss_states, DddLoss(opt)

    def _decode(self, output: dict) -> np.ndarray:
        """Top-K rows [x, y, score, rot(8), depth, dim(3), (w, h), class] as a 1 x K x D array."""
        opt = self.opt
        wh = output['wh'] if opt.reg_bbox else None
        reg = output['reg'] if opt.reg_offset else None
        dets = ddd_decode(output['hm'], output['rot'], output['dep'], output['dim'], wh=wh, reg=reg, K=opt.K)
        return dets.detach().cpu().numpy().reshape(1, -1, dets.shape[2])

    def _post_process(self, dets: np.ndarray, meta: dict) -> list[dict]:
        return ddd_post_process(dets.copy(), meta['c'].detach().cpu().numpy(), meta['s'].detach().cpu().numpy(),
                                meta['calib'].detach().cpu().numpy(), self.opt)

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Heatmaps, centres/boxes, projected 3D boxes and the bird's-eye view of the first sample."""
        opt = self.opt
        meta = batch['meta']
        dets = self._decode(output)
        calib = meta['calib'].detach().cpu().numpy()
        dets_pred = self._post_process(dets, meta)
        dets_gt = ddd_post_process(meta['gt_det'].detach().cpu().numpy().copy(), meta['c'].detach().cpu().numpy(),
                                   meta['s'].detach().cpu().numpy(), calib, opt)
        i = 0
        image_path = meta['image_path'][i]
        debugger = debugger_for(opt, opt.debug_dir, f'{iter_id}')
        img = denormalize(batch['input'][i], opt.mean, opt.std, clip=False)
        blend_heatmaps(debugger, img, output, batch, ('hm_pred', 'hm_gt'), i=i)
        debugger.add_ct_detection(img, dets[i], show_box=opt.reg_bbox, center_thresh=opt.center_thresh,
                                  img_id='det_pred')
        debugger.add_ct_detection(img, meta['gt_det'][i].cpu().numpy().copy(), show_box=opt.reg_bbox,
                                  img_id='det_gt')
        debugger.add_3d_detection(image_path, dets_pred[i], calib[i], center_thresh=opt.center_thresh,
                                  img_id='add_pred')
        debugger.add_3d_detection(image_path, dets_gt[i], calib[i], center_thresh=opt.center_thresh,
                                  img_id='add_gt')
        debugger.add_bird_views(dets_pred[i], dets_gt[i], center_thresh=opt.center_thresh, img_id='bird_pred_gt')
        # gen_colormap's default size is (4h, 4w) read as (width, height): only right for square maps, so the
        # composite gets an explicitly input-sized heatmap and a bird's-eye view scaled to its height
        # (the original fails here for KITTI's 384 x 1280 input)
        pred_in = debugger.gen_colormap(output['hm'][i].detach().cpu().numpy(), (opt.input_w, opt.input_h))
        bev_id = 'bird_pred_gt'
        if debugger.imgs[bev_id].shape[0] != pred_in.shape[0]:
            side = pred_in.shape[0]
            debugger.imgs['_bev'] = cv2.resize(debugger.imgs[bev_id], (side, side))
            bev_id = '_bev'
        debugger.compose_vis_add(image_path, dets_pred[i], calib[i], opt.center_thresh, pred_in, bev_id,
                                 img_id='out')
        debugger.imgs.pop('_bev', None)
        finish_debug(debugger, opt, iter_id)

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Post-processed 3D boxes scoring above center_thresh, keyed by image id."""
        dets = self._decode(output)
        dets_pred = self._post_process(dets, batch['meta'])
        img_id = batch['meta']['img_id'].detach().cpu().numpy()[0]
        results[img_id] = ddd_keep_above(dets_pred[0], self.opt.center_thresh)
