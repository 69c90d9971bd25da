"""YOLO layout (images/<split>/, labels/<split>/<stem>.txt with 'class cx cy w h', normalised) -> COCO jsons.

Class names come from ROOT/classes.txt (one per line) or the `names` of ROOT/data.yaml. Image sizes are
read from the files; an image without a label file has no objects. file_names are relative to ROOT.
"""
from __future__ import annotations

import ast
import os
import re

from datasets.coco_json import IMAGE_EXTS, CocoSplit, require_dir, write_splits
from datasets.dataset.coco_audit import image_size
from utils.errors import UserError


def _yaml_names(path: str) -> list[str] | None:
    """`names` of a YOLO data.yaml: an inline list, a block list, or an index -> name mapping.

    A small reader for this one key, so the converter needs no YAML package.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", line)
        if not m:
            continue
        inline = m.group(1).split("#")[0].strip()
        if inline.startswith("[") or inline.startswith("{"):
            try:
                value = ast.literal_eval(inline)
            except (ValueError, SyntaxError):
                value = [v.strip().strip("'\"") for v in inline.strip("[]").split(",") if v.strip()]
            return [str(v) for v in value] if isinstance(value, list) else [str(value[k]) for k in sorted(value)]
        names: dict[int, str] = {}
        for item in lines[i + 1:]:
            if item.strip() and not item.startswith((" ", "\t", "-")):
                break  # the next top-level key
            entry = item.split("#")[0].strip()
            if entry.startswith("-"):
                names[len(names)] = entry[1:].strip().strip("'\"")
            elif ":" in entry:
                key, value = entry.split(":", 1)
                names[int(key.strip())] = value.strip().strip("'\"")
        return [names[k] for k in sorted(names)]
    return None


def class_names(root: str) -> list[str]:
    """Class names of a YOLO root, from classes.txt or data.yaml."""
    txt = os.path.join(root, "classes.txt")
    if os.path.isfile(txt):
        with open(txt, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if names:
            return names
    for yaml_name in ("data.yaml", "data.yml"):
        path = os.path.join(root, yaml_name)
        if os.path.isfile(path):
            names = _yaml_names(path)
            if names:
                return names
            raise UserError(f"{path}: no 'names' list; add the class names (names: [a, b, ...])")
    raise UserError(f"{root}: no classes.txt or data.yaml; write the class names one per line into "
                    f"{txt} (class 0 first)")


def read_labels(path: str, num_classes: int) -> list[tuple[int, float, float, float, float]]:
    """(class, cx, cy, w, h) rows of one label file; a UserError names a bad line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) != 5:
                    raise ValueError
                cls, values = int(parts[0]), [float(v) for v in parts[1:]]
            except ValueError:
                raise UserError(f"{path}:{n}: expected 'class cx cy w h' (normalised), got {line.strip()!r}; "
                                "polygon or keypoint labels are not supported") from None
            if not 0 <= cls < num_classes:
                raise UserError(f"{path}:{n}: class {cls} but only {num_classes} class names (0..{num_classes - 1}); "
                                "fix the label or the class list")
            rows.append((cls, *values))
    return rows


def convert(root: str, out_dir: str, splits: tuple[str, ...] = ("train", "val")) -> list[str]:
    """Write <out_dir>/<split>.json for each split of the YOLO root; returns the paths written."""
    names = class_names(root)
    out = {}
    for split in splits:
        img_dir = os.path.join(root, "images", split)
        require_dir(img_dir, f"a YOLO root holds images/{split}/")
        label_dir = os.path.join(root, "labels", split)
        coco = CocoSplit(names)
        for file in sorted(os.listdir(img_dir)):
            stem, ext = os.path.splitext(file)
            if ext.lower() not in IMAGE_EXTS:
                continue
            size = image_size(os.path.join(img_dir, file))
            if size is None:
                raise UserError(f"{os.path.join(img_dir, file)}: cannot be read as an image; restore or remove it")
            width, height = size
            img_id = coco.add_image(f"images/{split}/{file}", width, height)
            label = os.path.join(label_dir, stem + ".txt")
            if not os.path.isfile(label):
                continue
            for cls, cx, cy, w, h in read_labels(label, len(names)):
                coco.add_box(img_id, cls, (cx - w / 2) * width, (cy - h / 2) * height,
                             (cx + w / 2) * width, (cy + h / 2) * height)
        out[split] = coco
    return write_splits(out, out_dir)
