"""KITTI evaluator (evaluation.kitti, CLI src/tools/kitti_eval): overlaps and APs on fixtures with known answers."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from evaluation.kitti import kernels
from evaluation.kitti.evaluate import evaluate
from utils.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "src", "tools")

AP11_40_OF_40 = float(np.float32(np.float32(np.float32(10) / np.float32(11)) * np.float32(100)))


def box(x1=100., y1=100., x2=150., y2=160., t=(0., 1.65, 20.), hwl=(1.5, 1.6, 3.9), ry=0.):
    """A box row in the kernels' column order."""
    return np.array([x1, y1, x2, y2, t[0], t[1], t[2], hwl[0], hwl[1], hwl[2], ry], dtype=np.float64)


def line(kind, b, trunc=0.0, occ=0, alpha=0.0, score=None):
    """KITTI label line (plus score for results) from a box row."""
    vals = [b[0], b[1], b[2], b[3], b[7], b[8], b[9], b[4], b[5], b[6], b[10]]
    head = f"{kind} {trunc:.2f} {occ} {alpha:.4f} "
    text = head + " ".join(f"{v:.4f}" for v in vals)
    return text + (f" {score:.6f}" if score is not None else "") + "\n"


def write(tmp_path, frames):
    """frames: list of (gt lines, det lines); returns (gt_dir, result_dir)."""
    gt_dir, res_dir = tmp_path / "label_2", tmp_path / "exp" / "results"
    gt_dir.mkdir()
    res_dir.mkdir(parents=True)
    for i, (gt, det) in enumerate(frames):
        (gt_dir / f"{i:06d}.txt").write_text("".join(gt))
        (res_dir / f"{i:06d}.txt").write_text("".join(det))
    return str(gt_dir), str(res_dir)


def car_frames(n, det_box=None, alpha_det=0.0, gt_height=60., occ=0, trunc=0.0):
    """n frames, one perfectly boxed car each (detections identical unless det_box is given)."""
    frames = []
    for i in range(n):
        g = box(y2=100. + gt_height, t=(float(i % 7) - 3., 1.65, 10. + i))
        d = g if det_box is None else det_box(g)
        frames.append(([line("Car", g, trunc=trunc, occ=occ)],
                       [line("Car", d, alpha=alpha_det, score=0.5 + i / 1000.)]))
    return frames


def run_eval(tmp_path, frames, **kw):
    gt_dir, res_dir = write(tmp_path, frames)
    return evaluate(gt_dir, res_dir, verbose=False, **kw)


# ----------------------------------------------------------------------------- overlaps
def test_image_overlap_closed_form():
    a, b = box(0, 0, 10, 10), box(5, 0, 15, 10)
    assert kernels.image_overlap(a, b, -1) == pytest.approx(50 / 150)
    assert kernels.image_overlap(a, b, 0) == pytest.approx(0.5)
    assert kernels.image_overlap(a, box(20, 20, 30, 30), -1) == 0.0


def test_ground_overlap_rotated_boxes():
    a = box(hwl=(1.5, 2., 4.), ry=0.)
    # the same box turned by 90 degrees: a 2 x 2 square in common, union 8 + 8 - 4
    assert kernels.ground_overlap(a, box(hwl=(1.5, 2., 4.), ry=math.pi / 2), -1) == pytest.approx(4 / 12)
    # a square and the same square turned by 45 degrees meet in a regular octagon
    sq, sq45 = box(hwl=(1., 2., 2.)), box(hwl=(1., 2., 2.), ry=math.pi / 4)
    inter = 2 * (math.sqrt(2) - 1) * 4
    assert kernels.ground_overlap(sq, sq45, -1) == pytest.approx(inter / (8 - inter))
    # sliding along its length by 1 m: (4 - 1) / (4 + 1)
    moved = box(t=(1., 1.65, 20.), hwl=(1.5, 2., 4.))
    assert kernels.ground_overlap(moved, a, -1) == pytest.approx(0.6)
    assert kernels.ground_overlap(moved, a, 0) == pytest.approx(0.75)


