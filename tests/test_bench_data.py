"""bench_data: the per-object baseline of the original and our vectorised samples agree (no timing asserted)."""
import os
import sys

import numpy as np
import pytest

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "tools")
if TOOLS not in sys.path:
    sys.path.append(TOOLS)

import bench_data  # noqa: E402
import sample_reference  # noqa: E402

from datasets.synthetic import people, shapes  # noqa: E402


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    shapes.generate(str(root / "synth"), n_train=3, n_val=3, seed=1)
    people.generate(str(root / "synth_hp"), n_train=3, n_val=3, seed=1)
    return str(root)


@pytest.mark.parametrize("split,extra", [
    ("train", []),
    ("val", []),
    ("train", ["--dense_wh"]),
    ("train", ["--cat_spec_wh"]),
    ("val", ["--mse_loss", "--dense_wh"]),
    ("train", ["--not_rand_crop", "--no_color_aug"]),
])
def test_ctdet_reference_matches_ours(data_root, split, extra):
    ds = bench_data.build_dataset("ctdet", "synth", split, data_root, extra)
    assert bench_data.check_equal(ds, sample_reference.reference_ctdet, n=3, seed=5) == []


@pytest.mark.parametrize("split,extra", [
    ("train", []),
    ("val", []),
    ("train", ["--dense_hp"]),
    ("train", ["--aug_rot", "1"]),
])
def test_multi_pose_reference_matches_ours(data_root, split, extra):
    ds = bench_data.build_dataset("multi_pose", "synth_hp", split, data_root, extra)
    assert bench_data.check_equal(ds, sample_reference.reference_multi_pose, n=3, seed=5) == []


def test_compare_reports_differences():
    a = {"hm": np.zeros((2, 4, 4), np.float32), "meta": {"c": np.array([1.0, 2.0])}}
    b = {"hm": np.zeros((2, 4, 4), np.float32), "meta": {"c": np.array([1.0, 2.5])}}
    assert bench_data.compare(a, a) == []
    assert [p.split(":")[0] for p in bench_data.compare(a, b)] == ["meta.c"]
    assert "keys" in bench_data.compare(a, {"hm": a["hm"]})[0]
    assert "dtype" in bench_data.compare({"x": np.zeros(3, np.int64)}, {"x": np.zeros(3, np.uint8)})[0]


def test_main_runs_on_a_data_root(data_root, capsys):
    times = bench_data.main(["--data_dir", data_root, "--n", "2", "--warmup", "0", "--check", "2"])
    assert set(times) == {"ours", "reference"} and all(len(t) == 2 and (t > 0).all() for t in times.values())
    assert "ratio reference/ours" in capsys.readouterr().out
