"""3D-box and bird's-eye-view drawing of the Debugger (ddd results: KITTI rows and camera matrices).

`Debugger3D` is a mixin: it draws into the host's `imgs` with its `colors`, `add_coco_bbox` and
`add_blend_img`, so these methods stay methods of `utils.debugger.Debugger`, as in the original.
"""
from __future__ import annotations

import cv2
import numpy as np

from utils.ddd_utils import compute_box_3d, draw_box_3d, project_to_image

_BEV_BACKGROUND = 230
_BEV_PRED_COLOR = (250, 152, 12)
_BEV_GT_COLOR = (12, 49, 250)


class Debugger3D:
    """Projected 3D boxes, the 2D boxes of ddd rows and the bird's-eye view (rows: {class: n x 13})."""

    # Bird's-eye view: a world square of 64 m drawn on 384 px.
    world_size = 64
    out_size = 384

    imgs: dict
    colors: np.ndarray

    def project_3d_to_bird(self, pt: np.ndarray) -> np.ndarray:
        """(x, z) in metres -> bird's-eye pixel (ego at the bottom centre)."""
        pt = np.array(pt, dtype=np.float64)
        pt[0] += self.world_size / 2
        pt[1] = self.world_size - pt[1]
        pt = pt * self.out_size / self.world_size
        return pt.astype(np.int32)

    def _draw_3d_boxes(self, img: np.ndarray, dets, calib, center_thresh: float, scale_xy=(1., 1.)) -> np.ndarray:
        for cat in dets:
            cl = self.colors[(cat - 1) % len(self.colors), 0, 0].tolist()
            for i in range(len(dets[cat])):
                if dets[cat][i, -1] <= center_thresh:
                    continue
                dim, loc, rot_y = dets[cat][i, 5:8], dets[cat][i, 8:11], dets[cat][i, 11]
                # boxes at or behind the camera plane do not project
                if loc[2] > 1:
                    box_2d = project_to_image(compute_box_3d(dim, loc, rot_y), calib)
                    box_2d[:, 0] /= scale_xy[0]
                    box_2d[:, 1] /= scale_xy[1]
                    img = draw_box_3d(img, box_2d, cl)
        return img

    def add_3d_detection(self, image_or_path, dets, calib, show_txt: bool = False,
                         center_thresh: float = 0.5, img_id="det") -> None:
        """Project and draw 3D boxes (rows `[alpha, x1..y2, h, w, l, X, Y, Z, rot_y, score]`) with depth > 1."""
        if isinstance(image_or_path, np.ndarray):
            img = image_or_path.copy()
        else:
            img = cv2.imread(image_or_path)
        self.imgs[img_id] = self._draw_3d_boxes(img, dets, calib, center_thresh)

    def compose_vis_add(self, img_path, dets, calib, center_thresh: float, pred: np.ndarray, bev,
                        img_id="out") -> None:
        """Image resized to the heatmap, heatmap blended, 3D boxes drawn, bird's-eye image `bev` appended."""
        img = cv2.imread(img_path) if isinstance(img_path, str) else np.asarray(img_path).copy()
        h, w = pred.shape[:2]
        hs, ws = img.shape[0] / h, img.shape[1] / w
        self.add_blend_img(cv2.resize(img, (w, h)), pred, img_id)
        # x is scaled by the width ratio and y by the height ratio (the original swaps them).
        self.imgs[img_id] = self._draw_3d_boxes(self.imgs[img_id], dets, calib, center_thresh, (ws, hs))
        self.imgs[img_id] = np.concatenate([self.imgs[img_id], self.imgs[bev]], axis=1)

    def add_2d_detection(self, img: np.ndarray, dets, show_box: bool = False, show_txt: bool = True,
                         center_thresh: float = 0.5, img_id="det") -> None:
        """Draw the 2D boxes (columns 1..4) of ddd result rows scoring above center_thresh."""
        self.imgs[img_id] = img
        for cat in dets:
            for i in range(len(dets[cat])):
                if dets[cat][i, -1] > center_thresh:
                    self.add_coco_bbox(dets[cat][i, 1:5], cat - 1, dets[cat][i, -1],
                                       show_txt=show_txt, img_id=img_id)

    def _bird_rect(self, row: np.ndarray) -> np.ndarray:
        rect = compute_box_3d(row[5:8], row[8:11], row[11])[:4, [0, 2]]
        return np.stack([self.project_3d_to_bird(r) for r in rect]).astype(np.int32)

    def _bird_box(self, bird_view: np.ndarray, row: np.ndarray, color, filled: bool) -> None:
        """One bottom face, filled or outlined, with its front edge drawn thicker."""
        rect = self._bird_rect(row)
        if filled:
            cv2.fillPoly(bird_view, [rect.reshape(-1, 1, 2)], color, lineType=cv2.LINE_AA)
        else:
            cv2.polylines(bird_view, [rect.reshape(-1, 1, 2)], True, color, 2, lineType=cv2.LINE_AA)
        cv2.line(bird_view, tuple(int(v) for v in rect[0]), tuple(int(v) for v in rect[1]),
                 color, 4, lineType=cv2.LINE_AA)

    def _blank_bird_view(self) -> np.ndarray:
        return np.full((self.out_size, self.out_size, 3), _BEV_BACKGROUND, dtype=np.uint8)

    def add_bird_view(self, dets, center_thresh: float = 0.3, img_id="bird") -> None:
        """Bird's-eye view of the predictions' bottom faces (front edge drawn thicker)."""
        bird_view = self._blank_bird_view()
        for cat in dets:
            for i in range(len(dets[cat])):
                if dets[cat][i, -1] > center_thresh:
                    self._bird_box(bird_view, dets[cat][i], _BEV_PRED_COLOR, filled=False)
        self.imgs[img_id] = bird_view

    def add_bird_views(self, dets_dt, dets_gt, center_thresh: float = 0.3, img_id="bird") -> None:
        """Bird's-eye view with ground truth filled and predictions outlined."""
        bird_view = self._blank_bird_view()
        for dets, color, filled in ((dets_gt, _BEV_GT_COLOR, True), (dets_dt, _BEV_PRED_COLOR, False)):
            for cat in dets:
                for i in range(len(dets[cat])):
                    if dets[cat][i, -1] <= center_thresh:
                        continue
                    self._bird_box(bird_view, dets[cat][i], color, filled)
        self.imgs[img_id] = bird_view
