"""Training under torchrun on the CPU (gloo, two processes): one experiment folder, equal weights, resume, errors."""
import glob
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
LIB = os.path.join(SRC, "lib")

# main.py's own command line, but with every rank's final weights written next to the experiment:
# DDP promises equal weights on all ranks, and only an outside look at each rank can show it.
HELPER = """
import os
import sys

sys.path[:0] = [{src!r}, {lib!r}]
import torch

import main as entry
from utils.errors import run_cli

models = []
create = entry.create_model


def capture(*args, **kwargs):
    model = create(*args, **kwargs)
    if os.environ.get("NO_BN"):
        # batch statistics differ between one batch and its halves: compare the optimisation without them
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, torch.nn.BatchNorm2d):
                    setattr(module, name, torch.nn.Identity())
    models.append(model)
    return model


entry.create_model = capture
if os.environ.get("PLAIN_SGD"):
    # Adam divides by the root of tiny, rounding-dominated second moments, which turns 1e-7 differences
    # into lr-sized steps; plain SGD keeps the comparison at float32 rounding
    torch.optim.Adam = lambda params, lr, **kwargs: torch.optim.SGD(params, lr=lr)
if os.environ.get("DIE_RANK") == os.environ.get("RANK", "0"):
    import signal

    import trains.base_trainer as trainer

    batches = []
    to_device = trainer._to_device

    def dying(batch, device):
        batches.append(1)
        # epoch 2's second batch: rank 0 has written epoch 1's checkpoint (it took part in the all-reduce
        # of epoch 2's first batch since) and waits in the next all-reduce
        if len(batches) == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return to_device(batch, device)

    trainer._to_device = dying
sys.argv[0] = "main.py"
run_cli(entry._cli)
state = {{k: v.detach().contiguous() for k, v in models[0].state_dict().items()}}
torch.save(state, os.path.join({out!r}, "rank" + os.environ.get("RANK", "0") + ".pt"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    e.pop("DISPLAY", None)
    return e


def torchrun(script: str, args: list[str], nproc: int = 2, **extra_env: str) -> subprocess.CompletedProcess:
    """`nproc` CPU processes on this host through `python -m torch.distributed.run`, from src/."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), script, *args]
    return subprocess.run(cmd, cwd=SRC, env={**env(), **extra_env}, capture_output=True, text=True, timeout=240)


