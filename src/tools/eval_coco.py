"""Evaluate a COCO-format detection results.json (bbox) against COCO val2017 or another annotation file."""
from __future__ import annotations

import argparse
import os

import pycocotools.coco as coco

import _init_paths  # noqa: F401
from datasets.dataset.coco import run_coco_bbox_eval
from utils.errors import UserError, run_cli

DEFAULT_ANNOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "coco", "annotations",
                             "instances_val2017.json")


def main(argv: list[str] | None = None):
    """Print the 12 COCO bbox figures of a results file."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("results", help="results.json written by test.py (list of COCO detection records)")
    p.add_argument("--annot", default=DEFAULT_ANNOT, help="ground-truth annotation json (default COCO val2017)")
    args = p.parse_args(argv)
    for path, what in ((args.annot, "annotation file"), (args.results, "results file")):
        if not os.path.isfile(path):
            raise UserError(f"{os.path.normpath(path)}: {what} not found; pass an existing file"
                            + (" with --annot, or download COCO (see README.md)" if path is args.annot else ""))
    return run_coco_bbox_eval(coco.COCO(args.annot), args.results)


if __name__ == "__main__":
    run_cli(main)
