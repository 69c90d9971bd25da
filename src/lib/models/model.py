"""Network factory and checkpoint I/O (the original's create_model / load_model / save_model)."""
from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from utils.errors import UserError, warn
from utils.lr_schedule import lr_at_epoch

# arch prefix -> (module under models.networks, factory function). Imported lazily so that
# res_N and hourglass never load the compiled DCN extension.
_model_factory = {
    "res": ("msra_resnet", "get_pose_net"),  # ResNet + deconv up-sampling
    "dlav0": ("dlav0", "get_pose_net"),  # DLA-34 with plain IDA up-sampling
    "dla": ("pose_dla_dcn", "get_pose_net"),
    "resdcn": ("resnet_dcn", "get_pose_net"),
    "hourglass": ("large_hourglass", "get_large_hourglass_net"),
    "res_fpn": ("resnet_fpn", "get_pose_net"),  # ResNet + FPN P3-P7 carrying CenterNet2 (task centernet2)
    "dla_fpn": ("dla_fpn", "get_pose_net"),  # DLA-34 + FPN P3-P7 carrying CenterNet2 (task centernet2)
    "dla_bifpn": ("dla_fpn", "get_bifpn_net"),  # DLA-34 + BiFPN P3-P5 carrying CenterNet2 (task centernet2)
}

# The one list of --arch values (opts.py validates against it).
_RESNET_DEPTHS = (18, 34, 50, 101, 152)
_FPN_DEPTHS = (18, 50, 101)
VALID_ARCHS = (*(f"res_{n}" for n in _RESNET_DEPTHS), *(f"resdcn_{n}" for n in _RESNET_DEPTHS),
               "dla_34", "dlav0_34", "hourglass", *(f"res_{n}_fpn" for n in _FPN_DEPTHS), "dla_34_fpn",
               "dla_34_bifpn")
# VALID_ARCHS in short, for --arch's help and error line.
ARCH_CHOICES = (f"res_N / resdcn_N (N = {', '.join(map(str, _RESNET_DEPTHS))}), dla_34, dlav0_34, hourglass, "
                f"res_N_fpn (N = {', '.join(map(str, _FPN_DEPTHS))}), dla_34_fpn, dla_34_bifpn (task centernet2)")

_LOAD_MSG = ("If you see this, your model does not fully load the pre-trained weight. "
             "Please make sure you have correctly specified --arch xxx "
             "or set the correct --num_classes for your own dataset.")


def _parse_arch(arch: str) -> tuple[str, int]:
    """Split 'res_18' into ('res', 18); no '_' means 0 layers (hourglass)."""
    if "_" not in arch:
        return arch, 0
    for neck in ("_fpn", "_bifpn"):
        if arch.endswith(neck):  # res_18_fpn -> ('res_fpn', 18), dla_34_bifpn -> ('dla_bifpn', 34)
            name, depth = _parse_arch(arch[:-len(neck)])
            return f"{name}{neck}", depth
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
    """The raw network inside (possibly nested) DataParallel / DistributedDataParallel wrappers."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def _numpy_safe_globals() -> list:
    """The numpy pieces that plain-valued checkpoints pickle (scalars, dtypes, arrays), under old and new names.

    Files written with numpy 1.x name numpy.core.*, numpy 2.x numpy._core.*; both are data, not code.
    """
    import numpy as np

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    names = []
    for fn in (core.scalar, core._reconstruct):
        names += [(fn, f"numpy.core.multiarray.{fn.__name__}"), (fn, f"numpy._core.multiarray.{fn.__name__}")]
    dtype_classes = {type(np.dtype(c)) for c in "?bhilqBHILQefdgFDGSUV"}
    return [*names, np.dtype, np.ndarray, *dtype_classes]


def load_checkpoint_file(path: str, culprit: str = "--load_model", trust: bool = False) -> object:
    """torch.load a checkpoint on the CPU without running any code it may hold (weights_only).

    Checkpoints of the original and of this port hold tensors, dicts, ints and floats (numpy scalars in
    some older files), which the safe loader reads. A file that pickles other Python objects is refused
    with one line unless `trust` (--trust_checkpoint) is given for a file the user trusts.
    """
    if not path:
        raise UserError(f"{culprit}: no checkpoint given; pass the path of a .pth file")
    if not os.path.isfile(path):
        if culprit == "--resume":
            raise UserError(f"--resume: no {os.path.basename(path)} in {os.path.dirname(path)}; train this "
                            "experiment first (same task and --exp_id) or name a checkpoint with --load_model")
        raise UserError(f"{culprit} {path}: no such file; check the path")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise UserError(_unreadable(culprit, path, e)) from None
        refused = _refused_global(str(e))
        if refused is None and not trust:  # not a pickle of ours at all (a JSON file, random bytes...)
            raise UserError(_unreadable(culprit, path, e)) from None
        if not trust:
            raise UserError(f"{culprit} {path}: refused, the file pickles Python objects ({refused}) that could "
                            "run code when loaded; pass --trust_checkpoint only if you trust where it came from"
                            ) from None
        warn(f"{culprit} {path}: loading Python objects ({refused or 'unknown'}) with full unpickling "
             "(--trust_checkpoint)")
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:
            raise UserError(_unreadable(culprit, path, e2)) from None
    except Exception as e:  # truncated zip, not a torch file at all, unreadable file...
        raise UserError(_unreadable(culprit, path, e)) from None


def _refused_global(message: str) -> str | None:
    """The 'module.name' the safe loader refused, taken from its multi-line message (None: no global named)."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return found.group(1) if found else None


