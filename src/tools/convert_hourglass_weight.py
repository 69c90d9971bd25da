"""Convert an ExtremeNet hourglass checkpoint into a CenterNet one (renames the extreme-point heads).

Usage: python src/tools/convert_hourglass_weight.py [INPUT.pkl] [OUTPUT.pth]
(defaults: models/ExtremeNet_500000.pkl -> models/ExtremeNet_500000.pth under the repository root).
The result is {'epoch': 0, 'state_dict': ...}; keys keep ExtremeNet's 'module.' prefix, which
load_model strips. Heads that ExtremeNet lacks (ctdet's hm/wh/reg) stay freshly initialised.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

import torch

import _init_paths  # noqa: F401  (puts src/lib on sys.path)
from models.model import load_checkpoint_file
from utils.errors import UserError, run_cli
from utils.io import atomic_save

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL_PATH = os.path.join(ROOT, "models", "ExtremeNet_500000.pkl")
OUT_PATH = os.path.join(ROOT, "models", "ExtremeNet_500000.pth")

# ExtremeNet head names -> CenterNet exdet head names.
key_map = {"t_heats": "hm_t", "l_heats": "hm_l", "b_heats": "hm_b", "r_heats": "hm_r", "ct_heats": "hm_c",
           "t_regrs": "reg_t", "l_regrs": "reg_l", "b_regrs": "reg_b", "r_regrs": "reg_r"}
# Longest names first, so 'ct_heats' is renamed as a whole and never as 'c' + 't_heats'.
_ORDER = sorted(key_map, key=len, reverse=True)


def convert_key(key: str) -> str:
    """The CenterNet name of one ExtremeNet state_dict key (unchanged if it is not a head key)."""
    for old in _ORDER:
        if old in key:
            return key.replace(old, key_map[old])
    return key


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], verbose: bool = True) -> dict[str, torch.Tensor]:
    """Rename the head keys of an ExtremeNet state_dict, keeping every tensor and the key order."""
    out = {}
    for k, v in state_dict.items():
        new_k = convert_key(k)
        if new_k != k and verbose:
            print(f"replace {k} to {new_k}")
        if new_k in out:
            raise UserError(f"input checkpoint: keys {k!r} and another key both become {new_k!r}; "
                            "pass an ExtremeNet checkpoint (not an already converted one)")
        out[new_k] = v
    return out


def convert(input_path: str, output_path: str, trust: bool = False) -> int:
    """Convert the file at input_path and write output_path atomically; returns the number of keys.

    `trust` loads an input that pickles Python objects (--trust_checkpoint); by default it is refused.
    """
    loaded = load_checkpoint_file(input_path, culprit="input checkpoint", trust=trust)
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise UserError(f"input checkpoint {input_path}: not a state_dict of tensors; "
                        "pass ExtremeNet's ExtremeNet_500000.pkl")
    out = convert_state_dict(loaded)
    atomic_save({"epoch": 0, "state_dict": out}, output_path)
    return len(out)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=MODEL_PATH, help="ExtremeNet checkpoint (.pkl)")
    parser.add_argument("output", nargs="?", default=OUT_PATH, help="CenterNet checkpoint to write (.pth)")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an input that pickles Python objects (runs any code it holds); "
                             "only for files you trust")
    args = parser.parse_args(argv)
    n = convert(args.input, args.output, args.trust_checkpoint)
    print(f"wrote {args.output} ({n} tensors)")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
