"""Entry scripts turn bad input into one `error: ...` line on stderr and exit code 2."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


def run(script, *args, tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    env.pop("DISPLAY", None)
    cmd = [sys.executable, script, *args, "--exp_root", str(tmp_path / "exp")]
    return subprocess.run(cmd, cwd=SRC, env=env, capture_output=True, text=True, timeout=120)


def assert_one_error_line(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0]


@pytest.mark.parametrize("script", ["main.py", "test.py", "demo.py"])
def test_unknown_arch(script, tmp_path):
    proc = run(script, "ctdet", "--arch", "resnet_7", "--gpus", "-1", tmp_path=tmp_path)
    assert_one_error_line(proc, "--arch", "resnet_7")


def test_unknown_task(tmp_path):
    assert_one_error_line(run("main.py", "segment", "--gpus", "-1", tmp_path=tmp_path), "segment")


def test_unknown_dataset(tmp_path):
    proc = run("main.py", "ctdet", "--dataset", "imagenet", "--gpus", "-1", tmp_path=tmp_path)
    assert_one_error_line(proc, "imagenet")
    assert not os.path.exists(tmp_path / "exp" / "ctdet" / "default" / "opt.txt")


def test_demo_missing_load_model(tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    proc = run("demo.py", "ctdet", "--arch", "res_18", "--gpus", "-1", "--demo", str(img), tmp_path=tmp_path)
    assert_one_error_line(proc, "--load_model")
    proc = run("demo.py", "ctdet", "--arch", "res_18", "--gpus", "-1", "--demo", str(img),
               "--load_model", str(tmp_path / "none.pth"), tmp_path=tmp_path)
    assert_one_error_line(proc, "none.pth")


def test_demo_missing_input(tmp_path):
    proc = run("demo.py", "ctdet", "--arch", "res_18", "--gpus", "-1", "--demo", str(tmp_path / "x.jpg"),
               tmp_path=tmp_path)
    assert_one_error_line(proc, "x.jpg")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("script", ["main.py", "demo.py"])
def test_gpus_without_cuda(script, tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    proc = run(script, "ctdet", "--arch", "res_18", "--gpus", "0", "--demo", str(img), tmp_path=tmp_path)
    assert_one_error_line(proc, "--gpus 0: no CUDA device available; use --gpus -1 for CPU")
