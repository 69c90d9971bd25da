"""KITTI 3D geometry: box corners, camera projection, observation angle <-> yaw conversion."""
from __future__ import annotations

import cv2
import numpy as np

# Corner order of a 3D box (object frame, origin at the bottom-face centre): bottom face 0-3, top face 4-7.
_CORNER_SIGNS_X = np.array([1, 1, -1, -1, 1, 1, -1, -1], np.float32)
_CORNER_SIGNS_Z = np.array([1, -1, -1, 1, 1, -1, -1, 1], np.float32)
_CORNER_TOP = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float32)
# The four side faces, drawn last to first; face 0 (the front) also gets its diagonals.
_FACES = ((0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))


def _rot_y_matrix(rotation_y) -> np.ndarray:
    """Rotation about the camera's y axis (KITTI yaw), float32."""
    c, s = np.cos(rotation_y), np.sin(rotation_y)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)


def compute_box_3d(dim, location, rotation_y) -> np.ndarray:
    """8 x 3 corners of the box with dimensions (h, w, l), bottom-centre `location` and yaw `rotation_y`."""
    h, w, l = dim[0], dim[1], dim[2]
    corners = np.stack([_CORNER_SIGNS_X * np.float32(l / 2),
                        np.where(_CORNER_TOP > 0, np.float32(-h), np.float32(0)),
                        _CORNER_SIGNS_Z * np.float32(w / 2)]).astype(np.float32)
    corners_3d = _rot_y_matrix(rotation_y) @ corners + np.asarray(location, dtype=np.float32).reshape(3, 1)
    return corners_3d.T


def project_to_image(pts_3d: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Project n x 3 camera-frame points with the 3 x 4 matrix P -> n x 2 pixel coordinates."""
    homo = np.concatenate([pts_3d, np.ones((pts_3d.shape[0], 1), dtype=np.float32)], axis=1)
    pts_2d = (P @ homo.T).T
    return pts_2d[:, :2] / pts_2d[:, 2:]


def compute_orientation_3d(dim, location, rotation_y) -> np.ndarray:
    """2 x 3 segment from the box origin along its heading, length l (for drawing the orientation)."""
    segment = np.array([[0, dim[2]], [0, 0], [0, 0]], dtype=np.float32)
    out = _rot_y_matrix(rotation_y) @ segment + np.asarray(location, dtype=np.float32).reshape(3, 1)
    return out.T


def draw_box_3d(image: np.ndarray, corners: np.ndarray, c=(0, 0, 255)) -> np.ndarray:
    """Draw the projected 8 x 2 box `corners` on `image` in place (front face crossed) and return it."""
    pts = [(int(x), int(y)) for x, y in corners[:, :2]]
    for f_idx in range(3, -1, -1):
        face = _FACES[f_idx]
        for j in range(4):
            cv2.line(image, pts[face[j]], pts[face[(j + 1) % 4]], c, 2, lineType=cv2.LINE_AA)
        if f_idx == 0:
            cv2.line(image, pts[face[0]], pts[face[2]], c, 1, lineType=cv2.LINE_AA)
            cv2.line(image, pts[face[1]], pts[face[3]], c, 1, lineType=cv2.LINE_AA)
    return image


def unproject_2d_to_3d(pt_2d, depth, P) -> np.ndarray:
    """Camera-frame point (x, y, z) seen at pixel `pt_2d` with the given depth, through projection P."""
    z = depth - P[2, 3]
    x = (pt_2d[0] * depth - P[0, 3] - P[0, 2] * z) / P[0, 0]
    y = (pt_2d[1] * depth - P[1, 3] - P[1, 2] * z) / P[1, 1]
    return np.array([x, y, z], dtype=np.float32)


def _wrap_pi(angle):
    """Bring an angle (scalar or array) produced by one addition back into [-pi, pi]."""
    if np.ndim(angle) == 0:
        if angle > np.pi:
            angle -= 2 * np.pi
        if angle < -np.pi:
            angle += 2 * np.pi
        return angle
    angle = np.where(angle > np.pi, angle - 2 * np.pi, angle)
    return np.where(angle < -np.pi, angle + 2 * np.pi, angle)


def alpha2rot_y(alpha, x, cx, fx):
    """Yaw from the observation angle `alpha` of an object centred at image column `x` (focal fx, centre cx)."""
    return _wrap_pi(alpha + np.arctan2(x - cx, fx))


def rot_y2alpha(rot_y, x, cx, fx):
    """Observation angle from yaw `rot_y` of an object centred at image column `x` (focal fx, centre cx)."""
    return _wrap_pi(rot_y - np.arctan2(x - cx, fx))


def ddd2locrot(center, alpha, dim, depth, calib):
    """Bottom-centre location and yaw of an object from its projected 3D centre, alpha, (h, w, l) and depth."""
    locations = unproject_2d_to_3d(center, depth, calib)
    locations[1] += dim[0] / 2  # the network predicts the box centre; KITTI locations are bottom centres
    rotation_y = alpha2rot_y(alpha, center[0], calib[0, 2], calib[0, 0])
    return locations, rotation_y


def ddd2locrot_batch(centers, alphas, dims, depths, calib):
    """Vectorised ddd2locrot over n objects: (n x 3 locations, n yaws), same float32 arithmetic."""
    locations = unproject_2d_to_3d(centers.T, depths, calib).T
    locations[:, 1] += dims[:, 0] / 2
    rotation_y = alpha2rot_y(alphas, centers[:, 0], calib[0, 2], calib[0, 0])
    return locations, rotation_y


def project_3d_bbox(location, dim, rotation_y, calib) -> np.ndarray:
    """8 x 2 image corners of the 3D box."""
    return project_to_image(compute_box_3d(dim, location, rotation_y), calib)
