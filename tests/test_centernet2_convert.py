"""src/tools/convert_centernet2_weight.py on a generated checkpoint with detectron2's R50-FPN CenterNet2 layout."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.model import create_model, load_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "src", "tools", "convert_centernet2_weight.py")
sys.path.insert(0, os.path.join(ROOT, "src", "tools"))
import convert_centernet2_weight as conv  # noqa: E402

HEADS = {"agn_hm": 1, "reg": 4, "cls": 81, "stages": 3}


def _to_detectron2(key):
    """detectron2's name of one of our keys (the inverse renaming, spelled out independently)."""
    key = key.replace("proposal_head.", "proposal_generator.centernet_head.")
    key = key.replace("backbone.top_block_p", "backbone.top_block.p")
    key = re.sub(r"^backbone\.conv1\.", "backbone.bottom_up.stem.conv1.", key)
    key = re.sub(r"^backbone\.bn1\.", "backbone.bottom_up.stem.conv1.norm.", key)
    m = re.match(r"^backbone\.layer(\d)\.(\d+)\.(.+)$", key)
    if m:
        stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
        rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
        rest = rest.replace("downsample.0.", "shortcut.").replace("downsample.1.", "shortcut.norm.")
        key = f"backbone.bottom_up.res{stage}.{block}.{rest}"
    return key


