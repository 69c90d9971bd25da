"""The experiment folder keeps everything: run lock, leftover temp files, SIGTERM, full disk, logs, modes."""
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from catalogue import Case, build_template, judge, make_world

import utils.io as io_mod
from logger import Logger, make_log_dir
from utils.errors import Terminated, UserError, os_error_message, run_cli
from utils.experiment import ExperimentLock, hold_experiment, remove_stale_temp_files, terminate_on_sigterm
from utils.io import atomic_save, atomic_write

SRC = Path(__file__).resolve().parent.parent / "src"


def lock_owner(folder: Path) -> dict:
    return json.loads((folder / ".lock").read_text())


def write_lock(folder: Path, **fields) -> None:
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "start": None, **fields}
    (folder / ".lock").write_text(json.dumps(owner))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("experiment_template"))


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


# --- atomic_write: permissions and errors -------------------------------------------------------------

@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_gives_plain_open_permissions(tmp_path, monkeypatch, mask, mode):
    monkeypatch.setattr(io_mod, "_umask", None)
    old = os.umask(mask)
    try:
        atomic_save({"epoch": 1}, str(tmp_path / "model_last.pth"))
        with atomic_write(str(tmp_path / "results.json")) as f:
            f.write("[]")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        assert io_mod.current_umask() == mask
        assert os.umask(mask) == mask  # reading it put it back
    finally:
        os.umask(old)
    for name in ("model_last.pth", "results.json", "plain.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_disk_full_keeps_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model_last.pth"
    atomic_save({"epoch": 1}, str(path))
    before = path.read_bytes()

    def full_disk(obj, f):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError) as e:
        atomic_save({"epoch": 2}, str(path))
    assert str(e.value) == (f"{path}: no space left on device; free some space or choose another output folder "
                            "(--exp_root)")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model_last.pth"]


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
                                         (errno.EDQUOT, "disk quota exceeded")])
def test_unwritable_folder_is_one_user_error(tmp_path, monkeypatch, code, words):
    def refuse(prefix, suffix, dir):
        raise OSError(code, os.strerror(code), os.path.join(dir, prefix + "abc" + suffix))

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", refuse)
    with pytest.raises(UserError, match=re.escape(f"{tmp_path / 'out.json'}: {words}; ")):
        with atomic_write(str(tmp_path / "out.json")) as f:
            f.write("[]")


def test_other_files_errors_are_not_blamed_on_the_output(tmp_path):
    other = OSError(errno.EACCES, "Permission denied", "/data/image.jpg")
    with pytest.raises(OSError) as e:
        with atomic_write(str(tmp_path / "out.json")):
            raise other
    assert e.value is other
    assert os.listdir(tmp_path) == []


# --- run_cli ------------------------------------------------------------------------------------------

def cli(fn, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(fn)
    err = capsys.readouterr().err
    return e.value.code, err


def raiser(exc):
    def fn():
        raise exc
    return fn


@pytest.mark.parametrize("exc, code, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/exp/log.txt"), 2,
     "error: /exp/log.txt: no space left on device; free some space or choose another output folder (--exp_root)"),
    (OSError(errno.ENOSPC, "No space left on device"), 2,
     "error: no space left on device; free some space or choose another output folder (--exp_root)"),
    (PermissionError(errno.EACCES, "Permission denied", "/exp/ctdet"), 2,
     "error: /exp/ctdet: permission denied; fix the permissions or choose another output folder (--exp_root)"),
    (OSError(errno.EROFS, "Read-only file system", "/exp/ctdet/x"), 2,
     "error: /exp/ctdet/x: read-only file system; choose another output folder (--exp_root)"),
    (UserError("--arch x: unknown"), 2, "error: --arch x: unknown"),
    (Terminated(), 143, "error: terminated (SIGTERM)"),
    (KeyboardInterrupt(), 130, "error: interrupted"),
])
def test_run_cli_one_line(capsys, exc, code, line):
    got_code, err = cli(raiser(exc), capsys)
    assert got_code == code
    assert err.splitlines() == [line]


@pytest.mark.parametrize("exc", [OSError(errno.ENOENT, "No such file or directory"), OSError(errno.EIO, "I/O", "/x"),
                                 PermissionError(errno.EPERM, "Operation not permitted"), ValueError("bug")])
def test_run_cli_keeps_the_traceback_of_bugs(exc):
    with pytest.raises(type(exc)):
        run_cli(raiser(exc))
    if isinstance(exc, OSError):
        assert os_error_message(exc) is None


# --- the run lock -------------------------------------------------------------------------------------

def test_lock_holds_pid_and_host_and_is_released(tmp_path):
    with ExperimentLock(str(tmp_path)):
        owner = lock_owner(tmp_path)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(UserError, match=f"{re.escape(str(tmp_path))}: another run \\(pid {os.getpid()} on "):
            ExperimentLock(str(tmp_path)).acquire()
    assert not (tmp_path / ".lock").exists()


