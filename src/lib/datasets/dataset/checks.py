"""Load-time checks of a COCO-layout annotation file, so that bad data stops with one line before training.

The samples would otherwise fail mid-epoch (a KeyError on an unknown category id, a reshape error on
short keypoint lists) or silently drop unusable boxes. Everything is checked at once over all
annotations with numpy: COCO's training file holds ~860k of them, and the checks must stay a small
fraction of the json load itself. The slow, per-annotation search only runs to describe an error.
"""
from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from utils.errors import UserError


@dataclass(frozen=True)
class ListField:
    """A list-valued annotation field that a dataset or task reads, its required length and the fix."""

    name: str
    length: int
    fix: str
    meaning: str = ""  # what the values are, e.g. "x, y, visibility of 17 joints"


@dataclass(frozen=True)
class BoxSummary:
    """The boxes the samples drop: zero or negative size (`empty`), or entirely outside their image."""

    total: int
    empty: int = 0
    outside: int = 0
    example: str = ""  # "annotation <id> of image <id>" of the first one

    @property
    def dropped(self) -> int:
        """Number of unusable boxes."""
        return self.empty + self.outside

    def warning(self, annot_path: str) -> str:
        """The one warning line (without the `warning:` prefix) describing the unusable boxes."""
        kinds = []
        if self.empty:
            kinds.append(f"{self.empty} with zero or negative width/height")
        if self.outside:
            kinds.append(f"{self.outside} entirely outside their image")
        return (f"{annot_path}: {self.dropped} of {self.total} boxes are unusable ({', '.join(kinds)}; "
                f"e.g. {self.example}) and are left out of the training targets; fix or remove them")


def where(ann: dict) -> str:
    """'annotation <id> of image <id>': how messages point at one annotation."""
    return f"annotation {ann.get('id')} of image {ann.get('image_id')}"


def id_ranges(ids: Iterable[int]) -> str:
    """Sorted ids with runs of three or more shortened: [1, 2, 3, 5, 7, 8, 9] -> '1-3, 5, 7-9'."""
    values = sorted({int(v) for v in ids})
    parts: list[str] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[i - 1] + 1:
            run = values[start:i]
            parts.append(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ", ".join(map(str, run)))
            start = i
    return ", ".join(parts)


def check_annotations(dataset: dict, annot_path: str, valid_ids: Iterable[int],
                      fields: Iterable[ListField] = ()) -> BoxSummary:
    """Raise a UserError on annotations the samples cannot use; return what they will silently drop.

    dataset: the parsed json (pycocotools' COCO.dataset); valid_ids: the category ids the dataset
    class maps to classes; fields: list fields every annotation must hold with an exact length.
    """
    anns = dataset.get("annotations") or []
    if not anns:
        return BoxSummary(0)
    check_categories(anns, annot_path, valid_ids)
    for field in fields:
        check_list_field(anns, annot_path, field)
    return box_summary(anns, dataset.get("images") or [], annot_path)


def _first(anns: list[dict], bad) -> tuple[int, dict]:
    """(count, first annotation) of those for which bad(ann) holds: the error path's slow search."""
    hits = [a for a in anns if bad(a)]
    return len(hits), (hits[0] if hits else {})


def check_categories(anns: list[dict], annot_path: str, valid_ids: Iterable[int]) -> None:
    """Every category_id must be one of `valid_ids` (compared as the samples' dict lookup does)."""
    valid = {int(v) for v in valid_ids}
    try:
        # the distinct values are few: checking them is exact (1.0 passes like in a dict, '1' does not)
        bad_values = set(map(itemgetter("category_id"), anns)) - valid
    except KeyError:
        count, ann = _first(anns, lambda a: "category_id" not in a)
        raise UserError(f"{annot_path}: {count} of {len(anns)} annotations have no category_id (e.g. {where(ann)}); "
                        "fix the annotation file") from None
    except TypeError:  # an unhashable value, e.g. a list
        count, ann = _first(anns, lambda a: not isinstance(a["category_id"], Hashable))
        raise UserError(f"{annot_path}: category_id {ann['category_id']!r} of {where(ann)} is not an integer; "
                        "fix the annotation file") from None
    if not bad_values:
        return
    count, ann = _first(anns, lambda a: a["category_id"] in bad_values)
    shown = sorted(bad_values, key=repr)
    listed = ", ".join(repr(v) for v in shown[:5]) + (", ..." if len(shown) > 5 else "")
    what = f"category_id {listed} (in {count} of {len(anns)} annotations, e.g. {where(ann)}) is not one"
    if len(shown) > 1:
        what = f"category_ids {listed} (in {count} of {len(anns)} annotations, e.g. {where(ann)}) are not"
    raise UserError(f"{annot_path}: {what} of this dataset's category ids ({id_ranges(valid)}); fix the "
                    "annotations, or pass the --dataset they were made for")


