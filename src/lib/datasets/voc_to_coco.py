"""Pascal VOC layout (JPEGImages/, Annotations/*.xml, ImageSets/Main/<split>.txt) -> COCO jsons.

file_names are relative to the VOC root, so one --custom_dataset_img_path serves every split. VOC
corners are 1-based and inclusive: a box xmin..xmax covers [xmin - 1, xmax) in COCO's 0-based pixels.
'difficult' objects are kept as crowd boxes, which COCOeval ignores.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from datasets.coco_json import IMAGE_EXTS, CocoSplit, require_dir, write_splits
from datasets.dataset.coco_audit import image_size
from utils.errors import UserError, warn


def split_ids(root: str, split: str) -> list[str]:
    """Image ids listed in ROOT/ImageSets/Main/<split>.txt (first word of each non-empty line)."""
    path = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file; a VOC root lists the images of each split in "
                        f"ImageSets/Main/{split}.txt (one id per line)")
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def _number(node, tag: str, path: str) -> float:
    text = node.findtext(tag)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise UserError(f"{path}: <{tag}> {text!r} is not a number; fix the annotation") from None


def parse_xml(path: str) -> dict:
    """{'filename', 'width', 'height', 'objects': [(name, difficult, xmin, ymin, xmax, ymax)]} of one xml."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; every id of the split needs Annotations/<id>.xml") from None
    except ET.ParseError as e:
        raise UserError(f"{path}: not valid xml ({e}); fix or remove the annotation") from None
    size = root.find("size")
    width = int(float(size.findtext("width") or 0)) if size is not None else 0
    height = int(float(size.findtext("height") or 0)) if size is not None else 0
    objects = []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise UserError(f"{path}: an <object> without <name> or <bndbox>; fix the annotation")
        difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "")
        corners = tuple(_number(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((name, difficult, *corners))
    return {"filename": (root.findtext("filename") or "").strip(), "width": width, "height": height,
            "objects": objects}


def _image_file(root: str, image_id: str, recorded: str) -> str:
    """Path of the image relative to ROOT: the xml's <filename>, else JPEGImages/<id>.<ext>."""
    candidates = [recorded] if recorded else []
    candidates += [image_id + ext for ext in IMAGE_EXTS]
    for name in candidates:
        if os.path.isfile(os.path.join(root, "JPEGImages", name)):
            return f"JPEGImages/{name}"
    raise UserError(f"{os.path.join(root, 'JPEGImages', recorded or image_id + '.jpg')}: no such image "
                    f"(listed as {image_id!r}); restore it or remove the id from ImageSets/Main")


def convert(root: str, out_dir: str, splits: tuple[str, ...] = ("train", "val"),
            classes: list[str] | None = None) -> list[str]:
    """Write <out_dir>/<split>.json for each split of the VOC root; returns the paths written."""
    for sub in ("JPEGImages", "Annotations"):
        require_dir(os.path.join(root, sub), f"a VOC root holds {sub}/")
    parsed = {s: [(i, parse_xml(os.path.join(root, "Annotations", f"{i}.xml"))) for i in split_ids(root, s)]
              for s in splits}
    if not classes:
        classes = sorted({o[0] for items in parsed.values() for _, x in items for o in x["objects"]})
    index = {n: i for i, n in enumerate(classes)}
    skipped: dict[str, int] = {}
    out = {}
    for split, items in parsed.items():
        coco = CocoSplit(list(classes))
        for image_id, xml in items:
            file_name = _image_file(root, image_id, xml["filename"])
            width, height = xml["width"], xml["height"]
            if width <= 0 or height <= 0:  # some tools leave <size> out or at 0: read the file instead
                size = image_size(os.path.join(root, file_name))
                if size is None:
                    raise UserError(f"{os.path.join(root, file_name)}: cannot be read as an image; restore it")
                width, height = size
            img_id = coco.add_image(file_name, width, height)
            for name, difficult, xmin, ymin, xmax, ymax in xml["objects"]:
                if name not in index:
                    skipped[name] = skipped.get(name, 0) + 1
                    continue
                coco.add_box(img_id, index[name], xmin - 1, ymin - 1, xmax, ymax, ignore=difficult)
        out[split] = coco
    if skipped:
        warn("objects of classes not in --classes left out: "
             + ", ".join(f"{n} ({c})" for n, c in sorted(skipped.items())))
    return write_splits(out, out_dir)
