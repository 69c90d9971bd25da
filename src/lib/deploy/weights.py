"""Weights for an export: a checkpoint must fill every head, or the exported file would hold random heads."""
from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from models.model import load_checkpoint_file, load_weights
from utils.errors import UserError


def _head_shapes(state: Mapping, heads: Mapping[str, int]) -> dict[str, tuple]:
    """{tensor name: shape} of the head tensors in `state` (names may carry DataParallel's 'module.')."""
    out = {}
    for k, v in state.items():
        name = k[7:] if k.startswith("module.") else k
        if name.split(".", 1)[0] in heads:
            out[name] = tuple(v.shape)
    return out


def load_for_export(model: nn.Module, path: str, heads: Mapping[str, int], trust: bool = False) -> nn.Module:
    """Load `path` into `model`, refusing a checkpoint whose heads differ from the model's (task / dataset)."""
    checkpoint = load_checkpoint_file(path, "--load_model", trust)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else {}
    if not isinstance(state, Mapping):
        raise UserError(f"--load_model {path}: no 'state_dict' in this file; pass a checkpoint saved by CenterNet")
    want = _head_shapes(model.state_dict(), heads)
    have = _head_shapes(state, heads)
    wrong = sorted(k for k, shape in want.items() if have.get(k) != shape)
    if wrong:
        got = have.get(wrong[0])
        raise UserError(f"--load_model {path}: its heads do not match the task's {dict(heads)} ({wrong[0]}: "
                        f"{'missing' if got is None else f'shape {got}'}, the model needs {want[wrong[0]]}); pass "
                        "the task, --arch, --dataset and --head_conv the checkpoint was trained with")
    return load_weights(model, path, trust=trust, verbose=False)