def check_list_field(anns: list[dict], annot_path: str, field: ListField) -> None:
    """Every annotation must hold `field.name` as a list of exactly `field.length` values."""
    n = len(anns)
    expected = f"{field.length}" + (f" ({field.meaning})" if field.meaning else "")
    try:
        lengths = np.fromiter(map(len, map(itemgetter(field.name), anns)), np.int64, n)
    except KeyError:
        count, ann = _first(anns, lambda a: field.name not in a)
        raise UserError(f"{annot_path}: {count} of {n} annotations have no '{field.name}' (e.g. {where(ann)}); "
                        f"{field.fix}") from None
    except TypeError:  # None or a number where a list belongs
        lengths = np.array([len(v) if isinstance(v, (list, tuple)) else -1
                            for v in map(itemgetter(field.name), anns)], np.int64)
    wrong = np.flatnonzero(lengths != field.length)
    if wrong.size == 0:
        return
    ann = anns[int(wrong[0])]
    value = ann[field.name]
    got = f"{len(value)} values" if isinstance(value, (list, tuple)) else f"{type(value).__name__} {value!r}"
    raise UserError(f"{annot_path}: {wrong.size} of {n} annotations have a wrong '{field.name}', e.g. {where(ann)} "
                    f"with {got} instead of {expected}; {field.fix}")


def _boxes(anns: list[dict], annot_path: str) -> np.ndarray:
    """All bboxes as an (n, 4) float array; a UserError names a missing or malformed one."""
    n = len(anns)
    try:
        flat = np.fromiter(itertools.chain.from_iterable(map(itemgetter("bbox"), anns)), np.float64)
    except KeyError:
        count, ann = _first(anns, lambda a: "bbox" not in a)
        raise UserError(f"{annot_path}: {count} of {n} annotations have no bbox (e.g. {where(ann)}); "
                        "fix the annotation file") from None
    except (TypeError, ValueError):
        flat = None
    if flat is None or flat.size != 4 * n:
        def malformed(a: dict) -> bool:
            box = a["bbox"]
            return (not isinstance(box, (list, tuple)) or len(box) != 4
                    or not all(isinstance(v, (int, float)) for v in box))

        count, ann = _first(anns, malformed)
        raise UserError(f"{annot_path}: bbox {ann['bbox']!r} of {where(ann)} is not [x, y, width, height] "
                        f"({count} of {n} annotations); fix the annotation file")
    return flat.reshape(n, 4)


def _number(value) -> float:
    """value as a float, NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _image_sizes(anns: list[dict], images: list[dict]) -> tuple[np.ndarray, np.ndarray] | None:
    """(width, height) of each annotation's image (NaN where unknown); None when the ids are not integers."""
    if not images:
        return None
    try:
        img_ids = np.fromiter(map(itemgetter("id"), images), np.int64, len(images))
        ann_img = np.fromiter(map(itemgetter("image_id"), anns), np.int64, len(anns))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    try:
        sizes = np.stack([np.fromiter(map(itemgetter(key), images), np.float64, len(images))
                          for key in ("width", "height")], axis=1)
    except (KeyError, TypeError, ValueError):
        # some images without a size (or with null): those cannot be judged
        sizes = np.array([(_number(im.get("width")), _number(im.get("height"))) for im in images], np.float64)
    sizes[~(sizes > 0)] = np.nan  # a size of 0 says nothing either
    low, high = int(img_ids.min()), int(img_ids.max())
    if low >= 0 and high < 4 * (len(images) + len(anns)):
        # ids are small (COCO's go up to ~600k): a table indexed by id beats a binary search per annotation
        # (one 1-D table per coordinate: gathering rows of a 2-D table is several times slower)
        rows = np.where((ann_img >= 0) & (ann_img <= high), ann_img, high + 1)  # row high + 1 stays NaN
        tables = np.full((2, high + 2), np.nan)
        tables[:, img_ids] = sizes.T
        return tables[0][rows], tables[1][rows]
    order = np.argsort(img_ids, kind="stable")
    sorted_ids = img_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, ann_img), len(sorted_ids) - 1)
    found = sorted_ids[pos] == ann_img
    return (np.where(found, sizes[order, 0][pos], np.nan), np.where(found, sizes[order, 1][pos], np.nan))


def box_summary(anns: list[dict], images: list[dict], annot_path: str) -> BoxSummary:
    """Count the boxes the samples will drop: no positive width and height, or wholly outside the image."""
    x, y, w, h = _boxes(anns, annot_path).T
    # written so that NaN sizes count as empty, as the samples' `h > 0 and w > 0` test drops them
    empty = ~((w > 0) & (h > 0))
    outside = np.zeros_like(empty)
    sizes = _image_sizes(anns, images)
    if sizes is not None:
        width, height = sizes
        with np.errstate(invalid="ignore"):
            outside = ~empty & ((x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0))
    unusable = np.flatnonzero(empty | outside)
    if unusable.size == 0:
        return BoxSummary(len(anns))
    return BoxSummary(len(anns), int(empty.sum()), int(outside.sum()), where(anns[int(unusable[0])]))
