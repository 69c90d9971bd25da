"""kill -9 a training run at seeded moments, resume it, and check that nothing was lost on the way.

One experiment is trained for 6 epochs (lr steps at 3 and 5) through a chain of runs: every run but the
last is killed with SIGKILL, once in the middle of a checkpoint write, once while an lr-step checkpoint
is being written, otherwise at a seeded delay after a checkpoint write began. After each kill the
folder must hold a loadable model_last.pth (if any), and the next run must take over the stale lock,
remove the dead run's temporary files, and resume at the right epoch with the right learning rate.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
LR = 1.25e-4  # the ctdet default
LR_STEPS = (3, 5)
EPOCHS = 6
KILLS = 5
TEMP = re.compile(r"^\.model_.*\.pth\..+\.tmp$")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from datasets.synthetic import shapes

    base = tmp_path_factory.mktemp("kill_data")
    shapes.generate(str(base / "synth"), n_train=6, n_val=2, seed=11)
    return base


@pytest.fixture
def exp_root(tmp_path):
    """A folder for the experiment: in memory where /dev/shm has room (checkpoints are 190 MB, and
    writing them to a busy disk costs seconds each), on the disk otherwise."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 << 30:
        folder = Path(tempfile.mkdtemp(prefix="kill_resume_", dir=shm))
        yield folder / "exp"
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path / "exp"


def start(data_dir: Path, exp_root: Path, log: Path, resume: bool) -> subprocess.Popen:
    """main.py in its own process, output to files (a full pipe would stall it)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)
    args = ["ctdet", "--dataset", "synth", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--num_workers", "0", "--batch_size", "2", "--num_iters", "2", "--num_epochs", str(EPOCHS),
            "--lr_step", ",".join(map(str, LR_STEPS)), "--val_intervals", "0", "--data_dir", str(data_dir),
            "--exp_root", str(exp_root), "--exp_id", "k"] + (["--resume"] if resume else [])
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, str(SRC / "main.py"), *args], cwd=SRC, env=env,
                                stdout=out, stderr=err)


def temp_files(save_dir: Path) -> set[str]:
    return {n for n in os.listdir(save_dir) if TEMP.match(n)} if save_dir.is_dir() else set()


def names(save_dir: Path) -> set[str]:
    return set(os.listdir(save_dir)) if save_dir.is_dir() else set()


def run_until(proc: subprocess.Popen, save_dir: Path, prefix: str, delay: float) -> bool:
    """Kill `proc` `delay` s after a new file or folder starting with `prefix` appears in `save_dir`.

    Returns True when it was killed, False when it finished first.
    """
    old = names(save_dir)
    deadline = time.monotonic() + 180
    while proc.poll() is None:
        assert time.monotonic() < deadline, "main.py hangs"
        if any(n.startswith(prefix) for n in names(save_dir) - old):
            time.sleep(delay)
            if proc.poll() is not None:
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.003)
    return False


def expected_lr(epoch: int) -> float:
    """The lr a run reaches after `epoch` epochs: x0.1 for every lr step already passed."""
    return LR * 0.1 ** sum(epoch >= s for s in LR_STEPS)


def saved_epoch(save_dir: Path) -> int:
    """Epoch of model_last.pth (0 when there is none); it must load with the safe loader."""
    path = save_dir / "model_last.pth"
    if not path.exists():
        return 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert {"epoch", "state_dict", "optimizer"} <= set(ckpt)
    return ckpt["epoch"]


def test_kill_and_resume(data_dir, exp_root, tmp_path):
    rng = random.Random(2024)
    save_dir = exp_root / "ctdet" / "k"
    # When to kill, as (what appears in the folder, then how long to wait): in a checkpoint write, in an
    # lr-step checkpoint write, and at seeded moments after a run's log folder or a checkpoint write began.
    moments = [(".model_", 0.0), ("lr_step", 0.0), (".model_", rng.uniform(0.0, 0.5)),
               ("logs_", rng.uniform(0.0, 3.0)), ("logs_", rng.uniform(0.0, 3.0))]
    rng.shuffle(moments)
    litter: set[str] = set()
    runs = kills = 0
    while True:
        epoch = saved_epoch(save_dir)
        for step in LR_STEPS:
            if step <= epoch:
                assert (save_dir / f"model_{step}.pth").is_file(), f"model_{step}.pth lost (saved epoch {epoch})"
        log = tmp_path / f"run{runs}"
        proc = start(data_dir, exp_root, log, resume=epoch > 0)
        runs += 1
        if kills < KILLS:
            prefix, delay = moments[kills]
            if prefix == "lr_step":
                later = [s for s in LR_STEPS if s > epoch]
                prefix = f".model_{later[0]}.pth." if later else ".model_"
            killed = run_until(proc, save_dir, prefix, delay)
        else:
            killed = False
            proc.wait(timeout=180)
        out, err = log.with_suffix(".out").read_text(), log.with_suffix(".err").read_text()
        shown = f"\n--- stdout\n{out[-2000:]}\n--- stderr\n{err[-2000:]}"
        assert "Traceback" not in err, shown
        # the dead run's temporary files and lock are cleared before anything else happens
        assert not litter & temp_files(save_dir), shown
        if litter:
            assert f"Removed {len(litter)} temporary checkpoint file(s)" in out, shown
        if runs > 1:
            assert "is gone; taking over its lock" in err, shown
        # a run killed early may not have got as far as loading its checkpoint
        if epoch > 0 and (not killed or "Setting up data..." in out):
            m = re.search(r"Resumed optimizer with start lr (\S+)", out)
            assert m and float(m.group(1)) == pytest.approx(expected_lr(epoch), rel=1e-9), shown
            logs = sorted(save_dir.glob("logs_*/log.txt"), key=lambda p: p.stat().st_mtime)
            text = logs[-1].read_text()
            assert f"(epoch {epoch}): training continues at epoch {epoch + 1}" in text, shown
            first = re.search(r"epoch: (\d+) \|", text)
            assert first is None or int(first.group(1)) == epoch + 1, shown
        if not killed:
            assert proc.returncode == 0, shown
            break
        kills += 1
        litter = temp_files(save_dir)
        assert (save_dir / ".lock").is_file()  # SIGKILL leaves the lock behind

    assert kills == KILLS
    assert saved_epoch(save_dir) == EPOCHS
    ckpt = torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=True)
    assert all(g["lr"] == pytest.approx(expected_lr(EPOCHS), rel=1e-9) for g in ckpt["optimizer"]["param_groups"])
    for step in LR_STEPS:
        assert torch.load(save_dir / f"model_{step}.pth", map_location="cpu", weights_only=True)["epoch"] == step
    assert not temp_files(save_dir) and not (save_dir / ".lock").exists()
    # every run that got as far as its logger has a log folder of its own
    assert len(list(save_dir.glob("logs_*"))) <= runs
