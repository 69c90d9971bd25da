"""Tiny generated datasets for the --dataset custom tests: VOC, YOLO and COCO jsons (boxes, keypoints)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SIZE = 64
# one colour per class, so a few iterations can tell them apart
COLORS = [(40, 40, 220), (40, 200, 40), (220, 120, 40)]
KEYPOINTS = ["nose", "left_hand", "right_hand", "left_foot", "right_foot"]
SKELETON = [[1, 2], [1, 3], [1, 4], [1, 5]]  # COCO style: 1-based


def scene(rng: np.random.RandomState, num_classes: int, size: int = SIZE) -> tuple[np.ndarray, list]:
    """A noisy image with 1-2 filled rectangles; returns (BGR image, [(class, x1, y1, x2, y2)]) 0-based."""
    img = (rng.rand(size, size, 3) * 60 + 100).astype(np.uint8)
    boxes = []
    for _ in range(rng.randint(1, 3)):
        cls = int(rng.randint(num_classes))
        w, h = rng.randint(size // 4, size // 2, 2)
        x, y = rng.randint(0, size - w), rng.randint(0, size - h)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), COLORS[cls % len(COLORS)], -1)
        boxes.append((cls, float(x), float(y), float(x + w), float(y + h)))
    return img, boxes


def write_voc(root: Path, classes: list[str], n_train: int = 4, n_val: int = 2, seed: int = 0) -> Path:
    """A VOC folder; the last object of the first val image is 'difficult'."""
    rng = np.random.RandomState(seed)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = {"train": [f"{i:06d}" for i in range(n_train)], "val": [f"{i:06d}" for i in range(n_train, n_train + n_val)]}
    for split, names in ids.items():
        (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for k, name in enumerate(names):
            img, boxes = scene(rng, len(classes))
            cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), img)
            objs = []
            for j, (cls, x1, y1, x2, y2) in enumerate(boxes):
                difficult = int(split == "val" and k == 0 and j == len(boxes) - 1 and len(boxes) > 1)
                objs.append(f"<object><name>{classes[cls]}</name><difficult>{difficult}</difficult><bndbox>"
                            f"<xmin>{int(x1) + 1}</xmin><ymin>{int(y1) + 1}</ymin><xmax>{int(x2)}</xmax>"
                            f"<ymax>{int(y2)}</ymax></bndbox></object>")
            (root / "Annotations" / f"{name}.xml").write_text(
                f"<annotation><filename>{name}.jpg</filename><size><width>{SIZE}</width><height>{SIZE}</height>"
                f"<depth>3</depth></size>{''.join(objs)}</annotation>")
    return root


def write_yolo(root: Path, classes: list[str], n_train: int = 4, n_val: int = 2, seed: int = 1,
               yaml: bool = False) -> Path:
    """A YOLO folder (PNG images); class names in classes.txt, or data.yaml when `yaml`; one val image unlabelled."""
    rng = np.random.RandomState(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, boxes = scene(rng, len(classes))
            cv2.imwrite(str(root / "images" / split / f"im{i}.png"), img)
            if split == "val" and i == n - 1:
                continue  # a background image: no label file
            lines = [f"{c} {(x1 + x2) / 2 / SIZE:.6f} {(y1 + y2) / 2 / SIZE:.6f} {(x2 - x1) / SIZE:.6f} "
                     f"{(y2 - y1) / SIZE:.6f}" for c, x1, y1, x2, y2 in boxes]
            (root / "labels" / split / f"im{i}.txt").write_text("\n".join(lines) + "\n")
    if yaml:
        entries = "".join(f"  {i}: {n}\n" for i, n in enumerate(classes))
        (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nnames:\n{entries}nc: {len(classes)}\n")
    else:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


# a KITTI-like P2 for 64 x 64 images: ddd reads a 3x4 'calib' per image
CALIB = [[60.0, 0.0, 32.0, 0.0], [0.0, 60.0, 32.0, 0.0], [0.0, 0.0, 1.0, 0.0]]


def write_coco(path: Path, img_dir: Path, cat_ids: list[int], names: list[str], n: int, seed: int,
               keypoints: bool = False, extras: bool = False) -> dict:
    """A COCO json of `n` generated images in img_dir.

    keypoints: 5 per object (centre and corners); extras: exdet's extreme points and ddd's calib,
    alpha, depth, dim and location.
    """
    rng = np.random.RandomState(seed)
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img, boxes = scene(rng, len(cat_ids))
        name = f"{path.stem}_{i}.png"
        cv2.imwrite(str(img_dir / name), img)
        images.append({"id": 100 + i, "file_name": name, "width": SIZE, "height": SIZE})
        if extras:
            images[-1]["calib"] = CALIB
        for cls, x1, y1, x2, y2 in boxes:
            ann = {"id": len(anns) + 1, "image_id": 100 + i, "category_id": cat_ids[cls],
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            if keypoints:
                pts = [((x1 + x2) / 2, (y1 + y2) / 2), (x1 + 1, y1 + 1), (x2 - 1, y1 + 1), (x1 + 1, y2 - 1),
                       (x2 - 1, y2 - 1)]
                ann["keypoints"] = [v for p in pts for v in (round(p[0], 1), round(p[1], 1), 2)]
                ann["num_keypoints"] = 5
            if extras:
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                ann["extreme_points"] = [cx, y1, x1, cy, cx, y2, x2, cy]
                ann.update(alpha=0.3, depth=10.0, dim=[1.5, 1.6, 3.9], location=[0.0, 1.0, 10.0], rotation_y=0.3)
            anns.append(ann)
    cats = [{"id": c, "name": nm, "supercategory": "thing"} for c, nm in zip(cat_ids, names)]
    if keypoints:
        for c in cats:
            c.update(keypoints=list(KEYPOINTS), skeleton=[list(e) for e in SKELETON])
    data = {"images": images, "annotations": anns, "categories": cats}
    path.write_text(json.dumps(data))
    return data


TOOLS = Path(__file__).resolve().parent.parent / "src" / "tools"


def run_tool(name: str, args: list[str], capfd):
    """Run src/tools/<name>.py in this process as its command line would; a catalogue.Result."""
    import runpy
    import sys
    import traceback

    from catalogue import Result

    old_argv = sys.argv
    sys.argv = [str(TOOLS / f"{name}.py"), *[str(a) for a in args]]
    code, tb = 0, ""
    try:
        runpy.run_path(str(TOOLS / f"{name}.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is the finding
        code, tb = 1, traceback.format_exc()
    finally:
        sys.argv = old_argv
    out, err = capfd.readouterr()
    return Result(code, out, err, tb)
