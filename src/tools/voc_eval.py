"""Pascal VOC detection evaluation: VOC xml parsing, per-class matching at IoU 0.5 and AP (VOC07 11-point or area)."""
from __future__ import annotations

import os
import pickle
import xml.etree.ElementTree as ET

import numpy as np


def parse_rec(filename: str) -> list[dict]:
    """Objects of one VOC annotation xml: name, pose, truncated, difficult, bbox (1-based ints)."""
    objects = []
    for obj in ET.parse(filename).findall('object'):
        box = obj.find('bndbox')
        pose = obj.find('pose')
        truncated = obj.find('truncated')
        difficult = obj.find('difficult')
        objects.append({
            'name': obj.find('name').text,
            'pose': pose.text if pose is not None else 'Unspecified',
            'truncated': int(truncated.text) if truncated is not None else 0,
            'difficult': int(difficult.text) if difficult is not None else 0,
            'bbox': [int(float(box.find(k).text)) for k in ('xmin', 'ymin', 'xmax', 'ymax')],
        })
    return objects


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from recall/precision: mean of the best precision at recall >= 0, .1, ..., 1 (VOC07) or the area."""
    rec, prec = np.asarray(rec, np.float64), np.asarray(prec, np.float64)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            above = rec >= t
            ap += (np.max(prec[above]) if above.any() else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def load_annotations(annopath: str, imagenames: list[str], cachefile: str | None = None) -> dict:
    """{image name: objects}, read from the xml files (cached in `cachefile` when given)."""
    if cachefile and os.path.isfile(cachefile):
        with open(cachefile, 'rb') as f:
            recs = pickle.load(f)
        if all(name in recs for name in imagenames):
            return recs
    recs = {name: parse_rec(annopath.format(name)) for name in imagenames}
    if cachefile:
        os.makedirs(os.path.dirname(cachefile), exist_ok=True)
        with open(cachefile, 'wb') as f:
            pickle.dump(recs, f)
    return recs


def _overlaps(bb: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of one box with each ground-truth box, VOC style (inclusive pixel coordinates: +1 on sizes)."""
    iw = np.maximum(np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]) + 1.0, 0.0)
    inters = iw * ih
    union = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0)
    return inters / (union - inters)


def eval_class(recs: dict, imagenames: list[str], classname: str, image_ids: list[str], confidence: np.ndarray,
               boxes: np.ndarray, ovthresh: float = 0.5, use_07_metric: bool = False, use_diff: bool = False):
    """(recall, precision, AP) of one class from detections (image id, score, x1 y1 x2 y2 per row)."""
    class_recs = {}
    npos = 0
    for name in imagenames:
        objs = [o for o in recs[name] if o['name'] == classname]
        bbox = np.array([o['bbox'] for o in objs], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([bool(o['difficult']) and not use_diff for o in objs], dtype=bool)
        npos += int((~difficult).sum())
        class_recs[name] = {'bbox': bbox, 'difficult': difficult, 'det': np.zeros(len(objs), bool)}

    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    order = np.argsort(-np.asarray(confidence, np.float64), kind='stable')
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    for d, j in enumerate(order):
        r = class_recs[image_ids[j]]
        ovmax, jmax = -np.inf, -1
        if len(r['bbox']):
            ov = _overlaps(boxes[j], r['bbox'])
            jmax = int(np.argmax(ov))
            ovmax = ov[jmax]
        if ovmax > ovthresh:
            if r['difficult'][jmax]:
                continue  # neither a hit nor a miss
            if not r['det'][jmax]:
                tp[d] = 1.0
                r['det'][jmax] = True
            else:
                fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos) if npos > 0 else np.zeros_like(tp)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, voc_ap(rec, prec, use_07_metric)


def voc_eval(detpath: str, annopath: str, imagesetfile: str, classname: str, cachedir: str,
             ovthresh: float = 0.5, use_07_metric: bool = False, use_diff: bool = False):
    """(recall, precision, AP) of `classname` from a detection file `detpath.format(classname)`.

    Detection lines: `<image> <score> <x1> <y1> <x2> <y2>`; annotations `annopath.format(image)`;
    image list one name per line in `imagesetfile`; parsed annotations cached under `cachedir`.
    """
    with open(imagesetfile) as f:
        imagenames = [x.strip() for x in f if x.strip()]
    name = os.path.splitext(os.path.basename(imagesetfile))[0]
    recs = load_annotations(annopath, imagenames, os.path.join(cachedir, f'{name}_annots.pkl'))
    with open(detpath.format(classname)) as f:
        rows = [x.strip().split(' ') for x in f if x.strip()]
    image_ids = [r[0] for r in rows]
    confidence = np.array([float(r[1]) for r in rows])
    boxes = np.array([[float(z) for z in r[2:6]] for r in rows]).reshape(-1, 4)
    return eval_class(recs, imagenames, classname, image_ids, confidence, boxes, ovthresh, use_07_metric, use_diff)
