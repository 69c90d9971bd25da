"""Per-object reference implementations of the ctdet and multi_pose training samples (test oracle, slow).

They follow the original's sample algorithm step by step: one Python iteration per object (and per joint),
one point at a time through the affine matrix, hm.max over all classes for every object with --dense_wh,
mean/std and PCA lighting broadcast over the 3-channel axis. They share the project's gaussian-drawing and
brightness/contrast/saturation primitives (utils.image), so a comparison isolates the sample-level code.
tests/test_bench_data.py checks the datasets' vectorised __getitem__ against them; src/tools/bench_data.py
times both.
"""
from __future__ import annotations

import math
import os
import random
from collections.abc import Callable

import cv2
import numpy as np

from datasets.sample.common import mse_sigma as ctdet_mse_sigma
from datasets.sample.common import mse_sigma as pose_mse_sigma
from datasets.sample.multi_pose import dense_radius
from utils.image import (
    affine_transform,
    brightness_,
    contrast_,
    draw_dense_reg,
    draw_msra_gaussian,
    draw_umich_gaussian,
    gaussian_radius,
    get_affine_transform,
    grayscale,
    saturation_,
)

Sample = dict
SampleFn = Callable[[object, int], Sample]


def _ref_load(ds, index: int):
    """(img_id, image, annotations, number of objects) the way the original reads them."""
    img_id = ds.images[index]
    file_name = ds.coco.loadImgs(ids=[img_id])[0]["file_name"]
    img = cv2.imread(os.path.join(ds.img_dir, file_name))
    anns = ds.coco.loadAnns(ids=ds.coco.getAnnIds(imgIds=[img_id]))
    return img_id, img, anns, min(len(anns), ds.max_objs)


def _ref_border(border: int, size: int) -> int:
    """Halve the crop border until it fits the image twice."""
    div = 1
    while size - border // div <= border // div:
        div *= 2
    return border // div


def _ref_crop(opt, img: np.ndarray, c: np.ndarray, s):
    """Random scale + centre (or shift/scale with --not_rand_crop), in the original's draw order."""
    height, width = img.shape[:2]
    if not opt.not_rand_crop:
        s = s * np.random.choice(np.arange(0.6, 1.4, 0.1))
        wb, hb = _ref_border(128, width), _ref_border(128, height)
        c[0] = np.random.randint(low=wb, high=width - wb)
        c[1] = np.random.randint(low=hb, high=height - hb)
    else:
        c[0] += s * np.clip(np.random.randn() * opt.shift, -2 * opt.shift, 2 * opt.shift)
        c[1] += s * np.clip(np.random.randn() * opt.shift, -2 * opt.shift, 2 * opt.shift)
        s = s * np.clip(np.random.randn() * opt.scale + 1, 1 - opt.scale, 1 + opt.scale)
    return c, s


def _ref_color_aug(rng: np.random.RandomState, image: np.ndarray, eig_val, eig_vec) -> None:
    """Brightness/contrast/saturation in a shuffled order, then PCA lighting broadcast over the channel axis."""
    steps = [brightness_, contrast_, saturation_]
    random.shuffle(steps)
    gs = grayscale(image)
    gs_mean = gs.mean()
    for step in steps:
        step(rng, image, gs, gs_mean, 0.4)
    image += np.dot(eig_vec, eig_val * rng.normal(scale=0.1, size=(3,)))


