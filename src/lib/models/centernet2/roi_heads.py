"""The cascade of RoI box heads: proposal sampling and matching for training, probabilistic scores at test."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import batched_nms, clip_boxes, decode_deltas, encode_deltas, pairwise_iou
from .roi_align import multilevel_roi_align

# detectron2's cascade box-coding weights, one set per stage (later stages refine finer)
CASCADE_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
POOLER_SIZE = 7
# test time: class scores kept above SCORE_THRESH, class-wise NMS at NMS_THRESH, the best MAX_DETECTIONS
SCORE_THRESH, NMS_THRESH, MAX_DETECTIONS = 0.05, 0.7, 100


@dataclass
class StageTargets:
    """Boxes a stage sees in training, with their class labels (background = num_classes) and matched boxes."""

    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    gt_boxes: list[torch.Tensor]


def stage_weights(stage: int) -> tuple[float, ...]:
    """Box-coding weights of cascade stage `stage` (the last set repeats for longer cascades)."""
    return CASCADE_WEIGHTS[min(stage, len(CASCADE_WEIGHTS) - 1)]


class BoxHead(nn.Module):
    """Two fully connected layers over the pooled RoI features."""

    def __init__(self, in_features: int, fc_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, fc_dim)
        self.fc2 = nn.Linear(fc_dim, fc_dim)
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.constant_(fc.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RoI features -> fc_dim vector."""
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))


