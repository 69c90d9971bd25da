"""Synthetic detection data: coloured shapes of 6 classes on textured backgrounds, in COCO json layout.

Layout under out_dir: images/<split>/<id>.jpg and annotations/instances_<split>.json (split train / val).
Every image comes from its own generator seeded by (seed, split, index), so the output is
deterministic and an image does not depend on how many others were requested.
"""
from __future__ import annotations

import json
import math
import os

import cv2
import numpy as np

from utils.io import atomic_write

CLASS_NAMES = ["circle", "square", "triangle", "star", "cross", "ring"]
# base hue per class (OpenCV hue units, 0..180): colour is a strong but not exclusive cue
_CLASS_HUE = [0, 30, 60, 90, 120, 150]
_SPLIT_ID = {"train": 1, "val": 2}
# object size range in pixels (box side before the aspect jitter) in 256-320 px images: at make demo's 128 px
# input an object spans 28-70 px, one to two cells of res_18's stride-32 grid, which a model trained from
# scratch for ten CPU minutes localises far better than the 16-50 px objects of (36, 120)
OBJECT_SIZE = (64.0, 150.0)


def split_paths(out_dir: str, split: str) -> tuple[str, str]:
    """(image folder, annotation json) of a split, in the layout the Synth dataset class reads."""
    return (os.path.join(out_dir, "images", split),
            os.path.join(out_dir, "annotations", f"instances_{split}.json"))


# ----------------------------------------------------------------------------- backgrounds
def _random_bgr(rng: np.random.Generator, sat: tuple[int, int], val: tuple[int, int], hue: float | None = None):
    h = rng.uniform(0, 180) if hue is None else hue % 180
    hsv = np.array([[[h, rng.uniform(*sat), rng.uniform(*val)]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Float32 BGR background: gradient, stripes, checkerboard or smooth noise, plus pixel noise."""
    kind = rng.integers(4)
    c0, c1 = _random_bgr(rng, (0, 90), (40, 220)), _random_bgr(rng, (0, 90), (40, 220))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # linear gradient at a random angle
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(a) + yy * np.sin(a))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    elif kind == 1:  # soft stripes
        a = rng.uniform(0, np.pi)
        period = rng.uniform(12, 48)
        t = 0.5 + 0.5 * np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / period)
    elif kind == 2:  # checkerboard
        cell = int(rng.integers(16, 48))
        t = (((xx // cell) + (yy // cell)) % 2) * 0.7 + 0.15
    else:  # low-frequency noise blobs
        small = rng.uniform(0, 1, (max(h // 32, 2), max(w // 32, 2))).astype(np.float32)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        t = np.clip(t, 0, 1)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img += rng.normal(0, rng.uniform(2, 10), (h, w, 1)).astype(np.float32)
    return img


# ----------------------------------------------------------------------------- shapes
def _rotate(pts: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _outline(cls: int, bw: float, bh: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Polygon (N x 2, centred at 0) of a class-`cls` shape spanning about bw x bh before rotation."""
    if cls in (0, 5):  # ellipse / ring: no rotation so the box stays tight
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([np.cos(t) * bw / 2, np.sin(t) * bh / 2], axis=1)
    if cls == 1:  # square / rectangle
        p = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * [bw / 2, bh / 2]
    elif cls == 2:  # triangle with a random apex position
        apex = rng.uniform(-0.5, 0.5)
        p = np.array([[apex, -1], [1, 1], [-1, 1]], np.float64) * [bw / 2, bh / 2]
    elif cls == 3:  # five-pointed star
        k = np.arange(10)
        r = np.where(k % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        t = -np.pi / 2 + k * np.pi / 5
        p = np.stack([np.cos(t) * r * bw / 2, np.sin(t) * r * bh / 2], axis=1)
    else:  # cross (plus sign) with a random bar thickness
        a = rng.uniform(0.17, 0.3)
        p = np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a],
                      [-1, -a], [-a, -a]], np.float64) * [bw / 2, bh / 2]
    return _rotate(p, angle)


def _draw(img: np.ndarray, cls: int, pts: np.ndarray, color, rng: np.random.Generator, bw: float, bh: float,
          centre: np.ndarray) -> None:
    shift = 4  # sub-pixel precision for anti-aliased drawing
    ipts = np.round(pts * (1 << shift)).astype(np.int32)
    if cls == 5:
        thick = max(2, int(min(bw, bh) * rng.uniform(0.12, 0.22)))
        axes = (int(round((bw - thick) / 2 * (1 << shift))), int(round((bh - thick) / 2 * (1 << shift))))
        ctr = tuple(int(round(v * (1 << shift))) for v in centre)
        cv2.ellipse(img, ctr, axes, 0, 0, 360, color, thick, cv2.LINE_AA, shift)
    else:
        cv2.fillPoly(img, [ipts], color, cv2.LINE_AA, shift)
        if rng.uniform() < 0.4:  # a darker outline on some objects
            edge = tuple(float(c) * 0.5 for c in color)
            cv2.polylines(img, [ipts], True, edge, 2, cv2.LINE_AA, shift)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-9)


