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
