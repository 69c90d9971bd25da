"""Synthetic multi-person keypoint data: stick figures with COCO's 17 joints, in COCO keypoint json layout.

Each image has a textured background, some clutter and 1..max_people figures (head ellipse, torso
polygon, thick limbs) of varied size, lean and limb angles, facing the camera (so COCO's "left"
joints are on the image's right). Joint visibility follows COCO: 2 visible, 1 labelled but hidden
(behind a later figure or a clutter patch), 0 unlabelled (x = y = 0; out of frame, or dropped at
random). Figures shorter than `min_labelled_height` get no joints at all, like COCO's small people.
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np

from datasets.synthetic.shapes import _background as shapes_background
from utils.io import atomic_write

NUM_JOINTS = 17
JOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# COCO's 1-based skeleton, stored in the category like the real annotation files
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
            [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
# limbs drawn as thick segments: (joint a, joint b, thickness relative to the figure's limb width)
LIMBS = [(5, 7, 1.0), (7, 9, 0.8), (6, 8, 1.0), (8, 10, 0.8),
         (11, 13, 1.2), (13, 15, 1.0), (12, 14, 1.2), (14, 16, 1.0), (5, 6, 0.8), (11, 12, 1.0)]
SPLITS = ("train", "val")
# image ids of a split start after this offset so train and val ids never collide
ID_OFFSET = {"train": 0, "val": 1_000_000}


def split_paths(out_dir: str, split: str) -> tuple[str, str]:
    """(image folder, annotation json) of a split, in the layout SynthHP reads."""
    return (os.path.join(out_dir, "images", split),
            os.path.join(out_dir, "annotations", f"person_keypoints_{split}.json"))


def _unit(angle: float) -> np.ndarray:
    """Unit vector at `angle` radians from straight down (+y), turning towards +x."""
    return np.array([np.sin(angle), np.cos(angle)])


def make_pose(rng: np.random.Generator, height: float, center: np.ndarray) -> tuple[np.ndarray, dict]:
    """Random 17 x 2 joint positions of a figure `height` px tall around `center`, plus drawing sizes."""
    u = height / 8.0  # "head units": a figure is about 8 heads tall
    lean = rng.normal(0, 0.15)
    torso = _unit(np.pi + lean) * 2.8 * u  # neck relative to hip centre (pointing up)
    side = np.array([np.cos(lean), -np.sin(lean)])  # towards the figure's left = image +x (facing us)
    hip_c = center + np.array([0.0, 0.4 * u])
    neck = hip_c + torso
    pts = np.zeros((NUM_JOINTS, 2))
    sh_w, hip_w = rng.uniform(0.8, 1.1) * u, rng.uniform(0.5, 0.7) * u
    pts[5], pts[6] = neck + side * sh_w, neck - side * sh_w
    pts[11], pts[12] = hip_c + side * hip_w, hip_c - side * hip_w
    head_r = 0.5 * u
    head = neck + _unit(np.pi + lean + rng.normal(0, 0.2)) * 1.1 * u
    turn = rng.uniform(-0.35, 0.35)  # head yaw moves the face features sideways
    pts[0] = head + side * turn * head_r + np.array([0, 0.15 * head_r])
    pts[1] = head + side * (0.4 + turn) * head_r - np.array([0, 0.2 * head_r])
    pts[2] = head - side * (0.4 - turn) * head_r - np.array([0, 0.2 * head_r])
    pts[3] = head + side * min(1.0, 0.95 + turn) * head_r
    pts[4] = head - side * min(1.0, 0.95 - turn) * head_r
    for sgn, (s, e, w) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):
        # arms: from hanging down to raised overhead, outward on each side
        a1 = sgn * rng.uniform(0.1, 2.6) + lean
        a2 = a1 + sgn * rng.uniform(-0.3, 1.8)
        pts[e] = pts[s] + _unit(a1) * 1.5 * u
        pts[w] = pts[e] + _unit(a2) * 1.3 * u
    stride = rng.uniform(0.0, 0.5)
    for sgn, (h, k, a) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):
        l1 = sgn * (0.05 + stride * rng.uniform(0.2, 1.0)) + lean * 0.5 + rng.normal(0, 0.1)
        l2 = l1 + rng.uniform(-0.6, 0.3) * sgn
        pts[k] = pts[h] + _unit(l1) * 2.0 * u
        pts[a] = pts[k] + _unit(l2) * 1.9 * u
    sizes = {"head": head, "head_r": head_r, "limb": max(2, int(round(0.35 * u))), "neck": neck}
    return pts, sizes


def draw_figure(img: np.ndarray, pts: np.ndarray, sizes: dict, colors: dict) -> np.ndarray:
    """Draw one figure on `img` (in place); return its uint8 silhouette mask."""
    mask = np.zeros(img.shape[:2], np.uint8)
    shift = 4  # sub-pixel drawing precision
    scale = 1 << shift

    def p(x):
        return tuple(int(round(v * scale)) for v in x)

    for target, col in ((img, None), (mask, 255)):
        torso = np.array([pts[5], pts[6], pts[12], pts[11]]) * scale
        cv2.fillPoly(target, [np.round(torso).astype(np.int32)], col or colors["shirt"], cv2.LINE_AA, shift)
        for a, b, rel in LIMBS:
            thick = max(1, int(round(sizes["limb"] * rel)))
            part = colors["skin"] if a in (7, 8) or b in (9, 10) else colors["legs"] if a >= 11 else colors["shirt"]
            cv2.line(target, p(pts[a]), p(pts[b]), col or part, thick, cv2.LINE_AA, shift)
        cv2.line(target, p(sizes["neck"]), p(sizes["head"]), col or colors["skin"], max(1, sizes["limb"] // 2 + 1),
                 cv2.LINE_AA, shift)
        axes = (int(round(sizes["head_r"] * 0.85 * scale)), int(round(sizes["head_r"] * 1.05 * scale)))
        cv2.ellipse(target, p(sizes["head"]), axes, 0, 0, 360, col or colors["skin"], -1, cv2.LINE_AA, shift)
    dot = max(1, int(round(sizes["head_r"] * 0.15)))
    for j in (1, 2):
        cv2.circle(img, p(pts[j]), dot * scale, (20, 20, 20), -1, cv2.LINE_AA, shift)
    for j in (9, 10, 15, 16):  # hands and feet
        cv2.circle(img, p(pts[j]), max(1, sizes["limb"] // 2) * scale, colors["skin"] if j < 15 else (30, 30, 30),
                   -1, cv2.LINE_AA, shift)
    return mask > 0


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The shapes set's textured backgrounds (gradient, stripes, checks, blobs) plus a few clutter shapes."""
    img = np.clip(shapes_background(rng, h, w), 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, 6)):
        _clutter(rng, img)
    return img


