"""Inference speed and accuracy of every execution path: PyTorch eager / channels_last / bf16 autocast /
torch.compile, ONNX Runtime, OpenVINO f32 and bf16.

Per network: the latency of one image (batch 1) and the throughput at larger batches, each path's ratio
to eager float32, and (with --val) the COCO AP of each path on a dataset's val split through the usual
detector (pre-processing, decoding, post-processing), so a fast path that loses accuracy shows it.

    python src/tools/bench_infer.py --archs res_18 resdcn_18 dla_34 --input_res 512 --batch_sizes 1 8 32
    python src/tools/bench_infer.py --archs resdcn_18 --input_res 128 --head_conv 32 \\
        --load_model resdcn_18=exp/ctdet/r18/model_last.pth --val --data_dir data --dataset synth
    python src/tools/bench_infer.py --archs res_18 --input_res 512 --val --val_tiles 4 \
        --load_model res_18=exp/ctdet/synth_res18/model_last.pth
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable

import torch

import _init_paths  # noqa: F401
from deploy.deps import require
from deploy.network_io import HeadsOutput
from deploy.onnx_export import export_onnx
from deploy.runtime import ExportedModel
from models.model import create_model, load_weights
from opts import opts
from utils.errors import UserError, run_cli

PATHS = ("eager", "channels_last", "bf16", "compile", "onnxruntime", "openvino_f32", "openvino_bf16")


def parse(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="ctdet")
    p.add_argument("--dataset", default="synth", help="dataset whose heads (and val split, with --val) are used")
    p.add_argument("--archs", nargs="+", default=["res_18", "resdcn_18", "dla_34"])
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--input_res", type=int, default=512)
    p.add_argument("--head_conv", type=int, default=-1)
    p.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--iters", type=int, default=3, help="timed repetitions per batch size (after one warm-up)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--load_model", nargs="*", default=[], help="ARCH=checkpoint.pth (random weights otherwise)")
    p.add_argument("--val", action="store_true", help="also measure the AP of every path on the val split")
    p.add_argument("--data_dir", default="", help="data folder for --val")
    p.add_argument("--val_limit", type=int, default=0, help="first N val images only (0: all)")
    p.add_argument("--val_tiles", type=int, default=1,
                   help="--val on N x N mosaics of the val images (synth): a model trained at input R then meets "
                        "its objects' training scale at --input_res N * R, e.g. make demo's at 512 with 4")
    return p.parse_args(argv)


class _Wrapped(torch.nn.Module):
    """A path as a network: images -> [heads], in float32."""

    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, images: torch.Tensor) -> list[dict]:
        out = self.fn(images)
        return [{k: v.float() for k, v in out[-1].items()}]


def _paths(model: torch.nn.Module, heads: list[str], args, res: int, tmp: str) -> dict[str, Callable]:
    """name -> callable(images) -> [heads] for every requested path."""
    out: dict[str, Callable] = {}
    sample = torch.randn(1, 3, res, res)
    for name in args.paths:
        if name == "eager":
            out[name] = model
        elif name == "channels_last":
            cl = _channels_last_copy(model)
            out[name] = _Wrapped(lambda x, m=cl: m(x.contiguous(memory_format=torch.channels_last)))
        elif name == "bf16":
            def run_bf16(x, m=model):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return m(x)
            out[name] = _Wrapped(run_bf16)
        elif name == "compile":
            out[name] = _Wrapped(torch.compile(model))
        else:
            dcn = "deformconv" if name == "onnxruntime" else "gridsample"
            path = os.path.join(tmp, f"{dcn}.onnx")
            if not os.path.exists(path):
                with contextlib.redirect_stdout(io.StringIO()):
                    export_onnx(HeadsOutput(model, heads), sample, path, heads, dcn=dcn, dynamic=True)
            backend = "onnxruntime" if name == "onnxruntime" else "openvino"
            precision = "bf16" if name == "openvino_bf16" else "f32"
            out[name] = ExportedModel(path, backend, precision)
    return out


def _channels_last_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def _time(fn: Callable, batch: int, res: int, iters: int) -> float:
    """Seconds per forward of a batch (best of `iters`, after a warm-up)."""
    x = torch.randn(batch, 3, res, res)
    best = float("inf")
    with torch.no_grad():
        fn(x)
        for _ in range(iters):
            start = time.perf_counter()
            fn(x)
            best = min(best, time.perf_counter() - start)
    return best


def _ap(opt_args: list[str], fn: Callable, limit: int) -> float:
    """COCO AP of the detector with its network replaced by `fn`, on the val split."""
    from datasets.dataset.custom import coco_index
    from datasets.dataset_factory import dataset_factory
    from detectors.detector_factory import detector_factory

    opt = opts().parse(opt_args)
    Dataset = dataset_factory[opt.dataset]
    opt = opts().update_dataset_info_and_set_heads(opt, Dataset)
    dataset = Dataset(opt, "val")
    detector = detector_factory[opt.task](opt)
    detector.model = fn
    ids = dataset.images[:limit] if limit else dataset.images
    results = {}
    for img_id in ids:
        info = dataset.coco.loadImgs(ids=[img_id])[0]
        path = os.path.join(dataset.img_dir, info["file_name"])
        ret = detector.run(path, info["calib"]) if opt.task == "ddd" else detector.run(path)
        results[img_id] = ret["results"]
    if limit:
        # the ground truth of the run images only: COCOeval would count every other image's objects as missed
        keep = set(ids)
        data = dict(dataset.coco.dataset)
        data["images"] = [i for i in data["images"] if i["id"] in keep]
        data["annotations"] = [a for a in data.get("annotations", []) if a["image_id"] in keep]
        dataset.coco = coco_index(data)
        dataset.images = ids
    with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
        stats = dataset.run_eval(results, d)
    return float(stats[0]) if stats is not None else 0.0


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark and print one table per network; returns the rows."""
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if any(p.startswith("openvino") for p in args.paths):
        require("openvino", "bench_infer.py's OpenVINO paths")
    checkpoints = dict(a.split("=", 1) for a in args.load_model if "=" in a)
    with tempfile.TemporaryDirectory() as tiled:
        if args.val and args.val_tiles > 1:
            args.data_dir = _tiled_val(args, tiled)
        return _bench(args, checkpoints)


