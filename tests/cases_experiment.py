"""Catalogue cases: the experiment folder (run lock, leftover temporary files, logs, permissions).

Disk-full and read-only faults need monkeypatching (the tests run as root, whom chmod does not stop):
those are in tests/test_experiment.py, which runs them through the same judge.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
from catalogue import Case

# the process that started pytest (or init): alive for the whole session, never ours
HOLDER = os.getppid() or 1


def plant_lock(world, pid, host=None, text=None, age=0.0):
    """Write a lock file into the case's experiment folder as another run would have left it."""
    world.save_dir.mkdir(parents=True, exist_ok=True)
    path = world.save_dir / ".lock"
    if text is None:
        text = json.dumps({"pid": pid, "host": host or socket.gethostname(), "start": None}) + "\n"
    path.write_text(text)
    if age:
        os.utime(path, (time.time() - age, time.time() - age))


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lock_kept_nothing_written(world, res):
    assert str(world.save_dir) in res.lines("error:")[0]
    assert (world.save_dir / ".lock").is_file()
    assert not (world.save_dir / "opt.txt").exists() and not list(world.save_dir.glob("logs_*"))


def lock_released(world, res):
    assert not (world.save_dir / ".lock").exists()
    assert (world.save_dir / "model_last.pth").is_file()


LITTER = [".model_last.pth.k2j4h5_x.tmp", ".model_3.pth.abcdefgh.tmp"]
NOT_LITTER = [".results.json.abcdefgh.tmp", "notes.tmp", "model_last.pth.tmp"]


def plant_litter(world):
    world.save_dir.mkdir(parents=True)
    for name in LITTER + NOT_LITTER:
        (world.save_dir / name).write_bytes(b"half a checkpoint")


def litter_removed(world, res):
    assert not any((world.save_dir / n).exists() for n in LITTER)
    assert all((world.save_dir / n).exists() for n in NOT_LITTER)
    assert f"Removed {len(LITTER)} temporary checkpoint file(s)" in res.stdout


def plant_old_logs(world):
    """Log folders of earlier runs for every second of the next half minute: the run must pick a new name."""
    now = time.time()
    for s in range(30):
        folder = world.save_dir / f"logs_{time.strftime('%Y-%m-%d-%H-%M-%S', time.localtime(now + s))}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "log.txt").write_text("an earlier run\n")


def old_logs(world):
    return sorted(world.save_dir.glob("logs_*/log.txt"))


def new_log_folder(world, res):
    new = [p for p in world.save_dir.glob("logs_*") if (p / "log.txt").read_text() != "an earlier run\n"]
    assert len(new) == 1 and new[0].name.endswith("_2"), new
    assert "epoch: 1 |" in (new[0] / "log.txt").read_text()


def umask():
    from utils.io import current_umask

    return current_umask()


def plain_open_permissions(world, res):
    want = 0o666 & ~umask()
    for name in ("model_last.pth", "opt.txt"):
        assert (world.save_dir / name).stat().st_mode & 0o777 == want, name
    if umask() == 0o022:
        assert (world.save_dir / "model_last.pth").stat().st_mode & 0o777 == 0o644


def read_only(world, folder):
    if os.geteuid() == 0:
        pytest.skip("runs as root, whom chmod 0555 does not stop; test_experiment.py simulates EROFS/ENOSPC")
    world.save_dir.mkdir(parents=True)
    shutil.copy(world.checkpoint, world.save_dir / "model_last.pth")
    os.chmod(folder(world), 0o555)


CASES = [
    Case("lock_held_by_live_run", "main", prepare=lambda w: plant_lock(w, HOLDER),
         error=("another run", f"pid {HOLDER}", "--exp_id"), survive=lambda w: [w.save_dir / ".lock"],
         check=lock_kept_nothing_written),
    Case("lock_on_other_host", "main", prepare=lambda w: plant_lock(w, HOLDER, host="elsewhere.example"),
         error=("another run", "elsewhere.example", ".lock"), check=lock_kept_nothing_written),
    Case("lock_stale_dead_pid", "main", prepare=lambda w: plant_lock(w, dead_pid()), exit=0,
         warnings=("is gone; taking over its lock",), check=lock_released),
    Case("lock_unreadable", "main", prepare=lambda w: plant_lock(w, 0, text="\x00garbage", age=60), exit=0,
         warnings=(".lock: unreadable lock file",), check=lock_released),
    Case("stale_temp_checkpoints_removed", "main", prepare=plant_litter, exit=0, check=litter_removed),
    Case("log_folder_never_reused", "main", prepare=plant_old_logs, exit=0, survive=old_logs,
         check=new_log_folder),
    Case("checkpoint_permissions_as_plain_open", "main", exit=0, check=plain_open_permissions),
    Case("read_only_experiment_folder", "main", ["--resume", "--num_epochs", "2"],
         prepare=lambda w: read_only(w, lambda w: w.save_dir), error=("permission denied", "--exp_root"),
         survive=lambda w: [w.save_dir / "model_last.pth"]),
    Case("read_only_exp_root", "main", prepare=lambda w: read_only(w, lambda w: w.save_dir.parent),
         args=lambda w: ["--exp_id", "new"], error=("permission denied", "--exp_root"),
         survive=lambda w: [w.save_dir / "model_last.pth"]),
]
