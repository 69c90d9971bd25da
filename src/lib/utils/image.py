"""Image geometry, gaussian target drawing and colour augmentation shared by datasets and detectors."""
from __future__ import annotations

import random
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "flip", "transform_preds", "get_affine_transform", "affine_transform", "affine_transform_pts",
    "get_3rd_point", "get_dir", "crop", "gaussian_radius", "gaussian2D", "draw_umich_gaussian",
    "draw_dense_reg", "draw_msra_gaussian", "msra_sigma", "TTF_ALPHA", "gaussian2D_elliptic", "ttf_radii",
    "draw_ttf_gaussian", "grayscale", "lighting_", "blend_",
    "saturation_", "brightness_", "contrast_", "color_aug",
]


# ----------------------------------------------------------------------------- geometry
def flip(img: np.ndarray) -> np.ndarray:
    """Mirror the last axis (width of a CHW / HW array) and return a contiguous copy."""
    return img[:, :, ::-1].copy()


def get_dir(src_point: Sequence[float], rot_rad: float) -> list:
    """Rotate a 2-vector by `rot_rad` radians."""
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]


def get_3rd_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Third point of a right isosceles triangle: `a - b` turned by 90 degrees, added to `b`."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


_NO_SHIFT = np.array([0, 0], dtype=np.float32)


def get_affine_transform(center, scale, rot, output_size, shift=_NO_SHIFT, inv=0):
    """2x3 float64 matrix mapping the box (center, scale[0] wide, rotated by `rot` degrees) onto output_size.

    Only the width component of `scale` sets the zoom (the height follows the output aspect ratio).
    With `inv` the matrix maps output coordinates back to the source.
    """
    if not isinstance(scale, (np.ndarray, list)):
        scale = np.array([scale, scale], dtype=np.float32)
    scale = np.asarray(scale) if isinstance(scale, list) else scale
    src_w = scale[0]
    dst_w, dst_h = output_size[0], output_size[1]

    rot_rad = np.pi * rot / 180
    src_dir = get_dir([0, src_w * -0.5], rot_rad)
    dst_dir = np.array([0, dst_w * -0.5], np.float32)

    # cv2 solves from float32 points: build them in float32 exactly like the reference geometry does
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    offset = scale * shift
    src[0, :] = center + offset
    src[1, :] = center + np.asarray(src_dir) + offset
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5], np.float32) + dst_dir
    src[2, :] = get_3rd_point(src[0, :], src[1, :])
    dst[2, :] = get_3rd_point(dst[0, :], dst[1, :])

    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def affine_transform(pt, t: np.ndarray) -> np.ndarray:
    """Apply the 2x3 matrix `t` to one point (x, y); the point is taken in float32, the result is float64."""
    p = np.array([pt[0], pt[1], 1.0], dtype=np.float32)
    return np.dot(t, p)[:2]


