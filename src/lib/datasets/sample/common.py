"""Pieces every training-sample class shares: image loading, the augmentation prologue and input normalisation."""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch.utils.data as data

from datasets.dataset.checks import ListField
from utils.image import affine_transform_pts, color_aug, get_affine_transform, msra_sigma
from utils.image_io import read_image as _read_file

# random-crop scale factors 0.6 .. 1.3 (np.arange keeps the reference's exact float steps)
CROP_SCALES = np.arange(0.6, 1.4, 0.1)


def read_image(path: str) -> np.ndarray:
    """BGR image of a dataset file (utils.image_io.read_image); a missing one points at the dataset."""
    return _read_file(path, fix="restore the file or regenerate the dataset")


def load_image_and_anns(ds, index: int):
    """(img_id, image path, BGR image, annotations truncated to max_objs) of sample `index`."""
    img_id = ds.images[index]
    file_name = ds.coco.loadImgs(ids=[img_id])[0]["file_name"]
    img_path = os.path.join(ds.img_dir, file_name)
    anns = ds.coco.loadAnns(ids=ds.coco.getAnnIds(imgIds=[img_id]))[:ds.max_objs]
    return img_id, img_path, read_image(img_path), anns


def input_frame(opt, height: int, width: int) -> tuple[np.ndarray, object, int, int]:
    """(centre, scale, input_h, input_w) of an image: padded to a multiple of pad + 1 with --keep_res,
    else the longer side scaled to the fixed input size."""
    c = np.array([width / 2., height / 2.], dtype=np.float32)
    if opt.keep_res:
        input_h, input_w = (height | opt.pad) + 1, (width | opt.pad) + 1
        return c, np.array([input_w, input_h], dtype=np.float32), input_h, input_w
    return c, max(height, width) * 1.0, opt.input_h, opt.input_w


def boxes_and_classes(anns: list[dict], cat_ids: dict, flipped: bool, width: int, trans: np.ndarray,
                      out_w: int, out_h: int) -> tuple[np.ndarray, np.ndarray]:
    """The annotations' boxes as float32 x1y1x2y2, flipped, mapped by `trans` and clipped to out_w x out_h,
    with their contiguous class indices; all boxes at once."""
    boxes = np.array([ann["bbox"] for ann in anns], dtype=np.float64).reshape(-1, 4)
    bbox = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]],
                    axis=1).astype(np.float32)
    cls_ids = np.array([int(cat_ids[ann["category_id"]]) for ann in anns], dtype=np.int64)
    if flipped:
        bbox[:, [0, 2]] = width - bbox[:, [2, 0]] - 1
    bbox = affine_transform_pts(bbox.reshape(-1, 2), trans).astype(np.float32).reshape(-1, 4)
    bbox[:, [0, 2]] = np.clip(bbox[:, [0, 2]], 0, out_w - 1)
    bbox[:, [1, 3]] = np.clip(bbox[:, [1, 3]], 0, out_h - 1)
    return bbox, cls_ids


def normalize_input(inp_u8: np.ndarray, mean: np.ndarray, std: np.ndarray, rng=None, eig_val=None,
                    eig_vec=None) -> np.ndarray:
    """uint8 HWC crop -> float32 CHW network input; colour augmentation first when `rng` is given."""
    inp = np.divide(inp_u8, 255., dtype=np.float32)  # one pass, same values as astype(float32) / 255.
    if rng is not None:
        color_aug(rng, inp, eig_val, eig_vec)
    # per-channel mean/std over rows of W*C values: the same element-wise arithmetic as broadcasting
    # over the channel axis, but numpy's inner loop then runs W*C long instead of 3 (several times faster)
    height, width, channels = inp.shape
    rows = inp.reshape(height, width * channels)
    rows -= _channel_row(mean, width, channels)
    rows /= _channel_row(std, width, channels)
    return inp.transpose(2, 0, 1)


def _channel_row(v: np.ndarray, width: int, channels: int) -> np.ndarray:
    """Per-channel values (any shape broadcastable to C) repeated along one image row (W*C values)."""
    return np.tile(np.broadcast_to(np.asarray(v).reshape(-1), (channels,)), width)


