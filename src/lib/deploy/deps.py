"""The optional deployment packages (onnx, onnxruntime, onnxscript, openvino): imported on first use."""
from __future__ import annotations

import importlib
from types import ModuleType

from utils.errors import UserError

PIP_NAMES = {"onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript", "openvino": "openvino"}


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise one line saying what to install for `purpose`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = PIP_NAMES.get(module.split(".")[0], module)
        raise UserError(f"{purpose} needs the Python package {package} ({e}); install it with `make setup` "
                        f"or `pip install {package}`") from None
