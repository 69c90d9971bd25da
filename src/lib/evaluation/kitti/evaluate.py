"""KITTI object detection evaluation (2D AP, AOS, bird's-eye-view AP, 3D AP) in Python with numba.

A re-implementation of the behaviour of the devkit program the original ships compiled
(`evaluate_object_3d_offline`):

- classes car, pedestrian, cyclist; Van counts as ignored for Car and Person_sitting for Pedestrian;
  DontCare regions swallow unmatched detections that lie mostly inside them;
- difficulties easy / moderate / hard: ground truth with box height below 40 / 25 / 25 px, occlusion
  above 0 / 1 / 2 or truncation above 0.15 / 0.3 / 0.5 is ignored; detections lower than the minimum
  height (truncated to whole pixels) are ignored;
- minimum overlap: image boxes car 0.7, pedestrian / cyclist 0.5; bird's-eye view and 3D 0.5 / 0.25 / 0.25;
- precision at 41 recall samples, max-filtered; the printed AP is the mean of every 4th sample (11 points)
  times 100, exactly like the devkit; `--r40` also prints the 40-point AP (samples 1..40) used by the
  current KITTI benchmark.

Only the frames that have a result file are evaluated (or those of `--split-file`, where a missing result
file means no detections). Results are `<result_dir>/<id:06d>.txt` in the KITTI label format with a 16th
column (score). Besides the printout, `stats_<class>_<metric>.txt` are written next to the result folder
and the curves to `<result_dir>/../plot/<class>_<metric>.txt` (no gnuplot plots).

Ground truth: the KITTI `training/label_2` folder. (The original's code and docs disagree here: one version
reads `training/label_val`, a folder its converter never creates because the copy step is commented out.
As frames without a result file are skipped, label_2 gives the same numbers, so the port reads label_2.)

`KITTI.run_eval` calls `evaluate` in-process; `src/tools/kitti_eval/evaluate.py` is its command line:
python src/tools/kitti_eval/evaluate.py <gt_label_dir> <result_dir> [--split-file ids.txt] [--r40]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from evaluation.kitti import kernels
from utils.errors import UserError
from utils.io import atomic_write

CLASS_NAMES = ["car", "pedestrian", "cyclist"]
NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
MIN_HEIGHT = (40, 25, 25)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
# [metric][class]: image, ground, 3D x car, pedestrian, cyclist
MIN_OVERLAP = ((0.7, 0.5, 0.5), (0.5, 0.25, 0.25), (0.5, 0.25, 0.25))
METRIC_SUFFIX = ("detection", "detection_ground", "detection_3d")


class Frames:
    """Ground truth and detections of all evaluated frames, as flat arrays with per-frame offsets."""

    def __init__(self, gt: list[list[tuple]], det: list[list[tuple]]):
        self.gt_type = np.array([t for frame in gt for t, *_ in frame], dtype=object)
        self.det_type = np.array([t for frame in det for t, *_ in frame], dtype=object)
        self.gt_trunc = np.array([r[1] for frame in gt for r in frame], dtype=np.float64)
        self.gt_occ = np.array([r[2] for frame in gt for r in frame], dtype=np.int64)
        self.gt_box = _boxes([r[3] for frame in gt for r in frame])
        self.det_box = _boxes([r[3] for frame in det for r in frame])
        self.det_score = np.array([r[1] for frame in det for r in frame], dtype=np.float64)
        self.gt_off = np.cumsum([0] + [len(f) for f in gt]).astype(np.int64)
        self.det_off = np.cumsum([0] + [len(f) for f in det]).astype(np.int64)
        self.ov_off = np.cumsum([0] + [len(g) * len(d) for g, d in zip(gt, det)]).astype(np.int64)
        self.gt_lower = np.array([t.lower() for t in self.gt_type], dtype=object)
        self.det_lower = np.array([t.lower() for t in self.det_type], dtype=object)
        self.is_dc = np.array([t == "dontcare" for t in self.gt_lower], dtype=np.bool_)
        self._ov: dict[tuple[int, int], np.ndarray] = {}

    def overlaps(self, metric: int, criterion: int) -> np.ndarray:
        """Flat per-frame gt x det overlap matrices (cached)."""
        key = (metric, criterion)
        if key not in self._ov:
            self._ov[key] = kernels.all_overlaps(metric, self.gt_box, self.det_box, self.gt_off, self.det_off,
                                                 self.ov_off, criterion)
        return self._ov[key]

    def ignored(self, cls: str, difficulty: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Devkit labels for gt and detections: 0 evaluated, 1 ignored (may match), -1 other class."""
        height = self.gt_box[:, 3] - self.gt_box[:, 1]
        valid = np.where(self.gt_lower == cls, 1, np.where(self.gt_lower == NEIGHBOUR.get(cls, "\0"), 0, -1))
        hard = ((self.gt_occ > MAX_OCCLUSION[difficulty]) | (self.gt_trunc > MAX_TRUNCATION[difficulty])
                | (height < MIN_HEIGHT[difficulty]))
        ig_gt = np.where((valid == 1) & ~hard, 0, np.where((valid == 0) | ((valid == 1) & hard), 1, -1))
        # the devkit stores detection heights in an int32 (truncation toward zero)
        det_h = np.trunc(np.abs(self.det_box[:, 1] - self.det_box[:, 3]))
        ig_det = np.where(det_h < MIN_HEIGHT[difficulty], 1, np.where(self.det_lower == cls, 0, -1))
        return ig_gt.astype(np.int64), ig_det.astype(np.int64), int(np.sum(ig_gt == 0))


