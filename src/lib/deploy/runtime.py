"""Run an exported .onnx network in ONNX Runtime or OpenVINO behind the interface the detectors use.

`ExportedModel(images)` returns `[{head: tensor}]` like a CenterNet network in eval mode, so every
detector's pre-processing, flip and multi-scale testing, decoding and post-processing stay the same.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from deploy.decode_graph import DETS_NAME
from deploy.deps import require
from deploy.network_io import DETECTION_OUTPUTS, INPUT_NAME
from utils.errors import UserError

BACKENDS = ("onnxruntime", "openvino")


def is_exported_model(path: str) -> bool:
    """Whether --load_model names an exported model (chosen by the file extension)."""
    return bool(path) and path.lower().endswith(".onnx")


class _OnnxRuntimeRunner:
    def __init__(self, path: str) -> None:
        ort = require("onnxruntime", "--backend onnxruntime")
        try:
            self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        except Exception as e:  # a truncated file, an opset this onnxruntime does not know...
            raise UserError(f"--load_model {path}: onnxruntime cannot load it ({_first_line(e)}); "
                            "export it again with src/tools/export.py") from None
        inp = self.session.get_inputs()[0]
        self.shape = [d if isinstance(d, int) else None for d in inp.shape]
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        self.input_name = inp.name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, array: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: array})


class _OpenVinoRunner:
    def __init__(self, path: str, precision: str) -> None:
        ov = require("openvino", "--backend openvino")
        core = ov.Core()
        try:
            model = core.read_model(path)
            self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        except Exception as e:
            if "DeformConv" in str(e):
                raise UserError(f"--load_model {path}: OpenVINO has no DeformConv; export the model with --dcn "
                                "gridsample for --backend openvino (or use --backend onnxruntime)") from None
            raise UserError(f"--load_model {path}: OpenVINO cannot load it ({_first_line(e)}); export it again "
                            "with src/tools/export.py, or use --backend onnxruntime") from None
        pshape = self.compiled.inputs[0].get_partial_shape()
        self.shape = [d.get_length() if d.is_static else None for d in pshape]
        self.dtype = np.float16 if "f16" in str(self.compiled.inputs[0].get_element_type()) else np.float32
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()

    def __call__(self, array: np.ndarray) -> list[np.ndarray]:
        res = self.request.infer({0: array})
        # the request reuses its buffers on the next call: copy out
        return [np.array(res[o], copy=True) for o in self.compiled.outputs]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


class ExportedModel(nn.Module):
    """An exported network (`export.py` without --decode) that the detectors call like the PyTorch one."""

    def __init__(self, path: str, backend: str = "onnxruntime", precision: str = "f32") -> None:
        super().__init__()
        if not os.path.isfile(path):
            raise UserError(f"--load_model {path}: no such file; check the path")
        if backend not in BACKENDS:
            raise UserError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
        self.path, self.backend = path, backend
        self.runner = _OnnxRuntimeRunner(path) if backend == "onnxruntime" else _OpenVinoRunner(path, precision)
        names = self.runner.output_names
        if DETS_NAME in names:
            raise UserError(f"--load_model {path}: exported with --decode (it gives detections, not heads); "
                            "export it again without --decode for test.py / demo.py")
        self.heads = names

    @property
    def gives_detections(self) -> bool:
        """Whether the graph ends in final detections (a centernet2 export) rather than head maps."""
        return tuple(self.heads) == DETECTION_OUTPUTS

    def _check_size(self, images: torch.Tensor) -> None:
        fixed = self.runner.shape
        for axis, what in ((2, "height"), (3, "width")):
            if fixed[axis] is not None and fixed[axis] != images.shape[axis]:
                raise UserError(f"--load_model {self.path}: exported for input {fixed[3]}x{fixed[2]} but the "
                                f"input is {images.shape[3]}x{images.shape[2]} ({what}); test with the export's "
                                "--input_res, or export with --dynamic")

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Head outputs (float32, on the input's device) of the batch, as the PyTorch network gives them."""
        self._check_size(images)
        array = images.detach().cpu().numpy().astype(self.runner.dtype)
        step = self.runner.shape[0] or array.shape[0]  # a fixed-batch export runs the batch piece by piece
        pieces = [self.runner(np.ascontiguousarray(array[i:i + step])) for i in range(0, array.shape[0], step)]
        out = {}
        for k, name in enumerate(self.heads):
            joined = np.concatenate([p[k] for p in pieces], axis=0).astype(np.float32)
            out[name] = torch.from_numpy(joined).to(images.device)
        return [out]


def load_exported_model(path: str, backend: str = "onnxruntime", amp: str = "", task: str = "") -> ExportedModel:
    """The runtime for --load_model model.onnx; OpenVINO computes in f32 unless --amp bf16 asks for bf16.

    task: the detector's task, when given the export must be one of it (centernet2 exports end in detections).
    """
    # OpenVINO would pick bf16 by itself on CPUs that have it: ask for f32 so results match PyTorch's
    model = ExportedModel(path, backend, precision="bf16" if amp == "bf16" else "f32")
    if task and (task == "centernet2") != model.gives_detections:
        made_for = "centernet2" if model.gives_detections else f"a one-stage task (outputs {', '.join(model.heads)})"
        raise UserError(f"--load_model {path}: exported for {made_for}, not for {task}; run it with the task it was "
                        f"exported for, or export the {task} model with src/tools/export.py {task}")
    return model


__all__ = ["BACKENDS", "INPUT_NAME", "ExportedModel", "is_exported_model", "load_exported_model"]
