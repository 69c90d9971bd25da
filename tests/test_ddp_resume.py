"""A run resumed across world sizes (one process, then two under torchrun) and main.py --test sharded over
the ranks giving a single process's results.json and COCO figures."""
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
    return one_object_world(tmp_path_factory.mktemp("resume"))


def test_one_process_run_resumes_on_two_and_tests_as_one(one_object_data):
    base, helper = one_object_data
    save_dir = base / "exp" / "ctdet" / "world1"
    same = {"NO_BN": "1", "PLAIN_SGD": "1"}
    # two epochs in one plain process (no torchrun)
    first = subprocess.run([sys.executable, str(helper), *common(base), "--exp_id", "world1", "--batch_size", "4",
                            "--num_epochs", "2", "--num_iters", "2", "--lr", "0.02", "--val_intervals", "0", *PLAIN],
                           cwd=SRC, env={**env(), **same}, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-3000:]
    # world size 1 -> 2: epoch, optimizer and lr carry over (the network without batch norm, as it was trained)
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
