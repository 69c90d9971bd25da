"""Training under torchrun: the process group taken from torchrun's environment, and the few collectives used.

torchrun (or `python -m torch.distributed.run`) sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and
MASTER_ADDR/MASTER_PORT; their presence turns DistributedDataParallel on. Without them every helper here
answers as for a single process, so callers need no branch of their own and plain runs behave as before.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.utils.data

from utils.errors import UserError
from utils.experiment import terminate_on_sigterm

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether torchrun started this process (its environment variables are set)."""
    return all(name in os.environ for name in _LAUNCH_VARS)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise UserError(f"{name}={os.environ[name]!r}: not an integer; start the run with torchrun") from None


def launch_rank() -> int:
    """This process's global rank as torchrun set it (0 without torchrun); valid before the group exists."""
    return _env_int("RANK", 0) if launched() else 0


def launch_world_size() -> int:
    """The number of processes torchrun started in all (1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1) if launched() else 1


def local_rank() -> int:
    """This process's rank on its node, which is also its GPU index (0 without torchrun)."""
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def is_enabled() -> bool:
    """Whether a process group is up (training is distributed)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank in the process group, 0 without one."""
    return dist.get_rank() if is_enabled() else 0


def get_world_size() -> int:
    """Number of processes in the group, 1 without one."""
    return dist.get_world_size() if is_enabled() else 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return get_rank() == 0


def check_launch(batch_size: int, gpus: Sequence[int], gpus_str: str, training: bool) -> int:
    """Check the options against torchrun's world before anything starts; return the batch of one process.

    Every rank runs the same check, so a bad combination stops all of them with the same line.
    """
    world = launch_world_size()
    if not launched():
        return batch_size
    per_node = _env_int("LOCAL_WORLD_SIZE", world)
    if gpus[0] >= 0 and per_node > len(gpus):
        raise UserError(f"--gpus {gpus_str}: {len(gpus)} GPU(s) for the {per_node} processes per node that torchrun "
                        "started; name one GPU per process (e.g. --gpus 0,1 with --nproc_per_node 2) or use "
                        "--gpus -1 for CPU")
    if training and batch_size % world:
        raise UserError(f"--batch_size {batch_size}: the global batch must divide evenly over the world size "
                        f"{world} (processes started by torchrun); pass a multiple of {world}")
    return batch_size // world


@contextlib.contextmanager
def quiet_unless_main() -> Iterator[None]:
    """Send stdout (prints, the option dump) of ranks other than 0 to /dev/null; stderr (errors, warnings) stays."""
    if launch_rank() == 0:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


@contextlib.contextmanager
def process_group(device: torch.device, timeout_minutes: float = 30.0) -> Iterator[torch.device]:
    """Join torchrun's process group for the block and yield this process's device (`device` when not launched).

    gloo on the CPU, nccl on GPUs, one GPU per process: cuda:LOCAL_RANK among the devices --gpus made visible.
    """
    if not launched():
        yield device
        return
    if not timeout_minutes > 0:
        raise UserError(f"--dist_timeout {timeout_minutes:g}: pass the minutes a collective may wait, above 0")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank())
        # nccl binds each process to its current device: set before the group is created
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, init_method="env://",
                            timeout=datetime.timedelta(minutes=timeout_minutes))
    rank = dist.get_rank()
    # torchrun sends SIGTERM to every process when one fails; it may come while this one is already
    # unwinding from a broken collective, so the handler covers the whole run, clean-up included
    stopped = (f"rank {rank}: terminated (SIGTERM): torchrun stops every process when one of them fails or "
               "is interrupted; the first error above names the cause")
    try:
        with terminate_on_sigterm(stopped):
            yield device
    except Exception as e:
        if not _lost_contact(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"rank {rank}: lost contact with another process ({first[:200]}); a process of the job "
                        "stopped or its node was lost: the first error above names the cause") from None
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def _lost_contact(e: BaseException) -> bool:
    """Whether `e` is a collective failing because a peer went away (not a bug in this process)."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(
        mark in text for mark in ("/gloo/", "Connection reset by peer", "Connection closed by peer", "NCCL"))


def _comm_device() -> torch.device:
    # nccl only moves CUDA tensors
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (no-op without a group)."""
    if not is_enabled():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_mean(values: Mapping[str, float], weight: float = 1.0) -> dict[str, float]:
    """The mean of each value over the ranks, each rank counting `weight` times (e.g. its number of samples)."""
    if not is_enabled():
        return dict(values)
    names = list(values)
    # float64: sums of per-sample averages must not lose the digits a single process would log
    packed = torch.tensor([values[n] * weight for n in names] + [weight], dtype=torch.float64,
                          device=_comm_device())
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    total = packed[-1].item()
    if total == 0:
        return {n: 0.0 for n in names}
    return {n: packed[i].item() / total for i, n in enumerate(names)}


def broadcast_object(obj: object) -> object:
    """Rank 0's `obj` on every rank (a picklable Python object)."""
    if not is_enabled():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: object) -> list | None:
    """Every rank's `obj`, in rank order, on rank 0; None on the other ranks."""
    if not is_enabled():
        return [obj]
    out = [None] * get_world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (batch-norm statistics), which DDP syncs only at the start of a forward."""
    if not is_enabled():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def interleave(parts: Sequence[Mapping]) -> dict:
    """Merge the per-rank dicts of a ShardSampler pass back into the order of a single process's pass."""
    merged: dict = {}
    iterators = [iter(p.items()) for p in parts]
    while iterators:
        alive = []
        for it in iterators:
            item = next(it, None)
            if item is not None:
                merged[item[0]] = item[1]
                alive.append(it)
        iterators = alive
    return merged


class ShardSampler(torch.utils.data.Sampler):
    """Indices rank, rank + world, ... of a dataset, in order and without padding: every image is seen once."""

    def __init__(self, length: int, rank: int | None = None, world_size: int | None = None) -> None:
        self.length = length
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def seed_rank(seed: int, dataset: object | None = None) -> None:
    """Seed torch, numpy and random with seed + rank so that the ranks draw different augmentations.

    The samples draw crops, scales, flips and rotations from numpy's global state (in this process with
    --num_workers 0; loader workers are seeded from torch's state) and the colour jitter from the dataset's
    own RandomState, which every rank would otherwise start from the same value.
    """
    import random

    rank_seed = seed + get_rank()
    torch.manual_seed(rank_seed)
    np.random.seed(rank_seed)
    random.seed(rank_seed)
    if dataset is not None and hasattr(dataset, "_data_rng"):
        dataset._data_rng = np.random.RandomState(rank_seed)
