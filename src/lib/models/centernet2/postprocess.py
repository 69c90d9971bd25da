"""CenterNet2 detections (input pixels) -> the per-class result rows of the original image."""
from __future__ import annotations

import numpy as np
import torch

from utils.image import transform_preds


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
