"""Benchmark training throughput: one process against DistributedDataParallel with N processes, float32 against --amp.

Usage: python src/tools/bench_train.py [--arch res_18] [--input_res 512] [--batch_size 8] [--steps 10]
       [--warmup 3] [--nproc 2] [--amp bf16|fp16|auto] [--gpus -1|0,1]

Every configuration runs the real ctdet training step (network, losses, backward, Adam) on random inputs
with ctdet targets, so the figures measure compute and gradient exchange, not data loading. `--batch_size`
is the batch of ONE process: DDP with N processes trains N times as many images per step, and a perfect
scaling shows as N x the images/s of one process. Each configuration runs in fresh processes, one after the
other, and the table prints images/s and the ratio to one float32 process, measured side by side in one run.
On the CPU the processes share the machine's cores (each DDP process gets cores / N threads), so DDP only
shows its overhead there; on GPUs each process drives its own device.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import _init_paths  # noqa: F401
from models.model import create_model
from opts import opts
from trains.train_factory import train_factory
from utils.amp import check_amp, grad_scaler, resolve_amp
from utils.errors import UserError, run_cli


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="res_18")
    p.add_argument("--input_res", type=int, default=512)
    p.add_argument("--batch_size", type=int, default=8, help="images per process and step")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--nproc", type=int, default=2, help="DDP processes (0: skip DDP)")
    p.add_argument("--amp", default="auto", help="precision compared with float32: bf16, fp16 or auto ('' to skip)")
    p.add_argument("--gpus", default="", help="-1 for the CPU, GPU ids otherwise (default: all GPUs, else CPU)")
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "input_res"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} {getattr(args, name)}: must be at least 1")
    if args.input_res % 32:
        raise UserError(f"--input_res {args.input_res}: pass a multiple of 32")
    if not args.gpus:
        args.gpus = ",".join(str(i) for i in range(torch.cuda.device_count())) or "-1"
    return args


def _opt(args: argparse.Namespace, amp: str):
    """The options of a ctdet training run on COCO's 80 classes with this benchmark's size and precision."""
    argv = ["ctdet", "--arch", args.arch, "--input_res", str(args.input_res), "--gpus", args.gpus,
            "--batch_size", str(args.batch_size)]
    if amp:
        argv += ["--amp", amp]
    with contextlib.redirect_stdout(io.StringIO()):  # the option dump of every run would bury the table
        return opts().init(argv)


def _batch(opt, batch_size: int, device: torch.device, seed: int) -> dict:
    """Random images with ctdet targets of up to 32 objects per image."""
    g = torch.Generator().manual_seed(seed)
    h, w, k = opt.output_h, opt.output_w, 32
    hm = torch.rand(batch_size, opt.num_classes, h, w, generator=g) ** 8
    batch = {"input": torch.randn(batch_size, 3, opt.input_h, opt.input_w, generator=g), "hm": hm,
             "ind": torch.randint(0, h * w, (batch_size, k), generator=g),
             "wh": torch.rand(batch_size, k, 2, generator=g) * 64, "reg": torch.rand(batch_size, k, 2, generator=g),
             "reg_mask": (torch.rand(batch_size, k, generator=g) < 0.5).to(torch.uint8)}
    return {name: t.to(device) for name, t in batch.items()}


def _time_steps(opt, device: torch.device, args: argparse.Namespace, world: int) -> float:
    """Images per second of this process's training steps (after warm-up)."""
    model = create_model(opt.arch, opt.heads, opt.head_conv)
    optimizer = torch.optim.Adam(model.parameters(), opt.lr)
    trainer = train_factory["ctdet"](opt, model, optimizer)
    scaler = grad_scaler(opt.amp, device)
    trainer.set_device([-1] if device.type == "cpu" else [device.index], [args.batch_size], device,
                       amp=opt.amp, scaler=scaler)
    trainer.model_with_loss.train()
    batch = _batch(opt, args.batch_size, device, seed=dist.get_rank() if dist.is_initialized() else 0)

    def step() -> None:
        _, loss, _ = trainer.model_with_loss(batch)
        optimizer.zero_grad()
        if scaler is not None:
            scaler.scale(loss.mean()).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.mean().backward()
            optimizer.step()

    for _ in range(args.warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    _sync(device)
    return args.steps * args.batch_size * world / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, amp: str, threads: int, out) -> None:
    """One DDP process: join the group, time the steps, rank 0 puts images/s on `out`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(threads)
    opt = _opt(args, amp)
    cuda = opt.gpus[0] >= 0
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        speed = _time_steps(opt, device, args, world)
        if rank == 0:
            out.put(speed)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(args: argparse.Namespace, amp: str, world: int) -> float:
    """Images/s of one configuration, run in fresh processes (spawned, so no state is shared with this one)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    cores = os.cpu_count() or 1
    threads = max(1, cores // max(world, 1))
    if world == 0:  # one plain process, no process group
        proc = ctx.Process(target=_single, args=(args, amp, cores, out))
        procs = [proc]
    else:
        port = _free_port()
        procs = [ctx.Process(target=_worker, args=(r, world, port, args, amp, threads, out)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise UserError(f"the {'DDP x' + str(world) if world else 'single-process'} run with amp '{amp}' failed; "
                        "see its error above")
    return out.get()


def _single(args: argparse.Namespace, amp: str, threads: int, out) -> None:
    torch.set_num_threads(threads)
    opt = _opt(args, amp)
    device = torch.device("cuda", 0) if opt.gpus[0] >= 0 else torch.device("cpu")
    out.put(_time_steps(opt, device, args, 1))


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    """Run every configuration and print the table; returns (name, images/s, ratio) rows."""
    args = _parse(argv)
    device = torch.device("cpu") if args.gpus.startswith("-") else torch.device("cuda", 0)
    amp = resolve_amp(args.amp, device) if args.amp else ""
    check_amp(amp, device)
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"ctdet {args.arch} {args.input_res}x{args.input_res}, batch {args.batch_size} per process, "
          f"{args.steps} timed steps after {args.warmup}, on {where}")
    configs = [("1 process fp32", "", 0)]
    if amp:
        configs.append((f"1 process {amp}", amp, 0))
    if args.nproc > 0:
        configs.append((f"DDP x{args.nproc} fp32", "", args.nproc))
        if amp:
            configs.append((f"DDP x{args.nproc} {amp}", amp, args.nproc))
    rows = []
    base = None
    for name, precision, world in configs:
        speed = _measure(args, precision, world)
        base = base or speed
        rows.append((name, speed, speed / base))
        print(f"{name:<22} {speed:10.2f} images/s   x{speed / base:.2f}", flush=True)
    return rows


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