def mse_sigma(opt, radius: int):
    """Sigma of the MSRA gaussian drawn with --mse_loss.

    The original reads opt.hm_gauss, an option it never defines (AttributeError). Honour it when
    something sets it; otherwise derive an integer sigma from the object's gaussian radius (the umich
    gaussian's (2r+1)/6, at least 1). Like the original, that sigma is also the dense_wh radius.
    """
    hm_gauss = getattr(opt, "hm_gauss", None)
    if hm_gauss is not None and hm_gauss > 0:
        return hm_gauss
    return msra_sigma(radius)


def _jitter(f: float) -> float:
    """One normal draw times f, clipped to +-2f."""
    return np.clip(np.random.randn() * f, -2 * f, 2 * f)


def _rescale(f: float) -> float:
    """One normal draw around 1 with spread f, clipped to [1-f, 1+f]."""
    return np.clip(np.random.randn() * f + 1, 1 - f, 1 + f)


def shift_then_scale(c: np.ndarray, s, sf: float, cf: float):
    """ctdet / multi_pose order: centre shifted by a fraction of the scale (x, then y), then rescaled."""
    c[0] += s * _jitter(cf)
    c[1] += s * _jitter(cf)
    return s * _rescale(sf)


def scale_then_shift(c: np.ndarray, s, width: int, height: int, sf: float, cf: float):
    """exdet / ddd order: rescaled first, then the centre shifted by a fraction of the image size."""
    s = s * _rescale(sf)
    c[0] += width * _jitter(cf)
    c[1] += height * _jitter(cf)
    return s


class SampleDataset(data.Dataset):
    """Base of the sample classes: the original's box/border helpers and the shared augmentation steps."""

    def task_fields(self) -> list[ListField]:
        """List fields this task reads from every annotation, beyond the dataset's own (checked at load)."""
        return []

    def _coco_box_to_bbox(self, box):
        return np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], dtype=np.float32)

    def _get_border(self, border: int, size: int) -> int:
        i = 1
        while size - border // i <= border // i:
            i *= 2
        return border // i

    def _train_augment(self, img: np.ndarray, c: np.ndarray, s, *, shift_by_image: bool = False,
                       rotate: bool = False, flip_centre: bool = True):
        """Random crop (or shift/scale), rotation and flip of a training image; updates `c` in place.

        Random numbers are drawn in the original's order: crop scale, centre x, centre y (or the
        shift/scale draws), then rotation when `rotate`, then flip. Returns (img, s, rot, flipped).
        """
        opt = self.opt
        height, width = img.shape[0], img.shape[1]
        if not opt.not_rand_crop:
            s = s * np.random.choice(CROP_SCALES)
            w_border = self._get_border(128, width)
            h_border = self._get_border(128, height)
            c[0] = np.random.randint(low=w_border, high=width - w_border)
            c[1] = np.random.randint(low=h_border, high=height - h_border)
        elif shift_by_image:
            s = scale_then_shift(c, s, width, height, opt.scale, opt.shift)
        else:
            s = shift_then_scale(c, s, opt.scale, opt.shift)
        rot = 0
        if rotate and np.random.random() < opt.aug_rot:
            rf = opt.rotate
            rot = np.clip(np.random.randn() * rf, -rf * 2, rf * 2)
        flipped = False
        if np.random.random() < opt.flip:
            flipped = True
            img = img[:, ::-1, :]
            if flip_centre:
                c[0] = width - c[0] - 1
        return img, s, rot, flipped

    def _network_input(self, img: np.ndarray, c: np.ndarray, s, rot, input_w: int, input_h: int,
                       augment_color: bool) -> np.ndarray:
        """Affine crop of `img` to input_w x input_h, optional colour augmentation, mean/std normalisation."""
        trans_input = get_affine_transform(c, s, rot, [input_w, input_h])
        inp = cv2.warpAffine(img, trans_input, (input_w, input_h), flags=cv2.INTER_LINEAR)
        if augment_color:
            return normalize_input(inp, self.mean, self.std, self._data_rng, self._eig_val, self._eig_vec)
        return normalize_input(inp, self.mean, self.std)
