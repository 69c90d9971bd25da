"""Visualisation of inputs, heatmaps and detections (2D boxes, poses; 3D boxes and bird's-eye view in debugger_3d).

Images are kept in insertion order and either shown (OpenCV windows, or matplotlib with
ipynb=True), or written to disk. Without a display (no $DISPLAY on Linux, or an OpenCV built
without GUI support) `show_all_imgs` writes the images to the instance's `out_dir` instead of failing.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from utils.debugger_3d import Debugger3D

# Detectron palette (RGB fractions); used directly as OpenCV BGR triples once scaled to 0..255.
_PALETTE = [
    (1.000, 1.000, 1.000), (0.850, 0.325, 0.098), (0.929, 0.694, 0.125), (0.494, 0.184, 0.556),
    (0.466, 0.674, 0.188), (0.301, 0.745, 0.933), (0.635, 0.078, 0.184), (0.300, 0.300, 0.300),
    (0.600, 0.600, 0.600), (1.000, 0.000, 0.000), (1.000, 0.500, 0.000), (0.749, 0.749, 0.000),
    (0.000, 1.000, 0.000), (0.000, 0.000, 1.000), (0.667, 0.000, 1.000), (0.333, 0.333, 0.000),
    (0.333, 0.667, 0.000), (0.333, 1.000, 0.000), (0.667, 0.333, 0.000), (0.667, 0.667, 0.000),
    (0.667, 1.000, 0.000), (1.000, 0.333, 0.000), (1.000, 0.667, 0.000), (1.000, 1.000, 0.000),
    (0.000, 0.333, 0.500), (0.000, 0.667, 0.500), (0.000, 1.000, 0.500), (0.333, 0.000, 0.500),
    (0.333, 0.333, 0.500), (0.333, 0.667, 0.500), (0.333, 1.000, 0.500), (0.667, 0.000, 0.500),
    (0.667, 0.333, 0.500), (0.667, 0.667, 0.500), (0.667, 1.000, 0.500), (1.000, 0.000, 0.500),
    (1.000, 0.333, 0.500), (1.000, 0.667, 0.500), (1.000, 1.000, 0.500), (0.000, 0.333, 1.000),
    (0.000, 0.667, 1.000), (0.000, 1.000, 1.000), (0.333, 0.000, 1.000), (0.333, 0.333, 1.000),
    (0.333, 0.667, 1.000), (0.333, 1.000, 1.000), (0.667, 0.000, 1.000), (0.667, 0.333, 1.000),
    (0.667, 0.667, 1.000), (0.667, 1.000, 1.000), (1.000, 0.000, 1.000), (1.000, 0.333, 1.000),
    (1.000, 0.667, 1.000), (0.167, 0.000, 0.000), (0.333, 0.000, 0.000), (0.500, 0.000, 0.000),
    (0.667, 0.000, 0.000), (0.833, 0.000, 0.000), (1.000, 0.000, 0.000), (0.000, 0.167, 0.000),
    (0.000, 0.333, 0.000), (0.000, 0.500, 0.000), (0.000, 0.667, 0.000), (0.000, 0.833, 0.000),
    (0.000, 1.000, 0.000), (0.000, 0.000, 0.167), (0.000, 0.000, 0.333), (0.000, 0.000, 0.500),
    (0.000, 0.000, 0.667), (0.000, 0.000, 0.833), (0.000, 0.000, 1.000), (0.000, 0.000, 0.000),
    (0.143, 0.143, 0.143), (0.286, 0.286, 0.286), (0.429, 0.429, 0.429), (0.571, 0.571, 0.571),
    (0.714, 0.714, 0.714), (0.857, 0.857, 0.857), (0.000, 0.447, 0.741), (0.500, 0.500, 0.000),
]
color_list = np.array(_PALETTE, dtype=np.float32) * 255

# COCO person skeleton: edges, edge colours and joint colours (left side blue-ish, right red-ish in BGR).
_LEFT, _RIGHT, _MID = (255, 0, 0), (0, 0, 255), (255, 0, 255)
coco_hp_edges = [[0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 6], [5, 7], [7, 9], [6, 8],
                 [8, 10], [5, 11], [6, 12], [11, 12], [11, 13], [13, 15], [12, 14], [14, 16]]
coco_hp_edge_colors = [_LEFT, _RIGHT, _LEFT, _RIGHT, _LEFT, _RIGHT, _MID, _LEFT, _LEFT, _RIGHT,
                       _RIGHT, _LEFT, _RIGHT, _MID, _LEFT, _LEFT, _RIGHT, _RIGHT]
coco_hp_joint_colors = [_MID] + [_LEFT if j % 2 == 1 else _RIGHT for j in range(1, 17)]

# The original draws abbreviated labels for these datasets (any dataset named *kitti*); kept so the
# debug images do not change.
_POSE_LABELS = ["p"]
_KITTI_LABELS = ["p", "v", "b"]


def _side_color(joint_name: str) -> tuple[int, int, int]:
    """Colour of a joint: left blue-ish, right red-ish (BGR), others magenta, as the COCO skeleton."""
    name = str(joint_name).lower()
    if name.startswith(("left_", "l_")) or name.endswith("_left"):
        return _LEFT
    if name.startswith(("right_", "r_")) or name.endswith("_right"):
        return _RIGHT
    return _MID


class DisplayProbe:
    """Whether windows can be opened: decided once from the environment, switched off by a failing imshow."""

    def __init__(self) -> None:
        self._available: bool | None = None

    def available(self) -> bool:
        """False on Linux without $DISPLAY/$WAYLAND_DISPLAY, or once a window failed to open."""
        if self._available is None:
            headless = sys.platform.startswith("linux") and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
            self._available = not headless
        return self._available

    def mark_unavailable(self) -> None:
        """Record that this OpenCV/display cannot show windows."""
        self._available = False

    def reset(self) -> None:
        """Forget the decision (the environment is read again on the next question)."""
        self._available = None


# The process's display, shared by every Debugger and by demo.py: one failed window is enough to know.
PROCESS_DISPLAY = DisplayProbe()


def display_available() -> bool:
    """Whether windows can be opened (False on Linux without $DISPLAY/$WAYLAND_DISPLAY)."""
    return PROCESS_DISPLAY.available()


def _dataset_class(dataset):
    """The dataset class registered under `dataset`, or None (imported lazily: a dataset import is heavy)."""
    if dataset is None:
        return None
    try:
        from datasets.dataset_factory import dataset_factory
        return dataset_factory.get(dataset)
    except Exception:  # an unknown or unimportable dataset only costs the class names
        return None


def label_list(class_names) -> list[str]:
    """Drawn labels from a dataset's class_name list (a leading '__background__' dropped)."""
    names = list(class_names or [])
    if names and names[0] == "__background__":
        names = names[1:]
    return [str(n) for n in names]


