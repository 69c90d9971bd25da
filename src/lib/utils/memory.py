"""Will a forward pass fit in memory? An estimate from the input size, checked before anything is allocated."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from utils.errors import UserError

# Peak bytes of a no-grad float32 forward pass per input pixel of one image: the growth of the peak
# resident size (ru_maxrss) over a warmed-up model on the CPU, at square inputs of 512 to 1536 pixels
# (hourglass to 1024), then 1.5-1.8x on top for allocator caching, cuDNN workspaces and the decoding.
# measured: res_18 225, res_50 280, resdcn_18 130, resdcn_50 250, dla_34 430, dlav0_34 290, hourglass 650
FORWARD_BYTES_PER_PIXEL = {"res_small": 384, "res_large": 512, "dla": 768, "dlav0": 512, "hourglass": 1024}
# Host memory of pre-processing per input pixel and image: the warped uint8 image, float64 copies while
# it is normalised, the float32 result (measured 54 for one image, 63 for two with the mirror).
PREPROCESS_BYTES_PER_PIXEL = 96
GIB = 1 << 30
# cgroup limits this large mean "no limit"
_NO_LIMIT = 1 << 60
# torch.OutOfMemoryError is the newer name of the CUDA one
_TORCH_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
_OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
              "failed to allocate", "insufficient memory", "unable to allocate")


def forward_bytes_per_pixel(arch: str) -> int:
    """Conservative peak bytes per input pixel of a forward pass of `arch` (one image)."""
    if arch == "hourglass":
        return FORWARD_BYTES_PER_PIXEL["hourglass"]
    name, _, depth = arch.partition("_")
    if name in ("dla", "dlav0"):
        return FORWARD_BYTES_PER_PIXEL[name]
    # ResNet-50 and deeper use bottleneck blocks whose stride-4 maps have 4x the channels
    return FORWARD_BYTES_PER_PIXEL["res_large" if depth.isdigit() and int(depth) >= 50 else "res_small"]


def forward_bytes(arch: str, batch: int, height: int, width: int) -> int:
    """Estimated peak memory of the forward pass of `arch` on a batch x 3 x height x width input."""
    return forward_bytes_per_pixel(arch) * batch * height * width


def preprocess_bytes(batch: int, height: int, width: int) -> int:
    """Estimated host memory of pre-processing to a batch x 3 x height x width input."""
    return PREPROCESS_BYTES_PER_PIXEL * batch * height * width


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a new allocation on `device` can still get; None when it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # blocks PyTorch has cached but not handed out are free to it, though not to the driver
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    host = _meminfo_available()
    group = _cgroup_available()
    known = [v for v in (host, group) if v is not None]
    return min(known) if known else None


def check_fits(needed: int, device: torch.device | str, describe: str, fix: str) -> None:
    """UserError when `needed` bytes exceed what `device` has available (silent when unknown)."""
    device = torch.device(device)
    available = available_bytes(device)
    if available is not None and needed > available:
        where = "GPU memory" if device.type == "cuda" else "memory"
        raise UserError(f"{describe} needs about {needed / GIB:.1f} GiB, more than the "
                        f"{available / GIB:.1f} GiB of {where} available; {fix}")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says an allocation failed (torch, numpy or OpenCV, CPU or CUDA)."""
    if isinstance(exc, (MemoryError, _TORCH_OOM)):
        return True
    if isinstance(exc, RuntimeError) or type(exc).__module__.startswith("cv2"):
        text = str(exc).lower()
        return any(word in text for word in _OOM_WORDS)
    return False


@contextlib.contextmanager
def out_of_memory_as_error(message: str) -> Iterator[None]:
    """Turn a failed allocation inside the block into UserError(message); other errors pass through."""
    try:
        yield
    except Exception as e:
        if is_out_of_memory(e):
            raise UserError(message) from None
        raise


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> int | None:
    """Room left under this container's memory limit (cgroup v2 or v1), counting idle page cache as free."""
    for limit_file, usage_file, stat_key in (
            ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "inactive_file"),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
             "total_inactive_file")):
        limit = _read_int(limit_file)
        usage = _read_int(usage_file)
        if limit is None or usage is None:
            continue
        if limit >= _NO_LIMIT:
            return None
        stat_file = os.path.join(os.path.dirname(limit_file), "memory.stat")
        return max(0, limit - usage + (_read_stat(stat_file, stat_key) or 0))
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    # cgroup v2 writes "max" for no limit
    return _NO_LIMIT if text == "max" else int(text) if text.isdigit() else None


def _read_stat(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return None