def test_box3d_overlap_height_shift():
    a = box(hwl=(1.5, 2., 4.))
    lifted = box(t=(0., 1.15, 20.), hwl=(1.5, 2., 4.))
    # 1 m of the 1.5 m height shared: 8 / (12 + 12 - 8)
    assert kernels.box3d_overlap(lifted, a, -1) == pytest.approx(8 / 16)
    both = box(t=(1., 1.15, 20.), hwl=(1.5, 2., 4.))
    assert kernels.box3d_overlap(both, a, -1) == pytest.approx(6 / 18)


# ----------------------------------------------------------------------------- AP fixtures
def test_perfect_detections_give_100_everywhere(tmp_path):
    out = run_eval(tmp_path, car_frames(80), r40=True)
    for key in ("car_detection", "car_orientation", "car_detection_ground", "car_detection_3d"):
        assert out[key] == pytest.approx([100.0] * 3, abs=1e-4), key
        assert out[key + "_R40"] == pytest.approx([100.0] * 3, abs=1e-4), key
    assert "pedestrian_detection" not in out  # a class is only evaluated when it was detected


def test_40_ground_truths_sample_40_recall_steps(tmp_path):
    # the devkit's sampling: 40 true positives fill recall samples 0..39 only
    out = run_eval(tmp_path, car_frames(40), r40=True)
    assert out["car_detection"] == pytest.approx([AP11_40_OF_40] * 3, abs=1e-4)
    assert out["car_detection_R40"] == pytest.approx([97.5] * 3)


def test_false_positives_above_every_true_positive_halve_precision(tmp_path):
    frames = car_frames(80)
    for _gt, det in frames:
        far = box(x1=400., x2=450., t=(15., 1.65, 30.))
        det.append(line("Car", far, score=0.99))
    out = run_eval(tmp_path, frames)
    assert out["car_detection"] == pytest.approx([50.0] * 3, abs=1e-4)
    assert out["car_detection_3d"] == pytest.approx([50.0] * 3, abs=1e-4)


def test_dontcare_regions_absorb_false_positives(tmp_path):
    frames = car_frames(80)
    for gt, det in frames:
        gt.append("DontCare -1 -1 -10 390.00 90.00 470.00 180.00 -1 -1 -1 -1000 -1000 -1000 -10\n")
        det.append(line("Car", box(x1=400., x2=450., t=(15., 1.65, 30.)), score=0.99))
    out = run_eval(tmp_path, frames)
    assert out["car_detection"] == pytest.approx([100.0] * 3, abs=1e-4)
    # DontCare has no 3D extent: in the bird's-eye view the extra boxes stay false positives
    assert out["car_detection_ground"] == pytest.approx([50.0] * 3, abs=1e-4)


def test_van_is_a_neighbour_class_for_car(tmp_path):
    frames = car_frames(80)
    for gt, det in frames:
        van = box(x1=300., x2=380., t=(8., 1.65, 25.), hwl=(2.2, 1.9, 5.))
        gt.append(line("Van", van))
        det.append(line("Car", van, score=0.99))
    assert run_eval(tmp_path, frames)["car_detection"] == pytest.approx([100.0] * 3, abs=1e-4)


def test_orientation_similarity(tmp_path):
    out = run_eval(tmp_path, car_frames(80, alpha_det=math.pi / 2))
    assert out["car_detection"] == pytest.approx([100.0] * 3, abs=1e-4)
    # alpha is written with 4 decimals: cos(1.5708) is not quite 0
    assert out["car_orientation"] == pytest.approx([50.0] * 3, abs=1e-3)


def test_bev_passes_where_3d_fails(tmp_path):
    def shifted(g):
        d = g.copy()
        d[4] += 1.0  # 1 m along the 3.9 m length: BEV IoU 2.9 / 4.9 > 0.5
        d[5] -= 0.5  # and 0.5 m up: 3D IoU below 0.5
        return d

    out = run_eval(tmp_path, car_frames(80, det_box=shifted))
    assert out["car_detection"] == pytest.approx([100.0] * 3, abs=1e-4)
    assert out["car_detection_ground"] == pytest.approx([100.0] * 3, abs=1e-4)
    assert out["car_detection_3d"] == pytest.approx([0.0] * 3, abs=1e-4)


