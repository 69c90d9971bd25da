"""CenterNet2 detections (input pixels) -> the per-class result rows of the original image."""
from __future__ import annotations

import numpy as np
import torch

from utils.image import transform_preds

from .boxes import batched_nms


def to_class_rows(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, center, scale,
                  input_size, num_classes: int, image_scale: float = 1.0) -> dict[int, np.ndarray]:
    """{class 1..C: float32 n x 5 [x1, y1, x2, y2, score]} in original image pixels.

    input_size: (width, height) of the network input the boxes live in; image_scale: the test scale.
    """
    b = boxes.detach().float().cpu().numpy().reshape(-1, 4)
    sc = scores.detach().float().cpu().numpy().reshape(-1)
    cl = classes.detach().cpu().numpy().reshape(-1)
    size = [int(input_size[0]), int(input_size[1])]
    corners = np.concatenate([transform_preds(b[:, 0:2], center, scale, size)[:, :2],
                              transform_preds(b[:, 2:4], center, scale, size)[:, :2]], axis=1) / image_scale
    out = {}
    for j in range(num_classes):
        sel = cl == j
        out[j + 1] = np.concatenate([corners[sel], sc[sel, None]], axis=1).astype(np.float32).reshape(-1, 5)
    return out


def merge_flipped(dets: tuple[torch.Tensor, ...], flipped: tuple[torch.Tensor, ...], width: int,
                  nms_thresh: float, max_detections: int) -> tuple[torch.Tensor, ...]:
    """--flip_test: detections of the mirrored input mapped back, pooled with the plain ones, per-class NMS.

    Box-head outputs do not average like heat maps, so the two views' boxes are pooled and the duplicates
    removed, as detectron2's test-time augmentation does for R-CNN heads.
    """
    fb, fs, fc = flipped
    # in the continuous pixel frame a mirror maps x to width - x, and the left edge becomes the right one
    unflipped = torch.stack([width - fb[:, 2], fb[:, 1], width - fb[:, 0], fb[:, 3]], dim=1)
    boxes = torch.cat([dets[0], unflipped])
    scores = torch.cat([dets[1], fs])
    classes = torch.cat([dets[2], fc])
    keep = batched_nms(boxes, scores, classes, nms_thresh)[:max_detections]
    return boxes[keep], scores[keep], classes[keep]
