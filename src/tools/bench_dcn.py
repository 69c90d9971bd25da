"""Time the DCNv2 extension on every DCN layer shape of dla_34 and resdcn_18 at 512x512 input.

Compares forward and forward+backward with the plain-PyTorch reference (tests/dcn_reference.py) and
with torchvision.ops.deform_conv2d when torchvision is importable; prints one table row per layer
shape, batch size and device, with time ratios (>1 means the extension is faster).

    python src/tools/bench_dcn.py --quick          # batch 1, few repetitions (CPU in about a minute)
    python src/tools/bench_dcn.py --batch 1 16     # full run, CPU and CUDA when present
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "src", "lib"), os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from models.networks.DCNv2.dcn_v2 import dcn_v2_conv, extension_available  # noqa: E402

# Every DCN (3x3, stride 1, pad 1, one deformable group) at 512x512 input: (network, layer, C_in, C_out, H=W).
# resdcn_18: deconv_layers.{0,6,12} after layer4 (512 ch at stride 32 = 16x16), each followed by a x2 up-conv.
# dla_34: DLAUp ida_0 (proj_1 on level5, node_1), ida_1 (proj/node 1..2), ida_2 (proj/node 1..3) and the
# final ida_up (proj/node 1..2); a proj runs at its input's resolution, a node after the up-sampling.
LAYERS = [
    ("resdcn_18", "deconv_layers.0", 512, 256, 16),
    ("resdcn_18", "deconv_layers.6", 256, 128, 32),
    ("resdcn_18", "deconv_layers.12", 128, 64, 64),
    ("dla_34", "dla_up.ida_0.proj_1", 512, 256, 16),
    ("dla_34", "dla_up.ida_0.node_1", 256, 256, 32),
    ("dla_34", "dla_up.ida_1.proj_1", 256, 128, 32),
    ("dla_34", "dla_up.ida_1.node_1", 128, 128, 64),
    ("dla_34", "dla_up.ida_1.proj_2", 256, 128, 32),
    ("dla_34", "dla_up.ida_1.node_2", 128, 128, 64),
    ("dla_34", "dla_up.ida_2.proj_1", 128, 64, 64),
    ("dla_34", "dla_up.ida_2.node_1", 64, 64, 128),
    ("dla_34", "dla_up.ida_2.proj_2", 128, 64, 64),
    ("dla_34", "dla_up.ida_2.node_2", 64, 64, 128),
    ("dla_34", "dla_up.ida_2.proj_3", 128, 64, 64),
    ("dla_34", "dla_up.ida_2.node_3", 64, 64, 128),
    ("dla_34", "ida_up.proj_1", 128, 64, 64),
    ("dla_34", "ida_up.node_1", 64, 64, 128),
    ("dla_34", "ida_up.proj_2", 256, 64, 32),
    ("dla_34", "ida_up.node_2", 64, 64, 128),
]


def unique_shapes() -> list[tuple[str, int, int, int, int]]:
    """(network, C_in, C_out, size, how many layers of the network have this shape), in first-seen order."""
    counts: dict[tuple[str, int, int, int], int] = {}
    for net, _, cin, cout, hw in LAYERS:
        counts[(net, cin, cout, hw)] = counts.get((net, cin, cout, hw), 0) + 1
    return [(net, cin, cout, hw, n) for (net, cin, cout, hw), n in counts.items()]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], object], device: str, reps: int) -> float:
    """Median wall time of fn in milliseconds after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def make_operands(batch: int, cin: int, cout: int, hw: int, device: str, seed: int = 0):
    """Input, offset (about +-1 px), mask, weight and bias of one layer, all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cin, hw, hw, generator=g)
    off = torch.randn(batch, 18, hw, hw, generator=g)
    msk = torch.rand(batch, 9, hw, hw, generator=g)
    w = torch.randn(cout, cin, 3, 3, generator=g) / (cin * 9) ** 0.5
    b = torch.zeros(cout)
    return [t.to(device).requires_grad_() for t in (x, off, msk, w, b)]


def _torchvision_conv():
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # torchvision is optional
        return None

    def conv(x, off, msk, w, b):
        # torchvision wants the same (y, x) per-tap offset layout and a mask of one channel per tap
        return deform_conv2d(x, off, w, b, stride=1, padding=1, dilation=1, mask=msk)
    return conv


def bench_one(impl: Callable, ops: list[torch.Tensor], device: str, reps: int) -> tuple[float, float]:
    """(forward ms, forward+backward ms) of one implementation."""
    def fwd():
        with torch.no_grad():
            return impl(*ops)

    def fwd_bwd():
        for t in ops:
            t.grad = None
        impl(*ops).sum().backward()
    return time_ms(fwd, device, reps), time_ms(fwd_bwd, device, reps)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 1, 2 repetitions (runs on CPU in about a minute)")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default 1 16)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement (default 5)")
    ap.add_argument("--device", nargs="+", default=None, help="devices (default: cpu, plus cuda when present)")
    ap.add_argument("--no-ref", action="store_true", help="skip the plain-PyTorch reference (slow, memory-hungry)")
    ap.add_argument("--net", nargs="+", default=["resdcn_18", "dla_34"], help="networks whose layers to time")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if not extension_available():
        from models.networks.DCNv2.dcn_v2 import _require_backend
        _require_backend()  # raises the build hint
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = args.batch or ([1] if args.quick else [1, 16])
    reps = args.reps or (2 if args.quick else 5)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    ref = None
    if not args.no_ref:
        from dcn_reference import dcn_v2_conv_ref

        def ref(x, off, msk, w, b):
            return dcn_v2_conv_ref(x, off, msk, w, b, 1, 1, 1, 1)

    def ext(x, off, msk, w, b):
        return dcn_v2_conv(x, off, msk, w, b, 1, 1, 1, 1)

    tv = _torchvision_conv()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, torchvision "
          f"{'available' if tv else 'not importable'}; times in ms (median of {reps}), ratio = other / ours")
    head = (f"{'net':<10} {'layers':>6} {'B':>3} {'Cin>Cout':>9} {'HxW':>7} {'dev':>4} | {'ext fwd':>8} "
            f"{'ext f+b':>8} | {'ref fwd':>8} {'ref f+b':>8} {'x fwd':>6} {'x f+b':>6} | {'tv fwd':>8} {'tv f+b':>8} "
            f"{'x fwd':>6} {'x f+b':>6}")
    print(head)
    print("-" * len(head))
    totals: dict[tuple[str, int, str], list[float]] = {}
    for net, cin, cout, hw, count in unique_shapes():
        if net not in args.net:
            continue
        for device in devices:
            for batch in batches:
                ops = make_operands(batch, cin, cout, hw, device)
                e = bench_one(ext, ops, device, reps)
                r = bench_one(ref, ops, device, reps) if ref else None
                t = bench_one(tv, ops, device, reps) if tv else None
                tot = totals.setdefault((net, batch, device), [0.0, 0.0])
                tot[0] += count * e[0]
                tot[1] += count * e[1]

                def cols(o, e=e):
                    if o is None:
                        return f"{'-':>8} {'-':>8} {'-':>6} {'-':>6}"
                    return f"{o[0]:8.2f} {o[1]:8.2f} {o[0] / e[0]:6.2f} {o[1] / e[1]:6.2f}"
                print(f"{net:<10} {count:>6} {batch:>3} {f'{cin}>{cout}':>9} {f'{hw}x{hw}':>7} {device:>4} | "
                      f"{e[0]:8.2f} {e[1]:8.2f} | {cols(r)} | {cols(t)}", flush=True)
                del ops
    for (net, batch, device), (f, fb) in totals.items():
        print(f"total over all DCN layers of {net}, batch {batch}, {device}: forward {f:.1f} ms, "
              f"forward+backward {fb:.1f} ms")


if __name__ == "__main__":
    main()
