"""ctdet / exdet sample generation on a tiny generated COCO-layout dataset."""
import json
import os

import cv2
import numpy as np
import pytest

from datasets.dataset_factory import get_dataset
from opts import opts
from utils.errors import UserError

# (x, y, w, h, category_id) per image; 200 x 160 images
BOXES = [[(20, 30, 60, 40, 1), (120, 60, 50, 80, 3)], [(10, 10, 100, 100, 90)], []]
W, H = 200, 160


def _write_coco(root, split="val2017", extreme=False):
    img_dir = os.path.join(root, "coco", split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "coco", "annotations"), exist_ok=True)
    images, anns = [], []
    rs = np.random.RandomState(0)
    for i, boxes in enumerate(BOXES):
        name = f"{i:03d}.jpg"
        cv2.imwrite(os.path.join(img_dir, name), rs.randint(0, 255, (H, W, 3)).astype(np.uint8))
        images.append({"id": i + 1, "file_name": name, "height": H, "width": W})
        for x, y, w, h, cat in boxes:
            a = {"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "bbox": [x, y, w, h],
                 "area": w * h, "iscrowd": 0}
            if extreme:
                a["extreme_points"] = [x + w / 2, y, x, y + h / 3, x + w / 4, y + h, x + w, y + h / 2]
            anns.append(a)
    name = ("instances_extreme_" if extreme else "instances_") + split + ".json"
    with open(os.path.join(root, "coco", "annotations", name), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": [{"id": c} for c in (1, 3, 90)]}, f)


def _dataset(tmp_path, args, split="val", task="ctdet", **extra):
    opt = opts().init([task] + list(args))
    opt.data_dir = str(tmp_path)
    for k, v in extra.items():
        setattr(opt, k, v)
    return get_dataset("coco", task)(opt, split)


@pytest.fixture
def data_root(tmp_path):
    _write_coco(str(tmp_path))
    return tmp_path


def _expected_centres(opt_out, boxes, flipped=False):
    """Box centres on the 128x128 output map (s = max(W, H) = 200, centre (W/2, H/2), mirrored when flipped)."""
    k = opt_out / max(W, H)
    c_x = W - W / 2 - 1 if flipped else W / 2
    out = []
    for x, y, w, h, _ in boxes:
        x1, x2 = (W - (x + w) - 1, W - x - 1) if flipped else (x, x + w)
        cx = ((x1 + x2) / 2 - c_x) * k + opt_out / 2
        cy = ((y + y + h) / 2 - H / 2) * k + opt_out / 2
        out.append((cx, cy, w * k, h * k))
    return out


def test_val_sample_shapes_and_targets(data_root):
    ds = _dataset(data_root, [])
    assert len(ds) == 3 and ds.images == [1, 2, 3]
    ret = ds[0]
    assert ret["input"].shape == (3, 512, 512) and ret["input"].dtype == np.float32
    assert ret["hm"].shape == (80, 128, 128)
    assert ret["ind"].dtype == np.int64 and ret["reg_mask"].dtype == np.uint8
    assert ret["wh"].shape == (128, 2) and ret["reg"].shape == (128, 2)
    assert set(ret) == {"input", "hm", "reg_mask", "ind", "wh", "reg", "meta"}
    cls = [0, 2]  # category ids 1 and 3
    for k, (cx, cy, w, h) in enumerate(_expected_centres(128, BOXES[0])):
        assert ret["reg_mask"][k] == 1
        ix, iy = int(cx), int(cy)
        assert ret["ind"][k] == iy * 128 + ix
        np.testing.assert_allclose(ret["reg"][k], [cx - ix, cy - iy], atol=1e-4)
        np.testing.assert_allclose(ret["wh"][k], [w, h], atol=1e-4)
        assert ret["hm"][cls[k], iy, ix] == 1.0
        assert np.unravel_index(ret["hm"][cls[k]].argmax(), (128, 128)) == (iy, ix)
    assert ret["reg_mask"][2:].sum() == 0 and ret["hm"].max(axis=(1, 2)).nonzero()[0].tolist() == cls
    meta = ret["meta"]
    np.testing.assert_allclose(meta["c"], [100, 80])
    assert meta["s"] == 200 and meta["img_id"] == 1
    np.testing.assert_allclose(meta["gt_det"][:, :4], [[20 * .64, 30 * .64 + 12.8, 80 * .64, 70 * .64 + 12.8],
                                                      [120 * .64, 60 * .64 + 12.8, 170 * .64, 140 * .64 + 12.8]],
                               atol=1e-3)
    np.testing.assert_array_equal(meta["gt_det"][:, 4:], [[1, 0], [1, 2]])


def test_no_objects_and_coco_category_mapping(data_root):
    ds = _dataset(data_root, [])
    assert ds[1]["hm"][79].max() == 1.0  # category id 90 is the last class
    empty = ds[2]
    assert empty["hm"].max() == 0 and empty["reg_mask"].sum() == 0
    np.testing.assert_array_equal(empty["meta"]["gt_det"], np.zeros((1, 6), np.float32))


def test_train_flip_mirrors_targets(tmp_path):
    _write_coco(str(tmp_path), "train2017")
    ds = _dataset(tmp_path, ["--not_rand_crop", "--no_color_aug", "--scale", "0", "--shift", "0", "--flip", "1"],
                  split="train")
    np.random.seed(0)
    ret = ds[0]
    assert "meta" not in ret
    for k, (cx, cy, _, _) in enumerate(_expected_centres(128, BOXES[0], flipped=True)):
        assert ret["ind"][k] == int(cy) * 128 + int(cx)
    # the input is the mirrored val input
    val = _dataset(tmp_path, [], split="train", flip=0.0, not_rand_crop=True, scale=0, shift=0, no_color_aug=True)
    np.random.seed(0)
    unflipped = val[0]["input"]
    # with the centre mirrored too, output column j shows what column 512 - j shows unflipped
    mirrored = unflipped[:, :, ::-1][:, :, :-1]
    assert np.abs(ret["input"][:, :, 1:] - mirrored).mean() < 0.05
    assert np.abs(ret["input"][:, :, 1:] - unflipped[:, :, 1:]).mean() > 0.2


def test_train_random_crop_deterministic_given_seed(tmp_path):
    _write_coco(str(tmp_path), "train2017")
    ds = _dataset(tmp_path, [], split="train")
    import random
    outs = []
    for _ in range(2):
        np.random.seed(7)
        random.seed(7)
        ds._data_rng = np.random.RandomState(123)
        outs.append(ds[0])
    for key in ("input", "hm", "ind", "wh"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key])