@pytest.fixture(scope="module")
def d2_file(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("res_50_fpn", HEADS, 16)
    ours = {k: v.clone() for k, v in model.state_dict().items()}
    d2 = {_to_detectron2(k): v.numpy() if k.startswith("backbone.layer4") else v for k, v in ours.items()
          if not k.endswith("num_batches_tracked") and k != "backbone.stride_in_1x1"}
    for k in [k for k in d2 if k.endswith("running_var")]:
        d2[k] = torch.rand(d2[k].shape) + 0.5  # FrozenBN statistics that are not the identity
    d2["pixel_mean"] = torch.tensor([103.53, 116.28, 123.675]).view(3, 1, 1)
    d2["pixel_std"] = torch.ones(3, 1, 1)
    path = tmp_path_factory.mktemp("d2") / "CenterNet2_R50_1x.pth"
    torch.save({"model": d2, "iteration": 90000}, path)
    return path, d2, model


def test_detectron2_layout_is_what_we_assume(d2_file):
    _, d2, _ = d2_file
    for key in ("backbone.bottom_up.res2.0.shortcut.norm.running_mean", "backbone.bottom_up.res5.2.conv3.weight",
                "backbone.fpn_lateral3.weight", "backbone.top_block.p7.bias",
                "proposal_generator.centernet_head.bbox_tower.10.weight",
                "proposal_generator.centernet_head.scales.4.scale", "roi_heads.box_head.2.fc2.weight",
                "roi_heads.box_predictor.0.cls_score.bias"):
        assert key in d2, key


def test_convert_loads_every_tensor_and_folds_the_input_normalisation(d2_file, tmp_path, capsys):
    path, d2, model = d2_file
    out = tmp_path / "cn2_r50.pth"
    conv.main([str(path), str(out)])
    assert "res_50_fpn" in capsys.readouterr().out
    state = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    assert set(state) == set(model.state_dict())
    model = load_weights(model, str(out))  # the model the checkpoint was generated from: loads it back
    # every tensor but the folded stem is copied unchanged
    for key in state:
        d2_key = _to_detectron2(key)
        if d2_key in d2 and key not in ("backbone.conv1.weight", "backbone.bn1.running_mean"):
            assert torch.equal(model.state_dict()[key], torch.as_tensor(np.asarray(d2[d2_key]))), key
    # detectron2's strides: on the 1x1 conv of each down-sampling bottleneck
    assert model.backbone.layer2[0].conv1.stride == (2, 2) and model.backbone.layer2[0].conv2.stride == (1, 1)

    # stem on our normalised input == detectron2's stem on its input (away from the zero-padded border)
    pixels = torch.rand(1, 3, 24, 24, dtype=torch.float64) * 255
    d2_in = pixels - torch.tensor(conv.D2_PIXEL_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    ours_in = (pixels / 255 - torch.tensor(conv.COCO_MEAN, dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor(conv.COCO_STD, dtype=torch.float64).view(1, 3, 1, 1)

    def stem(x, w, mean, var, weight, bias):
        y = F.conv2d(x, torch.as_tensor(w).double(), stride=2, padding=3)
        return F.batch_norm(y, torch.as_tensor(mean).double(), torch.as_tensor(var).double(),
                            torch.as_tensor(weight).double(), torch.as_tensor(bias).double())

    n = "backbone.bottom_up.stem.conv1."
    want = stem(d2_in, d2[n + "weight"], d2[n + "norm.running_mean"], d2[n + "norm.running_var"],
                d2[n + "norm.weight"], d2[n + "norm.bias"])
    got = stem(ours_in, state["backbone.conv1.weight"], state["backbone.bn1.running_mean"],
               state["backbone.bn1.running_var"], state["backbone.bn1.weight"], state["backbone.bn1.bias"])
    torch.testing.assert_close(got[..., 2:-2, 2:-2], want[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-3)


def test_one_line_errors(tmp_path):
    missing = subprocess.run([sys.executable, TOOL, str(tmp_path / "nope.pth"), str(tmp_path / "o.pth")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
    other = tmp_path / "other.pth"
    torch.save({"model": {"conv.weight": torch.zeros(1)}}, other)
    with pytest.raises(conv.UserError, match="not a detectron2 CenterNet2 model"):
        conv.convert(str(other), str(tmp_path / "o.pth"))
    with pytest.raises(conv.UserError, match="--mean 1,2"):
        conv.main([str(other), str(tmp_path / "o.pth"), "--mean", "1,2"])
    with pytest.raises(conv.UserError, match="not part of a CenterNet2"):
        conv.convert_key("roi_heads.mask_head.mask_fcn1.weight")


# --- CenterNet2_DLA-BiFPN-P3 (config CenterNet2_DLA-BiFPN-P3_24x.yaml) ---------------------------------------
# The official layout, written out from CenterNet2's dlafpn.py / bifpn_fcos.py / centernet_head.py and
# detectron2's cascade box heads (not from our model): DLA-34 with SyncBN under bottom_up.backbone (the BiFPN
# wraps the body in a zero-top-level holder), 4 BiFPN layers of 160 channels with GroupNorm, heads on P3-P5.
BIFPN_W = 160
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix, c):
    return {f"{prefix}.{f}": (() if f == "num_batches_tracked" else (c,)) for f in _BN}


def _basic_block(prefix, cin, cout):
    return {f"{prefix}.conv1.weight": (cout, cin, 3, 3), **_bn(f"{prefix}.bn1", cout),
            f"{prefix}.conv2.weight": (cout, cout, 3, 3), **_bn(f"{prefix}.bn2", cout)}


def _dla34_body(p):
    t = {f"{p}base_layer.0.weight": (16, 3, 7, 7), **_bn(f"{p}base_layer.1", 16),
         f"{p}level0.0.weight": (16, 16, 3, 3), **_bn(f"{p}level0.1", 16),
         f"{p}level1.0.weight": (32, 16, 3, 3), **_bn(f"{p}level1.1", 32)}
    # level2: one-level tree 32 -> 64, root over its two blocks (128 in)
    t.update(_basic_block(f"{p}level2.tree1", 32, 64), **_basic_block(f"{p}level2.tree2", 64, 64))
    t.update({f"{p}level2.root.conv.weight": (64, 128, 1, 1), **_bn(f"{p}level2.root.bn", 64),
              f"{p}level2.project.0.weight": (64, 32, 1, 1), **_bn(f"{p}level2.project.1", 64)})
    # level3 / level4: two-level trees; the inner second root sees 2 blocks + the first subtree + the input
    for lv, cin, c in ((3, 64, 128), (4, 128, 256)):
        q = f"{p}level{lv}"
        t.update(_basic_block(f"{q}.tree1.tree1", cin, c), **_basic_block(f"{q}.tree1.tree2", c, c))
        t.update({f"{q}.tree1.root.conv.weight": (c, 2 * c, 1, 1), **_bn(f"{q}.tree1.root.bn", c),
                  f"{q}.tree1.project.0.weight": (c, cin, 1, 1), **_bn(f"{q}.tree1.project.1", c)})
        t.update(_basic_block(f"{q}.tree2.tree1", c, c), **_basic_block(f"{q}.tree2.tree2", c, c))
        t.update({f"{q}.tree2.root.conv.weight": (c, 3 * c + cin, 1, 1), **_bn(f"{q}.tree2.root.bn", c),
                  f"{q}.project.0.weight": (c, cin, 1, 1), **_bn(f"{q}.project.1", c)})
    # level5: one-level tree 256 -> 512 whose root also takes the (pooled) input
    t.update(_basic_block(f"{p}level5.tree1", 256, 512), **_basic_block(f"{p}level5.tree2", 512, 512))
    t.update({f"{p}level5.root.conv.weight": (512, 1280, 1, 1), **_bn(f"{p}level5.root.bn", 512),
              f"{p}level5.project.0.weight": (512, 256, 1, 1), **_bn(f"{p}level5.project.1", 512)})
    return t


# (level offset, input offsets) of the 3-level BiFPN's nodes, in order; offsets 3+ are earlier nodes' outputs
_NODES = [(1, (1, 2)), (0, (0, 3)), (1, (1, 3, 4)), (2, (2, 5))]


def _bifpn(p, repeats=4):
    t = {}
    for i in range(repeats):
        widths = [128, 256, 512] if i == 0 else [BIFPN_W] * 3
        for level, offsets in _NODES:
            for off in offsets:
                if widths[off] != BIFPN_W:  # a name repeated by a later node is the same module
                    n = f"{p}{i}.lateral_{off}_f{level}"
                    t.update({f"{n}.weight": (BIFPN_W, widths[off], 1, 1), f"{n}.bias": (BIFPN_W,),
                              f"{n}.norm.weight": (BIFPN_W,), f"{n}.norm.bias": (BIFPN_W,)})
            widths.append(BIFPN_W)
            name = f"f{level}_" + "_".join(map(str, offsets))
            t[f"{p}{i}.weights_{name}"] = (len(offsets),)
            t.update({f"{p}{i}.outputs_{name}.weight": (BIFPN_W, BIFPN_W, 3, 3),
                      f"{p}{i}.outputs_{name}.norm.weight": (BIFPN_W,), f"{p}{i}.outputs_{name}.norm.bias": (BIFPN_W,)})
    return t


def _heads(num_classes=80, fc_dim=1024, stages=3):
    p = "proposal_generator.centernet_head."
    t = {}
    for j in range(4):  # ONLY_PROPOSAL: the box tower only (cls / share towers are empty)
        t.update({f"{p}bbox_tower.{3 * j}.weight": (BIFPN_W, BIFPN_W, 3, 3), f"{p}bbox_tower.{3 * j}.bias": (BIFPN_W,),
                  f"{p}bbox_tower.{3 * j + 1}.weight": (BIFPN_W,), f"{p}bbox_tower.{3 * j + 1}.bias": (BIFPN_W,)})
    t.update({f"{p}bbox_pred.weight": (4, BIFPN_W, 3, 3), f"{p}bbox_pred.bias": (4,),
              f"{p}agn_hm.weight": (1, BIFPN_W, 3, 3), f"{p}agn_hm.bias": (1,)})
    t.update({f"{p}scales.{k}.scale": (1,) for k in range(3)})  # one per used level, P3-P5
    for s in range(stages):
        t.update({f"roi_heads.box_head.{s}.fc1.weight": (fc_dim, BIFPN_W * 7 * 7), f"roi_heads.box_head.{s}.fc1.bias":
                  (fc_dim,), f"roi_heads.box_head.{s}.fc2.weight": (fc_dim, fc_dim),
                  f"roi_heads.box_head.{s}.fc2.bias": (fc_dim,),
                  f"roi_heads.box_predictor.{s}.cls_score.weight": (num_classes + 1, fc_dim),
                  f"roi_heads.box_predictor.{s}.cls_score.bias": (num_classes + 1,),
                  f"roi_heads.box_predictor.{s}.bbox_pred.weight": (4, fc_dim),
                  f"roi_heads.box_predictor.{s}.bbox_pred.bias": (4,)})
    return t


def official_dla_bifpn_p3_layout():
    """Key -> shape of CenterNet2_DLA-BiFPN-P3's state_dict (COCO, pixel statistics included)."""
    return {**_dla34_body("backbone.bottom_up.backbone."), **_bifpn("backbone.repeated_bifpn."), **_heads(),
            "pixel_mean": (3, 1, 1), "pixel_std": (3, 1, 1)}


def _ours(key):
    """Our name of one official key, spelled out independently of the converter."""
    key = key.replace("backbone.bottom_up.backbone.", "backbone.base.").replace("repeated_bifpn", "bifpn")
    key = key.replace("proposal_generator.centernet_head.", "proposal_head.")
    m = re.match(r"^(backbone\.bifpn\.\d+)\.lateral_(\d)_f(\d)\.(norm\.)?(\w+)$", key)
    if m:
        return f"{m.group(1)}.lateral.p{int(m.group(2)) + 3}_at{int(m.group(3)) + 3}.{1 if m.group(4) else 0}." \
               f"{m.group(5)}"
    nodes = {"f1_1_2": "td4", "f0_0_3": "out3", "f1_1_3_4": "out4", "f2_2_5": "out5"}
    m = re.match(r"^(backbone\.bifpn\.\d+)\.(weights|outputs)_(f[\d_]+?)(?:\.(norm\.)?(\w+))?$", key)
    if m:
        node = nodes[m.group(3)]
        return f"{m.group(1)}.{node}.weights" if m.group(2) == "weights" else \
            f"{m.group(1)}.{node}.conv.{1 if m.group(4) else 0}.{m.group(5)}"
    return key


@pytest.fixture(scope="module")
def dla_file(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    d2 = {}
    for key, shape in official_dla_bifpn_p3_layout().items():
        if key.endswith("num_batches_tracked"):
            d2[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            d2[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith(("running_mean", ".bias")):
            d2[key] = torch.randn(shape, generator=gen) * 0.1
        elif key.endswith(("norm.weight", ".scale")) or re.search(r"(bn\d?|\.1|tower\.\d+)\.weight$", key) \
                and len(shape) == 1:
            d2[key] = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif "weights_f" in key:
            d2[key] = torch.rand(shape, generator=gen) + 0.2
        else:  # conv / linear weights at a fan-in scale, so the activations stay of order one
            fan_in = int(np.prod(shape[1:]))
            d2[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    d2["pixel_mean"] = torch.tensor(conv.D2_PIXEL_MEAN).view(3, 1, 1)
    d2["pixel_std"] = torch.ones(3, 1, 1)
    path = tmp_path_factory.mktemp("d2dla") / "CenterNet2_DLA-BiFPN-P3_24x.pth"
    torch.save({"model": d2, "iteration": 360000}, path)
    return path, d2


def test_dla_bifpn_layout_is_what_we_assume():
    t = official_dla_bifpn_p3_layout()
    bifpn0 = sorted(k.split(".")[3] for k in t if k.startswith("backbone.repeated_bifpn.0.lateral_"))
    # one lateral per (input, node level) name: P4's is shared by both level-4 nodes, P5 has two
    assert sorted(set(bifpn0)) == ["lateral_0_f0", "lateral_1_f1", "lateral_2_f1", "lateral_2_f2"]
    assert not any(k.startswith("backbone.repeated_bifpn.1.lateral") for k in t)
    assert t["backbone.repeated_bifpn.0.lateral_2_f2.weight"] == (160, 512, 1, 1)
    assert t["backbone.repeated_bifpn.3.weights_f1_1_3_4"] == (3,)
    assert t["backbone.bottom_up.backbone.level4.tree2.root.conv.weight"] == (256, 896, 1, 1)
    assert t["roi_heads.box_head.0.fc1.weight"] == (1024, 7840)
    assert "backbone.repeated_bifpn.0.outputs_f1_1_2.bias" not in t  # GN: the 3x3 conv has no bias
    # the tool's error messages name keys in this spelling
    assert all(conv._d2_dla_name(_ours(k)) == k for k in t if not k.startswith("pixel_"))


def _gn(x, w, b):
    return F.group_norm(x, 32, w, b)


def _official_bifpn(feats, d2, repeats=4):
    """CenterNet2's FCOS-style 3-level BiFPN, run functionally on the checkpoint's tensors."""
    for i in range(repeats):
        p = f"backbone.repeated_bifpn.{i}."
        feats = list(feats)
        for level, offsets in _NODES:
            th, tw = feats[level].shape[-2:]
            xs = []
            for off in offsets:
                x = feats[off]
                if x.shape[1] != BIFPN_W:
                    n = f"{p}lateral_{off}_f{level}."
                    x = _gn(F.conv2d(x, d2[n + "weight"], d2[n + "bias"]), d2[n + "norm.weight"], d2[n + "norm.bias"])
                if x.shape[-1] > tw:
                    x = F.max_pool2d(x, 3, 2, 1)
                elif x.shape[-1] < tw:
                    x = F.interpolate(x, size=(th, tw), mode="nearest")
                xs.append(x)
            name = f"f{level}_" + "_".join(map(str, offsets))
            w = F.relu(d2[f"{p}weights_{name}"])
            x = (torch.stack(xs, -1) * (w / (w.sum() + 1e-4))).sum(-1)
            x = x * torch.sigmoid(x)
            o = f"{p}outputs_{name}."
            feats.append(_gn(F.conv2d(x, d2[o + "weight"], padding=1), d2[o + "norm.weight"], d2[o + "norm.bias"]))
        feats = [feats[-3], feats[-2], feats[-1]]  # the last nodes of levels 0, 1, 2 (P3 out, P4 out, P5 out)
    return feats


def test_dla_bifpn_converts_loads_strictly_and_computes_as_centernet2(dla_file, tmp_path, capsys):
    path, d2 = dla_file
    out = tmp_path / "cn2_dla.pth"
    conv.main([str(path), str(out)])
    assert "dla_34_bifpn" in capsys.readouterr().out
    state = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    model = create_model("dla_34_bifpn", HEADS, 1024)
    model.load_state_dict(state, strict=True)  # every tensor of the model, nothing else
    folded = ("backbone.base.base_layer.0.weight", "backbone.base.base_layer.1.running_mean")
    for key, value in d2.items():  # every other tensor lands unchanged where it should
        if not key.startswith("pixel_") and _ours(key) not in folded:
            assert torch.equal(state[_ours(key)], value), key
    sd, bifpn = model.state_dict(), model.backbone.bifpn
    r = "backbone.repeated_bifpn."
    assert torch.equal(bifpn[0].lateral["p4_at4"][0].weight, d2[r + "0.lateral_1_f1.weight"])
    assert torch.equal(bifpn[0].lateral["p5_at4"][1].bias, d2[r + "0.lateral_2_f1.norm.bias"])
    assert torch.equal(bifpn[0].lateral["p5_at5"][0].bias, d2[r + "0.lateral_2_f2.bias"])
    assert torch.equal(bifpn[0].lateral["p3_at3"][1].weight, d2[r + "0.lateral_0_f0.norm.weight"])
    assert torch.equal(bifpn[2].out4.weights, d2[r + "2.weights_f1_1_3_4"])
    assert torch.equal(bifpn[3].td4.conv[1].bias, d2[r + "3.outputs_f1_1_2.norm.bias"])
    assert torch.equal(bifpn[1].out5.conv[0].weight, d2[r + "1.outputs_f2_2_5.weight"])
    b = "backbone.bottom_up.backbone."
    assert torch.equal(model.backbone.base.level4.tree2.root.conv.weight, d2[b + "level4.tree2.root.conv.weight"])
    assert torch.equal(model.backbone.base.level3.project[1].running_var, d2[b + "level3.project.1.running_var"])
    h = "proposal_generator.centernet_head."
    assert torch.equal(model.proposal_head.bbox_tower[10].bias, d2[h + "bbox_tower.10.bias"])
    assert torch.equal(model.proposal_head.scales[2].scale, d2[h + "scales.2.scale"])
    assert torch.equal(sd["proposal_head.scales.4.scale"], torch.ones(1))  # P7's scale: unused with P3-P5
    assert torch.equal(model.roi_heads.box_head[2].fc1.weight, d2["roi_heads.box_head.2.fc1.weight"])
    assert torch.equal(model.roi_heads.box_predictor[1].cls_score.bias, d2["roi_heads.box_predictor.1.cls_score.bias"])

    model.eval()
    # random weights make near-uniform heat maps: keep few proposals, or the NMS dominates the test's time
    model.settings.pre_nms_test, model.settings.post_nms_test = 64, 16
    pixels = torch.rand(1, 3, 32, 64) * 255
    ours_in = (pixels / 255 - torch.tensor(conv.COCO_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(conv.COCO_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        # stem on our input == CenterNet2's stem on its input (BGR minus the pixel mean), away from the border
        stem = F.conv2d(pixels - d2["pixel_mean"].view(1, 3, 1, 1), d2[b + "base_layer.0.weight"], padding=3)
        want = F.batch_norm(stem, d2[b + "base_layer.1.running_mean"], d2[b + "base_layer.1.running_var"],
                            d2[b + "base_layer.1.weight"], d2[b + "base_layer.1.bias"])
        got = model.backbone.base.base_layer[:2](ours_in)
        torch.testing.assert_close(got[..., 3:-3, 3:-3], want[..., 3:-3, 3:-3], rtol=1e-4, atol=1e-3)
        # our BiFPN on the DLA levels == CenterNet2's node graph run on the checkpoint's own tensors
        maps = levels = model.backbone.base(ours_in)[3:6]
        for layer in model.backbone.bifpn:  # DLABiFPN.forward's loop, without a second pass of the body
            maps = layer(maps)
        for got, want in zip(maps, _official_bifpn(levels, d2)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert [tuple(m.shape) for m in maps] == [(1, 160, 4, 8), (1, 160, 2, 4), (1, 160, 1, 2)]
        dets = model(ours_in)[0]["detections"]
    boxes, scores, classes = dets[0]
    assert boxes.shape[1] == 4 and len(scores) == len(classes) and torch.all(classes < 80)


def test_dla_bifpn_partial_or_foreign_layouts_are_one_line_errors(dla_file, tmp_path):
    _, d2 = dla_file
    # narrow box heads (the tool sizes them from the file) keep these files small
    d2 = {**d2, **{k: torch.zeros(v) for k, v in _heads(fc_dim=16).items() if k.startswith("roi_heads.")}}
    r = "backbone.repeated_bifpn."
    truncated = {k: v for k, v in d2.items() if not k.startswith(r + "3.")}
    del truncated["backbone.bottom_up.backbone.level5.root.conv.weight"]
    cases = [
        (truncated, r"missing \d+ tensors \(backbone\.bottom_up\.backbone\.level5\.root\.conv\.weight, "
                    r"backbone\.repeated_bifpn\.3\.weights_f1_1_2"),
        ({**d2, r + "4.weights_f1_1_2": torch.ones(2)}, r"1 unexpected \(backbone\.repeated_bifpn\.4\.weights_f1_"),
        ({**d2, r + "0.weights_f3_3_4": torch.ones(2)}, r"unexpected key 'backbone\.repeated_bifpn\.0\.weights_f3_3_"),
        ({**d2, r + "0.lateral_0_f0.weight": torch.zeros(160, 64, 1, 1)}, r"shapes differ.*lateral_0_f0\.weight"),
    ]
    for i, (state, match) in enumerate(cases):
        bad = tmp_path / f"bad{i}.pth"
        torch.save({"model": state}, bad)
        with pytest.raises(conv.UserError, match=match) as err:
            conv.convert(str(bad), str(tmp_path / "o.pth"))
        assert "\n" not in str(err.value)
    assert not (tmp_path / "o.pth").exists()
