"""Hourglass-104 trains and tests on the CPU (--gpus -1) through the entry scripts, on a tiny input."""
import os

import pytest
from script_runner import run_script


def run(args):
    return run_script(args, threads=None, timeout=600).stdout


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
