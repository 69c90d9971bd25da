"""Evaluate a COCO keypoint results.json (keypoints OKS, then bbox) against COCO val2017 or another annotation file."""
from __future__ import annotations

import argparse
import os

import _init_paths  # noqa: F401
from datasets.dataset.coco_hp import coco_eval_hp
from datasets.dataset.common import load_coco_api
from utils.errors import UserError, run_cli

DEFAULT_ANNOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "coco", "annotations",
                             "person_keypoints_val2017.json")


def main(argv: list[str] | None = None):
    """Print the 10 keypoint and 12 bbox COCO figures of a results file; return the keypoint figures."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("results", help="results.json written by test.py multi_pose (COCO keypoint records)")
    p.add_argument("--annot", default=DEFAULT_ANNOT,
                   help="ground-truth person_keypoints json (default COCO val2017; "
                        "data/synth_hp/annotations/person_keypoints_val.json for the synthetic set)")
    args = p.parse_args(argv)
    for path, what in ((args.annot, "annotation file"), (args.results, "results file")):
        if not os.path.isfile(path):
            raise UserError(f"{os.path.normpath(path)}: {what} not found; pass an existing file"
                            + (" with --annot, or download COCO (see README.md)" if path is args.annot else ""))
    return coco_eval_hp(load_coco_api(args.annot), args.results)


if __name__ == "__main__":
    run_cli(main)
