"""Convert a Pascal VOC folder into COCO jsons for --dataset custom.

Usage: python src/tools/convert_voc_to_coco.py ROOT --out DIR [--classes a,b,c] [--splits train val]
Reads ROOT/JPEGImages, ROOT/Annotations/*.xml and ROOT/ImageSets/Main/<split>.txt; writes DIR/<split>.json
with file_names relative to ROOT ('difficult' objects kept as ignored crowd boxes) and prints the counts.
The conversion is datasets.voc_to_coco in the library.
"""
from __future__ import annotations

import argparse

import _init_paths  # noqa: F401
from datasets.coco_json import parse_class_list
from datasets.voc_to_coco import convert
from utils.errors import run_cli


def main(argv: list[str] | None = None) -> list[str]:
    """Command-line entry; returns the json paths written."""
    p = argparse.ArgumentParser(description="Pascal VOC (xml) -> COCO jsons for --dataset custom")
    p.add_argument("root", help="VOC root holding JPEGImages/, Annotations/, ImageSets/Main/")
    p.add_argument("--out", required=True, help="folder for <split>.json")
    p.add_argument("--classes", default="", help="comma-separated class names in this order "
                                                 "(default: every name found, sorted)")
    p.add_argument("--splits", nargs="+", default=["train", "val"], help="ImageSets/Main/<split>.txt to convert")
    args = p.parse_args(argv)
    return convert(args.root, args.out, tuple(args.splits), parse_class_list(args.classes))


if __name__ == "__main__":
    run_cli(main)
