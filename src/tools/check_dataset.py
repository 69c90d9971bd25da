"""Check a COCO json and its images before training: every problem kind counted, in one table.

Usage: python src/tools/check_dataset.py ANN.json --img_dir DIR [--no_images]
Errors: malformed records, duplicate ids, unknown image or category ids, boxes with zero or negative size
or outside the image, keypoint counts that differ from the category, missing or unreadable image files,
recorded width/height that differ from the file. Images without annotations are counted, not errors.
Exit status: 0 clean, 1 errors found, 2 the file cannot be read. main.py and test.py run the json part
(no image decoding) whenever --dataset custom loads a file.
"""
from __future__ import annotations

import argparse
import sys

import _init_paths  # noqa: F401
from datasets.dataset.coco_audit import check_file, errors, summary_table
from utils.errors import run_cli


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; returns the exit status (1 when errors were found)."""
    p = argparse.ArgumentParser(description="validate a COCO annotation json and its image files")
    p.add_argument("ann", help="COCO-layout json")
    p.add_argument("--img_dir", default="", help="folder the file_names are relative to (required unless "
                                                 "--no_images)")
    p.add_argument("--no_images", action="store_true", help="check the json only (fast, no image decoding)")
    args = p.parse_args(argv)
    if not args.no_images and not args.img_dir:
        p.error("--img_dir is required (or pass --no_images)")
    data, findings = check_file(args.ann, None if args.no_images else args.img_dir)
    print(f"{args.ann}: {len(data.get('images') or [])} images, {len(data.get('annotations') or [])} "
          f"annotations, {len(data.get('categories') or [])} categories")
    print(summary_table(findings))
    found = errors(findings)
    if found:
        print(f"{sum(f.count for f in found)} errors of {len(found)} kinds")
        return 1
    print("no errors")
    return 0


if __name__ == "__main__":
    run_cli(lambda: sys.exit(main()))