def _class_labels(dataset) -> list[str]:
    return label_list(getattr(_dataset_class(dataset), "class_name", None))


def dataset_labels(dataset: str | None, num_classes: int = -1) -> tuple[list[str], int]:
    """(labels drawn for class ids 0.., joints per person) of a dataset, by the original Debugger's rules."""
    if dataset == "coco_hp":
        return list(_POSE_LABELS), 17
    cls = _dataset_class(dataset)
    if cls is not None and hasattr(cls, "num_joints"):
        return label_list(getattr(cls, "class_name", None)) or list(_POSE_LABELS), int(cls.num_joints)
    # without a dataset the original goes by the class count alone
    if num_classes == 80 or dataset == "coco":
        return _class_labels("coco"), 17
    if num_classes == 20 or dataset == "pascal":
        return _class_labels("pascal"), 17
    if num_classes == 3 or (dataset is not None and "kitti" in dataset):
        return list(_KITTI_LABELS), 17
    return label_list(getattr(cls, "class_name", None)) or _class_labels("coco"), 17


def denormalize(img_chw, mean, std, clip: bool = True) -> np.ndarray:
    """A normalised C x H x W network input (tensor) -> H x W x C uint8 BGR image (x * std + mean, x 255)."""
    img = img_chw.detach().cpu().numpy().transpose(1, 2, 0)
    img = (img * std + mean) * 255.
    # unclipped, out-of-range values wrap around in the uint8 cast (ddd's training view, as the original)
    return np.clip(img, 0, 255).astype(np.uint8) if clip else img.astype(np.uint8)


