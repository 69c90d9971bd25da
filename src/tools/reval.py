"""Re-evaluate saved Pascal VOC 2007 test detections (results.json from test.py) with the VOC07 11-point AP."""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from voc_eval import voc_eval  # noqa: E402

import _init_paths  # noqa: E402,F401
from utils.errors import UserError, run_cli  # noqa: E402

CLASSES = ('__background__', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
           'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
DEFAULT_DEVKIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'data', 'voc', 'VOCdevkit')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the original's, plus --devkit)."""
    p = argparse.ArgumentParser(description='Re-evaluate results')
    p.add_argument('detection_file', type=str)
    p.add_argument('--output_dir', help='results directory (per-class precision/recall pickles)', type=str)
    p.add_argument('--imdb', dest='imdb_name', help='dataset to re-evaluate (only voc_2007_test)',
                   default='voc_2007_test', type=str)
    p.add_argument('--matlab', dest='matlab_eval', help='use matlab for evaluation (not available)',
                   action='store_true')
    p.add_argument('--comp', dest='comp_mode', help='competition mode: no salt, keep the class files',
                   action='store_true')
    p.add_argument('--nms', dest='apply_nms', help='apply nms 0.3', action='store_true')
    p.add_argument('--devkit', default=DEFAULT_DEVKIT, help='VOCdevkit folder holding VOC2007/')
    return p.parse_args(argv)


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


def evaluate_detections(all_boxes: list, devkit: str, comp_mode: bool = False, output_dir: str | None = None) -> float:
    """Write the per-class VOC result files, print AP per class and the mean; return the mean AP."""
    year_dir = os.path.join(devkit, 'VOC2007')
    imagesetfile = os.path.join(year_dir, 'ImageSets', 'Main', 'test.txt')
    annopath = os.path.join(year_dir, 'Annotations', '{:s}.xml')
    if not os.path.isfile(imagesetfile):
        raise UserError(f'{imagesetfile} not found; get the VOC2007 test set with src/tools/get_pascal_voc.sh '
                        'or pass --devkit')
    with open(imagesetfile) as f:
        image_index = [x.strip() for x in f if x.strip()]
    if len(all_boxes) != len(CLASSES) or any(len(c) != len(image_index) for c in all_boxes[1:]):
        raise UserError(f'detections hold {len(all_boxes)} classes x {[len(c) for c in all_boxes[1:2]]} images; '
                        f'expected {len(CLASSES)} x {len(image_index)} (one entry per line of {imagesetfile})')
    comp_id = 'comp4' if comp_mode else f'comp4_{uuid.uuid4()}'
    results_dir = os.path.join(devkit, 'results', 'VOC2007', 'Main')
    os.makedirs(results_dir, exist_ok=True)
    template = os.path.join(results_dir, comp_id + '_det_test_{:s}.txt')

    for cls_ind, cls in enumerate(CLASSES):
        if cls == '__background__':
            continue
        with open(template.format(cls), 'w') as f:
            for im_ind, index in enumerate(image_index):
                dets = np.array(all_boxes[cls_ind][im_ind], dtype=np.float64)
                for d in dets.reshape(-1, dets.shape[-1]) if dets.size else ():
                    # the devkit's coordinates are 1-based
                    f.write(f'{index:s} {d[-1]:.3f} {d[0] + 1:.1f} {d[1] + 1:.1f} {d[2] + 1:.1f} {d[3] + 1:.1f}\n')

    print('VOC07 metric? Yes')
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    aps = []
    try:
        for cls in CLASSES[1:]:
            rec, prec, ap = voc_eval(template.format(cls), annopath, imagesetfile, cls,
                                     os.path.join(devkit, 'annotations_cache'), ovthresh=0.5, use_07_metric=True,
                                     use_diff=False)
            aps.append(ap)
            print(f'AP for {cls} = {ap:.4f}')
            if output_dir is not None:
                with open(os.path.join(output_dir, cls + '_pr.pkl'), 'wb') as f:
                    pickle.dump({'rec': rec, 'prec': prec, 'ap': ap}, f)
    finally:
        if not comp_mode:
            for cls in CLASSES[1:]:
                if os.path.exists(template.format(cls)):
                    os.remove(template.format(cls))
    mean_ap = float(np.mean(aps))
    print(f'Mean AP = {mean_ap:.4f}')
    print('~~~~~~~~')
    return mean_ap


def main(argv: list[str] | None = None) -> float:
    """Load the detections (json or pickle) and evaluate them."""
    args = parse_args(argv)
    if args.matlab_eval:
        raise UserError('--matlab: the MATLAB devkit evaluation is not available; drop --matlab')
    if not os.path.isfile(args.detection_file):
        raise UserError(f'{args.detection_file}: detection file not found; pass the results.json written by test.py')
    with open(args.detection_file, 'rb') as f:
        dets = json.load(f) if 'json' in args.detection_file else pickle.load(f, encoding='latin1')
    if args.apply_nms:
        print('Applying NMS to all detections')
        dets = apply_nms(dets, 0.3)
    print('Evaluating detections')
    return evaluate_detections(dets, args.devkit, args.comp_mode, args.output_dir)


if __name__ == '__main__':
    run_cli(main)
