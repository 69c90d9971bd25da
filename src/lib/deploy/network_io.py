"""What an exported network takes and gives: one image batch in, the last stack's heads out, by name."""
from __future__ import annotations

import torch
from torch import nn

INPUT_NAME = "input"
# the outputs of a graph that ends in final detections (centernet2): one row per detection slot
DETECTION_OUTPUTS = ("boxes", "scores", "classes")


class HeadsOutput(nn.Module):
    """Wrap a CenterNet network so its forward returns the last stack's heads as a tuple in `heads` order."""

    def __init__(self, model: nn.Module, heads: list[str]) -> None:
        super().__init__()
        self.model = model
        self.heads = list(heads)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Network outputs of the last stack (hourglass has two; the detectors use the last one)."""
        out = self.model(images)[-1]
        return tuple(out[h] for h in self.heads)
