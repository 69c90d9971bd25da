"""CenterNet2's federated loss: each step's classification covers the classes present plus sampled ones."""
from __future__ import annotations

import numpy as np
import torch

PRIOR_PROB = 0.01  # --sigmoid_ce: the class logits of a fresh model start at this probability


def frequency_weights(image_counts: np.ndarray | torch.Tensor, power: float) -> torch.Tensor:
    """Sampling weight per class: its number of training images to the power `power` (CenterNet2: 0.5)."""
    return torch.as_tensor(np.asarray(image_counts), dtype=torch.float64).clamp(min=0).pow(power).float()


def sample_classes(labels: torch.Tensor, num_classes: int, num_sample: int, weights: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean mask over the classes: those in `labels` (background num_classes ignored), plus classes
    drawn without replacement with probability proportional to `weights` up to `num_sample` in all."""
    mask = torch.zeros(num_classes, dtype=torch.bool, device=labels.device)
    mask[labels[labels < num_classes]] = True
    missing = num_sample - int(mask.sum())
    if missing <= 0:
        return mask
    prob = weights.to(device=labels.device, dtype=torch.float32).clone()
    prob[mask] = 0
    # classes without a training image have no weight; multinomial cannot draw more than the weighted ones
    missing = min(missing, int((prob > 0).sum()))
    if missing > 0:
        drawn = torch.multinomial(prob.cpu(), missing, replacement=False, generator=generator)
        mask[drawn.to(labels.device)] = True
    return mask
