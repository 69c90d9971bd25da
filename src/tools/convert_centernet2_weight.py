"""Convert a detectron2 CenterNet2 checkpoint (ResNet-FPN, e.g. CenterNet2_R50_1x.pth) into this port's layout.

Usage: python src/tools/convert_centernet2_weight.py INPUT.pth OUTPUT.pth [--mean B,G,R --std B,G,R]
Then: python src/test.py centernet2 --arch res_50_fpn --load_model OUTPUT.pth (80 COCO classes).

The keys are renamed (bottom_up.stem / res2..res5 -> conv1 / layer1..layer4, FrozenBN 'norm' -> bn,
proposal_generator.centernet_head -> proposal_head; the FPN and RoI heads keep their names). detectron2 feeds
the network BGR pixels minus its pixel mean; this port feeds (pixel / 255 - mean) / std, so the first
convolution is rescaled to take our input and the pixel mean is folded into its batch norm (exact away from
the image border). The checkpoint marks the bottleneck strides as detectron2's (on the 1x1 convolution).
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping

import numpy as np
import torch

import _init_paths  # noqa: F401  (puts src/lib on sys.path)
from models.model import load_checkpoint_file
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
    (r"^proposal_generator\.centernet_head\.(.+)$", r"proposal_head.\1"),
    (r"^roi_heads\.(box_head|box_predictor)\.(\d+)\.(\w+)\.(\w+)$", r"roi_heads.\1.\2.\3.\4"),
]


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
                       d2_std=D2_PIXEL_STD) -> None:
    """Make conv1 + bn1 take (pixel / 255 - mean) / std where detectron2 took (pixel - d2_mean) / d2_std."""
    w = state["backbone.conv1.weight"].double()
    mean, std = torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)
    d2_mean, d2_std = torch.tensor(d2_mean, dtype=torch.float64), torch.tensor(d2_std, dtype=torch.float64)
    # detectron2's input = (255 * std * ours + 255 * mean - d2_mean) / d2_std: a per-channel scale and offset
    scale = 255 * std / d2_std
    offset = (255 * mean - d2_mean) / d2_std
    new_w = w * scale[None, :, None, None]
    shift = (w * offset[None, :, None, None]).sum(dim=(1, 2, 3))  # conv1's response to the offset alone
    state["backbone.conv1.weight"] = new_w.float()
    state["backbone.bn1.running_mean"] = (state["backbone.bn1.running_mean"].double() - shift).float()


def convert_state_dict(d2_state: Mapping[str, object], mean=COCO_MEAN, std=COCO_STD) -> dict[str, torch.Tensor]:
    """This port's state_dict for a detectron2 CenterNet2 state_dict (tensors or numpy arrays)."""
    keys = list(d2_state)
    depth = _depth(keys)
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        new = convert_key(key)
        if new is None:
            continue
        value = d2_state[key]
        out[new] = torch.as_tensor(np.asarray(value)) if not torch.is_tensor(value) else value.detach().clone()
    missing_bn = [k for k in out if k.endswith(".running_var")]
    for k in missing_bn:  # detectron2's FrozenBN keeps no step count
        out.setdefault(k[:-len("running_var")] + "num_batches_tracked", torch.tensor(0))
    for field in _NORM_FIELDS:
        if f"backbone.bn1.{field}" not in out:
            raise UserError(f"input checkpoint: no backbone.bottom_up.stem.conv1.norm.{field}; pass a detectron2 "
                            "checkpoint of a ResNet with frozen batch norm")
    fold_normalisation(out, mean, std)
    out["backbone.stride_in_1x1"] = torch.tensor(1 if depth >= 50 else 0, dtype=torch.uint8)
    print(f"ResNet-{depth} FPN: use --arch res_{depth}_fpn")
    return out


def convert(input_path: str, output_path: str, mean=COCO_MEAN, std=COCO_STD, trust: bool = False) -> int:
    """Convert the file at input_path and write output_path atomically; returns the number of tensors."""
    loaded = load_checkpoint_file(input_path, culprit="input checkpoint", trust=trust)
    if isinstance(loaded, Mapping) and "model" in loaded:
        loaded = loaded["model"]
    if not isinstance(loaded, Mapping) or not any(str(k).startswith("backbone.bottom_up.") for k in loaded):
        raise UserError(f"input checkpoint {input_path}: not a detectron2 CenterNet2 model (no "
                        "backbone.bottom_up.* weights); pass e.g. CenterNet2_R50_1x.pth")
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
    parser.add_argument("output", help="checkpoint to write for --arch res_N_fpn (.pth)")
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
