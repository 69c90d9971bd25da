"""Export a CenterNet model to ONNX, check it with onnx.checker and compare ONNX Runtime with PyTorch.

    python src/tools/export.py ctdet --arch resdcn_18 --load_model model_best.pth --output model.onnx

Takes the original's options (task, --arch, --head_conv, --dataset, --input_res / --input_h / --input_w,
--K ...) plus --output, --opset, --dcn, --dynamic, --half and --decode below. The file runs in
test.py / demo.py with `--load_model model.onnx` (without --decode). centernet2 exports as one graph from
images to detections (boxes, scores, classes).
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch

import _init_paths  # noqa: F401
from deploy.centernet2_graph import OUTPUT_NAMES as CN2_OUTPUTS
from deploy.centernet2_graph import CenterNet2Graph, nms_mask_translation
from deploy.decode_graph import DETS_NAME, DecodedOutput
from deploy.network_io import HeadsOutput
from deploy.onnx_export import DCN_MODES, DEFAULT_OPSET, compare_with_onnxruntime, export_onnx, output_path_writable
from deploy.weights import load_for_export
from models.model import create_model
from opts import opts
from utils.errors import UserError, run_cli, warn


def export_parser() -> argparse.ArgumentParser:
    """The export options; every other option goes to the original's parser."""
    p = argparse.ArgumentParser(description="Export a CenterNet model to ONNX", add_help=False)
    p.add_argument("--output", default="", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (DeformConv needs 19 or later)")
    p.add_argument("--dcn", default="deformconv", choices=DCN_MODES,
                   help="DCNv2 as the ONNX DeformConv node, or as GridSample + MatMul (runtimes without "
                        "DeformConv, e.g. OpenVINO)")
    p.add_argument("--dynamic", action="store_true",
                   help="batch size and input height/width free at run time")
    p.add_argument("--half", action="store_true", help="float16 graph (inputs and outputs float16)")
    p.add_argument("--decode", action="store_true",
                   help="end the graph in detections (sigmoid, 3x3 max-pool peaks, top-K): ctdet, multi_pose, ddd")
    return p


def parse(argv: list[str]) -> tuple[argparse.Namespace, argparse.Namespace]:
    """(export options, the original's options with heads and input size filled in)."""
    if any(a in ("-h", "--help") for a in argv):
        export_parser().print_help()
        print("\nand the options of src/main.py (task, --arch, --load_model, --head_conv, --dataset, --input_res...)")
        sys.exit(0)
    args, rest = export_parser().parse_known_args(argv)
    if not args.output:
        raise UserError("--output: no file given; pass the .onnx file to write, e.g. --output model.onnx")
    output_path_writable(args.output)
    return args, opts().init(rest)


def build_module(opt, decode: bool) -> tuple[torch.nn.Module, list[str]]:
    """The network with its weights, wrapped to give named outputs: (module, output names)."""
    model = create_model(opt.arch, opt.heads, opt.head_conv, pretrained=False)
    if opt.load_model:
        model = load_for_export(model, opt.load_model, opt.heads, trust=opt.trust_checkpoint)
    else:
        warn("--load_model not given: exporting randomly initialised weights")
    model.eval()
    if opt.task == "centernet2":  # two stages in one graph: it always ends in detections
        return CenterNet2Graph(model.configure(opt)).eval(), list(CN2_OUTPUTS)
    if decode:
        return DecodedOutput(model, opt).eval(), [DETS_NAME]
    return HeadsOutput(model, list(opt.heads)).eval(), list(opt.heads)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Export, check, compare; returns the largest difference per output (empty when not compared)."""
    args, opt = parse(sys.argv[1:] if argv is None else argv)
    module, names = build_module(opt, args.decode)
    sample = torch.randn(1, 3, opt.input_h, opt.input_w, generator=torch.Generator().manual_seed(0))
    reference = module
    if args.half:
        module = copy.deepcopy(module).half()
    print(f"exporting {opt.task} {opt.arch} at {opt.input_w}x{opt.input_h} (opset {args.opset}, --dcn {args.dcn}"
          f"{', dynamic' if args.dynamic else ''}{', float16' if args.half else ''}) to {args.output}")
    centernet2 = opt.task == "centernet2"
    export_onnx(module, sample.half() if args.half else sample, args.output, names, opset=args.opset, dcn=args.dcn,
                dynamic=args.dynamic,
                translations={torch.ops.centernet2.nms_mask.default: nms_mask_translation(args.opset)} if centernet2
                else None)
    print(f"{args.output}: passes onnx.checker; outputs {', '.join(names)}")
    try:
        diffs = compare_with_onnxruntime(args.output, reference, sample, names)
    except UserError:
        raise
    except Exception as e:  # e.g. a float16 DeformConv, which ONNX Runtime's CPU kernels do not implement
        warn(f"onnxruntime could not run {args.output} on the CPU ({type(e).__name__}: "
             f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); not compared")
        return {}
    detail = ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
    print(f"largest abs difference onnxruntime vs pytorch: {max(diffs.values()):.3e} ({detail})")
    return diffs


if __name__ == "__main__":
    run_cli(main)
