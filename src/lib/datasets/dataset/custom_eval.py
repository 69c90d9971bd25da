"""COCO evaluation of a custom dataset: the COCO figures, then a per-class AP table."""
from __future__ import annotations

import numpy as np
import pycocotools.coco as coco
from pycocotools.cocoeval import COCOeval

from datasets.dataset.common import nothing_to_evaluate


def instances_per_category(coco_gt: coco.COCO) -> dict[int, int]:
    """Annotations per category id that count in the evaluation (crowd / ignored ones left out)."""
    counts: dict[int, int] = {}
    for ann in coco_gt.dataset.get("annotations") or []:
        if ann.get("iscrowd", 0) or ann.get("ignore", 0):
            continue
        counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
    return counts


def per_class_rows(coco_eval: COCOeval, names: dict[int, str], counts: dict[int, int]) -> list[tuple]:
    """(name, AP, AP50, instances) per category of an accumulated COCOeval (all areas, the largest maxDets).

    AP is -1 where a category has no ground truth, as in COCO's own summary.
    """
    precision = coco_eval.eval["precision"]  # [iou threshold, recall, category, area, max dets]
    iou50 = int(np.argmin(np.abs(coco_eval.params.iouThrs - 0.5)))
    rows = []
    for k, cat_id in enumerate(coco_eval.params.catIds):
        p = precision[:, :, k, 0, -1]
        ap = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
        p50 = p[iou50]
        ap50 = float(np.mean(p50[p50 > -1])) if (p50 > -1).any() else -1.0
        rows.append((names.get(cat_id, str(cat_id)), ap, ap50, counts.get(cat_id, 0)))
    return rows


def format_table(rows: list[tuple], title: str) -> str:
    """The per-class table as text: class name, AP, AP50, instances."""
    width = max([len("class")] + [len(r[0]) for r in rows])
    lines = [title, f"{'class':<{width}}  {'AP':>6}  {'AP50':>6}  {'instances':>9}"]
    for name, ap, ap50, n in rows:
        lines.append(f"{name:<{width}}  {ap:6.3f}  {ap50:6.3f}  {n:9d}")
    return "\n".join(lines)


def evaluate(coco_gt: coco.COCO, result_json: str, iou_types: tuple[str, ...], names: dict[int, str],
             kpt_sigmas: list[float] | None = None):
    """COCOeval of each iou type with its summary and per-class table; returns the first type's figures.

    None when there is nothing to evaluate (no detections, or no ground truth in the file).
    """
    if nothing_to_evaluate(coco_gt, result_json):
        return None
    coco_dets = coco_gt.loadRes(result_json)
    counts = instances_per_category(coco_gt)
    stats = None
    for iou_type in iou_types:
        coco_eval = COCOeval(coco_gt, coco_dets, iou_type)
        if iou_type == "keypoints":
            coco_eval.params.kpt_oks_sigmas = np.array(kpt_sigmas, dtype=np.float64)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        print(format_table(per_class_rows(coco_eval, names, counts), f"per-class {iou_type} AP:"))
        stats = coco_eval.stats if stats is None else stats
    return stats
