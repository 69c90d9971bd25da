"""Convert a detectron2 CenterNet2 checkpoint (ResNet-FPN or DLA-BiFPN-P3) into this port's layout.

Usage: python src/tools/convert_centernet2_weight.py INPUT.pth OUTPUT.pth [--mean B,G,R --std B,G,R]
Then: python src/test.py centernet2 --arch res_50_fpn --load_model OUTPUT.pth (80 COCO classes), or
--arch dla_34_bifpn for CenterNet2_DLA-BiFPN-P3_4x / _24x. The layout is recognised from the keys.

ResNet-FPN keys are renamed (bottom_up.stem / res2..res5 -> conv1 / layer1..layer4, FrozenBN 'norm' -> bn,
proposal_generator.centernet_head -> proposal_head; the FPN and RoI heads keep their names). DLA-BiFPN keys:
bottom_up.backbone -> base (the DLA-34 body, same module names), repeated_bifpn.N -> bifpn.N with its
lateral_<input>_f<level> 1x1 convs under lateral.p<3+input>_at<3+level> and its weights_f* / outputs_f*
per node under td4 / out3 / out4 / out5. detectron2 feeds the network BGR pixels minus its pixel mean (over
its pixel std; both read from the checkpoint when it holds them); this port feeds (pixel / 255 - mean) / std,
so the first convolution is rescaled to take our input and the pixel mean is folded into its batch norm (exact
away from the image border). The ResNet checkpoint marks the bottleneck strides as detectron2's (on the 1x1).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping

import numpy as np
import torch

import _init_paths  # noqa: F401  (puts src/lib on sys.path)
from models.centernet2.network import ALL_LEVELS, CenterNet2
from models.model import load_checkpoint_file
from models.networks.dla_fpn import BIFPN_LEVELS, DLABiFPN, lateral_name
from utils.errors import UserError, run_cli
from utils.io import atomic_save

D2_PIXEL_MEAN = (103.530, 116.280, 123.675)  # BGR, detectron2's MSRA ResNets (pixel std 1)
D2_PIXEL_STD = (1.0, 1.0, 1.0)
COCO_MEAN = (0.408, 0.447, 0.470)  # this port's COCO input statistics (BGR, of pixel / 255)
COCO_STD = (0.289, 0.274, 0.278)
# blocks per stage (res2..res5) -> depth
_DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 50, (3, 4, 23, 3): 101}
# parts of a detectron2 model that this port does not use (they hold no weights of the network)
_IGNORED = ("pixel_mean", "pixel_std")
_NORM_FIELDS = ("weight", "bias", "running_mean", "running_var")

_RULES = [
    (r"^backbone\.bottom_up\.stem\.conv1\.weight$", "backbone.conv1.weight"),
    (r"^backbone\.bottom_up\.stem\.conv1\.norm\.(\w+)$", r"backbone.bn1.\1"),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.weight$", "backbone.layer{0}.{1}.conv{2}.weight"),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.(\w+)$", "backbone.layer{0}.{1}.bn{2}.{3}"),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.weight$", "backbone.layer{0}.{1}.downsample.0.weight"),
    (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.(\w+)$", "backbone.layer{0}.{1}.downsample.1.{2}"),
    (r"^backbone\.(fpn_(?:lateral|output)\d)\.(\w+)$", r"backbone.\1.\2"),
    (r"^backbone\.top_block\.(p6|p7)\.(\w+)$", r"backbone.top_block_\1.\2"),
]
# the proposal head and the cascade's box heads: the same layout behind either backbone
_HEAD_RULES = [
    (r"^proposal_generator\.centernet_head\.(.+)$", r"proposal_head.\1"),
    (r"^roi_heads\.(box_head|box_predictor)\.(\d+)\.(\w+)\.(\w+)$", r"roi_heads.\1.\2.\3.\4"),
]
_RULES += _HEAD_RULES


def convert_key(key: str) -> str | None:
    """This port's name of one detectron2 key (None for keys of no use here, such as the pixel mean)."""
    if key in _IGNORED:
        return None
    for pattern, template in _RULES:
        m = re.match(pattern, key)
        if not m:
            continue
        if "{" not in template:
            return m.expand(template)
        groups = list(m.groups())
        groups[0] = str(int(groups[0]) - 1)  # detectron2's res2..res5 are layer1..layer4
        return template.format(*groups)
    raise UserError(f"input checkpoint: key {key!r} is not part of a CenterNet2 ResNet-FPN model; pass a "
                    "detectron2 CenterNet2 checkpoint with a ResNet-FPN backbone (e.g. CenterNet2_R50_1x.pth)")


