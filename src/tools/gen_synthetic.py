"""Generate a built-in synthetic dataset: shapes detection (det), people keypoints (hp) or KITTI-like 3D (kitti)."""
from __future__ import annotations

import argparse
import importlib
import os
import time

import _init_paths  # noqa: F401
from utils.errors import UserError, run_cli

# kind -> (generator module, default output folder); modules are imported only when asked for
KINDS = {
    "det": ("datasets.synthetic.shapes", "data/synth"),
    "hp": ("datasets.synthetic.people", "data/synth_hp"),
    "kitti": ("datasets.synthetic.kitti", "data/synth_kitti"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kind", default="det", choices=sorted(KINDS), help="which dataset to generate")
    p.add_argument("--out", default=None, help="output folder (default data/synth, data/synth_hp or data/synth_kitti)")
    p.add_argument("--train", type=int, default=600, help="number of training images")
    p.add_argument("--val", type=int, default=100, help="number of validation images")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Generate the requested dataset and print where it went."""
    args = parse_args(argv)
    if args.train < 0 or args.val < 0:
        raise UserError(f"--train {args.train} / --val {args.val}: image counts must be >= 0")
    module_name, default_out = KINDS[args.kind]
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", default_out)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise UserError(f"--kind {args.kind}: generator {module_name} is not available ({e})") from None
    start = time.time()
    paths = module.generate(out, n_train=args.train, n_val=args.val, seed=args.seed)
    print(f"generated {args.kind}: {args.train} train + {args.val} val images in {time.time() - start:.1f}s "
          f"under {os.path.normpath(out)}")
    return paths


if __name__ == "__main__":
    run_cli(main)