def test_dense_wh_and_cat_spec_wh(data_root):
    dense = _dataset(data_root, ["--dense_wh"])[0]
    assert "wh" not in dense and dense["dense_wh"].shape == (2, 128, 128)
    np.testing.assert_array_equal(dense["dense_wh_mask"][0], dense["hm"].max(axis=0))
    cx, cy, w, h = _expected_centres(128, BOXES[0])[0]
    np.testing.assert_allclose(dense["dense_wh"][:, int(cy), int(cx)], [w, h], atol=1e-4)
    assert dense["dense_wh"][:, 0, 0].sum() == 0
    cat = _dataset(data_root, ["--cat_spec_wh"])[0]
    assert "wh" not in cat and cat["cat_spec_wh"].shape == (128, 160)
    np.testing.assert_allclose(cat["cat_spec_wh"][1, 4:6], [w2 for w2 in _expected_centres(128, BOXES[0])[1][2:]],
                               atol=1e-4)
    assert cat["cat_spec_mask"][1].tolist().count(1) == 2 and cat["cat_spec_mask"][1, 4] == 1
    no_reg = _dataset(data_root, ["--not_reg_offset"])[0]
    assert "reg" not in no_reg


def test_mse_loss_uses_msra_gaussians(data_root):
    ret = _dataset(data_root, ["--mse_loss"])[0]  # no hm_gauss option: sigma derived from the radius
    cx, cy, _, _ = _expected_centres(128, BOXES[0])[0]
    assert ret["hm"][0, int(cy), int(cx)] == 1.0
    assert np.isfinite(ret["hm"]).all()
    fixed = _dataset(data_root, ["--mse_loss"], hm_gauss=2)[0]
    row = fixed["hm"][0, int(cy)]
    assert row[int(cx) + 6] > 0 and row[int(cx) + 7] == 0  # window 3 sigma


def test_keep_res_input_size(data_root):
    ret = _dataset(data_root, ["--keep_res"])[0]
    assert ret["input"].shape == (3, (160 | 31) + 1, (200 | 31) + 1) == (3, 192, 224)
    assert ret["hm"].shape == (80, 48, 56)
    np.testing.assert_array_equal(ret["meta"]["s"], [224, 192])


def test_missing_image_is_a_user_error(data_root):
    ds = _dataset(data_root, [])
    os.remove(os.path.join(str(data_root), "coco", "val2017", "001.jpg"))
    with pytest.raises(UserError, match="001.jpg"):
        ds[1]


def test_exdet_sample(tmp_path):
    _write_coco(str(tmp_path), extreme=True)
    ds = _dataset(tmp_path, [], task="exdet")
    ret = ds[0]
    assert set(ret) == {"input", "hm_t", "hm_l", "hm_b", "hm_r", "hm_c", "reg_mask", "reg_t", "reg_l", "reg_b",
                        "reg_r", "ind_t", "ind_l", "ind_b", "ind_r"}
    assert ret["hm_t"].shape == (80, 128, 128) and ret["reg_mask"][:2].tolist() == [1, 1]
    k = 128 / 200
    x, y, w, h, _ = BOXES[0][0]
    tx, ty = (x + w / 2 - 100) * k + 64, (y - 80) * k + 64
    assert ret["ind_t"][0] == int(ty) * 128 + int(tx)
    assert ret["hm_t"][0, int(ty), int(tx)] == 1.0
    np.testing.assert_allclose(ret["reg_t"][0], [tx - int(tx), ty - int(ty)], atol=1e-4)
    assert ret["hm_c"][0].max() == 1.0