class Debugger(Debugger3D):
    """Collects named images and draws detections on them; shows or saves them all at once."""

    # Headless saves without out_prefix are numbered per process, so successive images never overwrite.
    _saved_count = 0
    _warned_no_dir = False

    def __init__(self, ipynb: bool = False, theme: str = "black", num_classes: int = -1,
                 dataset: str | None = None, down_ratio: int = 4, out_dir: str | None = None, *,
                 class_names=None, num_joints: int | None = None, display: DisplayProbe | None = None) -> None:
        """Labels come from `class_names` when given, else from `dataset` (or `num_classes`) as the original."""
        self.ipynb = ipynb
        self.imgs: dict = {}
        self.theme = theme
        # Headless show_all_imgs writes here (nothing is written when None).
        self.out_dir = out_dir
        self.out_prefix: str | None = None
        # Headless: False skips writing (e.g. the demo puts video frames into a video file instead).
        self.save_headless = True
        self.display = display if display is not None else PROCESS_DISPLAY
        n = len(color_list)
        colors = color_list.astype(np.uint8)
        self.colors = colors.reshape(n, 1, 1, 3)
        if self.theme == "white":
            # The reversed flat palette (so class i gets class 79-i's triple reversed), darkened.
            self.colors = self.colors.reshape(-1)[::-1].reshape(n, 1, 1, 3)
            self.colors = np.clip(self.colors, 0., 0.6 * 255).astype(np.uint8)
        if class_names is not None:
            names, joints = label_list(class_names), 17
        else:
            names, joints = dataset_labels(dataset, num_classes)
        self.names = names
        self.num_joints = joints if num_joints is None else int(num_joints)
        self.edges = coco_hp_edges
        self.ec = coco_hp_edge_colors
        self.colors_hp = coco_hp_joint_colors
        self.down_ratio = down_ratio

    def set_skeleton(self, edges, joint_names=None) -> None:
        """Draw poses with these 0-based joint pairs; left_/right_ joint names pick the side colours."""
        sides = [_side_color(n) for n in (joint_names or [""] * self.num_joints)]
        self.edges = [list(e) for e in edges]
        self.ec = [sides[a] if sides[a] == sides[b] else _MID for a, b in self.edges]
        self.colors_hp = sides or [_MID]

    # ------------------------------------------------------------------ images
    def add_img(self, img: np.ndarray, img_id="default", revert_color: bool = False) -> None:
        """Store a copy of `img` under `img_id`."""
        if revert_color:
            img = 255 - img
        self.imgs[img_id] = img.copy()

    def add_mask(self, mask: np.ndarray, bg: np.ndarray, imgId="default", trans: float = 0.8) -> None:
        """Store `bg` with a white overlay of `mask` (values 0..1)."""
        self.imgs[imgId] = (mask.reshape(mask.shape[0], mask.shape[1], 1) * 255 * trans
                            + bg * (1 - trans)).astype(np.uint8)

    def show_img(self, pause: bool = False, imgId="default") -> None:
        """Show one stored image in a window."""
        self._show_windows({imgId: self.imgs[imgId]}, pause)

    def add_blend_img(self, back: np.ndarray, fore: np.ndarray, img_id="blend", trans: float = 0.7) -> None:
        """Store `(1 - trans) * back + trans * fore` (fore resized to back; inverted in the white theme)."""
        overlay = 255 - fore if self.theme == "white" else fore
        # Resized unless its height equals back's height and back's width, the original's test: a non-square
        # overlay of back's size is resized too, to the size it already has.
        if not overlay.shape[0] == back.shape[0] == back.shape[1]:
            overlay = cv2.resize(overlay, (back.shape[1], back.shape[0]))
        if overlay.ndim == 2:
            overlay = overlay[:, :, None]
        self.imgs[img_id] = np.clip(back * (1. - trans) + overlay * trans, 0, 255).astype(np.uint8)

    def _colormap(self, img: np.ndarray, colors: np.ndarray, output_res) -> np.ndarray:
        c, h, w = img.shape[0], img.shape[1], img.shape[2]
        if output_res is None:
            output_res = (h * self.down_ratio, w * self.down_ratio)
        heat = img.transpose(1, 2, 0).reshape(h, w, c, 1).astype(np.float32)
        colors = np.asarray(colors, dtype=np.float32).reshape(-1, 3)[:c].reshape(1, 1, c, 3)
        if self.theme == "white":
            colors = 255 - colors
        color_map = (heat * colors).max(axis=2).astype(np.uint8)
        # The first entry of output_res is used as the width, as in the original.
        return cv2.resize(color_map, (int(output_res[0]), int(output_res[1])))

    def gen_colormap(self, img: np.ndarray, output_res=None) -> np.ndarray:
        """C x h x w heat -> colour image (per-pixel max over classes of heat * class colour)."""
        return self._colormap(img, self.colors, output_res)

    def gen_colormap_hp(self, img: np.ndarray, output_res=None) -> np.ndarray:
        """Joint heatmaps (J x h x w) -> colour image using the joint colours."""
        return self._colormap(img, self.colors_hp, output_res)

    # ------------------------------------------------------------------ 2D drawing
    def _class_color(self, cat: int) -> list[int]:
        c = self.colors[cat % len(self.colors)][0][0].astype(np.int64)
        if self.theme == "white":
            c = 255 - c
        return c.tolist()

    def _class_name(self, cat: int) -> str:
        return self.names[cat] if 0 <= cat < len(self.names) else str(cat)

    def add_rect(self, rect1, rect2, c, conf: float = 1, img_id="default") -> None:
        """Rectangle from rect1 to rect2; corner circles sized by conf when conf < 1."""
        img = self.imgs[img_id]
        p1, p2 = (int(rect1[0]), int(rect1[1])), (int(rect2[0]), int(rect2[1]))
        cv2.rectangle(img, p1, p2, c, 2)
        if conf < 1:
            r = int(10 * conf)
            for pt in (p1, p2, (p1[0], p2[1]), (p2[0], p1[1])):
                cv2.circle(img, pt, r, c, 1)

    def add_coco_bbox(self, bbox, cat, conf: float = 1, show_txt: bool = True, img_id="default") -> None:
        """Box in the class colour with a `<name><conf:.1f>` label on a filled background."""
        bbox = np.array(bbox, dtype=np.int32)
        cat = int(cat)
        c = self._class_color(cat)
        txt = f"{self._class_name(cat)}{conf:.1f}"
        font = cv2.FONT_HERSHEY_SIMPLEX
        cat_size = cv2.getTextSize(txt, font, 0.5, 2)[0]
        x1, y1, x2, y2 = (int(v) for v in bbox[:4])
        img = self.imgs[img_id]
        cv2.rectangle(img, (x1, y1), (x2, y2), c, 2)
        if show_txt:
            cv2.rectangle(img, (x1, y1 - cat_size[1] - 2), (x1 + cat_size[0], y1 - 2), c, -1)
            cv2.putText(img, txt, (x1, y1 - 2), font, 0.5, (0, 0, 0), thickness=1, lineType=cv2.LINE_AA)

    def add_box_rows(self, img: np.ndarray, rows, thresh: float, img_id="default", with_pose: bool = False) -> None:
        """`img` as `img_id` with the boxes of rows [x1, y1, x2, y2, score, ..., class] scoring above `thresh`.

        with_pose also draws each kept row's skeleton (columns 5..38 for 17 joints, multi_pose rows)."""
        self.add_img(img, img_id=img_id)
        for row in rows:
            if row[4] > thresh:
                self.add_coco_bbox(row[:4], row[-1], row[4], img_id=img_id)
                if with_pose:
                    self.add_coco_hp(row[5:5 + 2 * self.num_joints], img_id=img_id)

    def add_ct_detection(self, img: np.ndarray, dets, show_box: bool = False, show_txt: bool = True,
                         center_thresh: float = 0.5, img_id="det") -> None:
        """Draw centre points (and optionally boxes) of detections `[x, y, score, ..., w, h, cls]`."""
        self.imgs[img_id] = img.copy()
        if isinstance(dets, dict):
            for cat in dets:
                for i in range(len(dets[cat])):
                    if dets[cat][i, 2] > center_thresh and show_box:
                        w, h = dets[cat][i, -2], dets[cat][i, -1]
                        x, y = dets[cat][i, 0], dets[cat][i, 1]
                        bbox = np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dtype=np.float32)
                        self.add_coco_bbox(bbox, cat - 1, dets[cat][i, 2], show_txt=show_txt, img_id=img_id)
            return
        for i in range(len(dets)):
            if dets[i, 2] <= center_thresh:
                continue
            cat = int(dets[i, -1])
            cl = self._class_color(cat)
            ct = dets[i, :2].astype(np.int32) * self.down_ratio
            cv2.circle(self.imgs[img_id], (int(ct[0]), int(ct[1])), 3, cl, -1)
            if show_box:
                w, h = dets[i, -3] * self.down_ratio, dets[i, -2] * self.down_ratio
                x, y = dets[i, 0] * self.down_ratio, dets[i, 1] * self.down_ratio
                bbox = np.array([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dtype=np.float32)
                self.add_coco_bbox(bbox, dets[i, -1], dets[i, 2], img_id=img_id)

    def add_coco_hp(self, points, img_id="default") -> None:
        """Joints as filled circles and skeleton edges whose endpoints all lie at positive coordinates."""
        points = np.array(points, dtype=np.int32).reshape(self.num_joints, 2)
        img = self.imgs[img_id]
        for j in range(self.num_joints):
            cv2.circle(img, (int(points[j, 0]), int(points[j, 1])), 3,
                       self.colors_hp[j % len(self.colors_hp)], -1)
        for j, e in enumerate(self.edges):
            if max(e) >= self.num_joints or points[e].min() <= 0:
                continue
            cv2.line(img, (int(points[e[0], 0]), int(points[e[0], 1])),
                     (int(points[e[1], 0]), int(points[e[1], 1])), self.ec[j], 2, lineType=cv2.LINE_AA)

    def add_points(self, points, img_id="default") -> None:
        """Per-class lists of output-map points drawn as white-ringed dots (scaled by down_ratio)."""
        img = self.imgs[img_id]
        for i in range(len(points)):
            c = self.colors[i % len(self.colors), 0, 0]
            for j in range(len(points[i])):
                pt = (int(points[i][j][0] * self.down_ratio), int(points[i][j][1] * self.down_ratio))
                cv2.circle(img, pt, 5, (255, 255, 255), -1)
                cv2.circle(img, pt, 3, (int(c[0]), int(c[1]), int(c[2])), -1)

    # ------------------------------------------------------------------ show / save
    def _headless_dir(self) -> str | None:
        return self.out_dir or None

    def _next_prefix(self) -> str:
        if self.out_prefix is not None:
            return self.out_prefix
        Debugger._saved_count += 1
        return f"{Debugger._saved_count:06d}_"

    def _save_headless(self) -> list[str]:
        if not self.save_headless:
            return []
        out_dir = self._headless_dir()
        if out_dir is None:
            if not Debugger._warned_no_dir:
                print("No display and no output folder: debug images are not shown.")
                Debugger._warned_no_dir = True
            return []
        os.makedirs(out_dir, exist_ok=True)
        return self.save_all_imgs(out_dir, prefix=self._next_prefix())

    def _show_windows(self, imgs: dict, pause: bool) -> bool:
        """Open one window per image; False when this OpenCV/display cannot show windows."""
        if not self.display.available():
            return False
        try:
            for i, v in imgs.items():
                cv2.imshow(f"{i}", v)
            key = cv2.waitKey(0 if pause else 1)
        except cv2.error:
            self.display.mark_unavailable()
            return False
        if key == 27:
            sys.exit(0)
        return True

    def _show_matplotlib(self) -> None:
        import matplotlib
        if not self.display.available():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        n = max(len(self.imgs), 1)
        fig = plt.figure(figsize=(n * 10, 10))
        for i, (_, v) in enumerate(self.imgs.items()):
            ax = fig.add_subplot(1, n, i + 1)
            ax.set_title(str(_))
            if len(v.shape) == 3:
                ax.imshow(cv2.cvtColor(v, cv2.COLOR_BGR2RGB))
            else:
                ax.imshow(v)
        if self.display.available() and matplotlib.get_backend().lower() != "agg":
            plt.show()
        else:
            out_dir = self._headless_dir()
            if out_dir is not None:
                os.makedirs(out_dir, exist_ok=True)
                fig.savefig(os.path.join(out_dir, f"{self._next_prefix()}figure.png"))
        plt.close(fig)

    def show_all_imgs(self, pause: bool = False, time: int = 0) -> list[str]:
        """Show every stored image (Esc exits); without a display write them to out_dir instead.

        Returns the paths written (empty when the images were shown in windows)."""
        if self.ipynb:
            self._show_matplotlib()
            return []
        if self._show_windows(self.imgs, pause):
            return []
        return self._save_headless()

    def save_img(self, imgId="default", path: str = "./cache/debug/") -> None:
        """Write one stored image to `<path><imgId>.png`."""
        cv2.imwrite(path + f"{imgId}.png", self.imgs[imgId])

    def save_all_imgs(self, path: str = "./cache/debug/", prefix="", genID: bool = False) -> list[str]:
        """Write every stored image to `<path>/<prefix><img_id>.png`; returns the paths."""
        if genID:
            id_file = os.path.join(path, "id.txt")
            try:
                idx = int(np.loadtxt(id_file))
            except (OSError, ValueError):
                idx = 0
            prefix = idx
            np.savetxt(id_file, np.ones(1) * (idx + 1), fmt="%d")
        written = []
        for i, v in self.imgs.items():
            out = path + f"/{prefix}{i}.png"
            cv2.imwrite(out, v)
            written.append(out)
        return written

    def remove_side(self, img_id, img: np.ndarray) -> None:
        """Crop the stored image to the bounding box of `img`'s non-zero pixels."""
        if img_id not in self.imgs:
            return
        cols = np.nonzero(img.sum(axis=2).sum(axis=0))[0]
        rows = np.nonzero(img.sum(axis=2).sum(axis=1))[0]
        if len(cols) == 0 or len(rows) == 0:
            return
        self.imgs[img_id] = self.imgs[img_id][rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()


def debugger_for(opt, out_dir: str | None, prefix: str) -> Debugger:
    """A trainer's or detector's Debugger: --dataset's labels and joints, --debugger_theme, --debug 3 matplotlib."""
    names, joints = dataset_labels(opt.dataset)
    # a dataset whose classes come from its files (--dataset custom) put them on opt
    names = getattr(opt, "class_names", None) or names
    joints = getattr(opt, "num_joints", joints)
    debugger = Debugger(ipynb=(opt.debug == 3), theme=opt.debugger_theme, out_dir=out_dir,
                        class_names=names, num_joints=joints)
    if getattr(opt, "skeleton", None) is not None:
        debugger.set_skeleton(opt.skeleton, getattr(opt, "keypoint_names", None))
    debugger.out_prefix = prefix
    return debugger
