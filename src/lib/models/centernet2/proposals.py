"""CenterNet2's first stage: a head shared by the FPN levels and the decoding of its maps into proposals."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import nms
from .targets import level_grids

PRIOR_PROB = 0.01
BOX_BIAS = 8.0  # initial box distance in strides


class Scale(nn.Module):
    """A learnt scalar factor (one per FPN level: the levels share the head's weights)."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([value]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x times the factor."""
        return x * self.scale


class ProposalHead(nn.Module):
    """Box tower (conv + GroupNorm + ReLU) -> agnostic heat-map logits and box distances (strides, >= 0)."""

    def __init__(self, channels: int = 256, num_levels: int = 5, num_convs: int = 4) -> None:
        super().__init__()
        tower: list[nn.Module] = []
        for _ in range(num_convs):
            tower += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(32, channels), nn.ReLU()]
        self.bbox_tower = nn.Sequential(*tower)
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.agn_hm = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.ModuleList([Scale() for _ in range(num_levels)])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0)
        nn.init.constant_(self.bbox_pred.bias, BOX_BIAS)
        nn.init.constant_(self.agn_hm.bias, -math.log((1 - PRIOR_PROB) / PRIOR_PROB))

    def forward(self, features: list[torch.Tensor], level_ids: list[int]):
        """(heat-map logits, box distances) per level; level_ids pick each level's scale."""
        heat, reg = [], []
        for feature, level in zip(features, level_ids):
            x = self.bbox_tower(feature)
            heat.append(self.agn_hm(x))
            reg.append(F.relu(self.scales[level](self.bbox_pred(x))))
        return heat, reg


def ltrb_to_boxes(points: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """... x 4 boxes (x1, y1, x2, y2) from locations (... x 2) and their left/top/right/bottom distances."""
    x1, y1 = points[..., 0] - dist[..., 0], points[..., 1] - dist[..., 1]
    # at least 0.01 wide and high: the RoI heads need positive sizes
    x2 = torch.max(points[..., 0] + dist[..., 2], x1 + 0.01)
    y2 = torch.max(points[..., 1] + dist[..., 3], y1 + 0.01)
    return torch.stack([x1, y1, x2, y2], dim=-1)


@torch.no_grad()
def decode_proposals(heat: list[torch.Tensor], reg: list[torch.Tensor], strides: list[int], score_thresh: float,
                     pre_nms: int, post_nms: int, nms_thresh: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(boxes n x 4 in input pixels, objectness n) per image: top `pre_nms` per level, NMS, best `post_nms`.

    The objectness is sqrt(sigmoid(logit)), CenterNet2's proposal score.
    """
    shapes = [(h.shape[2], h.shape[3]) for h in heat]
    grids = level_grids(shapes, strides, heat[0].device)
    out = []
    for i in range(heat[0].shape[0]):
        boxes_l, scores_l = [], []
        for h, r, grid, stride in zip(heat, reg, grids, strides):
            prob = h[i, 0].reshape(-1).sigmoid()
            dist = r[i].reshape(4, -1).t() * stride
            cand = torch.nonzero(prob > score_thresh).squeeze(1)
            if cand.numel() > pre_nms:
                cand = cand[prob[cand].topk(pre_nms).indices]
            boxes_l.append(ltrb_to_boxes(grid[cand], dist[cand]))
            scores_l.append(prob[cand].sqrt())
        boxes, scores = torch.cat(boxes_l), torch.cat(scores_l)
        if nms_thresh > 0:
            keep = nms(boxes, scores, nms_thresh)
            boxes, scores = boxes[keep], scores[keep]
        if scores.numel() > post_nms:
            # ties at the cut are kept, as CenterNet2 does
            thresh = torch.kthvalue(scores.float().cpu(), scores.numel() - post_nms + 1).values.item()
            keep = scores >= thresh
            boxes, scores = boxes[keep], scores[keep]
        out.append((boxes, scores))
    return out
