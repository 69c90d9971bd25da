"""Synthetic people keypoint set (COCO person_keypoints layout) under data/synth_hp (no download needed)."""
from __future__ import annotations

import numpy as np

from datasets.dataset.coco_hp import COCOHP
from datasets.dataset.common import synthetic_paths
from datasets.synthetic.people import split_paths


class SynthHP(COCOHP):
    """COCOHP on the generated stick figures: small images (192-320 px) and a 256 x 256 input for CPU training."""

    default_resolution = [256, 256]
    # BGR channel statistics of a generated set (seed 0); fixed so that every split normalises alike
    mean = np.array([0.453, 0.460, 0.458], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.185, 0.188, 0.187], dtype=np.float32).reshape(1, 1, 3)
    missing_fix = "generate it with `python src/tools/gen_synthetic.py --kind hp --out data/synth_hp`"
    test_split_labelled = True  # 'test' reads the labelled val split

    def _paths(self, opt, split: str) -> tuple[str, str, str]:
        return synthetic_paths(opt, "synth_hp", split, split_paths)

    def _title(self) -> str:
        return "synth_hp"