def _unreadable(culprit: str, path: str, e: BaseException) -> str:
    first = str(e).split(". ")[0].splitlines()[0][:160] if str(e) else ""
    return (f"{culprit} {path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first}); "
            "pass a complete file written by torch.save")


def _checkpoint_state_dict(checkpoint: object, path: str, culprit: str = "--load_model") -> tuple[dict, object]:
    """(state_dict, epoch) of an original-style checkpoint; a bare state_dict is accepted too."""
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]
        if isinstance(state_dict, Mapping) and all(torch.is_tensor(v) for v in state_dict.values()):
            return state_dict, checkpoint.get("epoch", 0)
        raise UserError(f"{culprit} {path}: its 'state_dict' is not a mapping of names to tensors; "
                        "pass a checkpoint saved by CenterNet")
    if isinstance(checkpoint, Mapping) and checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        return dict(checkpoint), 0
    raise UserError(f"{culprit} {path}: no 'state_dict' in this file; pass a checkpoint saved by "
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


def _reconcile(state_dict: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor],
               verbose: bool) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Merge a checkpoint into the model's own tensors: (merged, model keys not loaded, checkpoint keys unused).

    With `verbose` every mismatch gets the original's per-key line.
    """
    merged, not_loaded, unused = {}, [], []
    for k, v in state_dict.items():
        if k not in model_state:
            unused.append(k)
            if verbose:
                print(f"Drop parameter {k}.{_LOAD_MSG}")
        elif v.shape != model_state[k].shape:
            unused.append(k)
            if verbose:
                print(f"Skip loading parameter {k}, required shape{model_state[k].shape}, "
                      f"loaded shape{v.shape}. {_LOAD_MSG}")
        else:
            merged[k] = v
    for k, v in model_state.items():
        if k not in merged:
            merged[k] = v
            not_loaded.append(k)
            if verbose and k not in state_dict:
                print(f"No param {k}.{_LOAD_MSG}")
    return merged, not_loaded, unused


def _load_summary(model: nn.Module, path: str, total: int, not_loaded: Sequence[str], unused: Sequence[str]) -> str:
    """One line: how many of the model's tensors came from the file, which heads / parts kept their init."""
    heads = [h for h in (getattr(model, "heads", None) or ()) if any(k.split(".", 1)[0] == h for k in not_loaded)]
    others = [k for k in not_loaded if k.split(".", 1)[0] not in heads]
    parts = []
    if heads:
        parts.append(f"heads {', '.join(heads)}")
    if others:
        parts.append(f"{len(others)} other tensors (e.g. {others[0]})")
    line = f"Loaded {total - len(not_loaded)} of {total} model tensors from {path}"
    if parts:
        line += f"; kept at their initialisation: {'; '.join(parts)}"
    if unused:
        line += f"; {len(unused)} checkpoint tensors unused (e.g. {unused[0]})"
    return line + "."


def checkpoint_options(opt) -> dict:
    """load_model's keyword arguments chosen on the command line (opt-ins, verbosity, the option to blame)."""
    return {"trust": opt.trust_checkpoint, "allow_partial": opt.load_partial, "verbose": opt.debug > 0,
            "culprit": opt.load_model_option}