def test_lock_released_on_error(tmp_path):
    with pytest.raises(KeyboardInterrupt), ExperimentLock(str(tmp_path)):
        raise KeyboardInterrupt
    assert not (tmp_path / ".lock").exists()


def test_live_pid_refuses(tmp_path, sleeper, capsys):
    write_lock(tmp_path, pid=sleeper.pid)
    with pytest.raises(UserError) as e:
        ExperimentLock(str(tmp_path)).acquire()
    assert f"pid {sleeper.pid}" in str(e.value) and str(tmp_path) in str(e.value)
    assert lock_owner(tmp_path)["pid"] == sleeper.pid


@pytest.mark.parametrize("why", ["dead", "zombie", "reused", "own_leftover", "unreadable", "empty"])
def test_stale_locks_are_taken_over_with_a_warning(tmp_path, sleeper, capsys, why):
    if why == "dead":
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        write_lock(tmp_path, pid=proc.pid)
    elif why == "zombie":
        sleeper.kill()
        time.sleep(0.2)  # killed, not reaped: os.kill(pid, 0) still succeeds
        write_lock(tmp_path, pid=sleeper.pid)
    elif why == "reused":
        if not os.path.exists(f"/proc/{sleeper.pid}/stat"):
            pytest.skip("no /proc")
        write_lock(tmp_path, pid=sleeper.pid, start=1)  # the pid's process started at another time
    elif why == "own_leftover":
        write_lock(tmp_path)  # our pid, but not a lock we took
    else:
        (tmp_path / ".lock").write_text("" if why == "empty" else "pid=12")
        os.utime(tmp_path / ".lock", (time.time() - 10, time.time() - 10))
    with ExperimentLock(str(tmp_path)):
        assert lock_owner(tmp_path)["pid"] == os.getpid()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "taking" in err[0]
    assert not os.listdir(tmp_path)


def test_lock_being_written_is_waited_for(tmp_path, sleeper):
    # a run that has just created the file and not yet written its pid is not taken for stale
    (tmp_path / ".lock").write_text("")
    owner = json.dumps({"pid": sleeper.pid, "host": socket.gethostname()})
    proc = subprocess.Popen(["sh", "-c", 'sleep 0.3; printf "%s" "$1" > "$2"', "sh", owner, str(tmp_path / ".lock")])
    with pytest.raises(UserError, match=f"pid {sleeper.pid}"):
        ExperimentLock(str(tmp_path)).acquire()
    proc.wait()


def test_only_the_owner_releases(tmp_path):
    lock = ExperimentLock(str(tmp_path)).acquire()
    write_lock(tmp_path, pid=1)  # someone took it over meanwhile: not ours to delete
    lock.release()
    assert lock_owner(tmp_path)["pid"] == 1
    (tmp_path / ".lock").unlink()
    lock = ExperimentLock(str(tmp_path)).acquire()
    lock._owner_pid = os.getpid() + 1  # as in a forked loader worker
    lock.release()
    assert (tmp_path / ".lock").exists()


def test_lock_in_read_only_folder(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(UserError, match=f"^{re.escape(str(tmp_path))}: read-only file system; "):
        ExperimentLock(str(tmp_path)).acquire()


# --- temporary files, SIGTERM -------------------------------------------------------------------------

def test_only_checkpoint_temp_files_are_removed(tmp_path):
    litter = [".model_last.pth.a1b2c3d4.tmp", ".model_12.pth.x_y_z_12.tmp", ".model_best.pth.q.tmp"]
    keep = [".results.json.a1b2c3d4.tmp", "model_last.pth", ".model_last.pth.tmp", "model_last.pth.a1.tmp",
            ".opt.txt.a1b2c3d4.tmp", ".model_last.pth.a1b2.tmp.bak"]
    for n in litter + keep:
        (tmp_path / n).write_text("x")
    assert remove_stale_temp_files(str(tmp_path)) == len(litter)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)
    assert remove_stale_temp_files(str(tmp_path / "missing")) == 0


