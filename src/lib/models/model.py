"""Network factory and checkpoint I/O (the original's create_model / load_model / save_model)."""
from __future__ import annotations

import importlib
import os
import pickle
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from utils.errors import UserError

# arch prefix -> (module under models.networks, factory function). Imported lazily so that
# res_N and hourglass never load the compiled DCN extension.
_model_factory = {
    "res": ("msra_resnet", "get_pose_net"),  # ResNet + deconv up-sampling
    "dlav0": ("dlav0", "get_pose_net"),  # DLA-34 with plain IDA up-sampling
    "dla": ("pose_dla_dcn", "get_pose_net"),
    "resdcn": ("resnet_dcn", "get_pose_net"),
    "hourglass": ("large_hourglass", "get_large_hourglass_net"),
}

VALID_ARCHS = ("res_18", "res_34", "res_50", "res_101", "res_152",
               "resdcn_18", "resdcn_34", "resdcn_50", "resdcn_101", "resdcn_152",
               "dla_34", "dlav0_34", "hourglass")

_LOAD_MSG = ("If you see this, your model does not fully load the pre-trained weight. "
             "Please make sure you have correctly specified --arch xxx "
             "or set the correct --num_classes for your own dataset.")


def _parse_arch(arch: str) -> tuple[str, int]:
    """Split 'res_18' into ('res', 18); no '_' means 0 layers (hourglass)."""
    if "_" not in arch:
        return arch, 0
    name, _, depth = arch.partition("_")
    try:
        return name, int(depth)
    except ValueError:
        raise UserError(f"--arch {arch}: the part after '_' must be a depth number; "
                        f"choose one of {', '.join(VALID_ARCHS)}") from None


def create_model(arch: str, heads: Mapping[str, int], head_conv: int, pretrained: bool = False) -> nn.Module:
    """Build the network for `arch` ('res_18', 'dla_34', 'hourglass', ...) with the given output heads."""
    name, num_layers = _parse_arch(arch)
    if name not in _model_factory:
        raise UserError(f"--arch {arch}: unknown architecture; choose one of {', '.join(VALID_ARCHS)}")
    module_name, fn_name = _model_factory[name]
    module = importlib.import_module(f"models.networks.{module_name}")
    get_model = getattr(module, fn_name)
    return get_model(num_layers=num_layers, heads=heads, head_conv=head_conv, pretrained=pretrained)


def _unwrap(model: nn.Module) -> nn.Module:
    """The raw network inside a (possibly nested) DataParallel wrapper."""
    while isinstance(model, nn.DataParallel):
        model = model.module
    return model