def _tiled_val(args, out_root: str) -> str:
    """A data folder whose synth val split holds val_tiles x val_tiles mosaics of the real one."""
    from datasets.dataset_factory import dataset_factory
    from datasets.mosaic import tile_split
    from datasets.synthetic.shapes import split_paths

    if args.dataset != "synth":
        raise UserError(f"--val_tiles {args.val_tiles}: mosaics are made of --dataset synth only; drop --val_tiles")
    with contextlib.redirect_stdout(io.StringIO()):
        opt = opts().init([args.task, "--dataset", "synth", "--gpus", "-1"]
                          + (["--data_dir", args.data_dir] if args.data_dir else []))
        val = dataset_factory["synth"](opt, "val")
    n = tile_split(val.img_dir, val.annot_path, args.val_tiles, *split_paths(os.path.join(out_root, "synth"), "val"))
    print(f"--val on {n} mosaics of {args.val_tiles} x {args.val_tiles} val images")
    return out_root


def _bench(args, checkpoints: dict[str, str]) -> list[dict]:
    rows = []
    for arch in args.archs:
        common = [args.task, "--arch", arch, "--dataset", args.dataset, "--input_res", str(args.input_res),
                  "--head_conv", str(args.head_conv), "--gpus", "-1"]
        if args.data_dir:
            common += ["--data_dir", args.data_dir]
        with contextlib.redirect_stdout(io.StringIO()):
            opt = opts().init(common)
        model = create_model(arch, opt.heads, opt.head_conv)
        if arch in checkpoints:
            model = load_weights(model, checkpoints[arch], verbose=False)
            common += ["--load_model", checkpoints[arch]]
        elif args.val:
            raise UserError(f"--val needs --load_model {arch}=checkpoint.pth (random weights have no AP)")
        model.eval()
        with tempfile.TemporaryDirectory() as tmp:
            paths = _paths(model, list(opt.heads), args, args.input_res, tmp)
            base: dict[int, float] = {}
            print(f"\n{arch} at {args.input_res}x{args.input_res}, {torch.get_num_threads()} threads")
            header = "".join(f"| b{b} ms/img | img/s | x eager " for b in args.batch_sizes)
            print(f"{'path':<14}{header}" + ("| AP" if args.val else ""))
            for name, fn in paths.items():
                row = {"arch": arch, "path": name}
                line = f"{name:<14}"
                for b in args.batch_sizes:
                    sec = _time(fn, b, args.input_res, args.iters)
                    base.setdefault(b, sec)
                    row[b] = sec
                    line += f"| {1000 * sec / b:10.1f} | {b / sec:5.1f} | {base[b] / sec:7.2f} "
                if args.val:
                    with contextlib.redirect_stdout(io.StringIO()):
                        row["ap"] = _ap(common, fn, args.val_limit)
                    line += f"| {row['ap']:.4f}"
                print(line, flush=True)
                rows.append(row)
    return rows


if __name__ == "__main__":
    run_cli(main)
