"""Command line of the KITTI object evaluation; the evaluator itself is the library's `evaluation.kitti`.

Usage: python src/tools/kitti_eval/evaluate.py <gt_label_dir> <result_dir> [--split-file ids.txt] [--r40]
"""
from __future__ import annotations

import os
import sys

# run as a script (or imported from src/tools) the library folder may not be on the path yet
_LIB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lib")
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

from evaluation.kitti.evaluate import evaluate, main  # noqa: E402
from utils.errors import run_cli  # noqa: E402

__all__ = ["evaluate", "main"]

if __name__ == "__main__":
    run_cli(main)