def _clutter(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Draw one random rectangle or circle (also into `mask` when given)."""
    h, w = img.shape[:2]
    col = tuple(float(v) for v in rng.uniform(0, 255, 3))
    x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
    size = int(rng.uniform(0.05, 0.25) * min(h, w)) + 2
    rect = rng.random() < 0.5
    for target, c in ((img, col), (mask, 255)):
        if target is None:
            continue
        if rect:
            cv2.rectangle(target, (x, y), (x + size, y + size // 2 + 1), c, -1)
        else:
            cv2.circle(target, (x, y), size // 2 + 1, c, -1)


def _colors(rng: np.random.Generator) -> dict:
    skin = rng.uniform([40, 60, 90], [180, 200, 250])
    return {"skin": tuple(float(v) for v in skin),
            "shirt": tuple(float(v) for v in rng.uniform(0, 255, 3)),
            "legs": tuple(float(v) for v in rng.uniform(0, 200, 3))}


def make_image(rng: np.random.Generator, size_range=(192, 320), max_people: int = 4,
               min_labelled_height: float = 24.0, drop_prob: float = 0.03) -> tuple[np.ndarray, list[dict]]:
    """One BGR image and its person annotations (without ids)."""
    h, w = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
    img = _background(rng, h, w)
    n = int(rng.integers(1, max_people + 1))
    people = []
    for _ in range(n):
        height = rng.uniform(0.2, 0.95) * h
        center = np.array([rng.uniform(-0.05, 1.05) * w, rng.uniform(0.25, 0.85) * h])
        pts, sizes = make_pose(rng, height, center)
        mask = draw_figure(img, pts, sizes, _colors(rng))
        for prev in people:
            # a later figure hides the earlier one where they overlap
            prev["mask"] &= ~mask
        people.append({"pts": pts, "mask": mask, "height": height})
    occluder = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(0, 3)):
        _clutter(rng, img, occluder)
    anns = []
    for person in people:
        mask = person["mask"] & (occluder == 0)
        area = int(mask.sum())
        if area < 20:
            continue  # entirely hidden or out of frame
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        kps = np.zeros((NUM_JOINTS, 3))
        if person["height"] >= min_labelled_height:
            pts = person["pts"]
            inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
            inside &= rng.random(NUM_JOINTS) >= drop_prob
            xi = np.clip(np.round(pts[:, 0]).astype(int), 0, w - 1)
            yi = np.clip(np.round(pts[:, 1]).astype(int), 0, h - 1)
            seen = mask[yi, xi]
            kps[inside, :2] = np.round(pts[inside], 2)
            kps[inside, 2] = np.where(seen[inside], 2, 1)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        seg = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
        anns.append({
            "category_id": 1, "iscrowd": 0, "area": float(area),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "keypoints": [float(v) for v in kps.reshape(-1)],
            "num_keypoints": int((kps[:, 2] > 0).sum()),
            "segmentation": seg or [[float(x0), float(y0), float(x1), float(y0), float(x1), float(y1)]],
        })
    return img, anns


def categories() -> list[dict]:
    """The COCO person category with keypoint names and skeleton."""
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(JOINT_NAMES),
             "skeleton": [list(e) for e in SKELETON]}]


def generate_split(out_dir: str, split: str, n: int, seed: int, **image_kw) -> str:
    """Write n images and the split's person_keypoints json; return the json path."""
    img_dir, ann_path = split_paths(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        # one generator per image: an image does not depend on how many were asked for
        rng = np.random.default_rng([seed, SPLITS.index(split) if split in SPLITS else 2, i])
        img, anns = make_image(rng, **image_kw)
        img_id = ID_OFFSET.get(split, 2_000_000) + i + 1
        file_name = f"{img_id:08d}.jpg"
        cv2.imwrite(os.path.join(img_dir, file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append({"id": img_id, "file_name": file_name, "height": img.shape[0], "width": img.shape[1]})
        for a in anns:
            annotations.append({"id": len(annotations) + 1 + ID_OFFSET.get(split, 2_000_000), "image_id": img_id, **a})
    info = {"description": f"CenterNet synthetic people ({split}, seed {seed})", "version": "1.0"}
    with atomic_write(ann_path) as f:
        json.dump({"info": info, "licenses": [], "images": images, "annotations": annotations,
                   "categories": categories()}, f)
    return ann_path


def generate(out_dir: str, n_train: int = 200, n_val: int = 50, seed: int = 0, **image_kw) -> dict:
    """Generate the synth_hp dataset under out_dir; return {split: annotation json path}."""
    return {split: generate_split(out_dir, split, n, seed, **image_kw)
            for split, n in (("train", n_train), ("val", n_val))}