def test_sigterm_unwinds_and_removes_the_temp_file(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), terminate_on_sigterm():
        with atomic_write(str(tmp_path / "model_last.pth"), "wb") as f:
            f.write(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises long before this ends
    assert signal.getsignal(signal.SIGTERM) is before
    assert os.listdir(tmp_path) == []


def test_hold_experiment_cleans_up_after_taking_the_lock(tmp_path, capsys):
    (tmp_path / ".model_last.pth.abc.tmp").write_text("x")
    with hold_experiment(str(tmp_path)):
        assert (tmp_path / ".lock").is_file() and not (tmp_path / ".model_last.pth.abc.tmp").exists()
    assert "Removed 1 temporary checkpoint file(s)" in capsys.readouterr().out
    assert os.listdir(tmp_path) == []


def test_sigterm_during_a_checkpoint_write_of_main(template, tmp_path):
    """A real run: SIGTERM in the middle of writing model_last.pth leaves no temp file and no lock."""
    world = make_world(template, tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("DISPLAY", None)
    args = ["ctdet", *world.common(), "--num_epochs", "3", "--lr_step", "2"]
    proc = subprocess.Popen([sys.executable, str(SRC / "main.py"), *args], cwd=SRC, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (world.save_dir.is_dir() and any(n.startswith(".model_") for n in os.listdir(world.save_dir))):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: terminated (SIGTERM)"], err
    names = os.listdir(world.save_dir)
    assert not [n for n in names if n.endswith(".tmp")] and ".lock" not in names, names
    if "model_last.pth" in names:
        torch.load(world.save_dir / "model_last.pth", map_location="cpu", weights_only=True)


# --- whole runs in this process (the catalogue's judge) with a simulated full / read-only disk -----------

def with_checkpoint(world):
    world.save_dir.mkdir(parents=True)
    shutil.copy(world.checkpoint, world.save_dir / "model_last.pth")


def no_temp_files(world, res):
    assert not [n for n in os.listdir(world.save_dir) if n.endswith(".tmp")]
    assert not (world.save_dir / ".lock").exists()


def test_disk_full_during_training_run(template, tmp_path, capfd, monkeypatch):
    def full_disk(obj, f):
        f.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    case = Case("disk_full", "main", ["--resume", "--num_epochs", "2"], prepare=with_checkpoint,
                error=("model_last.pth", "no space left on device", "--exp_root"),
                survive=lambda w: [w.save_dir / "model_last.pth"], check=no_temp_files)
    judge(case, make_world(template, tmp_path), capfd)


def test_read_only_experiment_folder_run(template, tmp_path, capfd, monkeypatch):
    world = make_world(template, tmp_path)
    real_open = os.open
    inside = str(world.save_dir) + os.sep

    def read_only_open(path, *a, **k):
        if str(path).startswith(inside):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", read_only_open)
    case = Case("read_only", "main", ["--resume", "--num_epochs", "2"], prepare=with_checkpoint,
                error=(str(world.save_dir), "read-only file system", "--exp_root"),
                survive=lambda w: [w.save_dir / "model_last.pth"])
    judge(case, world, capfd)
    assert sorted(os.listdir(world.save_dir)) == ["model_last.pth"]


# --- Logger ---------------------------------------------------------------------------------------------

def make_opt(tmp_path):
    from opts import opts

    return opts().parse(["ctdet", "--exp_root", str(tmp_path / "exp"), "--exp_id", "log"])


def test_log_folders_are_unique_and_never_reused(tmp_path, capsys):
    opt = make_opt(tmp_path)
    dirs = []
    for i in range(3):
        with Logger(opt) as logger:
            logger.write(f"run {i}\n")
            dirs.append(logger.log_dir)
        assert logger.log.closed
    assert len(set(dirs)) == 3
    for i, d in enumerate(dirs):
        assert re.fullmatch(r"logs_\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d(_\d+)?", os.path.basename(d)), d
        assert open(os.path.join(d, "log.txt")).read().endswith(f": run {i}\n")
    logger.close()  # twice is harmless


def test_make_log_dir_counts_up(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "2024-01-02-03-04-05")
    assert [os.path.basename(make_log_dir(str(tmp_path))) for _ in range(3)] == [
        "logs_2024-01-02-03-04-05", "logs_2024-01-02-03-04-05_2", "logs_2024-01-02-03-04-05_3"]


def test_logger_closed_on_error_and_full_disk_named(tmp_path, capsys):
    opt = make_opt(tmp_path)
    with pytest.raises(RuntimeError), Logger(opt) as logger:
        raise RuntimeError("boom")
    assert logger.log.closed

    class Full:
        closed = False

        def write(self, txt):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.closed = True

    logger = Logger(opt)
    logger.log.close()
    logger.log = Full()
    with pytest.raises(UserError, match=re.escape(f"{logger.log_path}: no space left on device")):
        logger.write("epoch: 1 |\n")


def test_loader_error_raised_while_handling_sigterm_is_reported_as_the_signal(capsys):
    def stopped_with_loader():
        try:
            raise Terminated("terminated (SIGTERM)")
        except Terminated:
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.") from None

    def interrupted_with_loader():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")  # noqa: B904 - as torch does

    assert cli(stopped_with_loader, capsys) == (143, "error: terminated (SIGTERM)\n")
    assert cli(interrupted_with_loader, capsys) == (130, "error: interrupted\n")
