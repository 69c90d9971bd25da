"""Pascal VOC 2007 test evaluation: VOC xml parsing, per-class matching at IoU 0.5, AP (VOC07 11-point or area).

`PascalVOC.run_eval` calls `evaluate_detections` in-process; `src/tools/reval.py` is the command line that
re-evaluates a saved results.json, and `src/tools/voc_eval.py` keeps the original's `voc_eval` module name.
Parsed annotations are cached as JSON (`<devkit>/annotations_cache/test_annots.json`), so evaluating
never unpickles anything; a detections pickle given to reval.py is read with `load_detections`, which
only rebuilds lists, numbers and numpy arrays.
"""
from __future__ import annotations

import codecs
import io
import json
import os
import pickle
import uuid
import xml.etree.ElementTree as ET

import numpy as np

from utils.errors import UserError
from utils.io import atomic_write

CLASSES = ("__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def parse_rec(filename: str) -> list[dict]:
    """Objects of one VOC annotation xml: name, pose, truncated, difficult, bbox (1-based ints)."""
    objects = []
    for obj in ET.parse(filename).findall("object"):
        box = obj.find("bndbox")
        pose = obj.find("pose")
        truncated = obj.find("truncated")
        difficult = obj.find("difficult")
        objects.append({
            "name": obj.find("name").text,
            "pose": pose.text if pose is not None else "Unspecified",
            "truncated": int(truncated.text) if truncated is not None else 0,
            "difficult": int(difficult.text) if difficult is not None else 0,
            "bbox": [int(float(box.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")],
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


def _read_cache(cachefile: str) -> dict | None:
    """The cached {image name: objects}, or None when the file is absent, damaged or not a JSON object."""
    try:
        with open(cachefile) as f:
            recs = json.load(f)
    except (OSError, ValueError):
        return None  # absent, unreadable or damaged: parsing the xml files again is cheap enough
    return recs if isinstance(recs, dict) else None


def load_annotations(annopath: str, imagenames: list[str], cachefile: str | None = None) -> dict:
    """{image name: objects}, read from the xml files (cached as JSON in `cachefile` when given)."""
    if cachefile:
        recs = _read_cache(cachefile)
        if recs is not None and all(name in recs for name in imagenames):
            return recs
    recs = {name: parse_rec(annopath.format(name)) for name in imagenames}
    if cachefile:
        with atomic_write(cachefile) as f:
            json.dump(recs, f)
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
        objs = [o for o in recs[name] if o["name"] == classname]
        bbox = np.array([o["bbox"] for o in objs], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([bool(o["difficult"]) and not use_diff for o in objs], dtype=bool)
        npos += int((~difficult).sum())
        class_recs[name] = {"bbox": bbox, "difficult": difficult, "det": np.zeros(len(objs), bool)}

    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    for d, j in enumerate(order):
        r = class_recs[image_ids[j]]
        ovmax, jmax = -np.inf, -1
        if len(r["bbox"]):
            ov = _overlaps(boxes[j], r["bbox"])
            jmax = int(np.argmax(ov))
            ovmax = ov[jmax]
        if ovmax > ovthresh:
            if r["difficult"][jmax]:
                continue  # neither a hit nor a miss
            if not r["det"][jmax]:
                tp[d] = 1.0
                r["det"][jmax] = True
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
    image list one name per line in `imagesetfile`; parsed annotations cached (JSON) under `cachedir`.
    """
    with open(imagesetfile) as f:
        imagenames = [x.strip() for x in f if x.strip()]
    name = os.path.splitext(os.path.basename(imagesetfile))[0]
    recs = load_annotations(annopath, imagenames, os.path.join(cachedir, f"{name}_annots.json"))
    with open(detpath.format(classname)) as f:
        rows = [x.strip().split(" ") for x in f if x.strip()]
    image_ids = [r[0] for r in rows]
    confidence = np.array([float(r[1]) for r in rows])
    boxes = np.array([[float(z) for z in r[2:6]] for r in rows]).reshape(-1, 4)
    return eval_class(recs, imagenames, classname, image_ids, confidence, boxes, ovthresh, use_07_metric, use_diff)


def nms(dets: np.ndarray, thresh: float) -> list[int]:
    """Greedy NMS on x1,y1,x2,y2,score rows (VOC '+1' areas); indices kept, best first."""
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]) + 1)
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][ovr <= thresh]
    return keep


def apply_nms(all_boxes: list, thresh: float) -> list:
    """NMS on every (class, image) list of detections."""
    out = [[[] for _ in cls_boxes] for cls_boxes in all_boxes]
    for c, cls_boxes in enumerate(all_boxes):
        for i, dets in enumerate(cls_boxes):
            dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5) if len(dets) else np.zeros((0, 5))
            out[c][i] = dets[nms(dets, thresh)].tolist() if len(dets) else []
    return out


def _data_constructors() -> dict[tuple[str, str], object]:
    """The globals a pickle of plain data and numpy arrays names (numpy 1.x and 2.x names); none has side effects."""
    core = np._core if hasattr(np, "_core") else np.core
    allowed: dict[tuple[str, str], object] = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = core.multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = core.numeric._frombuffer  # protocol 5 arrays
    allowed[("numpy", "ndarray")] = np.ndarray
    # pickle protocol 2 spells bytes (an array's raw data) as a call to codecs' encode of a latin-1 str
    allowed[("_codecs", "encode")] = codecs.encode
    for data_type in (bytes, bytearray, complex, set, frozenset):
        for module in ("builtins", "__builtin__"):  # Python 2 and protocols 0-2 name the builtins module so
            allowed[(module, data_type.__name__)] = data_type
    allowed[("numpy", "dtype")] = np.dtype
    for code in "?bhilqBHILQefdgFDG":
        cls = type(np.dtype(code))  # numpy 2 pickles dtypes by their class, e.g. numpy.dtypes.Float32DType
        allowed[(cls.__module__, cls.__name__)] = cls
    return allowed


class _DataOnlyUnpickler(pickle.Unpickler):
    """Rebuilds containers, numbers, strings and numpy arrays; refuses every other global (which could run code)."""

    def __init__(self, file: io.BufferedIOBase, path: str) -> None:
        super().__init__(file, encoding="latin1")  # py-faster-rcnn wrote its detections with Python 2
        self._path = path
        self._allowed = _data_constructors()

    def find_class(self, module: str, name: str) -> object:
        """An allowed data constructor; any other global stops the load with one line."""
        found = self._allowed.get((module, name))
        if found is None:
            raise UserError(f"{self._path}: refused, the pickle names {module}.{name}, which could run code when "
                            "loaded; only lists, numbers and numpy arrays are read from a pickle: pass the "
                            "results.json written by test.py instead")
        return found


def load_detections(path: str) -> list:
    """Detections[class][image] from a results.json, or from a pickle holding only lists and numpy arrays.

    As the original's reval.py, a name containing 'json' is read as JSON and anything else as a pickle.
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: detection file not found; pass the results.json written by test.py")
    kind = "JSON" if "json" in path else "pickle"
    try:
        with open(path, "rb") as f:
            dets = json.load(f) if kind == "JSON" else _DataOnlyUnpickler(f, path).load()
    except (ValueError, TypeError, EOFError, pickle.UnpicklingError) as e:
        raise UserError(f"{path}: not a readable {kind} file ({type(e).__name__}: {str(e)[:120]}); pass the "
                        "results.json written by test.py") from None
    if not isinstance(dets, (list, tuple)):
        raise UserError(f"{path}: holds a {type(dets).__name__}, not detections[class][image]; pass the "
                        "results.json written by test.py")
    return dets


def evaluate_detections(all_boxes: list, devkit: str, comp_mode: bool = False, output_dir: str | None = None) -> float:
    """Write the per-class VOC result files, print AP per class and the mean; return the mean AP."""
    year_dir = os.path.join(devkit, "VOC2007")
    imagesetfile = os.path.join(year_dir, "ImageSets", "Main", "test.txt")
    annopath = os.path.join(year_dir, "Annotations", "{:s}.xml")
    if not os.path.isfile(imagesetfile):
        raise UserError(f"{imagesetfile} not found; get the VOC2007 test set with src/tools/get_pascal_voc.sh "
                        "or pass --devkit")
    with open(imagesetfile) as f:
        image_index = [x.strip() for x in f if x.strip()]
    if len(all_boxes) != len(CLASSES) or any(len(c) != len(image_index) for c in all_boxes[1:]):
        raise UserError(f"detections hold {len(all_boxes)} classes x {[len(c) for c in all_boxes[1:2]]} images; "
                        f"expected {len(CLASSES)} x {len(image_index)} (one entry per line of {imagesetfile})")
    comp_id = "comp4" if comp_mode else f"comp4_{uuid.uuid4()}"
    results_dir = os.path.join(devkit, "results", "VOC2007", "Main")
    os.makedirs(results_dir, exist_ok=True)
    template = os.path.join(results_dir, comp_id + "_det_test_{:s}.txt")

    for cls_ind, cls in enumerate(CLASSES):
        if cls == "__background__":
            continue
        with atomic_write(template.format(cls)) as f:
            for im_ind, index in enumerate(image_index):
                dets = np.array(all_boxes[cls_ind][im_ind], dtype=np.float64)
                for d in dets.reshape(-1, dets.shape[-1]) if dets.size else ():
                    # the devkit's coordinates are 1-based
                    f.write(f"{index:s} {d[-1]:.3f} {d[0] + 1:.1f} {d[1] + 1:.1f} {d[2] + 1:.1f} {d[3] + 1:.1f}\n")

    print("VOC07 metric? Yes")
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    aps = []
    try:
        for cls in CLASSES[1:]:
            rec, prec, ap = voc_eval(template.format(cls), annopath, imagesetfile, cls,
                                     os.path.join(devkit, "annotations_cache"), ovthresh=0.5, use_07_metric=True,
                                     use_diff=False)
            aps.append(ap)
            print(f"AP for {cls} = {ap:.4f}")
            if output_dir is not None:
                # the original's per-class output format; written here, never read back by this code
                with atomic_write(os.path.join(output_dir, cls + "_pr.pkl"), "wb") as f:
                    pickle.dump({"rec": rec, "prec": prec, "ap": ap}, f)
    finally:
        if not comp_mode:
            for cls in CLASSES[1:]:
                if os.path.exists(template.format(cls)):
                    os.remove(template.format(cls))
    mean_ap = float(np.mean(aps))
    print(f"Mean AP = {mean_ap:.4f}")
    print("~~~~~~~~")
    return mean_ap
