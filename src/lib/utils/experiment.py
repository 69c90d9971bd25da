"""One run per experiment folder: the run lock, leftover temporary checkpoints and a clean SIGTERM.

The lock is a file `.lock` in the experiment folder holding the owner's pid and host. It is created
with O_CREAT|O_EXCL, removed when the run ends (normally, on an error, on SIGINT or SIGTERM), and
taken over with a warning when its owner is gone (kill -9, power loss) or its content is unreadable.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from utils.errors import Terminated, UserError, os_error_message, warn

LOCK_NAME = ".lock"
# atomic_write's temporary files of checkpoints, '.model_<x>.pth.<random>.tmp' (see utils.io.temp_name_prefix);
# only checkpoints: test.py writes results.json without the lock, so its temporary file may be live
_TEMP_CHECKPOINT = re.compile(r"^\.model_[^/]*\.pth\.[A-Za-z0-9_]+\.tmp$")
# locks held by this process (so that a lock naming our own pid is told apart from a leftover)
_held: set[str] = set()


@dataclass
class LockOwner:
    """Who wrote a lock file."""

    pid: int
    host: str
    start: int | None  # the process start time (Linux clock ticks), which tells a reused pid apart


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a process from /proc, None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _owner_text(pid: int) -> str:
    stat = _proc_stat(pid)
    return json.dumps({"pid": pid, "host": socket.gethostname(), "start": stat[1] if stat else None}) + "\n"


def _parse(raw: bytes) -> LockOwner | None:
    """The owner named in a lock file, None when the content is not a lock this module wrote."""
    try:
        d = json.loads(raw.decode())
        pid, host, start = d["pid"], d["host"], d.get("start")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if type(pid) is not int or pid <= 0 or not isinstance(host, str) or not (start is None or type(start) is int):
        return None
    return LockOwner(pid, host, start)


def _alive(owner: LockOwner, lock_path: str) -> bool:
    """Whether the lock's owner may still be running (a process on another host always may)."""
    if owner.host != socket.gethostname():
        return True
    if owner.pid == os.getpid():
        # our own pid: either we hold it, or it is a leftover of an earlier process given the same pid
        return lock_path in _held
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    stat = _proc_stat(owner.pid)
    if stat is not None:
        state, start = stat
        if state == "Z" or (owner.start is not None and start != owner.start):
            return False  # dead but not yet reaped, or the pid now belongs to another process
    return True


class ExperimentLock:
    """The lock that keeps a second training run out of an experiment folder (a context manager)."""

    def __init__(self, save_dir: str) -> None:
        self.save_dir = save_dir
        self.path = os.path.join(save_dir, LOCK_NAME)
        self._owner_pid: int | None = None

    def _read(self) -> bytes | None:
        """The lock's bytes, None when it is gone; waits briefly for content a starting run is still writing."""
        deadline = time.monotonic() + 2.0
        while True:
            try:
                with open(self.path, "rb") as f:
                    raw = f.read()
                    age = time.time() - os.fstat(f.fileno()).st_mtime
            except FileNotFoundError:
                return None
            # A starting run writes its pid right after creating the file: only an old file is garbage.
            if _parse(raw) is not None or age > 2.0 or time.monotonic() > deadline:
                return raw
            time.sleep(0.05)

    def _take_over(self, seen: bytes) -> None:
        """Remove a stale lock, unless a live run replaced it since we read it."""
        grab = f"{self.path}.{os.getpid()}.stale"
        try:
            os.rename(self.path, grab)
        except FileNotFoundError:
            return  # another starting run removed it first
        try:
            with open(grab, "rb") as f:
                same = f.read() == seen
        except OSError:
            same = True
        if not same:
            # a live run locked the folder between our read and the rename: give its lock back
            with contextlib.suppress(FileExistsError):
                os.link(grab, self.path)
        os.unlink(grab)

    def acquire(self) -> ExperimentLock:
        """Create the lock file or stop with a UserError naming the running pid; take over stale locks."""
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # less the umask
            except FileExistsError:
                raw = self._read()
                if raw is None:
                    continue
                owner = _parse(raw)
                if owner is not None and _alive(owner, self.path):
                    raise UserError(
                        f"{self.save_dir}: another run (pid {owner.pid} on {owner.host}) is using this experiment "
                        "folder; wait for it to end or stop it, or choose another --exp_id"
                        + ("" if owner.host == socket.gethostname() else
                           f" (if that run is gone, delete {self.path})")) from None
                if owner is None:
                    warn(f"{self.path}: unreadable lock file; taking it over")
                else:
                    warn(f"{self.save_dir}: the run that locked this experiment folder (pid {owner.pid}) "
                         "is gone; taking over its lock")
                self._take_over(raw)
                continue
            except OSError as e:
                raise UserError(os_error_message(e, self.save_dir) or
                                f"{self.path}: cannot create the run lock ({e.strerror})") from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(_owner_text(os.getpid()))
            except BaseException as e:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
                message = os_error_message(e, self.save_dir) if isinstance(e, OSError) else None
                if message is not None:
                    raise UserError(message) from None
                raise
            self._owner_pid = os.getpid()
            _held.add(self.path)
            return self
        raise UserError(f"{self.path}: could not take the run lock (other runs keep starting here); "
                        "try again or choose another --exp_id")

    def release(self) -> None:
        """Remove the lock file if this process holds it (never a lock another run took over)."""
        if self._owner_pid is None or self._owner_pid != os.getpid():
            return  # not taken, or a forked worker: only the owner lets go
        self._owner_pid = None
        _held.discard(self.path)
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as f:
                owner = _parse(f.read())
            if owner is not None and owner.pid == os.getpid() and owner.host == socket.gethostname():
                os.unlink(self.path)

    def __enter__(self) -> ExperimentLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temp_files(save_dir: str) -> int:
    """Delete the temporary checkpoint files that killed runs left in `save_dir`; return how many."""
    removed = 0
    try:
        names = os.listdir(save_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        if _TEMP_CHECKPOINT.match(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(save_dir, name))
                removed += 1
    return removed


@contextlib.contextmanager
def terminate_on_sigterm(message: str = "") -> Iterator[None]:
    """Within the block SIGTERM raises Terminated(message), so the stack unwinds as it does on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    owner = os.getpid()
    previous = signal.getsignal(signal.SIGTERM)
    # a nested block (the experiment lock inside a torchrun process) keeps the outer block's explanation
    message = message or getattr(previous, "message", "")

    def handler(signum: int, frame: object) -> None:
        if os.getpid() != owner:
            # a forked loader worker: end as the signal would have ended it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        # One unwind is enough; a second SIGTERM must not cut the clean-up short.
        signal.signal(signum, signal.SIG_IGN)
        raise Terminated(message)

    handler.message = message
    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def hold_experiment(save_dir: str) -> Iterator[ExperimentLock]:
    """Lock `save_dir` for this run, clear its leftover temporary checkpoints, and unwind on SIGTERM."""
    with terminate_on_sigterm():
        os.makedirs(save_dir, exist_ok=True)
        with ExperimentLock(save_dir) as lock:
            # only now: a running run's temporary file must never be taken for litter
            removed = remove_stale_temp_files(save_dir)
            if removed:
                print(f"Removed {removed} temporary checkpoint file(s) left in {save_dir} by an interrupted run")
            yield lock
