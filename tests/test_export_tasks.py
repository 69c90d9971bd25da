"""test.py on exported multi_pose and ddd models: the same results as PyTorch (hence the same AP)."""
import json
import os
import runpy
import sys

import pytest
import torch
from script_runner import gen_synthetic

# pytestmark and _torchlib_once: test_export's skips and exporter-table cache apply here too
from test_export import ROOT, TOL, _export_script, _max_diff, _net, _torchlib_once, pytestmark  # noqa: F401

from models.model import save_model
from opts import opts


def _pose_rows(path):
    """results.json of multi_pose as comparable rows: image, class, score, box, keypoints."""
    with open(path) as f:
        dets = json.load(f)
    return [[d["image_id"], d["category_id"], d["score"], *d["bbox"], *d["keypoints"]] for d in dets]


def _kitti_rows(folder):
    """ddd's KITTI label files as comparable rows: image, class, then the 15 numbers (alpha .. score)."""
    rows = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            for line in f:
                cls, *values = line.split()
                rows.append([int(name[:-4]), cls, *map(float, values)])
    return rows


def _lively_heads(net, heads, x):
    """Head weights giving outputs of unit spread: an untrained network's heads see features near 0 and
    put flat heat maps out, whose peaks tie everywhere and are picked in no stable order."""
    seen = {}
    hook = getattr(net, next(iter(heads)))[0].register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    with torch.no_grad():
        net(x)
        hook.remove()
        scale = float(seen["x"].std())
        for head in heads:
            first, last = getattr(net, head)[0], getattr(net, head)[-1]
            first.weight.normal_(0, 1 / (scale * first.weight[0].numel() ** 0.5))
            last.weight.normal_(0, 2 / last.weight[0].numel() ** 0.5)
    return net


def _assert_same_rows(want, got, tol=1e-2):
    """Each row has a partner of the same image and class within tol in the other list, both ways
    (rows of a random network tie on their rounded scores, so no sort order pairs them)."""
    assert len(want) == len(got) > 0
    for rows, others in ((want, got), (got, want)):
        for row in rows:
            partners = [o for o in others if o[:2] == row[:2]]
            assert partners and min(_max_diff(row[2:], o[2:]) for o in partners) <= tol, row


@pytest.mark.parametrize("task,dataset,kind", [("multi_pose", "synth_hp", "hp"), ("ddd", "synth_kitti", "kitti")])
def test_test_py_on_exported_model_matches_pytorch_other_tasks(tmp_path, monkeypatch, task, dataset, kind):
    """test.py's results (keypoints; KITTI 3D boxes) from the exported file equal PyTorch's, so their AP does."""
    size = ["--input_res", "64"] if task == "multi_pose" else ["--input_h", "64", "--input_w", "192"]
    opt = opts().init([task, "--arch", "res_18", "--dataset", dataset, "--head_conv", "8", *size])
    net = _lively_heads(_net(opt, seed=4), opt.heads, torch.randn(1, 3, opt.input_h, opt.input_w))
    save_model(str(tmp_path / "m.pth"), 1, net)
    common = [task, "--arch", "res_18", "--dataset", dataset, "--head_conv", "8", *size]
    diffs = _export_script().main([*common, "--load_model", str(tmp_path / "m.pth"),
                                   "--output", str(tmp_path / "m.onnx")])
    assert max(diffs.values()) <= TOL
    gen_synthetic(tmp_path / "data" / dataset, kind, train=1, val=2, seed=3)
    rows = {}
    for name in ("m.pth", "m.onnx"):
        argv = ["test.py", *common, "--gpus", "-1", "--data_dir", str(tmp_path / "data"), "--exp_root",
                str(tmp_path / "exp"), "--exp_id", name, "--load_model", str(tmp_path / name), "--not_prefetch_test",
                "--flip_test", "--K", "20"]
        monkeypatch.setattr(sys, "argv", argv)
        runpy.run_path(os.path.join(ROOT, "src", "test.py"), run_name="__main__")
        out = tmp_path / "exp" / task / name
        rows[name] = _pose_rows(out / "results.json") if task == "multi_pose" else _kitti_rows(out / "results")
    _assert_same_rows(rows["m.pth"], rows["m.onnx"])