def render_image(rng: np.random.Generator, max_objects: int = 6,
                 object_size: tuple[float, float] = OBJECT_SIZE) -> tuple[np.ndarray, list[dict]]:
    """One BGR uint8 image and its objects [{'cls', 'box' (x1,y1,x2,y2), 'poly', 'extreme'}]."""
    h, w = int(rng.integers(256, 321)), int(rng.integers(256, 321))
    img = _background(rng, h, w)
    n = int(rng.integers(1, max_objects + 1))
    objects: list[dict] = []
    for _ in range(n * 10):  # placement attempts
        if len(objects) == n:
            break
        cls = int(rng.integers(len(CLASS_NAMES)))
        size = rng.uniform(*object_size)
        aspect = math.exp(rng.uniform(-0.4, 0.4))
        bw, bh = size * math.sqrt(aspect), size / math.sqrt(aspect)
        angle = rng.uniform(-0.5, 0.5) if cls in (2, 3, 4) else (rng.uniform(-0.3, 0.3) if cls == 1 else 0.0)
        poly = _outline(cls, bw, bh, angle, rng)
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        # keep the whole object inside the image (a few px of margin)
        cx = rng.uniform(2 - lo[0], w - 3 - hi[0]) if w - 3 - hi[0] > 2 - lo[0] else None
        cy = rng.uniform(2 - lo[1], h - 3 - hi[1]) if h - 3 - hi[1] > 2 - lo[1] else None
        if cx is None or cy is None:
            continue
        centre = np.array([cx, cy])
        pts = poly + centre
        box = np.concatenate([pts.min(axis=0), pts.max(axis=0)])
        # some occlusion, never so much that an object disappears
        if any(_iou(box, o["box"]) > 0.25 for o in objects):
            continue
        hue = _CLASS_HUE[cls] + rng.uniform(-12, 12)
        color = tuple(float(v) for v in _random_bgr(rng, (150, 255), (150, 255), hue))
        _draw(img, cls, pts, color, rng, bw, bh, centre)
        top, bottom = pts[np.argmin(pts[:, 1])], pts[np.argmax(pts[:, 1])]
        left, right = pts[np.argmin(pts[:, 0])], pts[np.argmax(pts[:, 0])]
        objects.append({"cls": cls, "box": box, "poly": pts,
                        "extreme": np.concatenate([top, left, bottom, right])})
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.uniform() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return img, objects


def _r2(x: float) -> float:
    return round(float(x), 2)


def generate_split(out_dir: str, split: str, n: int, seed: int = 0, **image_kw) -> str:
    """Write n images of `split` and its instances json; return the json path."""
    img_dir, ann_path = split_paths(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, _SPLIT_ID.get(split, 3), i])
        img, objects = render_image(rng, **image_kw)
        image_id = i + 1
        file_name = f"{image_id:06d}.jpg"
        cv2.imwrite(os.path.join(img_dir, file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append({"id": image_id, "file_name": file_name, "height": int(img.shape[0]),
                       "width": int(img.shape[1])})
        for o in objects:
            x1, y1, x2, y2 = (float(v) for v in o["box"])
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": o["cls"] + 1,
                "bbox": [_r2(x1), _r2(y1), _r2(x2 - x1), _r2(y2 - y1)],
                "area": _r2(abs(cv2.contourArea(o["poly"].astype(np.float32)))) if o["cls"] != 5
                else _r2(math.pi * (x2 - x1) * (y2 - y1) / 4),
                "iscrowd": 0,
                "segmentation": [[_r2(v) for v in o["poly"].reshape(-1)]],
                "extreme_points": [_r2(v) for v in o["extreme"]],
            })
    doc = {"info": {"description": f"CenterNet synthetic shapes, {split}, seed {seed}"}, "licenses": [],
           "images": images, "annotations": annotations,
           "categories": [{"id": i + 1, "name": name, "supercategory": "shape"}
                          for i, name in enumerate(CLASS_NAMES)]}
    with atomic_write(ann_path) as f:
        json.dump(doc, f)
    return ann_path


def generate(out_dir: str, n_train: int = 600, n_val: int = 100, seed: int = 0, **image_kw) -> dict:
    """Generate the synth detection set under out_dir; return {split: annotation json path}."""
    return {split: generate_split(out_dir, split, n, seed, **image_kw)
            for split, n in (("train", n_train), ("val", n_val))}