def _ref_input(ds, img: np.ndarray, trans: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp, scale to [0, 1], colour-augment (train), normalise and go CHW."""
    inp = cv2.warpAffine(img, trans, size, flags=cv2.INTER_LINEAR).astype(np.float32) / 255.
    if ds.split == "train" and not ds.opt.no_color_aug:
        _ref_color_aug(ds._data_rng, inp, ds._eig_val, ds._eig_vec)
    return ((inp - ds.mean) / ds.std).transpose(2, 0, 1)


def reference_ctdet(ds, index: int) -> Sample:
    """ctdet sample computed object by object, as the original's CTDetDataset.__getitem__ does."""
    opt = ds.opt
    img_id, img, anns, num_objs = _ref_load(ds, index)
    height, width = img.shape[:2]
    c = np.array([width / 2., height / 2.], dtype=np.float32)
    if opt.keep_res:
        input_h, input_w = (height | opt.pad) + 1, (width | opt.pad) + 1
        s = np.array([input_w, input_h], dtype=np.float32)
    else:
        s = max(height, width) * 1.0
        input_h, input_w = opt.input_h, opt.input_w
    flipped = False
    if ds.split == "train":
        c, s = _ref_crop(opt, img, c, s)
        if np.random.random() < opt.flip:
            flipped = True
            img = img[:, ::-1, :]
            c[0] = width - c[0] - 1
    inp = _ref_input(ds, img, get_affine_transform(c, s, 0, [input_w, input_h]), (input_w, input_h))

    out_h, out_w = input_h // opt.down_ratio, input_w // opt.down_ratio
    trans = get_affine_transform(c, s, 0, [out_w, out_h])
    n_cls, m = ds.num_classes, ds.max_objs
    hm = np.zeros((n_cls, out_h, out_w), dtype=np.float32)
    wh = np.zeros((m, 2), dtype=np.float32)
    dense_wh = np.zeros((2, out_h, out_w), dtype=np.float32)
    reg = np.zeros((m, 2), dtype=np.float32)
    ind = np.zeros(m, dtype=np.int64)
    reg_mask = np.zeros(m, dtype=np.uint8)
    cat_spec_wh = np.zeros((m, n_cls * 2), dtype=np.float32)
    cat_spec_mask = np.zeros((m, n_cls * 2), dtype=np.uint8)
    gt_det = []
    for k in range(num_objs):
        x, y, bw, bh = anns[k]["bbox"]
        box = np.array([x, y, x + bw, y + bh], dtype=np.float32)
        cls = int(ds.cat_ids[anns[k]["category_id"]])
        if flipped:
            box[0], box[2] = width - box[2] - 1, width - box[0] - 1
        box[0:2] = affine_transform(box[0:2], trans)
        box[2:4] = affine_transform(box[2:4], trans)
        box[0], box[2] = np.clip(box[0], 0, out_w - 1), np.clip(box[2], 0, out_w - 1)
        box[1], box[3] = np.clip(box[1], 0, out_h - 1), np.clip(box[3], 0, out_h - 1)
        h, w = box[3] - box[1], box[2] - box[0]
        if not (h > 0 and w > 0):
            continue
        radius = max(0, int(gaussian_radius((math.ceil(h), math.ceil(w)))))
        ct = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float32)
        ct_int = ct.astype(np.int32)
        if opt.mse_loss:
            radius = ctdet_mse_sigma(opt, radius)
            draw_msra_gaussian(hm[cls], ct_int, radius)
        else:
            draw_umich_gaussian(hm[cls], ct_int, radius)
        wh[k] = w, h
        ind[k] = ct_int[1] * out_w + ct_int[0]
        reg[k] = ct - ct_int
        reg_mask[k] = 1
        cat_spec_wh[k, 2 * cls:2 * cls + 2] = wh[k]
        cat_spec_mask[k, 2 * cls:2 * cls + 2] = 1
        if opt.dense_wh:
            draw_dense_reg(dense_wh, hm.max(axis=0), ct_int, wh[k], radius)
        gt_det.append([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2, ct[1] + h / 2, 1, cls])

    ret = {"input": inp, "hm": hm, "reg_mask": reg_mask, "ind": ind}
    if opt.dense_wh:
        top = hm.max(axis=0, keepdims=True)
        ret["dense_wh"], ret["dense_wh_mask"] = dense_wh, np.concatenate([top, top], axis=0)
    elif opt.cat_spec_wh:
        ret["cat_spec_wh"], ret["cat_spec_mask"] = cat_spec_wh, cat_spec_mask
    else:
        ret["wh"] = wh
    if opt.reg_offset:
        ret["reg"] = reg
    if opt.debug > 0 or ds.split != "train":
        det = np.array(gt_det, dtype=np.float32) if gt_det else np.zeros((1, 6), dtype=np.float32)
        ret["meta"] = {"c": c, "s": s, "gt_det": det, "img_id": img_id}
    return ret


