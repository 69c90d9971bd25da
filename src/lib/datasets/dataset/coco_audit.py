"""Audit of a COCO-layout annotation file: every problem kind counted, with its first example.

Two parts: `audit_json` looks at the parsed json only (structure, ids, boxes, keypoint counts) and is
fast enough to run whenever --dataset custom loads a file; `audit_images` opens every image file
(missing, unreadable, recorded size differing from the file) and is what src/tools/check_dataset.py
adds on top. Both return `Finding`s in a fixed order, so the first error is always the same one.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from datasets.dataset.checks import where as _ann_where
from datasets.dataset.custom_meta import read_json
from utils.errors import UserError

# tolerance, in pixels, for boxes that stick out of their image (rounding of 1-based VOC corners)
OUTSIDE_TOLERANCE = 1.0


@dataclass
class Finding:
    """One kind of problem: how many records have it and the first of them."""

    kind: str  # stable key, e.g. "empty_box"
    label: str  # what the summary table shows
    count: int = 0
    example: str = ""
    error: bool = True  # False: counted and shown, but the data is usable (e.g. images without annotations)

    def add(self, example: str) -> None:
        """Count one more record, keeping the first example."""
        if not self.example:
            self.example = example
        self.count += 1


# (kind, label, error) in the order problems are reported; the first error found stops a training run
KINDS = [
    ("structure", "malformed records (missing or wrongly typed fields)", True),
    ("duplicate_image_id", "duplicate image ids", True),
    ("duplicate_annotation_id", "duplicate annotation ids", True),
    ("duplicate_category_id", "duplicate category ids", True),
    ("unknown_image", "annotations of unknown image ids", True),
    ("unknown_category", "annotations of unknown category ids", True),
    ("empty_box", "boxes with zero or negative size", True),
    ("outside_box", "boxes outside their image", True),
    ("keypoint_count", "keypoint counts that differ from the category", True),
    ("missing_file", "missing image files", True),
    ("unreadable_file", "unreadable image files", True),
    ("size_mismatch", "recorded width/height differ from the file", True),
    ("no_annotations", "images without annotations", False),
]
IMAGE_KINDS = ("missing_file", "unreadable_file", "size_mismatch")


def new_findings() -> dict[str, Finding]:
    """An empty Finding of every kind, in report order."""
    return {kind: Finding(kind, label, error=error) for kind, label, error in KINDS}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _image_where(im: dict) -> str:
    return f"image {im.get('id')} ({im.get('file_name')})"


def _top_level(data, findings: dict[str, Finding]) -> bool:
    """Whether `data` is a dict with the three lists; a structure finding otherwise."""
    if not isinstance(data, dict):
        findings["structure"].add(f"the file holds a {type(data).__name__}, not an object with images, "
                                  "annotations and categories")
        return False
    ok = True
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            findings["structure"].add(f"'{key}' is missing or not a list")
            ok = False
    if "annotations" in data and not isinstance(data["annotations"], list):
        findings["structure"].add("'annotations' is not a list")
        ok = False
    return ok


def _check_categories(cats: list, findings: dict[str, Finding]) -> dict[int, dict]:
    by_id: dict[int, dict] = {}
    for cat in cats:
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            findings["structure"].add(f"category {cat!r:.60} has no integer 'id'")
            continue
        kps = cat.get("keypoints")
        if kps is not None and not isinstance(kps, list):
            findings["structure"].add(f"category {cat['id']}: 'keypoints' is not a list of names")
        if cat["id"] in by_id:
            findings["duplicate_category_id"].add(f"category {cat['id']}")
        by_id[cat["id"]] = cat
    return by_id


def _check_images(images: list, findings: dict[str, Finding]) -> dict[int, dict]:
    by_id: dict[int, dict] = {}
    for im in images:
        if not isinstance(im, dict) or not _is_int(im.get("id")) or not isinstance(im.get("file_name"), str):
            findings["structure"].add(f"image {im!r:.60} needs an integer 'id' and a 'file_name'")
            continue
        if not (_is_number(im.get("width")) and _is_number(im.get("height")) and im["width"] > 0
                and im["height"] > 0):
            findings["structure"].add(f"{_image_where(im)} has no positive 'width' and 'height'")
        if im["id"] in by_id:
            findings["duplicate_image_id"].add(_image_where(im))
            continue
        by_id[im["id"]] = im
    return by_id


def _check_box(ann: dict, image: dict | None, findings: dict[str, Finding]) -> None:
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        findings["structure"].add(f"{_ann_where(ann)}: bbox {box!r:.60} is not [x, y, width, height]")
        return
    x, y, w, h = box
    if not (w > 0 and h > 0):
        findings["empty_box"].add(f"{_ann_where(ann)} (bbox {box})")
        return
    if image is None or not (_is_number(image.get("width")) and _is_number(image.get("height"))):
        return
    tol = OUTSIDE_TOLERANCE
    if x < -tol or y < -tol or x + w > image["width"] + tol or y + h > image["height"] + tol:
        findings["outside_box"].add(f"{_ann_where(ann)} (bbox {box} in a {image['width']}x{image['height']} image)")


def audit_json(data, require_keypoints: bool = False) -> dict[str, Finding]:
    """Findings of the parsed json alone (no image file is opened).

    require_keypoints: every annotation must carry 'keypoints' (multi_pose trains on them).
    """
    findings = new_findings()
    if not _top_level(data, findings):
        return findings
    cats = _check_categories(data["categories"], findings)
    images = _check_images(data["images"], findings)
    ann_ids: set = set()
    per_image: Counter = Counter()
    for ann in data.get("annotations") or []:
        if not isinstance(ann, dict) or not _is_int(ann.get("id")) or "image_id" not in ann:
            findings["structure"].add(f"annotation {ann!r:.60} needs an integer 'id' and an 'image_id'")
            continue
        if ann["id"] in ann_ids:
            findings["duplicate_annotation_id"].add(_ann_where(ann))
        ann_ids.add(ann["id"])
        image = images.get(ann["image_id"]) if _is_int(ann["image_id"]) else None
        if image is None:
            findings["unknown_image"].add(_ann_where(ann))
        else:
            per_image[ann["image_id"]] += 1
        cat = cats.get(ann.get("category_id")) if _is_int(ann.get("category_id")) else None
        if cat is None:
            findings["unknown_category"].add(f"{_ann_where(ann)} (category_id {ann.get('category_id')!r})")
        _check_box(ann, image, findings)
        _check_keypoints(ann, cat, require_keypoints, findings)
    for img_id, im in images.items():
        if per_image[img_id] == 0:
            findings["no_annotations"].add(_image_where(im))
    return findings


def _check_keypoints(ann: dict, cat: dict | None, required: bool, findings: dict[str, Finding]) -> None:
    kps = ann.get("keypoints")
    if kps is None and not required:
        return
    names = cat.get("keypoints") if cat is not None else None
    want = 3 * len(names) if isinstance(names, list) else None
    got = len(kps) if isinstance(kps, list) else None
    if got is None or want is None or got != want:
        have = "none" if kps is None else (f"{got} values" if got is not None else f"{type(kps).__name__}")
        need = f"{want} (x, y, v of {want // 3} keypoints)" if want is not None else "a category with 'keypoints'"
        findings["keypoint_count"].add(f"{_ann_where(ann)}: {have}, category {ann.get('category_id')} needs {need}")


def image_size(path: str) -> tuple[int, int] | None:
    """(width, height) of an image file decoded with OpenCV; None when it cannot be decoded."""
    import cv2  # imported on use: only the image audit and the converters decode files

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None
    return int(img.shape[1]), int(img.shape[0])


def audit_images(data: dict, img_dir: str, findings: dict[str, Finding]) -> None:
    """Add the image-file findings (missing, unreadable, size differing from the record) to `findings`."""
    for im in data.get("images") or []:
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            continue
        path = os.path.join(img_dir, im["file_name"])
        if not os.path.isfile(path):
            findings["missing_file"].add(f"{_image_where(im)}: {path}")
            continue
        size = image_size(path)
        if size is None:
            findings["unreadable_file"].add(f"{_image_where(im)}: {path}")
            continue
        recorded = (im.get("width"), im.get("height"))
        if recorded != size:
            findings["size_mismatch"].add(f"{_image_where(im)}: recorded {recorded[0]}x{recorded[1]}, "
                                          f"file {size[0]}x{size[1]}")


def errors(findings: dict[str, Finding]) -> list[Finding]:
    """The findings that are errors and occurred, in report order."""
    return [f for f in findings.values() if f.error and f.count]


def first_error(findings: dict[str, Finding], annot_path: str, img_dir: str = "DIR") -> UserError | None:
    """One-line UserError naming the first problem kind, its count and first example (None when clean)."""
    found = errors(findings)
    if not found:
        return None
    f = found[0]
    more = f" (and {len(found) - 1} more problem kinds)" if len(found) > 1 else ""
    return UserError(f"{annot_path}: {f.count} {f.label}, e.g. {f.example}{more}; fix the file "
                     f"(python src/tools/check_dataset.py {annot_path} --img_dir {img_dir} lists every problem)")


def summary_table(findings: dict[str, Finding]) -> str:
    """The check's summary: one row per problem kind with its count, status and first example."""
    rows = [("check", "count", "status", "first example")]
    for f in findings.values():
        status = "ok" if f.count == 0 else ("ERROR" if f.error else "note")
        rows.append((f.label, str(f.count), status, f.example))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def check_file(annot_path: str, img_dir: str | None) -> tuple[dict, dict[str, Finding]]:
    """(parsed json, findings) of a file: the json audit, plus the image audit when `img_dir` is given."""
    if img_dir is not None and not os.path.isdir(img_dir):
        raise UserError(f"--img_dir {img_dir}: no such folder; pass the folder the file_names are relative to")
    data = read_json(annot_path)
    findings = audit_json(data)
    if img_dir is not None and isinstance(data, dict):
        audit_images(data, img_dir, findings)
    return (data if isinstance(data, dict) else {}), findings
