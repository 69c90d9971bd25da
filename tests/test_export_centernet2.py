"""centernet2 exported as one ONNX graph (NMS as a keep mask): the same detections as the PyTorch detector."""
import importlib.util
import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch
from script_runner import gen_synthetic

# pytestmark and _torchlib_once: test_export's skips and exporter-table cache apply here too
from test_export import ROOT, TOL, _export_script, _torchlib_once, pytestmark  # noqa: F401

from deploy.centernet2_graph import CenterNet2Graph, nms_mask, nms_mask_translation
from deploy.onnx_export import export_onnx
from deploy.runtime import ExportedModel, load_exported_model
from models.centernet2.boxes import nms
from models.centernet2.roi_align import multilevel_roi_align, multilevel_roi_align_batched, roi_align, roi_align_batched
from models.model import create_model, save_model
from opts import opts
from utils.errors import UserError

# 64 x 64 inputs have 86 locations on P3-P7: 128 proposals keep them all, so no cut can tie
ARGS = ["centernet2", "--arch", "res_18_fpn", "--dataset", "synth", "--head_conv", "16", "--input_res", "64",
        "--num_proposals_test", "128"]


def _random_boxes(gen, n, size=60.0):
    xy = torch.rand(n, 2, generator=gen) * size
    wh = torch.rand(n, 2, generator=gen) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


def _reference_mask(boxes, scores, iou, thresh):
    """nms() of each image and class on its own, over the scores above thresh."""
    mask = torch.zeros(scores.shape, dtype=torch.bool)
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            cand = torch.nonzero(scores[b, c] > thresh).squeeze(1)
            mask[b, c, cand[nms(boxes[b, cand], scores[b, c, cand], iou)]] = True
    return mask


class _NmsOnly(torch.nn.Module):
    def forward(self, x):
        boxes, scores = x[:, :, :4], x[:, :, 4:].transpose(1, 2)
        return nms_mask(boxes, scores, 0.5, 0.3).float()


def test_nms_mask_equals_nms_in_torch_and_onnxruntime(tmp_path):
    """The op keeps what per-class nms() keeps, and its ONNX form (NonMaxSuppression + ScatterND) the same."""
    gen = torch.Generator().manual_seed(0)
    boxes = torch.stack([_random_boxes(gen, 40) for _ in range(2)])
    scores = torch.rand(2, 3, 40, generator=gen)
    scores[0, 1, :5] = 0.3  # exactly at the threshold: not a candidate, as `prob > thresh` in the detector
    want = _reference_mask(boxes, scores, 0.5, 0.3)
    assert torch.equal(nms_mask(boxes, scores, 0.5, 0.3), want)
    assert 0 < int(want.sum()) < int((scores > 0.3).sum())  # some suppressed, some kept
    import onnxruntime as ort
    x = torch.cat([boxes, scores.transpose(1, 2)], dim=2)
    path = str(tmp_path / "nms.onnx")
    export_onnx(_NmsOnly(), x, path, ["keep"], translations={torch.ops.centernet2.nms_mask.default:
                                                               nms_mask_translation(19)})
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    np.testing.assert_array_equal(got.astype(bool), want.numpy())


