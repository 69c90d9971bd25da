"""Two processes under torchrun against one: the same optimisation step for step, and test.py sharded over
the ranks giving a single process's results."""
import glob
import json
import subprocess
import sys

import pytest
import torch
from test_distributed import PLAIN, SRC, common, env, one_object_world, torchrun


@pytest.fixture(scope="module")
def one_object_data(tmp_path_factory):
    return one_object_world(tmp_path_factory.mktemp("equal"))


def test_two_processes_follow_one_process_with_the_same_global_batch(one_object_data):
    base, helper = one_object_data
    weights = {}
    for nproc in (1, 2):
        exp_id = f"world{nproc}"
        args = [*common(base), "--exp_id", exp_id, "--batch_size", "4", "--num_epochs", "2", "--num_iters", "3",
                "--lr", "0.02", "--val_intervals", "0", *PLAIN]
        proc = torchrun(str(helper), args, nproc=nproc, NO_BN="1", PLAIN_SGD="1")
        assert proc.returncode == 0, proc.stderr[-3000:]
        weights[nproc] = torch.load(base / "rank0.pt", weights_only=True)
    start = create_start_weights()
    moved = max((weights[1][k] - start[k]).abs().max().item() for k in weights[1])
    assert moved > 1e-3  # 4 SGD steps changed the weights: the comparison means something
    diff = max((weights[1][k] - weights[2][k]).abs().max().item() for k in weights[1])
    print(f"2 processes against 1: largest weight difference {diff:.2e} (weights moved up to {moved:.2e})")
    assert diff < 1e-5, diff


def create_start_weights():
    from models.model import create_model

    torch.manual_seed(317)  # main.py's --seed: the model is built right after seeding
    model = create_model("res_18", {"hm": 6, "wh": 2, "reg": 2}, 64)
    return model.state_dict()


def test_test_py_under_torchrun_shards_images_and_evaluates_once(one_object_data, tmp_path):
    from models.model import create_model, save_model

    base, _ = one_object_data
    torch.manual_seed(0)
    ckpt = tmp_path / "random.pth"
    save_model(str(ckpt), 0, create_model("res_18", {"hm": 6, "wh": 2, "reg": 2}, 64))
    args = ["ctdet", "--dataset", "synth", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--data_dir", str(base / "data"), "--exp_root", str(tmp_path / "exp"), "--load_model", str(ckpt)]
    ranks = torchrun("test.py", [*args, "--exp_id", "two"])
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    # the single process reads the images in this process: the other test loop, the same detections
    single = subprocess.run([sys.executable, "test.py", *args, "--exp_id", "one", "--not_prefetch_test"], cwd=SRC,
                            env=env(), capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]
    results = [json.loads((tmp_path / "exp" / "ctdet" / name / "results.json").read_text()) for name in ("one", "two")]
    assert len(results[0]) > 0 and results[1] == results[0]
    assert ranks.stdout.count("Average Precision") == 6  # evaluated once, by rank 0
    assert len(glob.glob(str(tmp_path / "exp" / "ctdet" / "two" / "logs_*"))) == 1
