"""Debugger: palette and themes, drawing primitives, headless show (files instead of windows)."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import utils.debugger as dbg
from utils.debugger import Debugger, DisplayProbe, dataset_labels, debugger_for, denormalize


@pytest.fixture
def headless(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(dbg, "PROCESS_DISPLAY", DisplayProbe())


def test_palette_black_and_white_theme():
    black = Debugger(dataset="coco", theme="black")
    assert black.colors.shape == (80, 1, 1, 3) and black.colors.dtype == np.uint8
    assert black.colors[1, 0, 0].tolist() == [216, 82, 24]  # 0.850/0.325/0.098 * 255, truncated
    white = Debugger(dataset="coco", theme="white")
    assert white.colors.max() <= 153
    img = np.zeros((60, 60, 3), np.uint8)
    white.add_img(img, "x")
    white.add_coco_bbox([10, 20, 50, 55], 0, 0.9, show_txt=False, img_id="x")
    assert white.imgs["x"][20, 30].tolist() == [255, 128, 128]  # class 0 in the white theme
    assert img.max() == 0  # add_img stores a copy


def test_class_names_per_dataset():
    assert Debugger(dataset="coco").names[0] == "person"
    assert Debugger(dataset="pascal").names[-1] == "tvmonitor"
    assert Debugger(dataset="kitti").names == ["p", "v", "b"]
    hp = Debugger(dataset="coco_hp")
    assert hp.names == ["p"] and hp.num_joints == 17 and len(hp.edges) == 18


def test_synthetic_dataset_names_from_dataset_class():
    from datasets.dataset_factory import dataset_factory
    cls = dataset_factory["synth"]
    assert Debugger(dataset="synth").names == [n for n in cls.class_name if n != "__background__"]
    assert Debugger(dataset="synth_hp").names == ["person"]
    assert Debugger(dataset="synth_kitti").names == ["p", "v", "b"]


def test_names_by_class_count_and_given_names():
    assert Debugger(num_classes=80).names[-1] == "toothbrush"
    assert Debugger(num_classes=20).names[0] == "aeroplane"
    assert Debugger(num_classes=3).names == ["p", "v", "b"]
    assert Debugger(dataset="coco", num_classes=20).names[0] == "person"  # a named coco wins, as the original
    assert Debugger().names[0] == "person"
    d = Debugger(class_names=["__background__", "a", "b"], num_joints=5)
    assert d.names == ["a", "b"] and d.num_joints == 5
    assert dataset_labels("coco_hp") == (["p"], 17)


def test_debugger_for_options(tmp_path):
    opt = SimpleNamespace(dataset="pascal", debug=3, debugger_theme="white")
    d = debugger_for(opt, str(tmp_path), "7")
    assert d.ipynb and d.theme == "white" and d.out_dir == str(tmp_path) and d.out_prefix == "7"
    assert d.names[-1] == "tvmonitor"


def test_denormalize_and_box_rows():
    mean = np.array([0.5, 0.5, 0.5], np.float32).reshape(1, 1, 3)
    std = np.array([0.25, 0.25, 0.25], np.float32).reshape(1, 1, 3)
    x = torch.zeros(3, 4, 5)
    x[0, 0, 0] = 10.0
    img = denormalize(x, mean, std)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert img[1, 1].tolist() == [127, 127, 127] and img[0, 0, 0] == 255
    d = Debugger(dataset="coco_hp")
    rows = np.zeros((2, 40), np.float32)
    rows[0, :5] = [5, 5, 40, 40, 0.9]
    rows[0, 5:39] = np.linspace(10, 30, 34)
    rows[1, :5] = [50, 50, 60, 60, 0.1]
    d.add_box_rows(np.zeros((64, 64, 3), np.uint8), rows, 0.5, "pose", with_pose=True)
    d.add_box_rows(np.zeros((64, 64, 3), np.uint8), rows, 0.5, "box")
    assert d.imgs["pose"].sum() > d.imgs["box"].sum() > 0
    assert d.imgs["box"][55, 50:61].sum() == 0  # the low-scoring row is not drawn


def test_gen_colormap_and_blend():
    d = Debugger(dataset="coco", theme="black")
    heat = np.zeros((2, 8, 10), np.float32)
    heat[1, 2, 3] = 1.0
    # as the original, output_res's first value is used as the width
    assert d.gen_colormap(heat).shape == (40, 32, 3)
    cmap = d.gen_colormap(heat, (10, 8))
    assert cmap.shape == (8, 10, 3) and cmap.dtype == np.uint8
    assert cmap[2, 3].tolist() == d.colors[1, 0, 0].tolist() and cmap[0, 0].tolist() == [0, 0, 0]
    cmap = d.gen_colormap(np.zeros((2, 8, 8), np.float32))
    back = np.full((32, 32, 3), 100, np.uint8)
    d.add_blend_img(back, cmap, "blend")
    out = d.imgs["blend"]
    assert out.shape == back.shape and out.dtype == np.uint8
    assert out[0, 0].tolist() == [30, 30, 30]  # 0.3 * back + 0.7 * 0


def test_coco_hp_skeleton_drawn():
    d = Debugger(dataset="coco_hp")
    d.add_img(np.zeros((100, 100, 3), np.uint8), "hp")
    pts = np.stack([np.linspace(10, 90, 17), np.linspace(10, 90, 17)], 1)
    d.add_coco_hp(pts.reshape(-1), img_id="hp")
    assert d.imgs["hp"].sum() > 0
    # edges are only drawn between joints with positive coordinates
    d.add_img(np.zeros((100, 100, 3), np.uint8), "one")
    pts = np.zeros((17, 2))
    pts[0] = [10, 10]
    pts[1] = [50, 50]
    d.add_coco_hp(pts.reshape(-1), img_id="one")
    assert d.imgs["one"][8, 12].tolist() == [255, 0, 255]  # joint 0 (beside the edge)
    assert d.imgs["one"][50, 50].tolist() == [255, 0, 0]  # joint 1 (left side)
    assert d.imgs["one"][30, 30].tolist() == [255, 0, 0]  # edge [0, 1]


def test_headless_show_writes_files(headless, tmp_path):
    d = Debugger(dataset="coco", out_dir=str(tmp_path / "out"))
    d.out_prefix = "img_"
    d.add_img(np.zeros((20, 30, 3), np.uint8), "ctdet")
    d.add_img(np.ones((20, 30, 3), np.uint8), "other")
    written = d.show_all_imgs(pause=True)  # must not block nor fail without a display
    assert sorted(os.path.basename(p) for p in written) == ["img_ctdet.png", "img_other.png"]
    assert sorted(os.listdir(tmp_path / "out")) == ["img_ctdet.png", "img_other.png"]


def test_headless_without_folder_is_silent(headless):
    d = Debugger(dataset="coco")
    d.add_img(np.zeros((5, 5, 3), np.uint8), "a")
    assert d.show_all_imgs() == []


def test_out_dir_per_instance_and_counter(headless, tmp_path, monkeypatch):
    monkeypatch.setattr(Debugger, "_saved_count", 0)
    for sub in ("a", "a", "b"):
        d = Debugger(dataset="coco", out_dir=str(tmp_path / sub))
        d.add_img(np.zeros((5, 5, 3), np.uint8), "x")
        d.show_all_imgs()
    assert sorted(os.listdir(tmp_path / "a")) == ["000001_x.png", "000002_x.png"]
    assert os.listdir(tmp_path / "b") == ["000003_x.png"]


def test_display_probe(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    probe = DisplayProbe()
    assert probe.available()
    probe.mark_unavailable()
    assert not probe.available()
    probe.reset()
    assert probe.available()
    # a Debugger given a probe without a display writes files instead of opening windows
    d = Debugger(dataset="coco", display=DisplayProbe())
    d.display.mark_unavailable()
    d.add_img(np.zeros((5, 5, 3), np.uint8), "a")
    assert d.show_all_imgs() == [] and not d.display.available()


def test_matplotlib_mode_saves_figure(headless, tmp_path):
    pytest.importorskip("matplotlib")
    d = Debugger(ipynb=True, dataset="coco", out_dir=str(tmp_path))
    d.out_prefix = "x_"
    d.add_img(np.zeros((10, 10, 3), np.uint8), "a")
    d.add_img(np.zeros((10, 10), np.uint8), "gray")
    d.show_all_imgs(pause=True)
    assert os.listdir(tmp_path) == ["x_figure.png"]


def test_save_all_imgs_names(tmp_path):
    d = Debugger(dataset="coco")
    d.add_img(np.zeros((5, 5, 3), np.uint8), "pred_hm")
    d.save_all_imgs(str(tmp_path), prefix="3")
    assert os.listdir(tmp_path) == ["3pred_hm.png"]


def test_bird_view_and_3d_boxes():
    pytest.importorskip("utils.ddd_utils")
    d = Debugger(dataset="kitti")
    # [alpha, x1, y1, x2, y2, h, w, l, X, Y, Z, rot_y, score]
    row = np.array([[0, 100, 100, 200, 200, 1.5, 1.6, 3.9, 2.0, 1.5, 15.0, 0.3, 0.9]], np.float32)
    d.add_bird_view({2: row}, img_id="bird")
    bird = d.imgs["bird"]
    assert bird.shape == (384, 384, 3) and (bird != 230).any()
    calib = np.array([[707.0, 0, 604.0, 45.7], [0, 707.0, 180.5, -0.34], [0, 0, 1, 0.005]], np.float32)
    img = np.zeros((375, 1242, 3), np.uint8)
    d.add_3d_detection(img, {2: row}, calib, img_id="add_pred")
    assert d.imgs["add_pred"].sum() > 0 and img.sum() == 0
    d.add_bird_views({2: row}, {2: row}, img_id="both")
    assert (d.imgs["both"] != 230).any()
