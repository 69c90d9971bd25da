"""CenterNet2 inference as one graph of fixed shapes, for ONNX export: images in, the best detections out.

The PyTorch detector keeps a variable number of proposals and detections per image (score thresholds,
NMS). An exported graph cannot select by value without data-dependent shapes, so here the selections
become masks and fixed top-K's, and NMS is the registered operator `centernet2::nms_mask` (a keep mask
of the scores' shape), which becomes ONNX NonMaxSuppression + ScatterND in the file:
- proposals: the top `pre_nms_test` locations of each level, NMS as a mask, the best `num_proposals_test`
  (suppressed or below-threshold slots get objectness 0, so their detections score 0);
- RoI heads: every level pools every box (roi_align_batched) and each box keeps its own level's result;
- detections: class-wise NMS as a mask over (class, box) scores, the best `max_detections` pairs.
Outputs: boxes B x D x 4 (input pixels), scores B x D, classes B x D (0-based); unused rows: box 0, score 0,
class -1.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from deploy.network_io import DETECTION_OUTPUTS
from models.centernet2.boxes import batched_nms, clip_boxes, decode_deltas
from models.centernet2.proposals import ltrb_to_boxes
from models.centernet2.roi_align import multilevel_roi_align_batched
from models.centernet2.roi_heads import POOLER_SIZE, combine_scores, stage_weights
from models.centernet2.targets import level_grids

OUTPUT_NAMES = DETECTION_OUTPUTS
_ONNX_FLOAT, _ONNX_BOOL = 1, 9  # TensorProto data types


@torch.library.custom_op("centernet2::nms_mask", mutates_args=())
def nms_mask(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float, score_thresh: float) -> torch.Tensor:
    """B x C x n mask of the (class, box) pairs that class-wise NMS keeps among scores above score_thresh.

    boxes B x n x 4 (x1, y1, x2, y2) are shared by the C classes; as ONNX NonMaxSuppression does.
    """
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for b in range(scores.shape[0]):
        cls, box = torch.nonzero(scores[b] > score_thresh, as_tuple=True)
        keep = batched_nms(boxes[b, box].float(), scores[b, cls, box].float(), cls, iou_thresh)
        mask[b, cls[keep], box[keep]] = True
    return mask


@nms_mask.register_fake
def _nms_mask_fake(boxes, scores, iou_thresh, score_thresh):
    return torch.empty(scores.shape, dtype=torch.bool, device=scores.device)


def nms_mask_translation(opset: int):
    """onnxscript function writing centernet2::nms_mask as NonMaxSuppression + ScatterND."""
    import onnxscript

    op = getattr(onnxscript, f"opset{opset}")

    def nms_mask_onnx(boxes, scores, iou_thresh: float, score_thresh: float):
        boxes32, scores32 = op.Cast(boxes, to=_ONNX_FLOAT), op.Cast(scores, to=_ONNX_FLOAT)
        every_box = op.Shape(boxes, start=1, end=2)  # no cap on the boxes kept per class
        selected = op.NonMaxSuppression(boxes32, scores32, every_box, op.Constant(value_floats=[iou_thresh]),
                                        op.Constant(value_floats=[score_thresh]))  # K x (batch, class, box)
        zeros = op.Expand(op.Constant(value_float=0.0), op.Shape(scores))
        ones = op.Expand(op.Constant(value_float=1.0), op.Shape(selected, start=0, end=1))
        return op.Cast(op.ScatterND(zeros, selected, ones), to=_ONNX_BOOL)

    return nms_mask_onnx


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x B x n x k, idx B x m -> B x m x k."""
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))


class CenterNet2Graph(nn.Module):
    """A configured CenterNet2 network (eval mode) as images -> (boxes, scores, classes) of fixed shapes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def proposals(self, heat: list[torch.Tensor], reg: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(boxes B x P x 4, objectness B x P): decode_proposals' choice, with 0 objectness on unused slots."""
        s = self.model.settings
        grids = level_grids([(h.shape[2], h.shape[3]) for h in heat], s.strides, heat[0].device)
        boxes_l, scores_l = [], []
        for h, r, grid, stride in zip(heat, reg, grids, s.strides):
            prob = h.flatten(1).sigmoid()
            top, idx = prob.topk(torch.sym_min(s.pre_nms_test, prob.shape[1]), dim=1)
            dist = _gather_rows(r.flatten(2).transpose(1, 2), idx) * stride
            boxes_l.append(ltrb_to_boxes(grid[idx], dist))
            scores_l.append(top.sqrt())
        boxes, scores = torch.cat(boxes_l, dim=1), torch.cat(scores_l, dim=1)
        # the objectness is sqrt(probability): the probability's threshold on that scale
        thresh = math.sqrt(s.score_thresh)
        if s.nms_thresh > 0:
            keep = nms_mask(boxes, scores[:, None], s.nms_thresh, thresh)[:, 0]
        else:
            keep = scores > thresh
        ranked, idx = torch.where(keep, scores, -1.0).topk(torch.sym_min(s.post_nms_test, scores.shape[1]), dim=1)
        return _gather_rows(boxes, idx), ranked.clamp(min=0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(boxes B x D x 4, scores B x D, classes B x D) of the best D = max_detections detections."""
        model, heads = self.model, self.model.roi_heads
        feats = model.features(images)
        heat, reg = model.first_stage(feats)
        boxes, objectness = self.proposals(heat, reg)
        batch, num = boxes.shape[0], boxes.shape[1]
        height, width = images.shape[2], images.shape[3]
        stage_probs = []
        for stage in range(heads.num_stages):
            pooled = multilevel_roi_align_batched(feats, boxes, model.settings.levels, POOLER_SIZE,
                                                  heads.sampling_ratio)
            logits, deltas = heads.box_predictor[stage](heads.box_head[stage](pooled))
            stage_probs.append(heads.class_probs(logits))
            refined = decode_deltas(deltas, boxes.reshape(-1, 4), stage_weights(stage))
            boxes = clip_boxes(refined, height, width).reshape(batch, num, 4)
        probs = combine_scores(stage_probs, objectness.reshape(-1))[:, :-1]
        scores = probs.reshape(batch, num, -1).transpose(1, 2)  # B x C x n
        keep = nms_mask(boxes, scores, heads.nms_thresh, heads.score_thresh)
        kept = torch.where(keep, scores, 0.0).flatten(1)
        top, idx = kept.topk(torch.sym_min(heads.max_detections, kept.shape[1]), dim=1)
        # (class, box) of each flattened pair, looked up rather than computed from a size that may be symbolic
        pair_class = torch.arange(scores.shape[1], device=idx.device)[:, None].expand(-1, num).flatten()
        pair_box = torch.arange(num, device=idx.device)[None, :].expand(scores.shape[1], -1).flatten()
        # unused rows are all alike (box 0, class -1), so the output does not depend on how top-K breaks ties
        used = top > 0
        det_boxes = torch.where(used[..., None], _gather_rows(boxes, pair_box[idx]), 0.0)
        return det_boxes, top, torch.where(used, pair_class[idx], -1)
