"""Atomic file writes: a file is either the old one or the complete new one, never half-written."""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

from utils.errors import UserError, os_error_message

_umask: int | None = None
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read once (os.umask can only be read by setting it, so restore it at once)."""
    global _umask
    with _umask_lock:
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
        return _umask


def temp_name_prefix(path: str) -> str:
    """How the temporary files of `path` start: '.' + the file name + '.' (then random letters, '.tmp')."""
    return "." + os.path.basename(path) + "."


def _user_error(e: OSError, path: str) -> UserError | None:
    """A UserError naming `path` for a disk-full / read-only / permission error about this very file."""
    folder = os.path.dirname(path)
    ours = e.filename is None or e.filename in (path, folder) or (
        os.path.dirname(str(e.filename)) == folder and os.path.basename(str(e.filename)).startswith(
            temp_name_prefix(path)))
    if not ours:
        return None  # about another file, opened inside the block: let the caller report it
    message = os_error_message(e, path)
    return UserError(message) if message is not None else None


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to `path`; rename it over `path` only if the block succeeds.

    The new file gets the permissions a plain open() would give it (0666 less the umask), and a full
    disk or read-only folder becomes a UserError naming `path`; the old file is left as it was.
    """
    path = os.path.abspath(path)
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_name_prefix(path), suffix=".tmp", dir=os.path.dirname(path))
        try:
            # mkstemp makes the file 0600, which would hide checkpoints from the rest of a group
            os.fchmod(fd, 0o666 & ~current_umask())
            f = os.fdopen(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            translated = _user_error(e, path)
            if translated is not None:
                raise translated from None
        raise


@contextlib.contextmanager
def deferred_signals(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Hold SIGTERM/SIGINT back during the block and deliver them, to the handlers of before, right after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)


def atomic_save(obj: object, path: str) -> None:
    """torch.save `obj` to `path` through a temporary file and a rename.

    SIGTERM and Ctrl-C wait for the end of the write: an exception raised inside torch.save's writer would
    come out as a RuntimeError of the zip writer instead of the clean unwind that follows the write.
    """
    import torch

    with deferred_signals(), atomic_write(path, "wb") as f:
        torch.save(obj, f)
