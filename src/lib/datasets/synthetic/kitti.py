"""Synthetic KITTI-format 3D detection data: shaded 3D boxes seen by a pinhole camera with a KITTI-like P2.

Layout under out_dir (the KITTI one, so the same converter and evaluator apply):
training/image_2/<id:06d>.png, training/label_2/<id:06d>.txt (KITTI label lines), training/calib/<id:06d>.txt
(P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo; P2 on the third line), ImageSets_3dop/ and
ImageSets_subcnn/ {train,val,trainval}.txt, and annotations/kitti_<3dop|subcnn>_<train|val>.json plus
kitti_trainval.json written by datasets.kitti_to_coco (src/tools/convert_kitti_to_coco.py).

Scenes: a sky / road background, 2-7 objects (Car, Pedestrian, Cyclist, sometimes a Van, which the ddd
task ignores for Car) standing on the ground 5-45 m ahead with a random yaw, drawn far to near as boxes
whose visible faces are shaded by orientation (the front face is tinted so the heading is visible); a
distant car is sometimes labelled DontCare. Truncation comes from the image border, occlusion from nearer
boxes. Frame i is generated from its own generator seeded by (seed, i): deterministic output.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from datasets import kitti_to_coco
from utils.ddd_utils import compute_box_3d, project_to_image

# KITTI's left colour camera (frame 000007), full resolution 1242 x 375
KITTI_P2 = np.array([[721.5377, 0., 609.5593, 44.85728],
                     [0., 721.5377, 172.854, 0.2163791],
                     [0., 0., 1., 0.002745884]])
KITTI_SIZE = (1242, 375)
CAMERA_HEIGHT = 1.65
# class -> (probability, mean h, w, l in metres, spread of h, w, l, base BGR colour)
CLASSES = {
    "Car": (0.55, (1.53, 1.63, 3.88), (0.10, 0.08, 0.30), (170, 90, 40)),
    "Pedestrian": (0.2, (1.76, 0.66, 0.84), (0.10, 0.08, 0.15), (60, 60, 200)),
    "Cyclist": (0.17, (1.74, 0.60, 1.76), (0.10, 0.08, 0.15), (60, 170, 60)),
    "Van": (0.08, (2.20, 1.90, 5.00), (0.15, 0.10, 0.40), (150, 150, 150)),
}
# the six faces of compute_box_3d's corner order and their outward normals in the object frame
FACES = (((0, 1, 5, 4), (1., 0., 0.)), ((2, 3, 7, 6), (-1., 0., 0.)), ((1, 2, 6, 5), (0., 0., -1.)),
         ((3, 0, 4, 7), (0., 0., 1.)), ((4, 5, 6, 7), (0., -1., 0.)), ((0, 1, 2, 3), (0., 1., 0.)))
LIGHT = np.array([0.4, -0.8, -0.45]) / np.linalg.norm([0.4, -0.8, -0.45])


def scaled_calib(scale: float) -> tuple[np.ndarray, tuple[int, int]]:
    """(P2, (width, height)) of the KITTI camera with images resized by `scale`."""
    p2 = KITTI_P2.copy()
    p2[:2] *= scale
    return p2, (int(round(KITTI_SIZE[0] * scale)), int(round(KITTI_SIZE[1] * scale)))


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _background(rng: np.random.Generator, w: int, h: int, p2: np.ndarray) -> np.ndarray:
    """Sky gradient above the horizon, road below with a few lane marks."""
    horizon = int(round(p2[1, 2]))
    img = np.empty((h, w, 3), np.float32)
    rows = np.arange(h, dtype=np.float32)[:, None]
    sky_top = np.array([200, 150, 110]) + rng.uniform(-20, 20, 3)
    sky_low = np.array([235, 215, 200]) + rng.uniform(-15, 15, 3)
    t = np.clip(rows / max(horizon, 1), 0, 1)[..., None]
    img[:] = np.broadcast_to(sky_top * (1 - t) + sky_low * t, (h, 1, 3)).repeat(w, axis=1)
    road = np.array([105, 105, 110]) + rng.uniform(-20, 20)
    far = road + 40
    g = np.clip((rows - horizon) / max(h - horizon, 1), 0, 1)[..., None]
    ground = np.broadcast_to(far * (1 - g) + road * g, (h, 1, 3)).repeat(w, axis=1)
    img[horizon:] = ground[horizon:]
    out = np.clip(img, 0, 255).astype(np.uint8)
    # lane marks: lines on the ground plane x = const, from 4 m to 80 m ahead
    for lane_x in (-5.4, -1.8, 1.8, 5.4):
        pts = np.array([[lane_x + rng.uniform(-0.3, 0.3), CAMERA_HEIGHT, z] for z in (4., 80.)])
        uv = project_to_image(pts, p2)
        cv2.line(out, tuple(int(v) for v in uv[0]), tuple(int(v) for v in uv[1]), (215, 215, 215), 1, cv2.LINE_AA)
    return out


def _sample_object(rng: np.random.Generator, cls: str, p2: np.ndarray, size: tuple[int, int],
                   z_range: tuple[float, float]) -> dict:
    _, mean, spread, colour = CLASSES[cls]
    dim = np.maximum(np.array(mean) + rng.normal(0, 1, 3) * np.array(spread), 0.3)
    z = rng.uniform(*z_range)
    # lateral extent of the field of view at that depth, a little beyond the borders (truncation)
    x_min = -(p2[0, 2] / p2[0, 0]) * z - 1.0
    x_max = ((size[0] - p2[0, 2]) / p2[0, 0]) * z + 1.0
    x = rng.uniform(x_min, x_max)
    y = CAMERA_HEIGHT + rng.normal(0, 0.05)
    rot_y = rng.uniform(-np.pi, np.pi)
    jitter = rng.uniform(-35, 35, 3)
    return {"type": cls, "dim": dim, "loc": np.array([x, y, z]), "rot_y": _wrap(rot_y),
            "colour": np.clip(np.array(colour) + jitter, 20, 235)}


def _project(obj: dict, p2: np.ndarray, size: tuple[int, int]):
    """Projected corners, the unclipped and the clipped 2D box (None when unusable)."""
    corners = compute_box_3d(obj["dim"], obj["loc"], obj["rot_y"]).astype(np.float64)
    if corners[:, 2].min() < 0.5:
        return None
    uv = project_to_image(corners, p2)
    x1, y1 = uv.min(axis=0)
    x2, y2 = uv.max(axis=0)
    cx1, cy1 = max(x1, 0.), max(y1, 0.)
    cx2, cy2 = min(x2, size[0] - 1.), min(y2, size[1] - 1.)
    if cx2 - cx1 < 2 or cy2 - cy1 < 2:
        return None
    trunc = 1. - (cx2 - cx1) * (cy2 - cy1) / max((x2 - x1) * (y2 - y1), 1e-6)
    return uv, corners, (cx1, cy1, cx2, cy2), trunc


def _separate(obj: dict, placed: list[dict]) -> bool:
    """True when obj's footprint circle keeps clear of every placed object's."""
    r = 0.5 * np.hypot(obj["dim"][1], obj["dim"][2])
    for o in placed:
        ro = 0.5 * np.hypot(o["dim"][1], o["dim"][2])
        if np.hypot(*(obj["loc"][[0, 2]] - o["loc"][[0, 2]])) < r + ro + 0.3:
            return False
    return True


def _draw_box(img: np.ndarray, obj: dict) -> None:
    """Visible faces filled with orientation shading; the front (+x, heading) face tinted."""
    rot = obj["rot_y"]
    c, s = np.cos(rot), np.sin(rot)
    r = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    corners, uv = obj["corners"], obj["uv"]
    for k, (idx, normal) in enumerate(FACES):
        n = r @ np.array(normal)
        centre = corners[list(idx)].mean(axis=0)
        if n @ centre >= 0:  # facing away from the camera at the origin
            continue
        shade = 0.45 + 0.55 * max(0., float(-n @ LIGHT))
        colour = obj["colour"] * shade
        if k == 0:
            colour = 0.5 * colour + 0.5 * np.array([90, 220, 240])
        poly = np.round(uv[list(idx)] * 16).astype(np.int32)
        cv2.fillConvexPoly(img, poly, tuple(float(v) for v in np.clip(colour, 0, 255)), cv2.LINE_AA, shift=4)
        cv2.polylines(img, [poly], True, tuple(float(v) for v in np.clip(colour * 0.6, 0, 255)), 1, cv2.LINE_AA,
                      shift=4)


def _occlusion_levels(objs: list[dict], size: tuple[int, int]) -> None:
    """KITTI occlusion level (0..3) of each object from the share of its box hidden by nearer ones."""
    cover = np.zeros((size[1], size[0]), np.bool_)
    for o in sorted(objs, key=lambda o: o["loc"][2]):
        x1, y1, x2, y2 = (int(round(v)) for v in o["box"])
        region = cover[y1:y2 + 1, x1:x2 + 1]
        frac = float(region.mean()) if region.size else 0.
        o["occluded"] = 0 if frac < 0.1 else 1 if frac < 0.4 else 2 if frac < 0.8 else 3
        poly = np.round(o["uv"]).astype(np.int32)
        mask = np.zeros_like(cover, np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(poly), 1)
        cover |= mask.astype(np.bool_)


def label_line(o: dict) -> str:
    """KITTI label line of one object (values with 2 decimals)."""
    if o["type"] == "DontCare":
        x1, y1, x2, y2 = o["box"]
        return f"DontCare -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} -1 -1 -1 -1000 -1000 -1000 -10"
    h, w, l = o["dim"]
    x, y, z = o["loc"]
    alpha = _wrap(o["rot_y"] - np.arctan2(x, z))
    vals = [o["trunc"], o["occluded"], alpha, *o["box"], h, w, l, x, y, z, o["rot_y"]]
    return f"{o['type']} {vals[0]:.2f} {int(vals[1])} " + " ".join(f"{v:.2f}" for v in vals[2:])


def render_frame(rng: np.random.Generator, p2: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """One image and its label lines."""
    img = _background(rng, size[0], size[1], p2)
    names = list(CLASSES)
    probs = np.array([CLASSES[n][0] for n in names])
    want = int(rng.integers(2, 8))
    objs: list[dict] = []
    for _ in range(want * 12):
        if len(objs) >= want:
            break
        cls = names[int(rng.choice(len(names), p=probs / probs.sum()))]
        obj = _sample_object(rng, cls, p2, size, (5., 45.))
        proj = _project(obj, p2, size) if _separate(obj, objs) else None
        if proj is None or proj[3] > 0.7:
            continue
        obj["uv"], obj["corners"], obj["box"], obj["trunc"] = proj
        objs.append(obj)
    dontcare = []
    if rng.random() < 0.3:
        far = _sample_object(rng, "Car", p2, size, (55., 75.))
        proj = _project(far, p2, size) if _separate(far, objs) else None
        if proj is not None:
            far["uv"], far["corners"], far["box"], far["trunc"] = proj
            dontcare.append(far)
    for o in sorted(objs + dontcare, key=lambda o: -o["loc"][2]):
        _draw_box(img, o)
    _occlusion_levels(objs, size)
    lines = [label_line(o) for o in objs]
    lines += [label_line({"type": "DontCare", "box": o["box"]}) for o in dontcare]
    return img, lines


def calib_text(p2: np.ndarray) -> str:
    """A KITTI calib file whose third line is P2 (P0, P1, P3 share its intrinsics, with stereo offsets)."""
    mats = {}
    for name, tx in (("P0", 0.), ("P1", -0.537 * p2[0, 0]), ("P2", p2[0, 3]), ("P3", -0.47 * p2[0, 0])):
        m = p2.copy()
        m[0, 3] = tx
        if name in ("P0", "P1"):
            m[1, 3] = m[2, 3] = 0.
        mats[name] = m.reshape(-1)
    mats["R0_rect"] = np.eye(3).reshape(-1)
    mats["Tr_velo_to_cam"] = np.array([[0., -1., 0., 0.], [0., 0., -1., -0.08], [1., 0., 0., -0.27]]).reshape(-1)
    mats["Tr_imu_to_velo"] = np.array([[1., 0., 0., -0.81], [0., 1., 0., 0.32], [0., 0., 1., -0.80]]).reshape(-1)
    return "".join(f"{k}: " + " ".join(f"{v:.12e}" for v in m) + "\n" for k, m in mats.items())


def generate(out_dir: str, n_train: int = 600, n_val: int = 100, seed: int = 0, scale: float = 0.5,
             verbose: bool = False) -> dict:
    """Write the synthetic KITTI set (frames 0..n_train-1 train, then n_val val); returns the main paths."""
    p2, size = scaled_calib(scale)
    training = os.path.join(out_dir, "training")
    dirs = {k: os.path.join(training, k) for k in ("image_2", "label_2", "calib")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    ids = {"train": list(range(n_train)), "val": list(range(n_train, n_train + n_val))}
    for i in ids["train"] + ids["val"]:
        rng = np.random.default_rng([seed, i])
        img, lines = render_frame(rng, p2, size)
        name = f"{i:06d}"
        cv2.imwrite(os.path.join(dirs["image_2"], name + ".png"), img)
        with open(os.path.join(dirs["label_2"], name + ".txt"), "w") as f:
            f.write("".join(ln + "\n" for ln in lines))
        with open(os.path.join(dirs["calib"], name + ".txt"), "w") as f:
            f.write(calib_text(p2))
    ids["trainval"] = ids["train"] + ids["val"]
    for split in ("3dop", "subcnn"):
        set_dir = os.path.join(out_dir, f"ImageSets_{split}")
        os.makedirs(set_dir, exist_ok=True)
        for name, frame_ids in ids.items():
            with open(os.path.join(set_dir, f"{name}.txt"), "w") as f:
                f.write("".join(f"{i:06d}\n" for i in frame_ids))
    written = kitti_to_coco.convert(out_dir, splits=("3dop", "subcnn"), sets=("train", "val"), verbose=verbose)
    written += kitti_to_coco.convert(out_dir, splits=("3dop",), sets=("trainval",), verbose=verbose)
    return {"images": dirs["image_2"], "labels": dirs["label_2"], "calib": dirs["calib"], "annotations": written}
