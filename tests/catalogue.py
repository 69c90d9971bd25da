"""The bad-input catalogue: what a case is, the tiny world it runs in, and how it is run and judged.

A case names an entry script, its arguments and what must come out: the exit code, exactly one
`error:` line holding some words (or none on success), the `warning:` lines it must print, no
traceback, and the files that must survive byte for byte. Case lists live in tests/cases_*.py; the
parametrised test is tests/test_bad_inputs.py. Most cases run in this process (imports are paid
once); a case that needs its own process (signals, locks held by another pid) sets `subprocess`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import runpy
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
SCRIPTS = {"main": SRC / "main.py", "test": SRC / "test.py", "demo": SRC / "demo.py"}


@dataclass
class World:
    """One case's folders: a private copy of the tiny synthetic set, an empty exp root, a checkpoint."""

    base: Path  # the case's own tmp folder
    data_dir: Path  # <base>/data, holding synth/ (a copy the case may spoil)
    exp_root: Path  # <base>/exp
    checkpoint: Path  # a ctdet res_18 checkpoint for the synth heads (epoch 1, with optimizer)
    exp_id: str = "cat"

    @property
    def synth(self) -> Path:
        """The synthetic detection set (images/, annotations/)."""
        return self.data_dir / "synth"

    @property
    def save_dir(self) -> Path:
        """exp/ctdet/<exp_id>, where main.py writes."""
        return self.exp_root / "ctdet" / self.exp_id

    def common(self) -> list[str]:
        """Arguments every case starts from: a one-iteration CPU run of res_18 at 64x64 on the copy."""
        return ["--dataset", "synth", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
                "--num_workers", "0", "--batch_size", "2", "--num_epochs", "1", "--num_iters", "1",
                "--val_intervals", "0", "--lr_step", "1", "--data_dir", str(self.data_dir),
                "--exp_root", str(self.exp_root), "--exp_id", self.exp_id]


@dataclass
class Case:
    """One bad input (or fault) and the behaviour the README promises for it."""

    id: str
    script: str  # main | test | demo
    args: Callable[[World], list[str]] | list[str] = field(default_factory=list)
    task: str = "ctdet"
    exit: int = 2  # 0: the run goes on (then no error line may appear)
    error: tuple[str, ...] = ()  # words the single `error:` line must hold
    warnings: tuple[str, ...] = ()  # words that must each appear in some `warning:` line
    prepare: Callable[[World], None] | None = None  # spoil a file, plant a lock, ...
    survive: Callable[[World], list[Path]] | None = None  # files that must be unchanged afterwards
    check: Callable[[World, Result], None] | None = None  # extra assertions after the run
    subprocess: bool = False
    common: bool = True  # start from World.common()
    timeout: float = 120


@dataclass
class Result:
    """What a run printed and returned."""

    code: int
    stdout: str
    stderr: str
    traceback: str = ""

    def lines(self, prefix: str) -> list[str]:
        """stderr lines starting with `prefix` ('error:' or 'warning:')."""
        return [ln for ln in self.stderr.splitlines() if ln.startswith(prefix)]


def case_args(case: Case, world: World) -> list[str]:
    """The full argument list: task, the common arguments, then the case's own (argparse: last wins)."""
    own = case.args(world) if callable(case.args) else list(case.args)
    return [case.task, *(world.common() if case.common else []), *own]


def run_in_process(script: str, args: list[str], capfd) -> Result:
    """Run an entry script as `python <script> args` would, in this process, capturing fd 1 and 2."""
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = [str(SCRIPTS[script]), *args]
    code, tb = 0, ""
    # progress bars bind sys.stderr when first imported: give them this test's captured stream, then
    # put the old one back so later tests never write to this closed capture
    bar = sys.modules["progress"].Infinite if "progress" in sys.modules else None
    bar_file = bar.file if bar is not None else None
    if bar is not None:
        bar.file = sys.stderr
    try:
        os.chdir(SRC)
        runpy.run_path(str(SCRIPTS[script]), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is the finding, reported by the test
        code, tb = 1, traceback.format_exc()
    finally:
        if bar is not None:
            bar.file = bar_file
        sys.argv = old_argv
        os.chdir(old_cwd)
        sys.stdout.flush()
        sys.stderr.flush()
    out, err = capfd.readouterr()
    return Result(code, out, err, tb)


def run_subprocess(script: str, args: list[str], timeout: float) -> Result:
    """Run an entry script in its own Python process (no display, one thread)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, str(SCRIPTS[script]), *args], cwd=SRC, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def digest(path: Path) -> str | None:
    """sha256 of a file, None when it does not exist."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def judge(case: Case, world: World, capfd) -> Result:
    """Prepare, run and assert everything the case promises; returns the result for extra checks."""
    if case.prepare is not None:
        case.prepare(world)
    kept = {p: digest(p) for p in (case.survive(world) if case.survive else [])}
    args = case_args(case, world)
    if case.subprocess:
        res = run_subprocess(case.script, args, case.timeout)
    else:
        res = run_in_process(case.script, args, capfd)
    shown = f"\n--- stdout (tail)\n{res.stdout[-2000:]}\n--- stderr\n{res.stderr[-3000:]}\n{res.traceback}"
    assert not res.traceback and "Traceback (most recent call last)" not in res.stderr, shown
    assert res.code == case.exit, f"exit {res.code}, want {case.exit}{shown}"
    errors = res.lines("error:")
    if case.exit == 0:
        assert not errors, shown
    else:
        assert len(errors) == 1, f"want exactly one error line{shown}"
        for word in case.error:
            assert word in errors[0], f"{word!r} not in {errors[0]!r}"
    warnings = res.lines("warning:")
    for word in case.warnings:
        assert any(word in w for w in warnings), f"no warning line with {word!r}{shown}"
    for path, before in kept.items():
        assert before is not None and digest(path) == before, f"{path} did not survive intact"
    if case.check is not None:
        case.check(world, res)
    return res


def make_world(template: Path, base: Path) -> World:
    """A case's world: `base` with a fresh copy of the template's data and checkpoint."""
    shutil.copytree(template / "data", base / "data")
    (base / "exp").mkdir()
    shutil.copy(template / "model.pth", base / "model.pth")
    return World(base=base, data_dir=base / "data", exp_root=base / "exp", checkpoint=base / "model.pth")


def build_template(dest: Path) -> Path:
    """The tiny synthetic set (6 train, 2 val images) and a matching res_18 checkpoint, made once."""
    sys.path[:0] = [p for p in (str(SRC), str(SRC / "lib")) if p not in sys.path]
    import torch

    from datasets.dataset.synth import Synth
    from datasets.synthetic import shapes
    from models.model import create_model, save_model

    with contextlib.redirect_stdout(io.StringIO()):
        shapes.generate(str(dest / "data" / "synth"), n_train=6, n_val=2, seed=3)
    torch.manual_seed(0)
    heads = {"hm": Synth.num_classes, "wh": 2, "reg": 2}
    model = create_model("res_18", heads, 64)
    optimizer = torch.optim.Adam(model.parameters(), 1.25e-4)
    save_model(str(dest / "model.pth"), 1, model, optimizer)
    return dest
