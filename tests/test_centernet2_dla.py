"""CenterNet2 on DLA-34: the FPN (P3-P7) and BiFPN (P3-P5) backbones, their registration and options,
one training step and inference, and ImageNet weights from the hub cache."""
import pytest
import torch
from test_centernet2 import two_image_training_loss

from models.centernet2.network import CenterNet2
from models.model import _parse_arch, create_model
from models.networks import dla_fpn
from models.networks.dla_fpn import DLAFPN, DLABiFPN
from models.networks.pose_dla_dcn import dla34, get_model_url
from opts import opts
from utils.errors import UserError

HEADS = {"agn_hm": 1, "reg": 4, "cls": 4, "stages": 3}


@pytest.fixture(autouse=True)
def _one_thread():
    # maps of a few pixels: a second thread only adds hand-over cost, and much more on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sizes(maps):
    return [tuple(m.shape[-2:]) for m in maps]


@pytest.mark.parametrize("hw", [(64, 64), (64, 96)])
def test_fpn_levels_strides_and_channels(hw):
    torch.manual_seed(0)
    h, w = hw
    net = DLAFPN().eval()
    with torch.no_grad():
        maps = net(torch.randn(1, 3, h, w))
    assert net.out_channels == 256 and all(m.shape[:2] == (1, 256) for m in maps)
    # P3-P5 at strides 8-32, P6/P7 by stride-2 convs (ceil division)
    want = [(-(-h // s), -(-w // s)) for s in (8, 16, 32, 64, 128)]
    assert _sizes(maps) == want


@pytest.mark.parametrize("hw", [(64, 64), (64, 96)])
def test_bifpn_levels_strides_and_channels(hw):
    torch.manual_seed(0)
    h, w = hw
    net = DLABiFPN()
    assert net.out_channels == 160 and len(net.bifpn) == 4
    maps = net(torch.randn(2, 3, h, w))
    assert _sizes(maps) == [(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    assert all(m.shape[:2] == (2, 160) for m in maps)
    sum(m.square().mean() for m in maps).backward()
    # every fusion weight of every layer takes part (top-down then bottom-up, P5 fed from P4's output)
    for layer in net.bifpn:
        for node in (layer.td4, layer.out3, layer.out4, layer.out5):
            assert node.weights.grad is not None and node.weights.grad.abs().sum() > 0
    # raw DLA widths are reduced in the first layer only: one 1x1 conv (with bias) + GN per (input, node level),
    # P4's shared by both level-4 nodes, P5 with one for the top-down node and one for the P5 output
    first, second = net.bifpn[0], net.bifpn[1]
    assert {k: m[0].in_channels for k, m in first.lateral.items()} == {
        "p4_at4": 256, "p5_at4": 512, "p3_at3": 128, "p5_at5": 512}
    assert all(m[0].bias is not None and isinstance(m[1], torch.nn.GroupNorm) for m in first.lateral.values())
    assert len(second.lateral) == 0
    assert first.out4.conv[0].bias is None and first.out4.conv[1].num_groups == 32


def test_bifpn_shares_the_p4_reduction_between_the_level4_nodes():
    torch.manual_seed(0)
    layer = dla_fpn.BiFPNLayer([16, 48, 64], 32).eval()
    calls = []
    for name, module in layer.lateral.items():
        module.register_forward_hook(lambda *_, name=name: calls.append(name))
    with torch.no_grad():
        out = layer([torch.randn(1, 16, 8, 8), torch.randn(1, 48, 4, 4), torch.randn(1, 64, 2, 2)])
    assert sorted(calls) == ["p3_at3", "p4_at4", "p5_at4", "p5_at5"]  # each once: P4's reduced map is reused
    assert [tuple(o.shape) for o in out] == [(1, 32, 8, 8), (1, 32, 4, 4), (1, 32, 2, 2)]


def test_bifpn_fusion_is_fast_normalised():
    node = dla_fpn.FusionNode(2, 32).eval()
    with torch.no_grad():
        node.weights.copy_(torch.tensor([3.0, -1.0]))  # relu: the second input is ignored
        a, b = torch.randn(1, 32, 4, 4), torch.randn(1, 32, 2, 2)
        got = node([a, b], (4, 4))
        fused = a * 3 / (3 + 1e-4)
        assert torch.allclose(got, node.conv(fused * fused.sigmoid()), atol=1e-6)


def _tiny(kind):
    backbone = DLAFPN(channels=32) if kind == "fpn" else DLABiFPN(channels=32, repeats=2)
    model = CenterNet2(backbone, 3, num_stages=3, fc_dim=16)
    if kind == "bifpn":
        model.settings.levels = [3, 4, 5]
    model.settings.post_nms_train, model.settings.post_nms_test = 16, 8
    model.roi_heads.batch_size_per_image = 16
    return model


@pytest.mark.parametrize("kind", ["fpn", "bifpn"])
def test_train_step_and_inference(kind):
    torch.manual_seed(0)
    model = _tiny(kind)
    images, batch, out, loss = two_image_training_loss(model)
    assert [h.shape[-1] for h in out["heat"]] == ([8, 4, 2, 1, 1] if kind == "fpn" else [8, 4, 2])
    loss.backward()
    assert torch.isfinite(loss)
    # the gradient reaches the DLA body through the neck
    assert model.backbone.base.base_layer[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        from trains.centernet2 import CenterNet2Loss, CenterNet2WithLoss

        dets = model(images)[0]["detections"]
        out, val_loss, _ = CenterNet2WithLoss(model, CenterNet2Loss(None), keep_outputs=False).eval()(
            {"input": images, **batch})
    assert torch.isfinite(val_loss) and len(dets) == 2 and len(out["detections"]) == 2
    for boxes, scores, classes in dets:
        assert boxes.shape[1] == 4 and len(scores) == len(classes) <= 100 and torch.all(classes < 3)


def test_arch_parsing_and_factory():
    assert _parse_arch("dla_34_fpn") == ("dla_fpn", 34)
    assert _parse_arch("dla_34_bifpn") == ("dla_bifpn", 34)
    assert _parse_arch("res_18_fpn") == ("res_fpn", 18) and _parse_arch("dla_34") == ("dla", 34)
    model = create_model("dla_34_bifpn", HEADS, head_conv=16)
    assert isinstance(model.backbone, DLABiFPN) and model.settings.levels == [3, 4, 5]
    assert model.roi_heads.box_head[0].fc1.out_features == 16
    assert not hasattr(model.backbone.base, "fc")  # no ImageNet classifier without pretrained
    with pytest.raises(UserError, match="dla_34_fpn"):
        dla_fpn.get_pose_net(18, HEADS)


def test_options():
    opt = opts().parse("centernet2 --arch dla_34_fpn".split())
    assert opt.fpn_levels == [3, 4, 5, 6, 7] and opt.head_conv == 1024
    opt = opts().parse("centernet2 --arch dla_34_bifpn".split())
    assert opt.fpn_levels == [3, 4, 5]  # the default: the BiFPN's own levels
    assert opts().parse("centernet2 --arch dla_34_bifpn --fpn_levels 4,5".split()).fpn_levels == [4, 5]
    for line, match in (("centernet2 --arch dla_34_bifpn --fpn_levels 3,4,5,6", "levels 3 to 5 only"),
                        ("ctdet --arch dla_34_fpn", "use task"), ("ctdet --arch dla_34_bifpn", "use task"),
                        ("centernet2 --arch dla_34", "dla_34_fpn or dla_34_bifpn"),
                        ("centernet2 --arch dla_18_fpn", "is unknown")):
        with pytest.raises(UserError, match=match):
            opts().parse(line.split())


def test_imagenet_weights_from_the_hub_cache(tmp_path, monkeypatch):
    torch.manual_seed(0)
    ref = dla34(pretrained=False, with_fc=True)
    (tmp_path / "checkpoints").mkdir()
    url = get_model_url()
    torch.save(ref.state_dict(), tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = dla_fpn.get_pose_net(34, HEADS, pretrained=True)
    got = model.backbone.base.state_dict()
    assert all(torch.equal(got[k], v) for k, v in ref.state_dict().items())
