"""Hourglass-104 trains and tests on the CPU (--gpus -1) through the entry scripts, on a tiny input."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


def run(args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, *args], cwd=SRC, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.parametrize("task,kind,dataset", [("ctdet", "det", "synth"), ("multi_pose", "hp", "synth_hp")])
def test_hourglass_train_and_test_on_cpu(tmp_path, task, kind, dataset):
    run([os.path.join("tools", "gen_synthetic.py"), "--kind", kind, "--out", str(tmp_path / "data" / dataset),
         "--train", "2", "--val", "1", "--seed", "3"])
    common = [task, "--dataset", dataset, "--arch", "hourglass", "--gpus", "-1", "--input_res", "128",
              "--data_dir", str(tmp_path / "data"), "--exp_root", str(tmp_path / "exp"), "--exp_id", "hg"]
    out = run(["main.py", *common, "--batch_size", "2", "--num_epochs", "1", "--num_iters", "1",
               "--val_intervals", "0", "--num_workers", "0", "--print_iter", "1"])
    assert "hm_loss" in out
    ckpt = tmp_path / "exp" / task / "hg" / "model_last.pth"
    assert ckpt.is_file()
    out = run(["test.py", *common, "--load_model", str(ckpt), "--not_prefetch_test"])
    assert (tmp_path / "exp" / task / "hg" / "results.json").is_file()
