"""What --dataset custom takes from its json: classes, category ids, keypoints, flip pairs, skeleton.

The figures are needed before any dataset is built (opts sets the network heads from them, demo.py
builds no dataset at all), so they come from the categories of the training json (or of the val json
when only that one is given). Parsed files are cached per path and modification time.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from utils.errors import UserError

# OKS sigma of every keypoint when --kpt_sigmas is not given: about the mean of COCO's 17 sigmas
DEFAULT_KPT_SIGMA = 0.07
_LEFT_RIGHT = (("left_", "right_"), ("l_", "r_"))
_cache: dict[tuple[str, float], object] = {}


def read_json(path: str, option: str = ""):
    """The parsed json at `path` (cached while the file is unchanged); a UserError when absent or invalid."""
    named = f"{option} {path}" if option else path
    if not os.path.isfile(path):
        raise UserError(f"{named}: no such annotation file; check the path")
    key = (os.path.abspath(path), os.path.getmtime(path))
    if key not in _cache:
        try:
            with open(path, encoding="utf-8") as f:
                if len(_cache) >= 4:  # a run reads two files; a long test session reads many
                    _cache.clear()
                _cache[key] = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{named}: not a json file ({e}); fix or regenerate it") from None
    return _cache[key]


@dataclass
class CustomMeta:
    """Classes and keypoint layout of a custom dataset (class index i <-> category id cat_ids[i])."""

    cat_ids: list[int]
    names: list[str]
    keypoint_names: list[str] = field(default_factory=list)
    flip_idx: list[list[int]] = field(default_factory=list)
    skeleton: list[list[int]] = field(default_factory=list)  # 0-based joint pairs
    source: str = ""  # the json the categories came from

    @property
    def num_classes(self) -> int:
        """Number of classes (categories)."""
        return len(self.cat_ids)

    @property
    def num_joints(self) -> int:
        """Keypoints per object (0 without keypoints)."""
        return len(self.keypoint_names)


def flip_pairs(names: list[str]) -> list[list[int]]:
    """Index pairs of keypoints named left_X / right_X (or X_left / X_right, l_X / r_X), case-insensitive."""
    index = {str(n).lower(): i for i, n in enumerate(names)}
    pairs = []
    for name, i in index.items():
        for left, right in _LEFT_RIGHT:
            partner = None
            if name.startswith(left):
                partner = right + name[len(left):]
            elif left == "left_" and name.endswith("_left"):
                partner = name[: -len("_left")] + "_right"
            if partner is not None and partner in index:
                pairs.append([i, index[partner]])
                break
    return sorted(pairs)


def parse_flip_idx(text: str, num_joints: int) -> list[list[int]]:
    """--flip_idx '1-2,3-4' (0-based keypoint indices) -> [[1, 2], [3, 4]], each index at most once."""
    pairs, seen = [], set()
    for part in text.split(","):
        ends = part.strip().split("-")
        try:
            a, b = (int(v) for v in ends)
        except ValueError:
            raise UserError(f"--flip_idx {text}: expected pairs of keypoint indices such as 1-2,3-4") from None
        if not (0 <= a < num_joints and 0 <= b < num_joints) or a == b or {a, b} & seen:
            raise UserError(f"--flip_idx {text}: pair {part.strip()} must join two different keypoints "
                            f"0..{num_joints - 1}, each used once")
        seen |= {a, b}
        pairs.append([a, b])
    return pairs


def parse_kpt_sigmas(text: str, num_joints: int) -> list[float]:
    """--kpt_sigmas (one OKS sigma per keypoint) or the uniform default."""
    if not text:
        return [DEFAULT_KPT_SIGMA] * num_joints
    try:
        sigmas = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--kpt_sigmas {text}: expected comma-separated numbers such as 0.05,0.05") from None
    if len(sigmas) != num_joints or min(sigmas) <= 0:
        raise UserError(f"--kpt_sigmas {text}: need {num_joints} positive values (one per keypoint); "
                        "drop it for a uniform sigma")
    return sigmas


def _skeleton(cat: dict, num_joints: int, source: str) -> list[list[int]]:
    """The category's 'skeleton' (COCO: pairs of 1-based keypoint numbers) as 0-based pairs."""
    edges = []
    for edge in cat.get("skeleton") or []:
        if not (isinstance(edge, list) and len(edge) == 2 and all(isinstance(v, int) for v in edge)
                and all(1 <= v <= num_joints for v in edge)):
            raise UserError(f"{source}: category {cat.get('id')} has skeleton edge {edge!r}; edges are pairs of "
                            f"1-based keypoint numbers 1..{num_joints}")
        edges.append([edge[0] - 1, edge[1] - 1])
    return edges


def meta_from_json(data, source: str, keypoints: bool) -> CustomMeta:
    """Classes (sorted by category id) and, for keypoint tasks, the keypoint layout of the categories."""
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise UserError(f"{source}: no 'categories' list; a COCO json names its classes there "
                        "(the converters in src/tools write it)")
    if not all(isinstance(c, dict) and isinstance(c.get("id"), int) for c in cats):
        raise UserError(f"{source}: every category needs an integer 'id' (and a 'name')")
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UserError(f"{source}: duplicate category ids {dup}; give each category its own id")
    cats = sorted(cats, key=lambda c: c["id"])
    meta = CustomMeta([c["id"] for c in cats], [str(c.get("name", c["id"])) for c in cats], source=source)
    if not keypoints:
        return meta
    layouts = {tuple(c.get("keypoints") or ()) for c in cats}
    if () in layouts:
        bare = [c["id"] for c in cats if not c.get("keypoints")]
        raise UserError(f"{source}: multi_pose needs a 'keypoints' list of names in every category; categories "
                        f"{bare} have none (or use ctdet for boxes only)")
    counts = {len(k) for k in layouts}
    if len(counts) > 1:
        raise UserError(f"{source}: the categories have different keypoint counts {sorted(counts)}; multi_pose "
                        "shares one set of keypoint channels: give every category the same number of keypoints")
    meta.keypoint_names = [str(n) for n in cats[0]["keypoints"]]
    meta.flip_idx = flip_pairs(meta.keypoint_names)
    meta.skeleton = _skeleton(cats[0], meta.num_joints, source)
    return meta


def custom_meta(opt) -> CustomMeta:
    """The CustomMeta of the run's json: the training file, else the val file."""
    if opt.custom_dataset_ann_path:
        path, option = opt.custom_dataset_ann_path, "--custom_dataset_ann_path"
    elif opt.custom_dataset_val_ann_path:
        path, option = opt.custom_dataset_val_ann_path, "--custom_dataset_val_ann_path"
    else:
        raise UserError("--dataset custom: pass --custom_dataset_ann_path train.json (its categories name "
                        "the classes), see README.md 'Train on your own data'")
    return meta_from_json(read_json(path, option), path, keypoints=opt.task == "multi_pose")
