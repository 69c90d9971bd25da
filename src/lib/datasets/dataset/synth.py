"""Synthetic shapes detection set (6 classes) in COCO json layout under data/synth (no download needed)."""
from __future__ import annotations

import numpy as np

from datasets.dataset.coco import COCO
from datasets.dataset.common import synthetic_paths
from datasets.synthetic.shapes import CLASS_NAMES, split_paths


class Synth(COCO):
    """COCO with the generated shapes: small images (256-320 px) and a 256 x 256 input for fast CPU training."""

    num_classes = len(CLASS_NAMES)
    default_resolution = [256, 256]
    # BGR channel statistics of a generated set (seed 0); fixed so that every split normalises alike
    mean = np.array([0.457, 0.465, 0.478], dtype=np.float32).reshape(1, 1, 3)
    std = np.array([0.192, 0.186, 0.193], dtype=np.float32).reshape(1, 1, 3)
    max_objs_default = 32
    class_name = ["__background__"] + CLASS_NAMES
    _valid_ids = list(range(1, len(CLASS_NAMES) + 1))
    missing_fix = ("generate it with `make data` or "
                   "`python src/tools/gen_synthetic.py --kind det --out data/synth`")
    test_split_labelled = True  # 'test' reads the labelled val split
    extreme_points_fix = "regenerate it with `make data` (the generated annotations carry extreme points)"

    def _paths(self, opt, split: str) -> tuple[str, str, str]:
        # the json carries extreme points too, so exdet reads the same file
        return synthetic_paths(opt, "synth", split, split_paths)

    def _title(self) -> str:
        return "synth"