def affine_transform_pts(pts: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Vectorised `affine_transform` over an N x 2 array (same float32-in, float64-out convention)."""
    p = np.asarray(pts, dtype=np.float32).reshape(-1, 2).astype(np.float64)
    return p @ t[:, :2].T + t[:, 2]


def transform_preds(coords: np.ndarray, center, scale, output_size) -> np.ndarray:
    """Map the first two columns of every row from output space back to the image; other columns become 0."""
    target = np.zeros(coords.shape)
    trans = get_affine_transform(center, scale, 0, output_size, inv=1)
    if coords.shape[0] > 0:
        target[:, 0:2] = affine_transform_pts(coords[:, 0:2], trans)
    return target


def crop(img: np.ndarray, center, scale, output_size, rot=0) -> np.ndarray:
    """Warp the region described by (center, scale, rot) of `img` to `output_size` (w, h)."""
    trans = get_affine_transform(center, scale, rot, output_size)
    return cv2.warpAffine(img, trans, (int(output_size[0]), int(output_size[1])), flags=cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------- gaussian targets
def gaussian_radius(det_size, min_overlap: float = 0.7):
    """Heatmap radius for a (height, width) box, CornerNet's formula (roots halved, not divided by 2a).

    Works element-wise on arrays too; for positive sizes the third candidate is always the smallest.
    """
    height, width = det_size
    m = min_overlap
    b1 = height + width
    c1 = width * height * (1 - m) / (1 + m)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - m) * width * height
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (height + width)
    c3 = (m - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def gaussian2D(shape, sigma: float = 1) -> np.ndarray:
    """Unnormalised float64 gaussian of `shape` centred in the middle; negligible tails set to 0."""
    m, n = [(ss - 1.0) / 2.0 for ss in shape]
    y = np.arange(-m, m + 1).reshape(-1, 1)
    x = np.arange(-n, n + 1).reshape(1, -1)
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def _window(center, radius: int, height: int, width: int):
    """Integer centre and the clipped extents (left, right, top, bottom) of a radius-r window."""
    x, y = int(center[0]), int(center[1])
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    return x, y, left, right, top, bottom


def draw_umich_gaussian(heatmap: np.ndarray, center, radius: int, k: float = 1) -> np.ndarray:
    """Max-merge a gaussian of diameter 2r+1 (sigma = d/6, peak k) into `heatmap` at int(center), in place."""
    diameter = 2 * radius + 1
    gaussian = gaussian2D((diameter, diameter), sigma=diameter / 6)
    height, width = heatmap.shape[0:2]
    x, y, left, right, top, bottom = _window(center, radius, height, width)
    masked_heatmap = heatmap[y - top:y + bottom, x - left:x + right]
    masked_gaussian = gaussian[radius - top:radius + bottom, radius - left:radius + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        np.maximum(masked_heatmap, masked_gaussian * k, out=masked_heatmap)
    return heatmap


# TTFNet's share of the box covered by the gaussian (sigma = alpha * size / 6 on each axis)
TTF_ALPHA = 0.54


def gaussian2D_elliptic(shape, sigma_x: float, sigma_y: float) -> np.ndarray:
    """Unnormalised float64 gaussian of `shape` (rows, cols) centred in the middle, one sigma per axis.

    Negligible tails are set to 0 as in `gaussian2D`; a zero sigma gives a single-pixel spike on that axis.
    """
    m, n = [(ss - 1.0) / 2.0 for ss in shape]
    y = np.arange(-m, m + 1).reshape(-1, 1)
    x = np.arange(-n, n + 1).reshape(1, -1)
    # a zero-width box still gets its peak: tiny sigmas only ever see offset 0 (exponent 0 / tiny = 0)
    two_var_x = 2 * max(float(sigma_x), 1e-12) ** 2
    two_var_y = 2 * max(float(sigma_y), 1e-12) ** 2
    h = np.exp(-(x * x / two_var_x + y * y / two_var_y))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def ttf_radii(w: float, h: float, alpha: float = TTF_ALPHA) -> tuple[int, int]:
    """Half-widths (x, y) of TTFNet's window for a w x h box: three sigmas, truncated to whole pixels."""
    return int(max(w, 0) * alpha / 2), int(max(h, 0) * alpha / 2)


def draw_ttf_gaussian(heatmap: np.ndarray, center, w: float, h: float, alpha: float = TTF_ALPHA,
                      k: float = 1) -> np.ndarray:
    """Max-merge TTFNet's elliptical gaussian for a w x h box (map units) at int(center), in place.

    sigma_x = alpha * w / 6 and sigma_y = alpha * h / 6 (peak k), on a window of
    `ttf_radii` half-widths clipped at the map border, like `draw_umich_gaussian`.
    """
    # sizes in float64 whatever their type, so float32 and python sizes give the same map
    w, h = max(float(w), 0.0), max(float(h), 0.0)
    radius_x, radius_y = ttf_radii(w, h, alpha)
    gaussian = gaussian2D_elliptic((2 * radius_y + 1, 2 * radius_x + 1), sigma_x=alpha * w / 6, sigma_y=alpha * h / 6)
    height, width = heatmap.shape[0:2]
    x, y = int(center[0]), int(center[1])
    left, right = min(x, radius_x), min(width - x, radius_x + 1)
    top, bottom = min(y, radius_y), min(height - y, radius_y + 1)
    masked_heatmap = heatmap[y - top:y + bottom, x - left:x + right]
    masked_gaussian = gaussian[radius_y - top:radius_y + bottom, radius_x - left:radius_x + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        np.maximum(masked_heatmap, masked_gaussian * k, out=masked_heatmap)
    return heatmap


def draw_dense_reg(regmap: np.ndarray, heatmap: np.ndarray, center, value, radius: int,
                   is_offset: bool = False) -> np.ndarray:
    """Write `value` into regmap's window around center where this object's gaussian dominates `heatmap`."""
    diameter = 2 * radius + 1
    gaussian = gaussian2D((diameter, diameter), sigma=diameter / 6)
    value = np.array(value, dtype=np.float32).reshape(-1, 1, 1)
    dim = value.shape[0]
    side = diameter * 2 + 1
    reg = np.ones((dim, side, side), dtype=np.float32) * value
    if is_offset and dim == 2:
        delta = np.arange(side) - radius
        reg[0] = reg[0] - delta.reshape(1, -1)
        reg[1] = reg[1] - delta.reshape(-1, 1)

    height, width = heatmap.shape[0:2]
    x, y, left, right, top, bottom = _window(center, radius, height, width)
    masked_heatmap = heatmap[y - top:y + bottom, x - left:x + right]
    masked_regmap = regmap[:, y - top:y + bottom, x - left:x + right]
    masked_gaussian = gaussian[radius - top:radius + bottom, radius - left:radius + right]
    masked_reg = reg[:, radius - top:radius + bottom, radius - left:radius + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        # compared in float64 (gaussian) against the float32 map, as the reference does
        take = (masked_gaussian >= masked_heatmap)[None]
        masked_regmap[...] = np.where(take, masked_reg, masked_regmap)
    return regmap


def _clipped_span(start: int, stop: int, limit: int) -> tuple[slice, slice]:
    """The part of [start, stop) inside [0, limit): as a slice of the map and of the window that begins at start."""
    lo, hi = max(start, 0), min(stop, limit)
    return slice(lo, hi), slice(lo - start, hi - start)


def draw_msra_gaussian(heatmap: np.ndarray, center, sigma) -> np.ndarray:
    """Max-merge an untruncated gaussian (window 3 sigma) at round(center) into `heatmap`, in place."""
    reach = sigma * 3
    peak_col, peak_row = int(center[0] + 0.5), int(center[1] + 0.5)
    rows, cols = heatmap.shape[0], heatmap.shape[1]
    # int() truncates towards zero: a fractional reach shifts a window that crosses the border
    first_col, first_row = int(peak_col - reach), int(peak_row - reach)
    end_col, end_row = int(peak_col + reach + 1), int(peak_row + reach + 1)
    if first_col >= cols or first_row >= rows or end_col < 0 or end_row < 0:
        return heatmap
    side = 2 * reach + 1
    # squared distances in float32, as the reference computes them, so the merged values match bit for bit
    sq = (np.arange(0, side, 1, np.float32) - side // 2) ** 2
    window = np.exp(-(sq[None, :] + sq[:, None]) / (2 * sigma ** 2))
    map_rows, win_rows = _clipped_span(first_row, end_row, rows)
    map_cols, win_cols = _clipped_span(first_col, end_col, cols)
    heatmap[map_rows, map_cols] = np.maximum(heatmap[map_rows, map_cols], window[win_rows, win_cols])
    return heatmap


def msra_sigma(radius: int) -> int:
    """Port-only: an integer sigma for draw_msra_gaussian derived from a umich radius (about (2r+1)/6, >= 1).

    The umich gaussian of radius r has sigma (2r+1)/6; an integer keeps the MSRA window (3 sigma)
    integral, which its truncating window arithmetic needs to stay centred near the borders.
    """
    return max(1, round((2 * int(radius) + 1) / 6.0))


# ----------------------------------------------------------------------------- colour augmentation
def grayscale(image: np.ndarray) -> np.ndarray:
    """BGR -> single-channel luminance (OpenCV weights)."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def lighting_(data_rng: np.random.RandomState, image: np.ndarray, alphastd: float, eigval, eigvec) -> None:
    """PCA lighting noise: add eigvec @ (eigval * N(0, alphastd)) to every pixel, in place."""
    alpha = data_rng.normal(scale=alphastd, size=(3,))
    delta = np.dot(eigvec, eigval * alpha)
    if image.ndim == 3 and image.flags.c_contiguous and delta.shape == image.shape[2:]:
        # same additions over rows of W*C values: far faster than numpy's inner loop over 3 channels
        rows = image.reshape(image.shape[0], -1)
        rows += np.tile(delta, image.shape[1])
    else:
        image += delta


def blend_(alpha: float, image1: np.ndarray, image2) -> None:
    """image1 = alpha * image1 + (1 - alpha) * image2, in place (image2 is scaled in place when an array)."""
    image1 *= alpha
    image2 *= (1 - alpha)
    image1 += image2


def saturation_(data_rng, image, gs, gs_mean, var) -> None:
    """Blend towards the grey image by a random factor in [1 - var, 1 + var]."""
    alpha = 1.0 + data_rng.uniform(low=-var, high=var)
    blend_(alpha, image, gs[:, :, None])


def brightness_(data_rng, image, gs, gs_mean, var) -> None:
    """Scale intensities by a random factor in [1 - var, 1 + var]."""
    alpha = 1.0 + data_rng.uniform(low=-var, high=var)
    image *= alpha


def contrast_(data_rng, image, gs, gs_mean, var) -> None:
    """Blend towards the mean grey level by a random factor in [1 - var, 1 + var]."""
    alpha = 1.0 + data_rng.uniform(low=-var, high=var)
    blend_(alpha, image, gs_mean)


def color_aug(data_rng: np.random.RandomState, image: np.ndarray, eig_val, eig_vec) -> None:
    """Brightness/contrast/saturation in a random order (python `random`), then PCA lighting, in place."""
    gray = grayscale(image)
    # taken before the jitters: saturation_ scales `gray` in place, the mean stays that of the input
    gray_mean = gray.mean()
    jitters = [brightness_, contrast_, saturation_]
    random.shuffle(jitters)
    for jitter in jitters:
        jitter(data_rng, image, gray, gray_mean, 0.4)
    lighting_(data_rng, image, 0.1, eig_val, eig_vec)