@pytest.mark.parametrize("kw", [{"gt_height": 30.}, {"occ": 1}, {"trunc": 0.2}])
def test_difficulty_filters(tmp_path, kw):
    # too small / occluded / truncated for 'easy' only: nothing to find there, all found in moderate and hard
    out = run_eval(tmp_path, car_frames(80, **kw))
    assert out["car_detection"] == pytest.approx([0.0, 100.0, 100.0], abs=1e-4)


def test_hard_only_objects(tmp_path):
    out = run_eval(tmp_path, car_frames(80, occ=2, trunc=0.4))
    assert out["car_detection"] == pytest.approx([0.0, 0.0, 100.0], abs=1e-4)


def test_split_file_and_missing_results(tmp_path):
    gt_dir, res_dir = write(tmp_path, car_frames(80))
    for i in range(60, 80):
        os.remove(os.path.join(res_dir, f"{i:06d}.txt"))
    split = tmp_path / "val.txt"
    split.write_text("".join(f"{i:06d}\n" for i in range(80)))
    # a listed frame without a result file counts as detecting nothing: recall stops at 60 / 80, so
    # recall samples 0..30 have precision 1 (R40: 30 of 40; 11-point: samples 0, 4, .., 28)
    out = evaluate(gt_dir, res_dir, split_file=str(split), verbose=False, write_files=False, r40=True)
    assert out["car_detection_R40"][0] == pytest.approx(75.0, abs=1e-4)
    assert out["car_detection"][0] == pytest.approx(800 / 11, abs=1e-4)
    # without the split file only the 60 frames with results are evaluated
    assert evaluate(gt_dir, res_dir, verbose=False, write_files=False)["car_detection"][0] == pytest.approx(100.)
    with pytest.raises(UserError, match="label"):
        evaluate(str(tmp_path / "nowhere"), res_dir, verbose=False)


def test_cli_prints_the_devkit_table(tmp_path):
    gt_dir, res_dir = write(tmp_path, car_frames(80))
    # from another folder: the script finds the library by its own location
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, "kitti_eval", "evaluate.py"), gt_dir, res_dir],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "number of files for evaluation: 80" in lines
    for name in ("car_detection", "car_orientation", "car_detection_ground", "car_detection_3d"):
        assert f"{name} AP: 100.000000 100.000000 100.000000" in lines
    assert (tmp_path / "exp" / "stats_car_detection.txt").read_text().count("\n") == 3
    assert (tmp_path / "exp" / "plot" / "car_detection_3d.txt").is_file()
    proc = subprocess.run([sys.executable, os.path.join(TOOLS, "kitti_eval", "evaluate.py"), gt_dir,
                           str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_dataset_run_eval_calls_the_library_in_process(tmp_path, capsys):
    from datasets.dataset.kitti import KITTI

    ds = object.__new__(KITTI)  # only the paths and the split matter to run_eval
    ds.data_dir, ds.split = str(tmp_path / "kitti"), "val"
    label_dir = tmp_path / "kitti" / "training" / "label_2"
    label_dir.mkdir(parents=True)
    g = box()
    (label_dir / "000004.txt").write_text(line("Car", g))
    # alpha, x1 y1 x2 y2, h w l, X Y Z, rot_y, score: the same car, detected
    row = [0.0, g[0], g[1], g[2], g[3], g[7], g[8], g[9], g[4], g[5], g[6], g[10], 0.9]
    path_before = list(sys.path)
    out = ds.run_eval({4: {2: [row]}}, str(tmp_path / "exp"))
    assert sys.path == path_before
    assert (tmp_path / "exp" / "results" / "000004.txt").read_text().startswith("Car 0.0 0 0.00 100.00 100.00")
    # one ground truth reaches only the first of the 11 recall points
    assert out["car_detection"] == [pytest.approx(100 / 11, abs=1e-4)] * 3
    assert "car_detection AP: 9.090909 9.090909 9.090909" in capsys.readouterr().out.splitlines()