def reference_multi_pose(ds, index: int) -> Sample:
    """multi_pose sample computed object by object and joint by joint, as the original's MultiPoseDataset does."""
    opt = ds.opt
    img_id, img, anns, num_objs = _ref_load(ds, index)
    height, width = img.shape[:2]
    c = np.array([width / 2., height / 2.], dtype=np.float32)
    s = max(height, width) * 1.0
    rot = 0
    flipped = False
    if ds.split == "train":
        c, s = _ref_crop(opt, img, c, s)
        if np.random.random() < opt.aug_rot:
            rot = np.clip(np.random.randn() * opt.rotate, -2 * opt.rotate, 2 * opt.rotate)
        if np.random.random() < opt.flip:
            flipped = True
            img = img[:, ::-1, :]
            c[0] = width - c[0] - 1
    res = opt.input_res
    inp = _ref_input(ds, img, get_affine_transform(c, s, rot, [res, res]), (res, res))

    out = opt.output_res
    nj, m = ds.num_joints, ds.max_objs
    trans_rot = get_affine_transform(c, s, rot, [out, out])
    trans = get_affine_transform(c, s, 0, [out, out])
    hm = np.zeros((ds.num_classes, out, out), dtype=np.float32)
    hm_hp = np.zeros((nj, out, out), dtype=np.float32)
    dense_kps = np.zeros((nj, 2, out, out), dtype=np.float32)
    dense_kps_mask = np.zeros((nj, out, out), dtype=np.float32)
    wh = np.zeros((m, 2), dtype=np.float32)
    kps = np.zeros((m, nj * 2), dtype=np.float32)
    reg = np.zeros((m, 2), dtype=np.float32)
    ind = np.zeros(m, dtype=np.int64)
    reg_mask = np.zeros(m, dtype=np.uint8)
    kps_mask = np.zeros((m, nj * 2), dtype=np.uint8)
    hp_offset = np.zeros((m * nj, 2), dtype=np.float32)
    hp_ind = np.zeros(m * nj, dtype=np.int64)
    hp_mask = np.zeros(m * nj, dtype=np.int64)
    draw = draw_msra_gaussian if opt.mse_loss else draw_umich_gaussian
    gt_det = []
    for k in range(num_objs):
        x, y, bw, bh = anns[k]["bbox"]
        box = np.array([x, y, x + bw, y + bh], dtype=np.float32)
        cls = int(anns[k]["category_id"]) - 1
        pts = np.array(anns[k]["keypoints"], np.float32).reshape(nj, 3)
        if flipped:
            box[0], box[2] = width - box[2] - 1, width - box[0] - 1
            pts[:, 0] = width - pts[:, 0] - 1
            for a, b in ds.flip_idx:
                pa = pts[a].copy()
                pts[a] = pts[b]
                pts[b] = pa
        box[0:2] = affine_transform(box[0:2], trans)
        box[2:4] = affine_transform(box[2:4], trans)
        box = np.clip(box, 0, out - 1)
        h, w = box[3] - box[1], box[2] - box[0]
        if not ((h > 0 and w > 0) or rot != 0):
            continue
        radius = max(0, int(gaussian_radius((math.ceil(h), math.ceil(w)))))
        spread = pose_mse_sigma(opt, radius) if opt.mse_loss else radius
        ct = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float32)
        ct_int = ct.astype(np.int32)
        wh[k] = w, h
        ind[k] = ct_int[1] * out + ct_int[0]
        reg[k] = ct - ct_int
        reg_mask[k] = 1
        if pts[:, 2].sum() == 0:
            hm[cls, ct_int[1], ct_int[0]] = 0.9999
            reg_mask[k] = 0
        for j in range(nj):
            if pts[j, 2] <= 0:
                continue
            pts[j, :2] = affine_transform(pts[j, :2], trans_rot)
            px, py = pts[j, 0], pts[j, 1]
            if not (0 <= px < out and 0 <= py < out):
                continue
            kps[k, 2 * j:2 * j + 2] = pts[j, :2] - ct_int
            kps_mask[k, 2 * j:2 * j + 2] = 1
            p_int = pts[j, :2].astype(np.int32)
            hp_offset[k * nj + j] = pts[j, :2] - p_int
            hp_ind[k * nj + j] = p_int[1] * out + p_int[0]
            hp_mask[k * nj + j] = 1
            if opt.dense_hp:
                # before the centre gaussian is drawn: it decides where offsets are written
                draw_dense_reg(dense_kps[j], hm[cls], ct_int, pts[j, :2] - ct_int, dense_radius(opt, radius),
                               is_offset=True)
                draw(dense_kps_mask[j], ct_int, spread)
            draw(hm_hp[j], p_int, spread)
        draw(hm[cls], ct_int, spread)
        gt_det.append([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2, ct[1] + h / 2, 1]
                      + pts[:, :2].reshape(nj * 2).tolist() + [cls])
    if rot != 0:
        hm = hm * 0 + 0.9999
        reg_mask *= 0
        kps_mask *= 0

    ret = {"input": inp, "hm": hm, "reg_mask": reg_mask, "ind": ind, "wh": wh}
    if opt.dense_hp:
        ret["dense_hps"] = dense_kps.reshape(nj * 2, out, out)
        both = np.stack([dense_kps_mask, dense_kps_mask], axis=1)
        ret["dense_hps_mask"] = both.reshape(nj * 2, out, out)
    else:
        ret["hps"], ret["hps_mask"] = kps, kps_mask
    if opt.reg_offset:
        ret["reg"] = reg
    if opt.hm_hp:
        ret["hm_hp"] = hm_hp
    if opt.reg_hp_offset:
        ret["hp_offset"], ret["hp_ind"], ret["hp_mask"] = hp_offset, hp_ind, hp_mask
    if opt.debug > 0 or ds.split != "train":
        det = np.array(gt_det, dtype=np.float32) if gt_det else np.zeros((1, 40), dtype=np.float32)
        ret["meta"] = {"c": c, "s": s, "gt_det": det, "img_id": img_id}
    return ret


REFERENCES: dict[str, SampleFn] = {"ctdet": reference_ctdet, "multi_pose": reference_multi_pose}
