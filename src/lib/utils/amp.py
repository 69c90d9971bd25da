"""Mixed precision (--amp fp16|bf16): which dtype runs where, the autocast block and the fp16 gradient scaler.

The network runs under autocast; everything after it (losses, decoding) runs in float32 on outputs cast
back with `to_float`. In half precision the original's sigmoid clamp 1 - 1e-4 rounds to exactly 1.0, so the
focal loss's log(1 - p) becomes -inf once a heat-map logit passes about 8.3 (fp16) or 6 (bf16): casting
the head outputs to float32 before the sigmoid keeps it finite.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping

import torch

from utils.errors import UserError

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision `--amp auto` stands for on `device` (said in one line); other values are returned as given.

    auto: bf16 on a CPU that computes it in hardware (elsewhere on the CPU it is emulated and slower: float32),
    bf16 on a GPU that supports it, else fp16.
    """
    if amp != "auto":
        return amp
    if device.type == "cuda":
        chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        print(f"--amp auto: {chosen} autocast on {torch.cuda.get_device_name(device)}")
    elif cpu_has_native_bf16():
        chosen = "bf16"
        print("--amp auto: bf16 autocast (this CPU has native bfloat16: AVX512-BF16/AMX)")
    else:
        chosen = ""
        print("--amp auto: float32 (this CPU has no native bfloat16; bf16 would be emulated and slower)")
    return chosen


def check_amp(amp: str, device: torch.device) -> None:
    """Stop with one line when `--amp` cannot run on `device`."""
    if not amp:
        return
    if amp not in DTYPES:
        raise UserError(f"--amp {amp}: unknown precision; choose fp16 or bf16 (or leave it out for float32)")
    if device.type == "cpu" and amp == "fp16":
        raise UserError("--amp fp16: float16 autocast needs a GPU; on the CPU use --amp bf16")
    if device.type == "cuda" and amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--amp bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                        "use --amp fp16")


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast block of `--amp` on `device` (a no-op context without --amp)."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[amp])


def to_float(outputs):
    """Head outputs (a dict, or a list of dicts for stacked networks) with every floating tensor in float32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, Mapping):
        return {k: to_float(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(to_float(v) for v in outputs)
    return outputs


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 training (its small gradients would underflow); None for bf16 and float32."""
    if amp != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), where bf16 autocast is faster."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False