def load_checkpoint_file(path: str, culprit: str = "--load_model") -> object:
    """torch.load a checkpoint on the CPU, safely (weights_only) when it holds only tensors and plain values.

    Original CenterNet checkpoints hold tensors, ints and dicts, which the safe loader reads. Files with
    other pickled Python objects are loaded with full unpickling after a warning, as PyTorch < 2.6 did.
    """
    if not path:
        raise UserError(f"{culprit}: no checkpoint given; pass the path of a .pth file")
    if not os.path.isfile(path):
        raise UserError(f"{culprit} {path}: no such file; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise UserError(_unreadable(culprit, path, e)) from None
        # The safe loader refuses pickled Python objects other than tensors and containers; say which.
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        warnings.warn(f"{path} contains Python objects that the safe loader refuses ({why or 'see torch.load'}); "
                      "loading it with full unpickling - only do this for checkpoints you trust.", stacklevel=2)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:
            raise UserError(_unreadable(culprit, path, e2)) from None
    except Exception as e:  # truncated zip, not a torch file at all, unreadable file...
        raise UserError(_unreadable(culprit, path, e)) from None


def _unreadable(culprit: str, path: str, e: BaseException) -> str:
    first = str(e).split(". ")[0].splitlines()[0][:160] if str(e) else ""
    return (f"{culprit} {path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first}); "
            "pass a complete file written by torch.save")


def _checkpoint_state_dict(checkpoint: object, path: str) -> tuple[dict, object]:
    """(state_dict, epoch) of an original-style checkpoint; a bare state_dict is accepted too."""
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        return checkpoint["state_dict"], checkpoint.get("epoch", 0)
    if isinstance(checkpoint, Mapping) and checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        return dict(checkpoint), 0
    raise UserError(f"--load_model {path}: no 'state_dict' in this file; pass a checkpoint saved by "
                    "CenterNet (a dict with 'epoch' and 'state_dict') or a plain state_dict")


def _strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the 'module.' that DataParallel adds (but keep names that merely start with 'module_list')."""
    out = {}
    for k, v in state_dict.items():
        if k.startswith("module") and not k.startswith("module_list"):
            out[k[7:]] = v
        else:
            out[k] = v
    return out


def _report_heads(model: nn.Module, not_loaded: Sequence[str]) -> None:
    """One summary line naming the output heads that kept their fresh initialisation."""
    heads = getattr(model, "heads", None)
    if not heads or not not_loaded:
        return
    skipped = [h for h in heads if any(k.split(".", 1)[0] == h for k in not_loaded)]
    if skipped:
        print(f"Heads not loaded from the checkpoint (kept at their initialisation): {', '.join(skipped)}. "
              "Fine-tuning to other classes/heads is expected to do this; otherwise check --arch/--num_classes.")


def load_model(model: nn.Module, model_path: str, optimizer: torch.optim.Optimizer | None = None,
               resume: bool = False, lr: float | None = None, lr_step: Sequence[int] | None = None):
    """Load weights (and on resume the optimizer, epoch and scheduled lr) from an original-style checkpoint.

    Returns the model, or (model, optimizer, start_epoch) when an optimizer is given.
    """
    start_epoch = 0
    checkpoint = load_checkpoint_file(model_path)
    state_dict_, epoch = _checkpoint_state_dict(checkpoint, model_path)
    print(f"loaded {model_path}, epoch {epoch}")
    state_dict = _strip_module_prefix(state_dict_)
    net = _unwrap(model)
    model_state_dict = net.state_dict()

    not_loaded = []
    for k in list(state_dict):
        if k in model_state_dict:
            if state_dict[k].shape != model_state_dict[k].shape:
                print(f"Skip loading parameter {k}, required shape{model_state_dict[k].shape}, "
                      f"loaded shape{state_dict[k].shape}. {_LOAD_MSG}")
                state_dict[k] = model_state_dict[k]
                not_loaded.append(k)
        else:
            print(f"Drop parameter {k}.{_LOAD_MSG}")
            del state_dict[k]
    for k in model_state_dict:
        if k not in state_dict:
            print(f"No param {k}.{_LOAD_MSG}")
            state_dict[k] = model_state_dict[k]
            not_loaded.append(k)
    net.load_state_dict(state_dict, strict=False)
    _report_heads(net, not_loaded)

    if optimizer is not None and resume:
        if isinstance(checkpoint, Mapping) and "optimizer" in checkpoint:
            optimizer.load_state_dict(checkpoint["optimizer"])
            start_epoch = checkpoint["epoch"]
            start_lr = lr
            if start_lr is not None:
                # The schedule the run would have reached: x0.1 for every step already passed.
                for step in lr_step or ():
                    if start_epoch >= step:
                        start_lr *= 0.1
                for param_group in optimizer.param_groups:
                    param_group["lr"] = start_lr
            else:
                start_lr = optimizer.param_groups[0]["lr"]
            print("Resumed optimizer with start lr", start_lr)
        else:
            print("No optimizer parameters in checkpoint.")
    if optimizer is not None:
        return model, optimizer, start_epoch
    return model


def save_model(path: str, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write {'epoch', 'state_dict'[, 'optimizer']} atomically; DataParallel wrappers are unwrapped."""
    data = {"epoch": epoch, "state_dict": _unwrap(model).state_dict()}
    if optimizer is not None:
        data["optimizer"] = optimizer.state_dict()
    from utils.io import atomic_save

    atomic_save(data, path)
