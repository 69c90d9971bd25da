"""Convert KITTI object labels to the COCO-style json the ddd task reads (with the 3D fields).

The conversion is datasets.kitti_to_coco in the library; this is its command line.

Usage: python src/tools/convert_kitti_to_coco.py [--data_dir data/kitti] [--splits 3dop subcnn]
                                                  [--sets train val]
"""
from __future__ import annotations

import argparse

import _init_paths  # noqa: F401
from datasets.kitti_to_coco import (  # noqa: F401  (the names this script always offered)
    CALIB_TYPE,
    CAT_IDS,
    CAT_INFO,
    CATS,
    DEFAULT_DATA_DIR,
    SPLITS,
    convert,
    convert_set,
    label_to_ann,
    output_path,
    read_clib,
)
from utils.errors import run_cli


def main(argv: list[str] | None = None) -> list[str]:
    """Command-line entry."""
    p = argparse.ArgumentParser(description="KITTI labels -> COCO-style json with 3D fields")
    p.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="KITTI root (training/, ImageSets_<split>/)")
    p.add_argument("--splits", nargs="+", default=SPLITS, choices=SPLITS, help="frame splits to convert")
    p.add_argument("--sets", nargs="+", default=["train", "val"], choices=list(CALIB_TYPE),
                   help="sets of each split")
    args = p.parse_args(argv)
    return convert(args.data_dir, args.splits, args.sets)


if __name__ == "__main__":
    run_cli(main)
