"""synth_kitti: the KITTI dataset class on the generated data/synth_kitti (datasets/synthetic/kitti.py)."""
from __future__ import annotations

import os

from datasets.dataset.kitti import KITTI


class SynthKITTI(KITTI):
    """KITTI layout under data/synth_kitti, images read from training/image_2, small input for CPU runs."""

    default_resolution = [128, 384]
    dataset_name = "synth_kitti"
    test_split_labelled = True
    missing_fix = ("generate it with `python src/tools/gen_synthetic.py --kind kitti` "
                   "(or `make data`)")

    def _paths(self, opt, split: str) -> tuple[str, str]:
        img_dir = os.path.join(self.data_dir, "training", "image_2")
        ann_dir = os.path.join(self.data_dir, "annotations")
        kitti_split = opt.kitti_split if opt.kitti_split in ("3dop", "subcnn") else "3dop"
        if opt.trainval:
            # there is no unlabeled test set: --trainval trains on train+val and tests on val
            if split == "trainval":
                return img_dir, os.path.join(ann_dir, "kitti_trainval.json")
            return img_dir, os.path.join(ann_dir, f"kitti_{kitti_split}_val.json")
        if opt.kitti_split not in ("3dop", "subcnn"):
            return super()._paths(opt, split)
        return img_dir, os.path.join(ann_dir, f"kitti_{kitti_split}_{split}.json")