def test_roi_align_batched_equals_roi_align_past_the_border():
    torch.manual_seed(0)
    feature = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    boxes = torch.tensor([[[4.0, 6.0, 30.0, 20.0], [-10.0, -6.0, 12.0, 9.0], [20.0, 15.0, 40.0, 33.0]],
                          [[13.0, 11.0, 13.5, 11.2], [-40.0, -40.0, -20.0, -20.0], [1.0, 2.0, 27.0, 23.0]]],
                         dtype=torch.float64)
    rois = torch.cat([torch.arange(2, dtype=torch.float64).repeat_interleave(3)[:, None], boxes.reshape(-1, 4)], 1)
    torch.testing.assert_close(roi_align_batched(feature, boxes, 3, 0.25, 2), roi_align(feature, rois, 3, 0.25, 2))
    feats = [torch.randn(2, 3, 64 // s, 64 // s, dtype=torch.float64) for s in (8, 16, 32, 64, 128)]
    big = boxes * torch.tensor([1.0, 1.0, 12.0, 12.0], dtype=torch.float64)  # boxes that pool from several levels
    torch.testing.assert_close(multilevel_roi_align_batched(feats, big, [3, 4, 5, 6, 7], 7, 2),
                               multilevel_roi_align(feats, list(big), [3, 4, 5, 6, 7], 7, 2))


def _lively_model(opt):
    """A random centernet2 whose objectness and class scores spread out (an untrained one ties everywhere)."""
    torch.manual_seed(3)
    model = create_model(opt.arch, opt.heads, opt.head_conv).eval()
    with torch.no_grad():
        model.proposal_head.agn_hm.weight.normal_(0, 0.05)
        model.proposal_head.agn_hm.bias.fill_(0.0)
        for predictor in model.roi_heads.box_predictor:
            predictor.cls_score.weight.normal_(0, 0.3)
            predictor.bbox_pred.weight.normal_(0, 0.01)
    return model.configure(opt)


@pytest.mark.parametrize("extra", [[], ["--sigmoid_ce"]], ids=["softmax", "sigmoid"])
def test_graph_equals_the_detectors_forward(extra):
    """The fixed-shape graph finds the detector's detections: same scores, boxes and classes, best first."""
    opt = opts().init(ARGS + extra)
    model = _lively_model(opt)
    if opt.sigmoid_ce:  # every class of every box near 0.5 would fill the 100 detections: fewer pass
        for predictor in model.roi_heads.box_predictor:
            torch.nn.init.constant_(predictor.cls_score.bias, -3.0)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(images)[0]["detections"]
        boxes, scores, classes = CenterNet2Graph(model)(images)
    assert boxes.shape == (2, 100, 4) and scores.shape == classes.shape == (2, 100)
    for i, (wb, ws, wc) in enumerate(want):
        n = len(ws)
        assert 0 < n < 100 and torch.all(scores[i, n:] == 0) and torch.all(classes[i, n:] == -1)
        torch.testing.assert_close(scores[i, :n], ws)
        torch.testing.assert_close(boxes[i, :n], wb, atol=1e-4, rtol=0)
        assert torch.equal(classes[i, :n], wc)


def _result_rows(path):
    with open(path) as f:
        return sorted([d["image_id"], d["category_id"], d["score"], *d["bbox"]] for d in json.load(f))


def _export(tmp, *extra):
    """The lively model saved as m.pth and exported by the CLI to m.onnx: the largest differences."""
    save_model(str(tmp / "m.pth"), 1, _lively_model(opts().init(ARGS)))
    return _export_script().main([*ARGS, "--load_model", str(tmp / "m.pth"), "--output", str(tmp / "m.onnx"), *extra])


def _test_py_rows(tmp, monkeypatch, *extra):
    """results.json rows of test.py on m.pth and on m.onnx over a generated val split."""
    gen_synthetic(tmp / "data" / "synth", "det", train=1, val=3, seed=5)
    rows = {}
    for name in ("m.pth", "m.onnx"):
        monkeypatch.setattr(sys, "argv", ["test.py", *ARGS, "--gpus", "-1", "--data_dir", str(tmp / "data"),
                                          "--exp_root", str(tmp / "exp"), "--exp_id", name, "--load_model",
                                          str(tmp / name), "--not_prefetch_test", *extra])
        runpy.run_path(os.path.join(ROOT, "src", "test.py"), run_name="__main__")
        rows[name] = _result_rows(tmp / "exp" / "centernet2" / name / "results.json")
    return rows["m.pth"], rows["m.onnx"]


def _assert_same_rows(want, got):
    assert len(want) == len(got) > 0
    for w, g in zip(want, got):
        assert w[:2] == g[:2] and max(abs(a - b) for a, b in zip(w[2:], g[2:])) <= 1e-2, (w, g)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A checkpoint of the lively model and its export (fixed size) by the CLI: (dir, diffs)."""
    tmp = tmp_path_factory.mktemp("cn2export")
    return tmp, _export(tmp)


def test_export_cli_matches_pytorch(exported):
    _, diffs = exported
    assert set(diffs) == {"boxes", "scores", "classes"} and max(diffs.values()) <= TOL


def test_test_py_on_exported_centernet2_matches_pytorch(exported, monkeypatch):
    """test.py with --flip_test: the exported graph gives PyTorch's results.json (so its AP)."""
    _assert_same_rows(*_test_py_rows(exported[0], monkeypatch, "--flip_test"))


@pytest.mark.skipif(os.environ.get("CENTERNET_EXPORT_ALL") != "1",
                    reason="a --dynamic export takes minutes here; CENTERNET_EXPORT_ALL=1 runs it")
def test_dynamic_export_runs_two_scales(tmp_path, monkeypatch):
    """--dynamic frees batch and input size: test.py with flip and two scales gives PyTorch's results."""
    assert max(_export(tmp_path, "--dynamic").values()) <= TOL
    _assert_same_rows(*_test_py_rows(tmp_path, monkeypatch, "--flip_test", "--test_scales", "1,1.25"))


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")
def test_openvino_runs_the_centernet2_export(exported):
    tmp, _ = exported
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    outs = [ExportedModel(str(tmp / "m.onnx"), backend)(images)[0] for backend in ("onnxruntime", "openvino")]
    for name in ("boxes", "scores", "classes"):
        torch.testing.assert_close(outs[1][name], outs[0][name], atol=1e-4, rtol=0)
    assert (outs[0]["scores"] > 0).sum() > 0


def test_task_and_export_must_agree(exported, tmp_path):
    tmp, _ = exported
    with pytest.raises(UserError, match="exported for centernet2, not for ctdet"):
        load_exported_model(str(tmp / "m.onnx"), task="ctdet")
    assert load_exported_model(str(tmp / "m.onnx"), task="centernet2").gives_detections
