"""CenterNet2: the two-stage loss, its trainer, training-time drawings and predictions for --test."""
from __future__ import annotations

import numpy as np
import torch

from models.centernet2.fed_loss import PRIOR_PROB, frequency_weights, sample_classes
from models.centernet2.losses import first_stage_losses, stage_losses
from models.centernet2.more_pos import more_positive_indices
from models.centernet2.network import ground_truth
from models.centernet2.postprocess import to_class_rows
from models.centernet2.targets import first_stage_targets, flatten_levels
from utils.debugger import debugger_for, denormalize

from .base_trainer import BaseTrainer
from .common import finish_debug

LOSS_STATS = ["loss", "hm_loss", "giou_loss", "cls_loss", "box_loss"]


class CenterNet2Loss(torch.nn.Module):
    """First stage (agnostic focal + GIoU) plus each cascade stage's classification and box terms."""

    def __init__(self, opt) -> None:
        super().__init__()
        self.opt = opt
        # --fed_loss: sampling weight per class, set from the training set (None: every class, e.g. in --test)
        self.class_weights: torch.Tensor | None = None

    def _class_mask(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor | None:
        if self.class_weights is None:
            return None
        return sample_classes(labels, num_classes, self.opt.fed_loss_num_cat, self.class_weights)

    def forward(self, outputs: list[dict], batch: dict):
        """Return (total, {'loss', 'hm_loss', 'giou_loss', 'cls_loss', 'box_loss'})."""
        out = outputs[-1]
        heat, reg = out["heat"], out["reg"]
        settings = out["settings"]
        shapes = [(h.shape[2], h.shape[3]) for h in heat]
        gt_boxes, _ = ground_truth(batch)
        pos, heat_t, reg_t = first_stage_targets(gt_boxes, shapes, settings.strides, settings.ranges)
        reg_flat = flatten_levels(reg)
        if getattr(self.opt, "more_pos", False):  # validation may build the loss without options
            extra = more_positive_indices(gt_boxes, shapes, settings.strides, settings.ranges, reg_flat,
                                          self.opt.more_pos_thresh, self.opt.more_pos_topk)
            pos = torch.cat([pos, extra])
        hm_loss, giou = first_stage_losses(flatten_levels(heat), reg_flat, pos, heat_t, reg_t)
        cls_loss = box_loss = hm_loss.new_zeros(())
        sigmoid = getattr(self.opt, "sigmoid_ce", False)
        for stage in out["stages"]:
            mask = self._class_mask(stage["labels"], stage["logits"].shape[1] - 1)
            c, b = stage_losses(stage["logits"], stage["deltas"], stage["labels"], stage["target_deltas"],
                                sigmoid, mask)
            cls_loss, box_loss = cls_loss + c, box_loss + b
        loss = hm_loss + giou + cls_loss + box_loss
        return loss, {"loss": loss, "hm_loss": hm_loss, "giou_loss": giou, "cls_loss": cls_loss,
                      "box_loss": box_loss}


class CenterNet2WithLoss(torch.nn.Module):
    """Network + loss; the network gets the batch too, as its RoI heads sample proposals against the boxes."""

    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module, keep_outputs: bool) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.memory_format = torch.contiguous_format
        self.keep_outputs = keep_outputs

    def forward(self, batch: dict):
        """Return (outputs, total loss, loss stats); training outputs only with --debug (drawn)."""
        outputs = self.model(batch["input"].contiguous(memory_format=self.memory_format), batch)
        outputs[-1]["settings"] = self.model.settings
        loss, loss_stats = self.loss(outputs, batch)
        # per-image proposals differ in length: DataParallel could not gather them, and nothing reads them
        out = outputs[-1] if self.keep_outputs or not self.training else {}
        return out, loss, loss_stats


class CenterNet2Trainer(BaseTrainer):
    """Trainer for centernet2."""

    def __init__(self, opt, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        model.configure(opt)
        if opt.sigmoid_ce and not opt.load_model:
            model.roi_heads.set_class_prior(PRIOR_PROB)
        super().__init__(opt, model, optimizer=optimizer)
        self.model_with_loss = CenterNet2WithLoss(model, self.loss, keep_outputs=opt.debug > 0)

    def _get_losses(self, opt):
        return list(LOSS_STATS), CenterNet2Loss(opt)

    def use_training_set(self, dataset) -> None:
        """--fed_loss: the class sampling weights from the number of training images holding each class."""
        if self.opt.fed_loss:
            counts = dataset.class_image_counts()
            self.loss.class_weights = frequency_weights(counts, self.opt.fed_loss_freq_weight)
            print(f"federated loss: {self.opt.fed_loss_num_cat} of {len(counts)} classes per step, drawn by "
                  f"training images ** {self.opt.fed_loss_freq_weight:g} ({int((counts > 0).sum())} classes seen)")

    def debug(self, batch: dict, output: dict, iter_id: int) -> None:
        """Ground-truth boxes and the best proposals (or detections in validation) of the first sample."""
        opt = self.opt
        img = denormalize(batch["input"][0], opt.mean, opt.std)
        debugger = debugger_for(opt, opt.debug_dir, f"{iter_id}")
        gt = batch["meta"]["gt_det"][0].numpy()
        debugger.add_box_rows(img, gt, 0.5, "out_gt")
        if "detections" in output:
            boxes, scores, classes = output["detections"][0]
        else:
            boxes, scores = output["proposals"][0]
            classes = torch.zeros_like(scores, dtype=torch.long)
        rows = torch.cat([boxes, scores[:, None], classes[:, None].float()], dim=1)[:opt.K]
        debugger.add_box_rows(img, rows.detach().cpu().numpy(), opt.vis_thresh, "out_pred")
        finish_debug(debugger, opt, iter_id)

    def save_result(self, output: dict, batch: dict, results: dict) -> None:
        """Detections mapped back to the original image, keyed by image id."""
        meta = batch["meta"]
        boxes, scores, classes = output["detections"][0]
        rows = to_class_rows(boxes, scores, classes, meta["c"].cpu().numpy()[0], _scale(meta["s"]),
                             meta["input_size"].cpu().numpy()[0], self.opt.num_classes)
        results[meta["img_id"].cpu().numpy()[0]] = rows


def _scale(s: torch.Tensor):
    """The affine scale of one image: a number, or (w, h) with --keep_res."""
    s = s.cpu().numpy()[0]
    return s if np.ndim(s) else float(s)
