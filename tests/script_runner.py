"""Running the project's scripts from tests: src/ as working folder, one thread, no display, output kept."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


def run_script(args: list, cwd: str = SRC, ok: bool = True, threads: int | None = 1,
               timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python *args`; with `ok`, a non-zero exit fails the test with the output's tail."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def gen_synthetic(out, kind: str, train: int, val: int, seed: int = 1) -> None:
    """A synthetic data set of `kind` (det, hp, ddd) under `out` through src/tools/gen_synthetic.py."""
    run_script([os.path.join(SRC, "tools", "gen_synthetic.py"), "--kind", kind, "--out", str(out),
                "--train", str(train), "--val", str(val), "--seed", str(seed)])