def common(base) -> list[str]:
    return ["ctdet", "--dataset", "synth", "--arch", "res_18", "--gpus", "-1", "--input_res", "64", "--num_workers",
            "0", "--data_dir", str(base / "data"), "--exp_root", str(base / "exp"), "--exp_id", "ddp"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """Generated data, then 2 epochs of 2 iterations (global batch 4) on two ranks, validating at epoch 2."""
    from datasets.synthetic import shapes

    base = tmp_path_factory.mktemp("ddp")
    shapes.generate(str(base / "data" / "synth"), n_train=8, n_val=2, seed=5)
    helper = base / "helper.py"
    helper.write_text(textwrap.dedent(HELPER.format(src=SRC, lib=LIB, out=str(base))))
    proc = torchrun(str(helper), [*common(base), "--batch_size", "4", "--num_epochs", "2", "--num_iters", "2",
                                  "--lr_step", "1", "--val_intervals", "2"])
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return base, proc


def test_one_experiment_folder_written_by_rank_0(ddp_run):
    base, proc = ddp_run
    save_dir = base / "exp" / "ctdet" / "ddp"
    assert sorted(p.name for p in save_dir.iterdir() if not p.name.startswith("logs_")) == [
        "debug", "model_1.pth", "model_best.pth", "model_last.pth", "opt.txt"]
    logs = glob.glob(str(save_dir / "logs_*" / "log.txt"))
    assert len(logs) == 1
    lines = open(logs[0]).read().splitlines()
    assert [re.search(r"epoch: (\d+)", line).group(1) for line in lines] == ["1", "2"]
    assert lines[1].count("hm_loss") == 2  # training and validation statistics
    # only rank 0 prints
    assert proc.stdout.count("Starting training...") == 1
    ckpt = torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and "optimizer" in ckpt
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert not (save_dir / ".lock").exists()


def test_ranks_end_with_the_same_weights(ddp_run):
    base, _ = ddp_run
    rank0, rank1 = (torch.load(base / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = torch.load(base / "exp" / "ctdet" / "ddp" / "model_last.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)


def test_ddp_checkpoint_resumes_in_one_process(ddp_run):
    base, _ = ddp_run
    proc = subprocess.run([sys.executable, "main.py", *common(base), "--batch_size", "4", "--num_epochs", "3",
                           "--num_iters", "1", "--lr_step", "1", "--val_intervals", "0", "--resume"],
                          cwd=SRC, env=env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    save_dir = base / "exp" / "ctdet" / "ddp"
    ckpt = torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 3
    # lr_step 1 is behind: the optimizer restarts at the dropped lr
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1.25e-5)
    logs = sorted(glob.glob(str(save_dir / "logs_*" / "log.txt")))
    assert "training continues at epoch 3" in open(logs[-1]).read()


def test_batch_not_divisible_by_world_size_stops_every_rank(tmp_path):
    proc = torchrun("main.py", [*common(tmp_path), "--batch_size", "3"])
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    # every rank checks the option; torchrun stops the others once the first exits, so a slower rank may be
    # ended before it prints its own line (or prints the termination line instead)
    assert any("--batch_size 3" in e and "world size 2" in e for e in errors), proc.stderr
    assert all("--batch_size 3" in e or "terminated" in e for e in errors) and len(errors) <= 2, proc.stderr
    assert not (tmp_path / "exp").exists()


def test_sharded_passes_merge_back_in_single_process_order():
    from utils import distributed

    for length in (0, 1, 5, 6):
        shards = [list(distributed.ShardSampler(length, rank, 2)) for rank in (0, 1)]
        assert sorted(shards[0] + shards[1]) == list(range(length))
        assert [len(distributed.ShardSampler(length, r, 2)) for r in (0, 1)] == [len(s) for s in shards]
        parts = [{i: f"r{i}" for i in shard} for shard in shards]
        assert list(distributed.interleave(parts)) == list(range(length))


def test_helpers_without_torchrun_act_as_one_process():
    from utils import distributed

    assert not distributed.is_enabled() and distributed.is_main() and distributed.get_world_size() == 1
    assert distributed.all_reduce_mean({"loss": 2.5}, weight=3) == {"loss": 2.5}
    assert distributed.gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object("x") == "x"


# No augmentation and one object per image: a batch and its two halves then give the same mean loss, so
# two processes of 2 images must follow one process of 4 image for image (batch norm aside).
PLAIN = ["--not_rand_crop", "--shift", "0", "--scale", "0", "--flip", "0", "--no_color_aug"]


def one_object_world(base):
    """12 training and 3 val images of one object each, and the helper script, under `base`."""
    from datasets.synthetic import shapes

    shapes.generate(str(base / "data" / "synth"), n_train=12, n_val=3, seed=3, max_objects=1)
    helper = base / "helper.py"
    helper.write_text(textwrap.dedent(HELPER.format(src=SRC, lib=LIB, out=str(base))))
    return base, helper


@pytest.fixture(scope="module")
def one_object_data(tmp_path_factory):
    return one_object_world(tmp_path_factory.mktemp("equal"))


def test_a_rank_killed_mid_epoch_ends_the_job_with_one_line(one_object_data):
    import time

    base, helper = one_object_data
    args = [*common(base), "--exp_id", "killed", "--batch_size", "4", "--num_epochs", "3", "--num_iters", "3",
            "--val_intervals", "0", *PLAIN]
    start = time.time()
    proc = torchrun(str(helper), args, DIE_RANK="1")
    elapsed = time.time() - start
    assert proc.returncode != 0
    assert elapsed < 90
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    save_dir = base / "exp" / "ctdet" / "killed"
    assert "rank 0:" in errors[0] and "first error above" in errors[0]
    # rank 1 died in epoch 2: epoch 1's checkpoint is whole, and nothing half-written or locked is left
    assert torch.load(save_dir / "model_last.pth", weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in save_dir.iterdir() if p.name.startswith(".") or p.suffix == ".tmp") == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (NCCL, SyncBatchNorm)")
def test_nccl_sync_bn_fp16_on_gpus(tmp_path):
    from datasets.synthetic import shapes

    shapes.generate(str(tmp_path / "data" / "synth"), n_train=8, n_val=2, seed=5)
    nproc = min(2, torch.cuda.device_count())
    gpus = ",".join(str(i) for i in range(nproc))
    args = ["ctdet", "--dataset", "synth", "--arch", "res_18", "--gpus", gpus, "--input_res", "64", "--num_workers",
            "0", "--data_dir", str(tmp_path / "data"), "--exp_root", str(tmp_path / "exp"), "--exp_id", "nccl",
            "--batch_size", str(2 * nproc), "--num_epochs", "1", "--num_iters", "2", "--sync_bn", "--amp", "fp16"]
    proc = torchrun("main.py", args, nproc=nproc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "exp" / "ctdet" / "nccl" / "model_last.pth", weights_only=True)
    assert "scaler" in ckpt and not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert all(v.dtype != torch.float16 for v in ckpt["state_dict"].values())
