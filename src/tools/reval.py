"""Re-evaluate saved Pascal VOC 2007 test detections (results.json from test.py) with the VOC07 11-point AP.

The evaluation is the library's `evaluation.voc`; this script is its command line. A detections pickle
(the original's other input) is read only if it holds lists, numbers and numpy arrays.
"""
from __future__ import annotations

import argparse
import os

import _init_paths  # noqa: F401
from evaluation.voc import CLASSES, apply_nms, evaluate_detections, load_detections, nms
from utils.errors import UserError, run_cli

__all__ = ["CLASSES", "DEFAULT_DEVKIT", "apply_nms", "evaluate_detections", "main", "nms", "parse_args"]

DEFAULT_DEVKIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "voc", "VOCdevkit")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the original's, plus --devkit)."""
    p = argparse.ArgumentParser(description="Re-evaluate results")
    p.add_argument("detection_file", type=str)
    p.add_argument("--output_dir", help="results directory (per-class precision/recall pickles)", type=str)
    p.add_argument("--imdb", dest="imdb_name", help="dataset to re-evaluate (only voc_2007_test)",
                   default="voc_2007_test", type=str)
    p.add_argument("--matlab", dest="matlab_eval", help="use matlab for evaluation (not available)",
                   action="store_true")
    p.add_argument("--comp", dest="comp_mode", help="competition mode: no salt, keep the class files",
                   action="store_true")
    p.add_argument("--nms", dest="apply_nms", help="apply nms 0.3", action="store_true")
    p.add_argument("--devkit", default=DEFAULT_DEVKIT, help="VOCdevkit folder holding VOC2007/")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    """Load the detections (json, or a data-only pickle) and evaluate them."""
    args = parse_args(argv)
    if args.matlab_eval:
        raise UserError("--matlab: the MATLAB devkit evaluation is not available; drop --matlab")
    dets = load_detections(args.detection_file)
    if args.apply_nms:
        print("Applying NMS to all detections")
        dets = apply_nms(dets, 0.3)
    print("Evaluating detections")
    return evaluate_detections(dets, args.devkit, args.comp_mode, args.output_dir)


if __name__ == "__main__":
    run_cli(main)
