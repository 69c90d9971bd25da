"""The original's `voc_eval` module (VOC xml parsing, AP, per-class evaluation), now the library's evaluation.voc.

Kept so that `from voc_eval import voc_eval` works from src/tools as before; it has no command line.
"""
from __future__ import annotations

import _init_paths  # noqa: F401
from evaluation.voc import eval_class, load_annotations, parse_rec, voc_ap, voc_eval

__all__ = ["eval_class", "load_annotations", "parse_rec", "voc_ap", "voc_eval"]
