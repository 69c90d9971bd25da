"""One-line user errors for the command-line entry points."""
from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Callable, Iterator


class UserError(Exception):
    """A problem with the user's input (a path, an option): reported as one line, no traceback."""


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler so that `finally` blocks run (temp files removed, lock released)."""


def warn(message: str) -> None:
    """Report a problem that does not stop the run as one `warning: <message>` line on stderr."""
    sys.stdout.flush()
    print(f"warning: {message}", file=sys.stderr, flush=True)


_OUTPUT_HINT = "choose another output folder (--exp_root)"
# errno -> (what happened, what to do); the user can act on these, unlike on other OSErrors
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC: ("no space left on device", f"free some space or {_OUTPUT_HINT}"),
    errno.EDQUOT: ("disk quota exceeded", f"free some space or {_OUTPUT_HINT}"),
    errno.EROFS: ("read-only file system", _OUTPUT_HINT),
    errno.EACCES: ("permission denied", f"fix the permissions or {_OUTPUT_HINT}"),
    errno.EPERM: ("operation not permitted", f"fix the permissions or {_OUTPUT_HINT}"),
    # a path option pointing where no file or folder can be (e.g. --demo_out_dir under /proc)
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.ENOTDIR: ("a part of the path is not a folder", "check the path"),
    errno.EISDIR: ("is a folder, not a file", "check the path"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
}
# Without a file name these usually come from a bug (a signal sent to a foreign pid...), not the user.
_NEED_FILENAME = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


def os_error_message(e: OSError, path: str | None = None) -> str | None:
    """The one-line message for a disk-full / read-only / permission OSError, or None for other errors.

    `path` names the file the user knows (a checkpoint rather than its temporary file); by default the
    error's own file name is used.
    """
    if e.errno not in _ENVIRONMENT_ERRORS:
        return None
    name = path or e.filename
    if name is None and e.errno in _NEED_FILENAME:
        return None
    what, fix = _ENVIRONMENT_ERRORS[e.errno]
    return f"{name}: {what}; {fix}" if name is not None else f"{what}; {fix}"


@contextlib.contextmanager
def naming_os_errors(path: str) -> Iterator[None]:
    """Turn a disk-full / read-only / permission OSError inside the block into a UserError naming `path`."""
    try:
        yield
    except OSError as e:
        message = os_error_message(e, path)
        if message is None:
            raise
        raise UserError(message) from None


def _fail(message: str, code: int) -> None:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_cli(main_fn: Callable[[], object]) -> None:
    """Run an entry point; turn a UserError into `error: <message>` on stderr and exit code 2.

    A disk-full / read-only / permission OSError is reported the same way; SIGINT exits 130 and SIGTERM
    (when the entry point installed `experiment.terminate_on_sigterm`) exits 143, each with one line.
    """
    try:
        main_fn()
    except UserError as e:
        _fail(str(e), 2)
    except Terminated as e:
        _fail(str(e) or "terminated (SIGTERM)", 143)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as e:
        # A signal that lands while a DataLoader worker is also being stopped (Ctrl-C or `kill` reach the whole
        # process group) surfaces as the loader's own error raised while handling it: report the signal.
        interrupt = _interrupt_behind(e)
        if isinstance(interrupt, Terminated):
            _fail(str(interrupt) or "terminated (SIGTERM)", 143)
        if interrupt is not None:
            _fail("interrupted", 130)
        message = os_error_message(e) if isinstance(e, OSError) else None
        if message is None:
            raise  # a real bug: keep the traceback
        _fail(message, 2)


def _interrupt_behind(e: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM during whose handling `e` was raised, if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt):
            return e
        e = e.__context__
    return None
