"""Visualisation of inputs, heatmaps and detections (2D boxes, poses, 3D boxes, bird's-eye view).

Images are kept in insertion order and either shown (OpenCV windows, or matplotlib with
ipynb=True), or written to disk. Without a display (no $DISPLAY on Linux, or an OpenCV built
without GUI support) `show_all_imgs` writes the images to `out_dir` instead of failing.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

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

coco_class_name = [
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush',
]
pascal_class_name = [
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
    'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
    'tvmonitor',
]
kitti_class_name = ['p', 'v', 'b']
gta_class_name = ['p', 'v']

# COCO person skeleton: edges, edge colours and joint colours (left side blue-ish, right red-ish in BGR).
_LEFT, _RIGHT, _MID = (255, 0, 0), (0, 0, 255), (255, 0, 255)
coco_hp_edges = [[0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 6], [5, 7], [7, 9], [6, 8],
                 [8, 10], [5, 11], [6, 12], [11, 12], [11, 13], [13, 15], [12, 14], [14, 16]]
coco_hp_edge_colors = [_LEFT, _RIGHT, _LEFT, _RIGHT, _LEFT, _RIGHT, _MID, _LEFT, _LEFT, _RIGHT,
                       _RIGHT, _LEFT, _RIGHT, _MID, _LEFT, _LEFT, _RIGHT, _RIGHT]
coco_hp_joint_colors = [_MID] + [_LEFT if j % 2 == 1 else _RIGHT for j in range(1, 17)]

_display_state: bool | None = None


def display_available() -> bool:
    """Whether windows can be opened (False on Linux without $DISPLAY/$WAYLAND_DISPLAY)."""
    global _display_state
    if _display_state is None:
        if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            _display_state = False
        else:
            _display_state = True
    return _display_state


def _mark_no_display() -> None:
    global _display_state
    _display_state = False


def _dataset_class(dataset):
    """The dataset class registered under `dataset`, or None (imported lazily: datasets import this module)."""
    if dataset is None:
        return None
    try:
        from datasets.dataset_factory import dataset_factory
        return dataset_factory.get(dataset)
    except Exception:  # an unknown or unimportable dataset only costs the class names
        return None


def _names_from_class(cls) -> list[str] | None:
    names = list(getattr(cls, 'class_name', []) or [])
    if names and names[0] == '__background__':
        names = names[1:]
    return [str(n) for n in names] or None


class Debugger:
    """Collects named images and draws detections on them; shows or saves them all at once."""

    # Where headless show_all_imgs writes when an instance has no out_dir (set by trainers/detectors).
    default_out_dir: str | None = None
    _saved_count = 0
    _warned_no_dir = False

    def __init__(self, ipynb: bool = False, theme: str = 'black', num_classes: int = -1,
                 dataset: str | None = None, down_ratio: int = 4, out_dir: str | None = None) -> None:
        self.ipynb = ipynb
        self.imgs: dict = {}
        self.theme = theme
        self.out_dir = out_dir
        self.out_prefix: str | None = None
        # Headless: False skips writing (e.g. the demo puts video frames into a video file instead).
        self.save_headless = True
        n = len(color_list)
        colors = color_list.astype(np.uint8)
        self.colors = colors.reshape(n, 1, 1, 3)
        if self.theme == 'white':
            # The reversed flat palette (so class i gets class 79-i's triple reversed), darkened.
            self.colors = self.colors.reshape(-1)[::-1].reshape(n, 1, 1, 3)
            self.colors = np.clip(self.colors, 0., 0.6 * 255).astype(np.uint8)
        self.dim_scale = 1
        self.num_joints = 17
        self.edges = coco_hp_edges
        self.ec = coco_hp_edge_colors
        self.colors_hp = coco_hp_joint_colors
        cls = _dataset_class(dataset) if dataset not in ('coco', 'pascal', 'kitti', 'coco_hp') else None
        if dataset == 'coco_hp' or (cls is not None and hasattr(cls, 'num_joints')):
            self.names = ['p'] if cls is None else (_names_from_class(cls) or ['p'])
            self.num_class = 1
            self.num_joints = int(getattr(cls, 'num_joints', 17)) if cls is not None else 17
        elif num_classes == 80 or dataset == 'coco':
            self.names = coco_class_name
        elif num_classes == 20 or dataset == 'pascal':
            self.names = pascal_class_name
        elif dataset in ('gta', 'viper'):
            self.names = gta_class_name
            self.focal_length = 935.3074360871937 if dataset == 'gta' else 1158
            self.W, self.H = 1920, 1080
            self.dim_scale = 3
        elif num_classes == 3 or dataset == 'kitti' or (dataset is not None and 'kitti' in dataset):
            self.names = kitti_class_name
            self.focal_length = 721.5377
            self.W, self.H = 1242, 375
        else:
            self.names = (_names_from_class(cls) if cls is not None else None) or coco_class_name
        self.down_ratio = down_ratio
        # Bird's-eye view: world square of 64 m drawn on 384 px.
        self.world_size = 64
        self.out_size = 384

    # ------------------------------------------------------------------ images
    def add_img(self, img: np.ndarray, img_id='default', revert_color: bool = False) -> None:
        """Store a copy of `img` under `img_id`."""
        if revert_color:
            img = 255 - img
        self.imgs[img_id] = img.copy()

    def add_mask(self, mask: np.ndarray, bg: np.ndarray, imgId='default', trans: float = 0.8) -> None:
        """Store `bg` with a white overlay of `mask` (values 0..1)."""
        self.imgs[imgId] = (mask.reshape(mask.shape[0], mask.shape[1], 1) * 255 * trans
                            + bg * (1 - trans)).astype(np.uint8)

    def show_img(self, pause: bool = False, imgId='default') -> None:
        """Show one stored image in a window."""
        self._show_windows({imgId: self.imgs[imgId]}, pause)

    def add_blend_img(self, back: np.ndarray, fore: np.ndarray, img_id='blend', trans: float = 0.7) -> None:
        """Store `(1 - trans) * back + trans * fore` (fore resized to back; inverted in the white theme)."""
        if self.theme == 'white':
            fore = 255 - fore
        # The original compares fore's height with back's width too; kept, it only forces an extra resize.
        if fore.shape[0] != back.shape[0] or fore.shape[0] != back.shape[1]:
            fore = cv2.resize(fore, (back.shape[1], back.shape[0]))
        if len(fore.shape) == 2:
            fore = fore.reshape(fore.shape[0], fore.shape[1], 1)
        blend = back * (1. - trans) + fore * trans
        self.imgs[img_id] = np.clip(blend, 0, 255).astype(np.uint8)

    def _colormap(self, img: np.ndarray, colors: np.ndarray, output_res) -> np.ndarray:
        c, h, w = img.shape[0], img.shape[1], img.shape[2]
        if output_res is None:
            output_res = (h * self.down_ratio, w * self.down_ratio)
        heat = img.transpose(1, 2, 0).reshape(h, w, c, 1).astype(np.float32)
        colors = np.asarray(colors, dtype=np.float32).reshape(-1, 3)[:c].reshape(1, 1, c, 3)
        if self.theme == 'white':
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
        if self.theme == 'white':
            c = 255 - c
        return c.tolist()

    def _class_name(self, cat: int) -> str:
        return self.names[cat] if 0 <= cat < len(self.names) else str(cat)

    def add_rect(self, rect1, rect2, c, conf: float = 1, img_id='default') -> None:
        """Rectangle from rect1 to rect2; corner circles sized by conf when conf < 1."""
        img = self.imgs[img_id]
        p1, p2 = (int(rect1[0]), int(rect1[1])), (int(rect2[0]), int(rect2[1]))
        cv2.rectangle(img, p1, p2, c, 2)
        if conf < 1:
            r = int(10 * conf)
            for pt in (p1, p2, (p1[0], p2[1]), (p2[0], p1[1])):
                cv2.circle(img, pt, r, c, 1)

    def add_coco_bbox(self, bbox, cat, conf: float = 1, show_txt: bool = True, img_id='default') -> None:
        """Box in the class colour with a `<name><conf:.1f>` label on a filled background."""
        bbox = np.array(bbox, dtype=np.int32)
        cat = int(cat)
        c = self._class_color(cat)
        txt = f'{self._class_name(cat)}{conf:.1f}'
        font = cv2.FONT_HERSHEY_SIMPLEX
        cat_size = cv2.getTextSize(txt, font, 0.5, 2)[0]
        x1, y1, x2, y2 = (int(v) for v in bbox[:4])
        img = self.imgs[img_id]
        cv2.rectangle(img, (x1, y1), (x2, y2), c, 2)
        if show_txt:
            cv2.rectangle(img, (x1, y1 - cat_size[1] - 2), (x1 + cat_size[0], y1 - 2), c, -1)
            cv2.putText(img, txt, (x1, y1 - 2), font, 0.5, (0, 0, 0), thickness=1, lineType=cv2.LINE_AA)

    def add_coco_hp(self, points, img_id='default') -> None:
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

    def add_points(self, points, img_id='default') -> None:
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
        return self.out_dir or Debugger.default_out_dir

    def _next_prefix(self) -> str:
        if self.out_prefix is not None:
            return self.out_prefix
        Debugger._saved_count += 1
        return f'{Debugger._saved_count:06d}_'

    def _save_headless(self) -> list[str]:
        if not self.save_headless:
            return []
        out_dir = self._headless_dir()
        if out_dir is None:
            if not Debugger._warned_no_dir:
                print('No display and no output folder: debug images are not shown.')
                Debugger._warned_no_dir = True
            return []
        os.makedirs(out_dir, exist_ok=True)
        return self.save_all_imgs(out_dir, prefix=self._next_prefix())

    def _show_windows(self, imgs: dict, pause: bool) -> bool:
        """Open one window per image; False when this OpenCV/display cannot show windows."""
        if not display_available():
            return False
        try:
            for i, v in imgs.items():
                cv2.imshow(f'{i}', v)
            key = cv2.waitKey(0 if pause else 1)
        except cv2.error:
            _mark_no_display()
            return False
        if key == 27:
            sys.exit(0)
        return True

    def _show_matplotlib(self) -> None:
        import matplotlib
        if not display_available():
            matplotlib.use('Agg')
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
        if display_available() and matplotlib.get_backend().lower() != 'agg':
            plt.show()
        else:
            out_dir = self._headless_dir()
            if out_dir is not None:
                os.makedirs(out_dir, exist_ok=True)
                fig.savefig(os.path.join(out_dir, f'{self._next_prefix()}figure.png'))
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

    def save_img(self, imgId='default', path: str = './cache/debug/') -> None:
        """Write one stored image to `<path><imgId>.png`."""
        cv2.imwrite(path + f'{imgId}.png', self.imgs[imgId])

    def save_all_imgs(self, path: str = './cache/debug/', prefix='', genID: bool = False) -> list[str]:
        """Write every stored image to `<path>/<prefix><img_id>.png`; returns the paths."""
        if genID:
            id_file = os.path.join(path, 'id.txt')
            try:
                idx = int(np.loadtxt(id_file))
            except (OSError, ValueError):
                idx = 0
            prefix = idx
            np.savetxt(id_file, np.ones(1) * (idx + 1), fmt='%d')
        written = []
        for i, v in self.imgs.items():
            out = path + f'/{prefix}{i}.png'
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

    # ------------------------------------------------------------------ 3D / bird's-eye
    def project_3d_to_bird(self, pt: np.ndarray) -> np.ndarray:
        """(x, z) in metres -> bird's-eye pixel (ego at the bottom centre)."""
        pt = np.array(pt, dtype=np.float64)
        pt[0] += self.world_size / 2
        pt[1] = self.world_size - pt[1]
        pt = pt * self.out_size / self.world_size
        return pt.astype(np.int32)

    def add_ct_detection(self, img: np.ndarray, dets, show_box: bool = False, show_txt: bool = True,
                         center_thresh: float = 0.5, img_id='det') -> None:
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

    def _draw_3d_boxes(self, img: np.ndarray, dets, calib, center_thresh: float, scale_xy=(1., 1.)) -> np.ndarray:
        from utils.ddd_utils import compute_box_3d, draw_box_3d, project_to_image
        for cat in dets:
            cl = self.colors[(cat - 1) % len(self.colors), 0, 0].tolist()
            for i in range(len(dets[cat])):
                if dets[cat][i, -1] <= center_thresh:
                    continue
                dim, loc, rot_y = dets[cat][i, 5:8], dets[cat][i, 8:11], dets[cat][i, 11]
                if loc[2] > 1:
                    box_2d = project_to_image(compute_box_3d(dim, loc, rot_y), calib)
                    box_2d[:, 0] /= scale_xy[0]
                    box_2d[:, 1] /= scale_xy[1]
                    img = draw_box_3d(img, box_2d, cl)
        return img

    def add_3d_detection(self, image_or_path, dets, calib, show_txt: bool = False,
                         center_thresh: float = 0.5, img_id='det') -> None:
        """Project and draw 3D boxes (rows `[alpha, x1..y2, h, w, l, X, Y, Z, rot_y, score]`) with depth > 1."""
        if isinstance(image_or_path, np.ndarray):
            img = image_or_path.copy()
        else:
            img = cv2.imread(image_or_path)
        self.imgs[img_id] = self._draw_3d_boxes(img, dets, calib, center_thresh)

    def compose_vis_add(self, img_path, dets, calib, center_thresh: float, pred: np.ndarray, bev,
                        img_id='out') -> None:
        """Image resized to the heatmap, heatmap blended, 3D boxes drawn, bird's-eye image `bev` appended."""
        img = cv2.imread(img_path) if isinstance(img_path, str) else np.asarray(img_path).copy()
        h, w = pred.shape[:2]
        hs, ws = img.shape[0] / h, img.shape[1] / w
        self.add_blend_img(cv2.resize(img, (w, h)), pred, img_id)
        # x is scaled by the width ratio and y by the height ratio (the original swaps them).
        self.imgs[img_id] = self._draw_3d_boxes(self.imgs[img_id], dets, calib, center_thresh, (ws, hs))
        self.imgs[img_id] = np.concatenate([self.imgs[img_id], self.imgs[bev]], axis=1)

    def add_2d_detection(self, img: np.ndarray, dets, show_box: bool = False, show_txt: bool = True,
                         center_thresh: float = 0.5, img_id='det') -> None:
        """Draw the 2D boxes (columns 1..4) of ddd result rows scoring above center_thresh."""
        self.imgs[img_id] = img
        for cat in dets:
            for i in range(len(dets[cat])):
                if dets[cat][i, -1] > center_thresh:
                    self.add_coco_bbox(dets[cat][i, 1:5], cat - 1, dets[cat][i, -1],
                                       show_txt=show_txt, img_id=img_id)

    def _bird_rect(self, row: np.ndarray) -> np.ndarray:
        from utils.ddd_utils import compute_box_3d
        rect = compute_box_3d(row[5:8], row[8:11], row[11])[:4, [0, 2]]
        return np.stack([self.project_3d_to_bird(r) for r in rect]).astype(np.int32)

    def add_bird_view(self, dets, center_thresh: float = 0.3, img_id='bird') -> None:
        """Bird's-eye view of the predictions' bottom faces (front edge drawn thicker)."""
        bird_view = np.full((self.out_size, self.out_size, 3), 230, dtype=np.uint8)
        lc = (250, 152, 12)
        for cat in dets:
            for i in range(len(dets[cat])):
                if dets[cat][i, -1] > center_thresh:
                    rect = self._bird_rect(dets[cat][i])
                    cv2.polylines(bird_view, [rect.reshape(-1, 1, 2)], True, lc, 2, lineType=cv2.LINE_AA)
                    cv2.line(bird_view, tuple(int(v) for v in rect[0]), tuple(int(v) for v in rect[1]),
                             lc, 4, lineType=cv2.LINE_AA)
        self.imgs[img_id] = bird_view

    def add_bird_views(self, dets_dt, dets_gt, center_thresh: float = 0.3, img_id='bird') -> None:
        """Bird's-eye view with ground truth filled and predictions outlined."""
        bird_view = np.full((self.out_size, self.out_size, 3), 230, dtype=np.uint8)
        for ii, (dets, lc) in enumerate([(dets_gt, (12, 49, 250)), (dets_dt, (250, 152, 12))]):
            for cat in dets:
                for i in range(len(dets[cat])):
                    if dets[cat][i, -1] <= center_thresh:
                        continue
                    rect = self._bird_rect(dets[cat][i])
                    if ii == 0:
                        cv2.fillPoly(bird_view, [rect.reshape(-1, 1, 2)], lc, lineType=cv2.LINE_AA)
                    else:
                        cv2.polylines(bird_view, [rect.reshape(-1, 1, 2)], True, lc, 2, lineType=cv2.LINE_AA)
                    cv2.line(bird_view, tuple(int(v) for v in rect[0]), tuple(int(v) for v in rect[1]),
                             lc, 4, lineType=cv2.LINE_AA)
        self.imgs[img_id] = bird_view