def _boxes(rows: list) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, kernels.BOX_COLS)


def _floats(fields: list[str], path: str) -> list[float]:
    try:
        return [float(v) for v in fields]
    except ValueError:
        raise UserError(f"{path}: non-numeric value in a label line; expected the KITTI label format") from None


def read_labels(path: str, with_score: bool) -> list[tuple]:
    """Rows (type, truncation | score, occlusion, box[11], alpha) of a KITTI label / result file."""
    need = 16 if with_score else 15
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < need:
                continue
            v = _floats(parts[1:need], path)
            # x1 y1 x2 y2, location t1 t2 t3, dimensions h w l, ry
            box = [v[3], v[4], v[5], v[6], v[10], v[11], v[12], v[7], v[8], v[9], v[13]]
            if with_score:
                rows.append((parts[0], v[14], 0, box, v[2]))
            else:
                rows.append((parts[0], v[0], int(v[1]), box, v[2]))
    return rows


def frame_ids(result_dir: str, split_file: str | None) -> list[int]:
    """Frames to evaluate: those listed in split_file, else every result file name (as the devkit)."""
    if split_file:
        with open(split_file) as f:
            return [int(x) for x in f.read().split()]
    ids = []
    for name in sorted(os.listdir(result_dir)):
        if len(name) < 10:
            continue
        digits = name[-10:-4]
        if digits.isdigit():
            ids.append(int(digits))
    return ids


def _ap11(precision: np.ndarray) -> float:
    # the devkit accumulates in single precision
    acc = np.float32(0)
    for i in range(0, len(precision), 4):
        acc = np.float32(acc + np.float32(precision[i]))
    return float(np.float32(np.float32(acc / np.float32(11)) * np.float32(100)))


def _ap40(precision: np.ndarray) -> float:
    return float(np.sum(precision[1:41]) / 40.0 * 100.0)


