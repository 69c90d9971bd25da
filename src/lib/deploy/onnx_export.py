"""Export a network (or a network + decode) to ONNX, DCNv2 included, and check the file.

DCNv2 layers are the registered operator `dcn_v2::modulated_deform_conv` in the exported program. It
becomes either the standard ONNX DeformConv node (opset >= 19; ONNX Runtime runs it on the CPU) or, for
runtimes without DeformConv (OpenVINO), the GridSample + MatMul decomposition of dcn_decompose.py.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from deploy.dcn_decompose import deform_conv_gridsample
from deploy.deps import require
from deploy.network_io import INPUT_NAME
from utils.errors import UserError
from utils.io import atomic_write

DCN_MODES = ("deformconv", "gridsample")
DEFAULT_OPSET = 19
MIN_OPSET = {"deformconv": 19, "gridsample": 16}  # DeformConv appeared in opset 19, GridSample in 16


def _dcn_op():
    """The registered DCNv2 operator, or None when the extension is not built (then no network uses it)."""
    ns = getattr(torch.ops, "dcn_v2", None)
    return getattr(ns, "modulated_deform_conv", None) if ns is not None else None


def _deformconv_translation(opset: int):
    """onnxscript function writing dcn_v2::modulated_deform_conv as one ONNX DeformConv node."""
    onnxscript = require("onnxscript", "ONNX export")
    op = getattr(onnxscript, f"opset{opset}", None)
    if op is None:
        raise UserError(f"--opset {opset}: this onnxscript has no opset {opset}; pick 19 to 22")

    def deform_conv(input, offset, mask, weight, bias, stride, padding, dilation, deformable_groups):
        # ONNX pads are [h_begin, w_begin, h_end, w_end]; DCNv2 pads both sides alike
        return op.DeformConv(input, weight, offset, bias, mask, dilations=list(dilation), group=1,
                             offset_group=int(deformable_groups), strides=list(stride),
                             pads=[padding[0], padding[1], padding[0], padding[1]])

    return deform_conv


def _dynamic_shapes(dynamic: bool, spatial: bool) -> dict | None:
    if not dynamic:
        return None
    dim = torch.export.Dim.DYNAMIC
    return {"images": {0: dim, 2: dim, 3: dim} if spatial else {0: dim}}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs every step and every torchvision op it skips; keep the console for results."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_program(module: nn.Module, sample: torch.Tensor, *, dcn: str = "deformconv", dynamic: bool = False,
                   dynamic_spatial: bool = True):
    """torch.export the module (eval mode) on `sample`; with dcn='gridsample' DCNv2 is decomposed here.

    dynamic: the batch size is free, and the input height/width too when dynamic_spatial.
    """
    if dcn not in DCN_MODES:
        raise UserError(f"--dcn {dcn}: choose one of {', '.join(DCN_MODES)}")
    module = module.eval()
    if dynamic and sample.shape[0] == 1:
        sample = torch.cat([sample, sample])  # traced at batch 1 the exporter would fix the batch size to 1
    with torch.no_grad():
        ep = torch.export.export(module, (sample,), dynamic_shapes=_dynamic_shapes(dynamic, dynamic_spatial),
                                   strict=False)
    op = _dcn_op()
    if dcn == "gridsample" and op is not None:
        ep = ep.run_decompositions({op.default: deform_conv_gridsample})
    return ep


def export_onnx(module: nn.Module, sample: torch.Tensor, path: str, output_names: Sequence[str], *,
                opset: int = DEFAULT_OPSET, dcn: str = "deformconv", dynamic: bool = False,
                dynamic_spatial: bool = True, translations: dict | None = None) -> None:
    """Write `module` (images -> outputs in `output_names` order) as ONNX to `path` and run onnx.checker on it.

    translations: {registered torch operator overload: onnxscript function} for the module's own operators.
    """
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    if opset < MIN_OPSET.get(dcn, 0):
        raise UserError(f"--opset {opset}: --dcn {dcn} needs opset {MIN_OPSET[dcn]} or later; pass "
                        f"--opset {MIN_OPSET[dcn]}" + (" or --dcn gridsample" if dcn == "deformconv" else ""))
    with _quiet_exporter():
        ep = export_program(module, sample, dcn=dcn, dynamic=dynamic, dynamic_spatial=dynamic_spatial)
        op = _dcn_op()
        table = dict(translations or {})
        if op is not None and dcn == "deformconv":
            table[op.default] = _deformconv_translation(opset)
        try:
            program = torch.onnx.export(ep, ep.example_inputs[0], dynamo=True, opset_version=opset,
                                        custom_translation_table=table or None, input_names=[INPUT_NAME],
                                        output_names=list(output_names), optimize=True, verbose=False)
        except torch.onnx.errors.OnnxExporterError as e:
            cause = e.__cause__ or e
            while cause.__cause__ is not None:
                cause = cause.__cause__
            raise UserError(f"the ONNX exporter failed for opset {opset} ({type(cause).__name__}: "
                            f"{str(cause).strip().splitlines()[0][:160]}); try another --opset, or without "
                            "--dynamic") from None
    proto = program.model_proto
    with atomic_write(path, "wb") as f:
        f.write(proto.SerializeToString())
    try:
        onnx.checker.check_model(path, full_check=True)
    except onnx.checker.ValidationError as e:
        raise UserError(f"{path}: the exported model fails onnx.checker: {str(e).splitlines()[0]}") from None


def compare_with_onnxruntime(path: str, module: nn.Module, sample: torch.Tensor,
                             output_names: Sequence[str]) -> dict[str, float]:
    """Largest absolute difference per output between ONNX Runtime (CPU) on `path` and PyTorch on `sample`."""
    ort = require("onnxruntime", "Checking the export")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed_dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32
    got = session.run(None, {INPUT_NAME: sample.detach().cpu().numpy().astype(feed_dtype)})
    with torch.no_grad():
        want = module.eval()(sample)
    want = (want,) if isinstance(want, torch.Tensor) else tuple(want)
    return {name: float(np.abs(g.astype(np.float64) - w.detach().cpu().double().numpy()).max()) if g.size else 0.0
            for name, g, w in zip(output_names, got, want)}


def output_path_writable(path: str) -> None:
    """Fail before the (slow) export when `path` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"--output {path}: is a folder; pass a file name such as model.onnx")
    if not path.lower().endswith(".onnx"):
        raise UserError(f"--output {path}: the file name must end in .onnx")
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--output {path}: {probe} is not a writable folder; choose another output path")
