"""Experiment logger: opt.txt, logs_<time>/log.txt and (if tensorboardX imports) TensorBoard scalars."""
from __future__ import annotations

import os
import shutil
import sys
import time

import torch

from utils.errors import UserError, naming_os_errors
from utils.io import atomic_write

try:
    import tensorboardX
    USE_TENSORBOARD = True
except ImportError:
    USE_TENSORBOARD = False


def _time_str() -> str:
    return time.strftime("%Y-%m-%d-%H-%M")


def make_log_dir(save_dir: str) -> str:
    """Create a new `logs_<date-time>` folder in `save_dir` (seconds, then `_2`, `_3`...: never an old one)."""
    base = os.path.join(save_dir, f"logs_{time.strftime('%Y-%m-%d-%H-%M-%S')}")
    for n in range(1, 10000):
        log_dir = base if n == 1 else f"{base}_{n}"
        try:
            os.makedirs(log_dir, exist_ok=False)
            return log_dir
        except FileExistsError:
            continue
    raise UserError(f"{save_dir}: 10000 log folders of the same second; clear out the logs_* folders")


def write_opt_file(opt, path: str) -> None:
    """Write the torch/cudnn versions, the command line and every public option to `path`."""
    args = {name: getattr(opt, name) for name in dir(opt) if not name.startswith("_")}
    with atomic_write(path) as f:
        f.write(f"==> torch version: {torch.__version__}\n")
        f.write(f"==> cudnn version: {torch.backends.cudnn.version()}\n")
        f.write("==> Cmd:\n")
        f.write(str(sys.argv))
        f.write("\n==> Opt:\n")
        for k, v in sorted(args.items()):
            f.write(f"  {k}: {v}\n")


class Logger:
    """Creates save_dir/debug_dir, writes opt.txt and appends timestamped lines to log.txt.

    Each Logger gets a folder of its own (see make_log_dir), so a resumed run never erases a log. Use it
    as a context manager (or call close) so that log.txt is closed on every way out.
    """

    def __init__(self, opt) -> None:
        os.makedirs(opt.save_dir, exist_ok=True)
        os.makedirs(opt.debug_dir, exist_ok=True)
        opt_path = os.path.join(opt.save_dir, "opt.txt")
        write_opt_file(opt, opt_path)

        log_dir = make_log_dir(opt.save_dir)
        if USE_TENSORBOARD:
            print("Using tensorboardX")
            self.writer = tensorboardX.SummaryWriter(log_dir=log_dir)
        self.log_dir = log_dir
        self.log_path = os.path.join(log_dir, "log.txt")
        self.log = open(self.log_path, "w")
        shutil.copyfile(opt_path, os.path.join(log_dir, "opt.txt"))
        self.start_line = True

    def write(self, txt: str) -> None:
        """Append `txt`; a new line starts with `<time>: `; a newline flushes the file."""
        # a buffered write reports a full disk without a file name: name log.txt
        with naming_os_errors(self.log_path):
            if self.start_line:
                self.log.write(f"{_time_str()}: {txt}")
            else:
                self.log.write(txt)
            self.start_line = False
            if "\n" in txt:
                self.start_line = True
                self.log.flush()

    def close(self) -> None:
        """Close log.txt (and the TensorBoard writer); closing twice is harmless."""
        if self.log.closed:
            return
        try:
            with naming_os_errors(self.log_path):
                self.log.close()
        finally:
            if USE_TENSORBOARD:
                self.writer.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.close()
        except (OSError, UserError):
            if exc_type is None:
                raise  # a failing close would otherwise hide the error that is already on its way

    def scalar_summary(self, tag: str, value: float, step: int) -> None:
        """Log a scalar to TensorBoard when tensorboardX is available."""
        if USE_TENSORBOARD:
            self.writer.add_scalar(tag, value, step)


class NullLogger:
    """A Logger that writes nothing: the stand-in of the torchrun processes other than rank 0."""

    def write(self, txt: str) -> None:
        """Drop `txt`."""

    def scalar_summary(self, tag: str, value: float, step: int) -> None:
        """Drop the scalar."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullLogger:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        pass
