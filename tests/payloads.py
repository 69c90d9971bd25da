"""Checkpoint files that would run code when unpickled: each writes a marker file if it ever runs."""
from __future__ import annotations

import os
from pathlib import Path

import torch


class _Payload:
    """Unpickling this calls os.system(command): what a hostile checkpoint would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_payload(path: Path, marker: Path, variant: str, state_dict: dict | None = None) -> Path:
    """A checkpoint at `path` whose loading would create `marker`.

    variant: 'zip' (the current format, payload at the top), 'legacy' (the pre-1.6 pickle format), or
    'nested' (zip, payload deep inside the optimizer state next to real weights).
    """
    payload = _Payload(f"touch {marker}")
    sd = dict(state_dict or {"w": torch.zeros(2)})
    if variant == "zip":
        obj = {"epoch": 1, "state_dict": sd, "extra": payload}
        torch.save(obj, path)
    elif variant == "legacy":
        torch.save({"epoch": 1, "state_dict": sd, "extra": payload}, path, _use_new_zipfile_serialization=False)
    elif variant == "nested":
        obj = {"epoch": 1, "state_dict": sd, "optimizer": {"state": {0: {"step": [1, {"x": payload}]}}}}
        torch.save(obj, path)
    else:
        raise ValueError(variant)
    return path


VARIANTS = ("zip", "legacy", "nested")
