"""Convert a YOLO folder into COCO jsons for --dataset custom.

Usage: python src/tools/convert_yolo_to_coco.py ROOT --out DIR [--splits train val]
Reads ROOT/images/<split>/, ROOT/labels/<split>/*.txt ('class cx cy w h', normalised) and the class names
from ROOT/classes.txt or ROOT/data.yaml; writes DIR/<split>.json with file_names relative to ROOT and
prints the counts. The conversion is datasets.yolo_to_coco in the library.
"""
from __future__ import annotations

import argparse

import _init_paths  # noqa: F401
from datasets.yolo_to_coco import convert
from utils.errors import run_cli


def main(argv: list[str] | None = None) -> list[str]:
    """Command-line entry; returns the json paths written."""
    p = argparse.ArgumentParser(description="YOLO (txt labels) -> COCO jsons for --dataset custom")
    p.add_argument("root", help="YOLO root holding images/<split>/, labels/<split>/ and classes.txt or data.yaml")
    p.add_argument("--out", required=True, help="folder for <split>.json")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="splits to convert")
    args = p.parse_args(argv)
    return convert(args.root, args.out, tuple(args.splits))


if __name__ == "__main__":
    run_cli(main)