def evaluate(gt_dir: str, result_dir: str, split_file: str | None = None, r40: bool = False,
             write_files: bool = True, verbose: bool = True) -> dict[str, list[float]]:
    """Evaluate KITTI result files against label_2 ground truth; returns {'<class>_<metric>': [e, m, h]}.

    Keys use the devkit's names (car_detection, car_orientation, car_detection_ground, car_detection_3d,
    ...); with r40, '<key>_R40' entries are added.
    """
    say = print if verbose else (lambda *a, **k: None)
    if not os.path.isdir(gt_dir):
        raise UserError(f"{gt_dir}: ground-truth folder not found; pass the KITTI training/label_2 folder")
    if not os.path.isdir(result_dir):
        raise UserError(f"{result_dir}: result folder not found; pass the folder holding <id:06d>.txt results")
    say("Thank you for participating in our evaluation!")
    say("Loading detections...")
    ids = frame_ids(result_dir, split_file)
    say(f"number of files for evaluation: {len(ids)}")
    gts, dets = [], []
    for i in ids:
        gt_path = os.path.join(gt_dir, f"{i:06d}.txt")
        if not os.path.exists(gt_path):
            raise UserError(f"{gt_path}: ground truth of frame {i:06d} is missing; check the label folder")
        gts.append(read_labels(gt_path, with_score=False))
        det_path = os.path.join(result_dir, f"{i:06d}.txt")
        dets.append(read_labels(det_path, with_score=True) if os.path.exists(det_path) else [])
    say("  done.")
    fr = Frames(gts, dets)

    compute_aos = not np.any(np.array([r[4] for f in dets for r in f]) == -10)
    present = {c: [False, False, False] for c in CLASS_NAMES}
    for f in dets:
        for t, _, _, box, _ in f:
            c = t.lower()
            if c in present:
                present[c][0] |= box[0] >= 0
                present[c][1] |= box[4] != -1000
                present[c][2] |= box[5] != -1000
    gt_alpha = np.array([r[4] for f in gts for r in f], dtype=np.float64)
    det_alpha = np.array([r[4] for f in dets for r in f], dtype=np.float64)

    parent = os.path.dirname(os.path.normpath(result_dir))
    plot_dir = os.path.join(parent, "plot")
    if write_files:
        os.makedirs(plot_dir, exist_ok=True)
    out: dict[str, list[float]] = {}
    for metric in (kernels.METRIC_IMAGE, kernels.METRIC_GROUND, kernels.METRIC_3D):
        aos_here = compute_aos and metric == kernels.METRIC_IMAGE
        for ci, cls in enumerate(CLASS_NAMES):
            if not present[cls][metric]:
                continue
            ov, dc_ov = fr.overlaps(metric, -1), fr.overlaps(metric, 0)
            prec, aos = [], []
            for diff in range(3):
                ig_gt, ig_det, n_gt = fr.ignored(cls, diff)
                p, a = kernels.eval_class(ov, dc_ov, fr.ov_off, fr.gt_off, fr.det_off, fr.is_dc, ig_gt, ig_det,
                                          fr.det_score, gt_alpha, det_alpha, n_gt, MIN_OVERLAP[metric][ci],
                                          aos_here)
                prec.append(p)
                aos.append(a)
            curves = [(f"{cls}_{METRIC_SUFFIX[metric]}", prec)]
            if aos_here:
                curves.append((f"{cls}_orientation", aos))
            for name, vals in curves:
                if write_files:
                    _write_curves(parent, plot_dir, name, vals)
                    say(f"save {os.path.join(plot_dir, name)}.txt")
                out[name] = [_ap11(v) for v in vals]
                say(f"{name} AP: {out[name][0]:f} {out[name][1]:f} {out[name][2]:f}")
                if r40:
                    out[name + "_R40"] = [_ap40(v) for v in vals]
                    say(f"{name} AP_R40: " + " ".join(f"{x:f}" for x in out[name + "_R40"]))
    say("Your evaluation results are available at:")
    say(result_dir)
    return out


def _write_curves(parent: str, plot_dir: str, name: str, vals: list[np.ndarray]) -> None:
    stats_name = "stats_" + name + ".txt"
    with atomic_write(os.path.join(parent, stats_name)) as f:
        for v in vals:
            f.write("".join(f"{x:f} " for x in v) + "\n")
    n = kernels.N_SAMPLE_PTS
    with atomic_write(os.path.join(plot_dir, name + ".txt")) as f:
        for i in range(n):
            f.write(f"{i / (n - 1.0):f} {vals[0][i]:f} {vals[1][i]:f} {vals[2][i]:f}\n")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: evaluate and print the devkit's AP table."""
    p = argparse.ArgumentParser(description="KITTI object evaluation (2D / AOS / BEV / 3D AP)")
    p.add_argument("gt_label_dir", help="ground truth, e.g. data/kitti/training/label_2")
    p.add_argument("result_dir", help="folder with <id:06d>.txt results (KITTI format + score)")
    p.add_argument("--split-file", default=None,
                   help="evaluate the frame ids listed here (e.g. ImageSets_3dop/val.txt)")
    p.add_argument("--r40", action="store_true", help="also print the 40-recall-point AP")
    args = p.parse_args(argv)
    evaluate(args.gt_label_dir, args.result_dir, args.split_file, r40=args.r40)

