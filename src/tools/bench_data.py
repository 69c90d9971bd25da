"""Benchmark training-sample generation: our __getitem__ against a per-object loop baseline of the original.

Usage: python src/tools/bench_data.py [--task ctdet] [--dataset synth] [--split train] [--n 200] [--quick]
       [--data_dir DIR] [-- extra opts such as --dense_wh]

The baseline (`reference_ctdet`, `reference_multi_pose` in tests/sample_reference.py, the tests' oracle)
follows the original's sample algorithm step by step: one Python iteration per object (and per joint),
one point at a time through the affine matrix, hm.max over all classes for every object with --dense_wh,
mean/std and PCA lighting broadcast over the 3-channel axis. It shares ours' gaussian-drawing and
brightness/contrast/saturation primitives (utils.image), so the figures compare the sample-level code.
Before timing, both run on the same images with the same seeds and must agree on every output key.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np

import _init_paths  # noqa: F401
from datasets.dataset_factory import get_dataset
from opts import opts
from utils.errors import UserError, run_cli

_TOOLS = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.normpath(os.path.join(_TOOLS, "..", ".."))
# The per-object baselines are test oracles and live with the tests.
_TESTS = os.path.join(_REPO, "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from sample_reference import REFERENCES, Sample, SampleFn  # noqa: E402

# dataset -> gen_synthetic kind, for the built-in sets that can be generated on the fly
SYNTHETIC_KINDS = {"synth": "det", "synth_hp": "hp", "synth_kitti": "kitti"}


# ----------------------------------------------------------------------------- data set-up
def _has_data(dataset: str, data_dir: str) -> bool:
    """Whether the data root holds something for `dataset` (the dataset class itself reports what is missing)."""
    return os.path.isdir(os.path.join(data_dir, dataset))


def ensure_synthetic(dataset: str, data_dir: str, n_train: int = 40, n_val: int = 10, seed: int = 0
                     ) -> tuple[str, str | None]:
    """Return (data root, temp dir to delete or None); a missing built-in synthetic set is generated in a temp dir."""
    if _has_data(dataset, data_dir) or dataset not in SYNTHETIC_KINDS:
        return data_dir, None
    if _TOOLS not in sys.path:
        sys.path.append(_TOOLS)
    import gen_synthetic

    module_name, _ = gen_synthetic.KINDS[SYNTHETIC_KINDS[dataset]]
    tmp = tempfile.mkdtemp(prefix="bench_data_")
    print(f"{os.path.join(data_dir, dataset)} is missing: generating {n_train} + {n_val} images under {tmp}")
    importlib.import_module(module_name).generate(os.path.join(tmp, dataset), n_train=n_train, n_val=n_val, seed=seed)
    return tmp, tmp


def build_dataset(task: str, dataset: str, split: str, data_dir: str, extra: list[str] | None = None):
    """The project's dataset for (task, dataset, split), built the way main.py builds it."""
    # opts and the dataset classes narrate their set-up; keep the benchmark's output to its figures
    with contextlib.redirect_stdout(io.StringIO()):
        opt = opts().parse([task, "--dataset", dataset, "--data_dir", data_dir] + list(extra or []))
        Dataset = get_dataset(opt.dataset, opt.task)
        opt = opts().update_dataset_info_and_set_heads(opt, Dataset)
        return Dataset(opt, split)


def seed_all(ds, seed: int) -> None:
    """Reset every random source a sample draws from: numpy global, python `random`, the colour-aug RNG."""
    np.random.seed(seed)
    random.seed(seed)
    ds._data_rng = np.random.RandomState(seed)


# ----------------------------------------------------------------------------- equality + timing
def ours(ds, index: int) -> Sample:
    """The project's sample (the dataset's own __getitem__)."""
    return ds[index]


