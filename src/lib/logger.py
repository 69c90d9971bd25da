"""Experiment logger: opt.txt, logs_<time>/log.txt and (if tensorboardX imports) TensorBoard scalars."""
from __future__ import annotations

import os
import shutil
import sys
import time

import torch

try:
    import tensorboardX
    USE_TENSORBOARD = True
except ImportError:
    USE_TENSORBOARD = False


def _time_str() -> str:
    return time.strftime('%Y-%m-%d-%H-%M')


def write_opt_file(opt, path: str) -> None:
    """Write the torch/cudnn versions, the command line and every public option to `path`."""
    args = {name: getattr(opt, name) for name in dir(opt) if not name.startswith('_')}
    with open(path, 'w') as f:
        f.write(f'==> torch version: {torch.__version__}\n')
        f.write(f'==> cudnn version: {torch.backends.cudnn.version()}\n')
        f.write('==> Cmd:\n')
        f.write(str(sys.argv))
        f.write('\n==> Opt:\n')
        for k, v in sorted(args.items()):
            f.write(f'  {k}: {v}\n')


class Logger:
    """Creates save_dir/debug_dir, writes opt.txt and appends timestamped lines to log.txt."""

    def __init__(self, opt) -> None:
        os.makedirs(opt.save_dir, exist_ok=True)
        os.makedirs(opt.debug_dir, exist_ok=True)
        opt_path = os.path.join(opt.save_dir, 'opt.txt')
        write_opt_file(opt, opt_path)

        log_dir = os.path.join(opt.save_dir, f'logs_{_time_str()}')
        os.makedirs(log_dir, exist_ok=True)
        if USE_TENSORBOARD:
            print('Using tensorboardX')
            self.writer = tensorboardX.SummaryWriter(log_dir=log_dir)
        self.log_dir = log_dir
        self.log = open(os.path.join(log_dir, 'log.txt'), 'w')
        shutil.copyfile(opt_path, os.path.join(log_dir, 'opt.txt'))
        self.start_line = True

    def write(self, txt: str) -> None:
        """Append `txt`; a new line starts with `<time>: `; a newline flushes the file."""
        if self.start_line:
            self.log.write(f'{_time_str()}: {txt}')
        else:
            self.log.write(txt)
        self.start_line = False
        if '\n' in txt:
            self.start_line = True
            self.log.flush()

    def close(self) -> None:
        """Close log.txt (and the TensorBoard writer)."""
        self.log.close()
        if USE_TENSORBOARD:
            self.writer.close()

    def scalar_summary(self, tag: str, value: float, step: int) -> None:
        """Log a scalar to TensorBoard when tensorboardX is available."""
        if USE_TENSORBOARD:
            self.writer.add_scalar(tag, value, step)