def _depth(keys: list[str]) -> int:
    """ResNet depth from the number of blocks per stage."""
    blocks = []
    for stage in (2, 3, 4, 5):
        ids = {int(m.group(1)) for k in keys if (m := re.match(rf"backbone\.bottom_up\.res{stage}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    if tuple(blocks) not in _DEPTHS:
        raise UserError(f"input checkpoint: blocks per stage {blocks} match no ResNet-18/50/101; pass a CenterNet2 "
                        "checkpoint with one of these backbones")
    return _DEPTHS[tuple(blocks)]


def fold_normalisation(state: dict[str, torch.Tensor], mean, std, d2_mean=D2_PIXEL_MEAN,
                       d2_std=D2_PIXEL_STD, conv: str = "backbone.conv1.weight", bn: str = "backbone.bn1.") -> None:
    """Make the first conv + BN (`conv`, `bn` keys) take (pixel / 255 - mean) / std where detectron2 took
    (pixel - d2_mean) / d2_std."""
    w = state[conv].double()
    mean, std = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    d2_mean, d2_std = torch.tensor(d2_mean, dtype=torch.float64), torch.tensor(d2_std, dtype=torch.float64)
    # detectron2's input = (255 * std * ours + 255 * mean - d2_mean) / d2_std: a per-channel scale and offset
    scale = 255 * std / d2_std
    offset = (255 * mean - d2_mean) / d2_std
    new_w = w * scale[None, :, None, None]
    shift = (w * offset[None, :, None, None]).sum(dim=(1, 2, 3))  # the conv's response to the offset alone
    state[conv] = new_w.float()
    state[bn + "running_mean"] = (state[bn + "running_mean"].double() - shift).float()


def _as_tensor(value: object) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value)) if not torch.is_tensor(value) else value.detach().clone()


def _pixel_stats(d2_state: Mapping[str, object]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """detectron2's (pixel mean, pixel std) as stored in the checkpoint, else its defaults."""
    stats = []
    for key, default in (("pixel_mean", D2_PIXEL_MEAN), ("pixel_std", D2_PIXEL_STD)):
        value = _as_tensor(d2_state[key]).reshape(-1) if key in d2_state else None
        if value is not None and value.numel() != 3:
            raise UserError(f"input checkpoint: {key} has {value.numel()} values; pass a checkpoint of a 3-channel "
                            "(BGR) detectron2 model")
        stats.append(default if value is None else tuple(float(v) for v in value))
    return stats[0], stats[1]


def _is_dla_bifpn(keys: list[str]) -> bool:
    return any(k.startswith(("backbone.bottom_up.backbone.", "backbone.repeated_bifpn.")) for k in keys)


def convert_state_dict(d2_state: Mapping[str, object], mean=COCO_MEAN, std=COCO_STD) -> dict[str, torch.Tensor]:
    """This port's state_dict for a detectron2 CenterNet2 state_dict (tensors or numpy arrays), ResNet-FPN or
    DLA-BiFPN-P3 (told apart by the keys)."""
    if _is_dla_bifpn(list(d2_state)):
        return convert_dla_bifpn_state_dict(d2_state, mean, std)
    keys = list(d2_state)
    depth = _depth(keys)
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        new = convert_key(key)
        if new is not None:
            out[new] = _as_tensor(d2_state[key])
    missing_bn = [k for k in out if k.endswith(".running_var")]
    for k in missing_bn:  # detectron2's FrozenBN keeps no step count
        out.setdefault(k[:-len("running_var")] + "num_batches_tracked", torch.tensor(0))
    for field in _NORM_FIELDS:
        if f"backbone.bn1.{field}" not in out:
            raise UserError(f"input checkpoint: no backbone.bottom_up.stem.conv1.norm.{field}; pass a detectron2 "
                            "checkpoint of a ResNet with frozen batch norm")
    fold_normalisation(out, mean, std, *_pixel_stats(d2_state))
    out["backbone.stride_in_1x1"] = torch.tensor(1 if depth >= 50 else 0, dtype=torch.uint8)
    print(f"ResNet-{depth} FPN: use --arch res_{depth}_fpn")
    return out


# CenterNet2's 3-level BiFPN names a node by its level offset (0 = P3) and its inputs' offsets (0-2 the layer's
# inputs P3-P5, then 3, 4, 5 the outputs of the nodes before); ours by its role
_BIFPN_NODES = {"f1_1_2": "td4", "f0_0_3": "out3", "f1_1_3_4": "out4", "f2_2_5": "out5"}
_GN_FIELDS = {"weight": "0.weight", "bias": "0.bias", "norm.weight": "1.weight", "norm.bias": "1.bias"}
_DLA_STEM_CONV, _DLA_STEM_BN = "backbone.base.base_layer.0.weight", "backbone.base.base_layer.1."
_DLA_LAYOUT = ("CenterNet2's DLA-BiFPN-P3 layout (DLA-34 levels 3-5, 4 BiFPN layers of 160 channels with "
               "GroupNorm, heads on P3-P5)")


def _bifpn_key(rest: str) -> str | None:
    """Our name, inside one BiFPN layer, of CenterNet2's `rest` (None if not part of a 3-level BiFPN)."""
    m = re.match(r"^lateral_(\d)_f(\d)\.(weight|bias|norm\.weight|norm\.bias)$", rest)
    if m:
        return f"lateral.{lateral_name(int(m.group(1)) + 3, int(m.group(2)) + 3)}.{_GN_FIELDS[m.group(3)]}"
    m = re.match(r"^weights_(f[\d_]+)$", rest)
    if m and m.group(1) in _BIFPN_NODES:
        return f"{_BIFPN_NODES[m.group(1)]}.weights"
    m = re.match(r"^outputs_(f[\d_]+)\.(weight|norm\.weight|norm\.bias)$", rest)
    if m and m.group(1) in _BIFPN_NODES:
        return f"{_BIFPN_NODES[m.group(1)]}.conv.{_GN_FIELDS[m.group(2)]}"
    return None


def convert_dla_bifpn_key(key: str) -> str | None:
    """This port's name of one key of CenterNet2's DLA-BiFPN model (None for the pixel statistics); raises
    UserError for a key of another layout."""
    if key in _IGNORED:
        return None
    if key.startswith("backbone.bottom_up.backbone."):
        return "backbone.base." + key[len("backbone.bottom_up.backbone."):]
    m = re.match(r"^backbone\.repeated_bifpn\.(\d+)\.(.+)$", key)
    if m and (part := _bifpn_key(m.group(2))) is not None:
        return f"backbone.bifpn.{m.group(1)}.{part}"
    for pattern, template in _HEAD_RULES:
        if m := re.match(pattern, key):
            return m.expand(template)
    raise UserError(f"input checkpoint: unexpected key {key!r} for {_DLA_LAYOUT}; pass a "
                    "CenterNet2_DLA-BiFPN-P3 checkpoint (other DLA-BiFPN configs are not supported)")


def _d2_dla_name(ours: str) -> str:
    """CenterNet2's name of one of our DLA-BiFPN keys (for error messages)."""
    nodes = {v: k for k, v in _BIFPN_NODES.items()}
    fields = {v: k for k, v in _GN_FIELDS.items()}
    if ours.startswith("backbone.base."):
        return "backbone.bottom_up.backbone." + ours[len("backbone.base."):]
    if m := re.match(r"^backbone\.bifpn\.(\d+)\.lateral\.p(\d)_at(\d)\.(\d\.\w+)$", ours):
        src, dst = int(m.group(2)) - 3, int(m.group(3)) - 3
        return f"backbone.repeated_bifpn.{m.group(1)}.lateral_{src}_f{dst}.{fields.get(m.group(4), m.group(4))}"
    if m := re.match(r"^backbone\.bifpn\.(\d+)\.(\w+)\.(weights|conv\.(\d\.\w+))$", ours):
        node = nodes.get(m.group(2), m.group(2))
        if m.group(3) == "weights":
            return f"backbone.repeated_bifpn.{m.group(1)}.weights_{node}"
        return f"backbone.repeated_bifpn.{m.group(1)}.outputs_{node}.{fields.get(m.group(4), m.group(4))}"
    return ours.replace("proposal_head.", "proposal_generator.centernet_head.", 1)


def _dla_bifpn_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the dla_34_bifpn model the converted checkpoint must fill (its heads sized from it)."""
    stages = sum(1 for k in state if re.match(r"^roi_heads\.box_predictor\.\d+\.cls_score\.weight$", k)) or 3
    cls = state.get("roi_heads.box_predictor.0.cls_score.weight")
    fc1 = state.get("roi_heads.box_head.0.fc1.weight")
    num_classes = cls.shape[0] - 1 if cls is not None and cls.dim() == 2 else 80
    fc_dim = fc1.shape[0] if fc1 is not None and fc1.dim() == 2 else 1024
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = CenterNet2(DLABiFPN(), num_classes, stages, fc_dim)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def convert_dla_bifpn_state_dict(d2_state: Mapping[str, object], mean=COCO_MEAN,
                                 std=COCO_STD) -> dict[str, torch.Tensor]:
    """This port's dla_34_bifpn state_dict for CenterNet2's DLA-BiFPN-P3 state_dict; UserError unless every
    tensor of the model is there with its shape and nothing else is."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key in d2_state:
        new = convert_dla_bifpn_key(key)
        if new is not None:
            out[new], origin[new] = _as_tensor(d2_state[key]), key
    for k in [k for k in out if k.endswith(".running_var")]:  # a frozen batch norm keeps no step count
        out.setdefault(k[:-len("running_var")] + "num_batches_tracked", torch.tensor(0))
    # CenterNet2 makes one box scale per used level (P3-P5); ours has one per level P3-P7, the last two unused
    for level in range(len(BIFPN_LEVELS), len(ALL_LEVELS)):
        out.setdefault(f"proposal_head.scales.{level}.scale", torch.ones(1))
    expected = _dla_bifpn_shapes(out)
    missing = [_d2_dla_name(k) for k in expected if k not in out]
    unexpected = [origin[k] for k in out if k not in expected]
    if missing or unexpected:
        parts = ([f"missing {len(missing)} tensors ({_few(missing)})"] if missing else []) + \
            ([f"{len(unexpected)} unexpected ({_few(unexpected)})"] if unexpected else [])
        raise UserError(f"input checkpoint: not {_DLA_LAYOUT}: {'; '.join(parts)}; pass a complete "
                        "CenterNet2_DLA-BiFPN-P3 checkpoint")
    wrong = [f"{origin.get(k, k)} {tuple(v.shape)} (want {expected[k]})" for k, v in out.items()
             if tuple(v.shape) != expected[k]]
    if wrong:
        raise UserError(f"input checkpoint: shapes differ from {_DLA_LAYOUT}: {_few(wrong)}; pass a "
                        "CenterNet2_DLA-BiFPN-P3 checkpoint")
    fold_normalisation(out, mean, std, *_pixel_stats(d2_state), conv=_DLA_STEM_CONV, bn=_DLA_STEM_BN)
    print("DLA-34 BiFPN P3-P5: use --arch dla_34_bifpn")
    return out


def convert(input_path: str, output_path: str, mean=COCO_MEAN, std=COCO_STD, trust: bool = False) -> int:
    """Convert the file at input_path and write output_path atomically; returns the number of tensors."""
    loaded = load_checkpoint_file(input_path, culprit="input checkpoint", trust=trust)
    if isinstance(loaded, Mapping) and "model" in loaded:
        loaded = loaded["model"]
    if not isinstance(loaded, Mapping) or not any(str(k).startswith("backbone.bottom_up.") for k in loaded):
        raise UserError(f"input checkpoint {input_path}: not a detectron2 CenterNet2 model (no "
                        "backbone.bottom_up.* weights); pass e.g. CenterNet2_R50_1x.pth or "
                        "CenterNet2_DLA-BiFPN-P3_24x.pth")
    out = convert_state_dict(loaded, mean, std)
    atomic_save({"epoch": 0, "state_dict": out}, output_path)
    return len(out)


def _triple(text: str, option: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"{option} {text}: pass three comma-separated BGR values such as 0.408,0.447,0.470")
    return values


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="detectron2 CenterNet2 checkpoint (.pth)")
    parser.add_argument("output", help="checkpoint to write for --arch res_N_fpn or dla_34_bifpn (.pth)")
    parser.add_argument("--mean", default=",".join(map(str, COCO_MEAN)),
                        help="BGR input mean (of pixel / 255) the converted model will be fed (default COCO's)")
    parser.add_argument("--std", default=",".join(map(str, COCO_STD)), help="BGR input std, as --mean")
    parser.add_argument("--trust_checkpoint", action="store_true",
                        help="load an input that pickles Python objects (runs any code it holds); only for "
                             "files you trust")
    args = parser.parse_args(argv)
    n = convert(args.input, args.output, _triple(args.mean, "--mean"), _triple(args.std, "--std"),
                args.trust_checkpoint)
    print(f"wrote {args.output} ({n} tensors)")


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