def compare(a, b, prefix: str = "") -> list[str]:
    """Keys (dotted for nested dicts) where two samples differ in key set, shape, dtype or value (np.allclose)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{prefix}keys {sorted(a)} != {sorted(b)}"]
        return [p for k in sorted(a) for p in compare(a[k], b[k], f"{prefix}{k}.")]
    x, y = np.asarray(a), np.asarray(b)
    name = prefix.rstrip(".")
    if x.shape != y.shape:
        return [f"{name}: shape {x.shape} != {y.shape}"]
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and x.dtype != y.dtype:
        return [f"{name}: dtype {x.dtype} != {y.dtype}"]
    if not np.allclose(x, y):
        return [f"{name}: max |diff| {np.abs(x.astype(np.float64) - y.astype(np.float64)).max():.3g}"]
    return []


def check_equal(ds, reference: SampleFn, n: int = 3, seed: int = 0) -> list[str]:
    """Run ours and `reference` on the first n samples (same seeds); return the differences found."""
    problems = []
    for i in range(n):
        index = i % len(ds)
        seed_all(ds, seed + i)
        a = ours(ds, index)
        seed_all(ds, seed + i)
        b = reference(ds, index)
        problems += [f"sample {index} (seed {seed + i}): {p}" for p in compare(a, b)]
    return problems


def time_samples(ds, fns: list[SampleFn], n: int, seed: int = 0, warmup: int = 5) -> list[np.ndarray]:
    """Seconds per sample for each fn on the same n (index, seed) pairs, interleaved so machine load hits all alike."""
    for i in range(warmup):
        for fn in fns:
            seed_all(ds, seed + i)
            fn(ds, i % len(ds))
    times = np.zeros((len(fns), n))
    for i in range(n):
        # alternate which one runs first so cache warmth from the shared image read favours neither
        order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
        for f in order:
            seed_all(ds, seed + i)
            start = time.perf_counter()
            fns[f](ds, i % len(ds))
            times[f, i] = time.perf_counter() - start
    return list(times)


def report(name: str, t: np.ndarray) -> str:
    """One line: count, mean and median ms per sample, samples per second."""
    return (f"{name:<10}: {len(t)} samples  mean {1e3 * t.mean():7.2f} ms  median {1e3 * np.median(t):7.2f} ms  "
            f"{len(t) / t.sum():7.1f} samples/s")


# ----------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Benchmark options; anything after `--` (or unknown) goes to opts, e.g. `-- --dense_wh`."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="ctdet", help="ctdet, multi_pose, ddd, exdet")
    p.add_argument("--dataset", default=None, help="default: synth / synth_hp / synth_kitti by task")
    p.add_argument("--split", default="train", help="train (augmented) or val")
    p.add_argument("--data_dir", default=os.path.join(_REPO, "data"), help="data root (as opts' --data_dir)")
    p.add_argument("--n", type=int, default=200, help="timed samples")
    p.add_argument("--quick", action="store_true", help="n=30: a run of a few seconds")
    p.add_argument("--warmup", type=int, default=5, help="untimed samples first")
    p.add_argument("--check", type=int, default=3, help="samples compared (ours vs reference) before timing")
    p.add_argument("--seed", type=int, default=0, help="seed of sample i is seed + i")
    p.add_argument("--no_ref", action="store_true", help="time ours only")
    args, extra = p.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    if args.quick:
        args.n = 30
    if args.n < 1 or args.warmup < 0 or args.check < 0:
        raise UserError(f"--n {args.n} / --warmup {args.warmup} / --check {args.check}: "
                        "need n >= 1 and non-negative warmup/check")
    if args.dataset is None:
        args.dataset = {"multi_pose": "synth_hp", "ddd": "synth_kitti"}.get(args.task, "synth")
    return args, extra


def main(argv: list[str] | None = None) -> dict:
    """Check ours == reference, time both, print the figures; returns them (seconds per sample)."""
    args, extra = parse_args(argv)
    data_dir, tmp = ensure_synthetic(args.dataset, args.data_dir, seed=args.seed)
    try:
        ds = build_dataset(args.task, args.dataset, args.split, data_dir, extra)
        if len(ds) == 0:
            raise UserError(f"--dataset {args.dataset} --split {args.split}: no images; generate or point --data_dir")
        reference = None if args.no_ref else REFERENCES.get(args.task)
        print(f"task {args.task}  dataset {args.dataset}  split {args.split}  {len(ds)} images  "
              f"input {ds.opt.input_w}x{ds.opt.input_h}  extra opts {extra or '-'}")
        fns, names = [ours], ["ours"]
        if reference is not None:
            problems = check_equal(ds, reference, args.check, args.seed)
            if problems:
                print("\n".join(problems[:20]))
                raise UserError(f"--task {args.task}: ours and the reference differ on {len(problems)} key(s); "
                                "fix the sample code before benchmarking")
            print(f"equality check: ours == reference on {args.check} samples (every key, np.allclose)")
            fns.append(reference)
            names.append("reference")
        elif not args.no_ref:
            print(f"no reference implementation for task {args.task}: timing ours only")
        times = time_samples(ds, fns, args.n, args.seed, args.warmup)
        for name, t in zip(names, times):
            print(report(name, t))
        result = dict(zip(names, times))
        if reference is not None:
            t_ours, t_ref = times
            print(f"ratio reference/ours: mean {t_ref.mean() / t_ours.mean():.2f}x  "
                  f"median {np.median(t_ref) / np.median(t_ours):.2f}x")
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_cli(main)