def _load_weights_from(model: nn.Module, model_path: str, trust: bool, allow_partial: bool, verbose: bool,
                       culprit: str) -> object:
    """Copy the matching tensors of `model_path` into `model`; returns the whole checkpoint for resuming."""
    checkpoint = load_checkpoint_file(model_path, culprit, trust)
    state_dict_, epoch = _checkpoint_state_dict(checkpoint, model_path, culprit)
    print(f"loaded {model_path}, epoch {epoch}")
    net = _unwrap(model)
    model_state = net.state_dict()
    merged, not_loaded, unused = _reconcile(_strip_module_prefix(state_dict_), model_state, verbose)
    summary = _load_summary(net, model_path, len(model_state), not_loaded, unused)
    if len(not_loaded) * 2 > len(model_state) and not allow_partial:
        raise UserError(f"{culprit} {model_path}: only {len(model_state) - len(not_loaded)} of {len(model_state)} "
                        "model tensors match this checkpoint (made for another network?); check --arch and the "
                        "task, or pass --load_partial to start from it anyway")
    if not_loaded or unused:
        print(summary)
    net.load_state_dict(merged, strict=False)
    return checkpoint


def load_weights(model: nn.Module, model_path: str, *, trust: bool = False, allow_partial: bool = False,
                 verbose: bool = True, culprit: str = "--load_model") -> nn.Module:
    """Load the network weights of an original-style checkpoint into `model` and return it.

    `trust` allows files with pickled Python objects (--trust_checkpoint); a file that fills less than
    half of the model's tensors is refused unless `allow_partial` (--load_partial); `verbose` prints the
    original's line for every mismatching key, otherwise one summary line covers them.
    """
    _load_weights_from(model, model_path, trust, allow_partial, verbose, culprit)
    return model


def resume_training(model: nn.Module, model_path: str, optimizer: torch.optim.Optimizer, lr: float | None = None,
                    lr_step: Sequence[int] | None = None, *, trust: bool = False, allow_partial: bool = False,
                    verbose: bool = True, culprit: str = "--load_model",
                    scaler: torch.amp.GradScaler | None = None) -> tuple[nn.Module, torch.optim.Optimizer, int]:
    """Load weights, optimizer state and epoch to continue a run; returns (model, optimizer, start_epoch).

    With `lr` given, the optimizer restarts at the lr the schedule had reached after the saved epoch
    (lr_at_epoch); without, at the checkpoint's own lr. A checkpoint without an optimizer state only
    gives its weights (start_epoch 0). `scaler` (fp16 training) takes the checkpoint's scaler state when it
    has one, else keeps its fresh state. The other keyword options are load_weights'.
    """
    checkpoint = _load_weights_from(model, model_path, trust, allow_partial, verbose, culprit)
    if not (isinstance(checkpoint, Mapping) and "optimizer" in checkpoint):
        print("No optimizer parameters in checkpoint.")
        return model, optimizer, 0
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scaler is not None and isinstance(checkpoint.get("scaler"), Mapping):
        scaler.load_state_dict(checkpoint["scaler"])
    start_epoch = checkpoint["epoch"]
    if lr is not None:
        start_lr = lr_at_epoch(lr, lr_step or (), start_epoch)
        for param_group in optimizer.param_groups:
            param_group["lr"] = start_lr
    else:
        start_lr = optimizer.param_groups[0]["lr"]
    print("Resumed optimizer with start lr", start_lr)
    return model, optimizer, start_epoch


def load_model(model: nn.Module, model_path: str, optimizer: torch.optim.Optimizer | None = None,
               resume: bool = False, lr: float | None = None, lr_step: Sequence[int] | None = None, *,
               trust: bool = False, allow_partial: bool = False, verbose: bool = True,
               culprit: str = "--load_model"):
    """The original's entry point: load_weights, or resume_training when an optimizer and `resume` are given.

    Returns the model alone without an optimizer, else (model, optimizer, start_epoch) as the original
    did (optimizer untouched and start_epoch 0 when not resuming).
    """
    options = {"trust": trust, "allow_partial": allow_partial, "verbose": verbose, "culprit": culprit}
    if optimizer is None:
        return load_weights(model, model_path, **options)
    if resume:
        return resume_training(model, model_path, optimizer, lr, lr_step, **options)
    return load_weights(model, model_path, **options), optimizer, 0


def save_model(path: str, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
               scaler: torch.amp.GradScaler | None = None) -> None:
    """Write {'epoch', 'state_dict'[, 'optimizer'][, 'scaler']} atomically; (Distributed)DataParallel is unwrapped.

    The fp16 gradient scaler's state goes under an extra key, which the original's loader ignores.
    """
    data = {"epoch": epoch, "state_dict": _unwrap(model).state_dict()}
    if optimizer is not None:
        data["optimizer"] = optimizer.state_dict()
    if scaler is not None:
        data["scaler"] = scaler.state_dict()
    from utils.io import atomic_save

    atomic_save(data, path)