class BoxPredictor(nn.Module):
    """Class logits (num_classes + 1, background last) and class-agnostic box deltas."""

    def __init__(self, fc_dim: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(fc_dim, num_classes + 1)
        self.bbox_pred = nn.Linear(fc_dim, 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for fc in (self.cls_score, self.bbox_pred):
            nn.init.constant_(fc.bias, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, deltas)."""
        return self.cls_score(x), self.bbox_pred(x)


class _ScaleGrad(torch.autograd.Function):
    """Identity in the forward pass; the gradient multiplied by a factor in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def _scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """x in the forward pass; its gradient multiplied by `factor` in the backward pass."""
    return _ScaleGrad.apply(x, factor)


def match_boxes(boxes: torch.Tensor, gt_boxes: torch.Tensor, gt_classes: torch.Tensor, iou_thresh: float,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(label per box: its best ground truth's class when IoU >= iou_thresh, else num_classes; matched gt box)."""
    if gt_boxes.shape[0] == 0:
        return (torch.full((boxes.shape[0],), num_classes, dtype=torch.long, device=boxes.device),
                boxes.clone())
    best_iou, best = pairwise_iou(gt_boxes, boxes).max(dim=0)
    labels = torch.where(best_iou >= iou_thresh, gt_classes[best], torch.full_like(best, num_classes))
    return labels, gt_boxes[best]


def sample_rois(labels: torch.Tensor, num_classes: int, batch_size: int, positive_fraction: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of a random subset: at most batch_size * positive_fraction foreground, background to fill."""
    fg = torch.nonzero(labels < num_classes).squeeze(1)
    bg = torch.nonzero(labels == num_classes).squeeze(1)
    num_fg = min(int(batch_size * positive_fraction), fg.numel())
    num_bg = min(batch_size - num_fg, bg.numel())
    fg = fg[torch.randperm(fg.numel(), generator=generator)[:num_fg].to(fg.device)]
    bg = bg[torch.randperm(bg.numel(), generator=generator)[:num_bg].to(bg.device)]
    return torch.cat([fg, bg])


def combine_scores(stage_probs: list[torch.Tensor], objectness: torch.Tensor) -> torch.Tensor:
    """CenterNet2's probabilistic score: sqrt(mean over stages of the class probabilities x objectness)."""
    probs = sum(stage_probs) / len(stage_probs)
    return (probs * objectness[:, None]).sqrt()


class CascadeRoIHeads(nn.Module):
    """num_stages box heads; stage k refines stage k-1's boxes and is trained at IoU threshold ious[k]."""

    def __init__(self, channels: int, num_classes: int, num_stages: int = 3, fc_dim: int = 1024) -> None:
        super().__init__()
        self.num_classes = num_classes
        in_features = channels * POOLER_SIZE * POOLER_SIZE
        self.box_head = nn.ModuleList([BoxHead(in_features, fc_dim) for _ in range(num_stages)])
        self.box_predictor = nn.ModuleList([BoxPredictor(fc_dim, num_classes) for _ in range(num_stages)])
        # run-time settings (opts set them through CenterNet2.configure)
        self.ious = [0.6, 0.7, 0.8][:num_stages] + [0.8] * max(0, num_stages - 3)
        self.batch_size_per_image, self.positive_fraction = 512, 0.25
        self.score_thresh, self.nms_thresh, self.max_detections = SCORE_THRESH, NMS_THRESH, MAX_DETECTIONS
        self.sampling_ratio = 2
        self.sigmoid_ce = False  # --sigmoid_ce: per-class sigmoid probabilities instead of the softmax

    @property
    def num_stages(self) -> int:
        """Number of cascade stages."""
        return len(self.box_head)

    def class_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (the last column is background's, unused by --sigmoid_ce) of stage logits."""
        return logits.sigmoid() if self.sigmoid_ce else F.softmax(logits, dim=1)

    def set_class_prior(self, prior: float) -> None:
        """Start every stage's class logits at probability `prior` (a fresh --sigmoid_ce model, as RetinaNet)."""
        for predictor in self.box_predictor:
            nn.init.constant_(predictor.cls_score.bias, -math.log((1 - prior) / prior))

    def run_stage(self, stage: int, features: list[torch.Tensor], levels: list[int], boxes: list[torch.Tensor]):
        """(logits, deltas) of `stage` for the boxes of every image (rows in image order)."""
        pooled = multilevel_roi_align(features, boxes, levels, POOLER_SIZE, self.sampling_ratio)
        if self.training:
            # every stage back-propagates into the shared features: each contributes a third (for three)
            pooled = _scale_grad(pooled, 1.0 / self.num_stages)
        return self.box_predictor[stage](self.box_head[stage](pooled))

    def _next_boxes(self, stage: int, deltas: torch.Tensor, boxes: list[torch.Tensor], image_size) -> list:
        flat = torch.cat(boxes)
        refined = clip_boxes(decode_deltas(deltas.detach(), flat, stage_weights(stage)), *image_size)
        return list(refined.split([len(b) for b in boxes]))

    def forward_train(self, features, levels, proposals, gt_boxes, gt_classes, image_size,
                      generator: torch.Generator | None = None) -> list[dict]:
        """Per stage {'logits', 'deltas', 'labels', 'target_deltas'} on sampled proposals (gt boxes added)."""
        boxes, labels, matched = [], [], []
        for (props, _), gtb, gtc in zip(proposals, gt_boxes, gt_classes):
            cand = torch.cat([props.detach(), gtb])
            lab, mgt = match_boxes(cand, gtb, gtc, self.ious[0], self.num_classes)
            keep = sample_rois(lab, self.num_classes, self.batch_size_per_image, self.positive_fraction, generator)
            boxes.append(cand[keep])
            labels.append(lab[keep])
            matched.append(mgt[keep])
        outputs = []
        for stage in range(self.num_stages):
            if stage > 0:
                boxes = self._next_boxes(stage - 1, outputs[-1]["deltas"], boxes, image_size)
                pairs = [match_boxes(b, gtb, gtc, self.ious[stage], self.num_classes)
                         for b, gtb, gtc in zip(boxes, gt_boxes, gt_classes)]
                labels, matched = [p[0] for p in pairs], [p[1] for p in pairs]
            logits, deltas = self.run_stage(stage, features, levels, boxes)
            flat_boxes, flat_gt = torch.cat(boxes), torch.cat(matched)
            lab = torch.cat(labels)
            fg = lab < self.num_classes
            target = torch.zeros_like(flat_boxes)
            if fg.any():
                target[fg] = encode_deltas(flat_boxes[fg], flat_gt[fg], stage_weights(stage))
            outputs.append({"logits": logits, "deltas": deltas, "labels": lab, "target_deltas": target})
        return outputs

    @torch.no_grad()
    def inference(self, features, levels, proposals, image_size) -> list[tuple[torch.Tensor, ...]]:
        """(boxes n x 4, scores n, classes n, 0-based) per image after the cascade and per-class NMS."""
        boxes = [p[0] for p in proposals]
        objectness = [p[1] for p in proposals]
        counts = [len(b) for b in boxes]
        stage_probs = []
        for stage in range(self.num_stages):
            logits, deltas = self.run_stage(stage, features, levels, boxes)
            stage_probs.append(self.class_probs(logits))
            boxes = self._next_boxes(stage, deltas, boxes, image_size)
        probs = [combine_scores(list(p), o) for p, o in
                 zip(zip(*[s.split(counts) for s in stage_probs]), objectness)]
        return [self._select(b, p) for b, p in zip(boxes, probs)]

    def _select(self, boxes: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Class scores above score_thresh, per-class NMS, the best max_detections."""
        scores = probs[:, :-1]
        idx = torch.nonzero(scores > self.score_thresh)
        box_idx, classes = idx[:, 0], idx[:, 1]
        det_boxes, det_scores = boxes[box_idx], scores[box_idx, classes]
        keep = batched_nms(det_boxes, det_scores, classes, self.nms_thresh)[:self.max_detections]
        return det_boxes[keep], det_scores[keep], classes[keep]
