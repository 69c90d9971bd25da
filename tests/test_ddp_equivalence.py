"""Two processes under torchrun against one: the same optimisation step for step, resume across world sizes,
and --test sharded over the ranks giving a single process's results."""
import glob
import json
import re
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


def test_one_process_run_resumes_on_two_and_tests_as_one(one_object_data):
    base, helper = one_object_data
    if not (base / "exp" / "ctdet" / "world1" / "model_last.pth").exists():
        pytest.skip("needs the one-process run of test_two_processes_follow_one_process_with_the_same_global_batch")
    save_dir = base / "exp" / "ctdet" / "world1"
    # world size 1 -> 2: epoch, optimizer and lr carry over (the network without batch norm, as it was trained)
    same = {"NO_BN": "1", "PLAIN_SGD": "1"}
    proc = torchrun(str(helper), [*common(base), "--exp_id", "world1", "--batch_size", "4", "--num_epochs", "3",
                                  "--num_iters", "2", "--lr", "0.02", "--lr_step", "2", "--val_intervals", "0",
                                  "--resume", *PLAIN], **same)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(save_dir / "model_last.pth", weights_only=True)
    # epoch 2 had passed --lr_step 2: the run continues at 0.02 / 10
    assert ckpt["epoch"] == 3 and ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.002)
    assert "training continues at epoch 3" in open(sorted(glob.glob(str(save_dir / "logs_*" / "log.txt")))[-1]).read()
    # --test: each rank evaluates its share of the images; rank 0 gathers them into one results.json
    test_args = [*common(base), "--test", "--load_model", str(save_dir / "model_last.pth")]
    proc = torchrun(str(helper), [*test_args, "--exp_id", "test2"], **same)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run([sys.executable, str(helper), *test_args, "--exp_id", "test1"], cwd=SRC,
                            env={**env(), **same}, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]
    results = [json.loads((base / "exp" / "ctdet" / name / "results.json").read_text()) for name in ("test1", "test2")]
    assert len(results[0]) > 0 and results[1] == results[0]
    ap = [re.findall(r"Average (?:Precision|Recall).*= (-?[\d.]+)", out) for out in (single.stdout, proc.stdout)]
    assert len(ap[0]) == 12 and ap[1] == ap[0]


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
