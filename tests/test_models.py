"""Networks: layouts, output shapes, head initialisation, factory errors, DataParallel chunking."""
import copy
import os
import subprocess
import sys

import pytest
import torch

from models.data_parallel import DataParallel, _DataParallel
from models.model import create_model, save_model
from models.networks import common
from models.scatter_gather import scatter, scatter_kwargs, split_sizes
from utils.errors import UserError

torch.set_num_threads(1)
CTDET = {"hm": 80, "wh": 2, "reg": 2}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def res18():
    torch.manual_seed(0)
    return create_model("res_18", CTDET, 64)


def test_res18_layout_figures(res18):
    sd = res18.state_dict()
    assert len(sd) == 150
    assert n_params(res18) == 15_820_372
    keys = list(sd)
    assert keys[0] == "conv1.weight"
    assert sd["deconv_layers.0.weight"].shape == (512, 256, 4, 4)
    assert sd["hm.2.weight"].shape == (80, 64, 1, 1)
    # heads are registered in sorted order whatever the dict order
    assert [k.split(".")[0] for k in keys[-12:]][::4] == ["hm", "reg", "wh"]
    assert sum(k.endswith("num_batches_tracked") for k in keys) == 23


def test_res18_outputs_stride4_and_head_order(res18):
    res18.eval()
    with torch.no_grad():
        out = res18(torch.randn(1, 3, 64, 96))
    assert isinstance(out, list) and len(out) == 1
    assert list(out[0]) == list(CTDET)  # forward follows the heads' insertion order
    for head, n in CTDET.items():
        assert out[0][head].shape == (1, n, 16, 24)


def test_res_sorted_registration_vs_insertion_forward():
    torch.manual_seed(0)
    model = create_model("res_18", {"wh": 2, "hm": 3}, 0).eval()
    keys = [k for k in model.state_dict() if k.split(".")[0] in ("wh", "hm")]
    assert keys == ["hm.weight", "hm.bias", "wh.weight", "wh.bias"]  # head_conv 0: a single 1x1 conv
    with torch.no_grad():
        assert list(model(torch.randn(1, 3, 32, 32))[0]) == ["wh", "hm"]


def test_res_head_and_deconv_init(res18):
    assert torch.all(res18.hm[2].bias == -2.19)
    for head in ("wh", "reg"):
        final = getattr(res18, head)[2]
        assert torch.all(final.bias == 0)
        assert 0.0005 < final.weight.std().item() < 0.002
        # the 3x3 conv keeps PyTorch's default (much wider) init
        assert getattr(res18, head)[0].weight.std().item() > 0.01
    assert res18.hm[2].weight.std().item() > 0.01  # heat-map weights keep the default init
    for i in (1, 4, 7):
        bn = res18.deconv_layers[i]
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    for i in (0, 3, 6):
        assert res18.deconv_layers[i].weight.std().item() < 0.002


def test_res_scratch_init_starts_blocks_as_identity(res18):
    """Without ImageNet weights: He init (fan_out) and each residual block's last BN scale at 0."""
    fan_out = 64 * 7 * 7
    assert abs(res18.conv1.weight.std().item() / (2 / fan_out) ** 0.5 - 1) < 0.05
    for stage in (res18.layer1, res18.layer2, res18.layer3, res18.layer4):
        for block in stage:
            assert torch.all(block.bn2.weight == 0) and torch.all(block.bn1.weight == 1)
    res50 = create_model("res_50", {"hm": 1}, 64)
    assert torch.all(res50.layer3[0].bn3.weight == 0) and torch.all(res50.layer3[0].bn2.weight == 1)
    # a block then passes its input through: layer1's blocks have no downsample
    x = torch.relu(torch.randn(1, 64, 8, 8))
    layer1 = copy.deepcopy(res18.layer1).eval()
    with torch.no_grad():
        assert torch.allclose(layer1(x), x)


def test_res50_bottleneck_layout():
    model = create_model("res_50", {"hm": 1, "wh": 2}, 64)
    sd = model.state_dict()
    assert sd["layer1.0.conv3.weight"].shape == (256, 64, 1, 1)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["deconv_layers.0.weight"].shape == (2048, 256, 4, 4)


@pytest.mark.parametrize("arch", ["foo_18", "res_19", "res_x", "resnet"])
def test_unknown_arch_is_user_error(arch):
    with pytest.raises(UserError, match="--arch") as e:
        create_model(arch, CTDET, 64)
    assert "res_" in str(e.value)


def test_res_does_not_import_dcn():
    code = ("import sys; sys.path[:0] = ['src/lib', 'src']; from models.model import create_model; "
            "create_model('res_18', {'hm': 1}, 64); "
            "bad = [m for m in sys.modules if 'dcn' in m.lower() or m.endswith(('dla_dcn', 'dlav0'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_pretrained_without_cache_warns_and_keeps_random(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = create_model("res_18", {"hm": 1}, 64, pretrained=True)
    assert "warning: ImageNet weights resnet18-5c106cde.pth" in capsys.readouterr().err
    assert model.conv1.weight.abs().sum() > 0


def test_pretrained_from_hub_cache(tmp_path, monkeypatch, res18):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckdir = tmp_path / "hub" / "checkpoints"
    ckdir.mkdir(parents=True)
    # a torchvision-style file: backbone keys (no num_batches_tracked) plus the classifier
    imagenet = {k: torch.full_like(v, 0.5) for k, v in res18.state_dict().items()
                if k.startswith(("conv1", "bn1", "layer")) and not k.endswith("num_batches_tracked")}
    imagenet["fc.weight"] = torch.zeros(1000, 512)
    imagenet["fc.bias"] = torch.zeros(1000)
    torch.save(imagenet, ckdir / "resnet18-5c106cde.pth")
    model = create_model("res_18", {"hm": 1}, 64, pretrained=True)
    assert torch.all(model.layer4[1].conv2.weight == 0.5)
    assert torch.all(model.hm[2].bias == -2.19)  # heads are not in the ImageNet file


@pytest.fixture(scope="module")
def hourglass():
    torch.manual_seed(0)
    return create_model("hourglass", {"hm": 3, "wh": 2, "hps": 34, "hm_hp": 17}, 64)


def test_hourglass_layout(hourglass):
    sd = hourglass.state_dict()
    keys = list(sd)
    assert keys[0] == "pre.0.conv.weight"
    assert sd["kps.1.low2.low2.low2.low2.low2.3.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd["kps.0.low1.0.skip.0.weight"].shape == (256, 256, 1, 1)  # stride 2 -> projected skip
    assert sd["hm_hp.1.0.conv.bias"].shape == (256,)
    assert sd["hps.0.1.weight"].shape == (34, 256, 1, 1)
    assert sum(k.endswith("num_batches_tracked") for k in keys) == 160
    # heads follow insertion order, after the trunk
    assert [k.split(".")[0] for k in keys[-32:]][::8] == ["hm", "wh", "hps", "hm_hp"]


def test_hourglass_ctdet_figures():
    model = create_model("hourglass", CTDET, 64)
    assert len(model.state_dict()) == 984
    assert n_params(model) == 191_284_008


def test_hourglass_forward_two_stacks_and_init(hourglass):
    hourglass.eval()
    with torch.no_grad():
        out = hourglass(torch.randn(1, 3, 128, 128))
    assert len(out) == 2
    for stack in out:
        assert list(stack) == ["hm", "wh", "hps", "hm_hp"]
        assert stack["hm"].shape == (1, 3, 32, 32)
        assert stack["hps"].shape == (1, 34, 32, 32)
    assert not torch.equal(out[0]["hm"], out[1]["hm"])
    for s in range(2):
        assert torch.all(hourglass.hm[s][1].bias == -2.19)
        assert torch.all(hourglass.hm_hp[s][1].bias == -2.19)
        assert not torch.all(hourglass.wh[s][1].bias == -2.19)


def test_hourglass_trains(hourglass):
    # in-place additions in the forward must stay autograd-safe
    hourglass.train()
    out = hourglass(torch.randn(2, 3, 128, 128))
    loss = sum(v.mean() for stack in out for v in stack.values())
    loss.backward()
    assert hourglass.pre[0].conv.weight.grad is not None
    assert hourglass.kps[0].low2.low2.low2.low2.low2[0].conv1.weight.grad.abs().sum() > 0
    hourglass.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------- DataParallel / scatter
@pytest.mark.parametrize("total,n,chunks,want", [
    (4, 2, [1, 3], [1, 3]),
    (3, 2, [1, 3], [1, 2]),   # short last batch: fill the first devices
    (1, 2, [2, 2], [1]),
    (10, 2, [1, 3], [5, 5]),  # larger than the chunks: even split
    (5, 2, None, [3, 2]),
    (1, 4, None, [1]),
    (12, 3, [2, 5, 5], [2, 5, 5]),
    (8, 3, [8, 0, 0], [8]),
])
def test_split_sizes(total, n, chunks, want):
    assert split_sizes(total, n, chunks) == want


def test_scatter_cpu_targets_uneven_chunks():
    x = torch.arange(8.0).reshape(4, 2).requires_grad_()
    pieces = scatter(({"input": x, "name": "abc"}, [x, 3]), ["cpu", "cpu"], 0, [1, 3])
    assert len(pieces) == 2
    (d0, l0), (d1, l1) = pieces
    assert d0["input"].shape == (1, 2) and d1["input"].shape == (3, 2)
    assert d0["name"] == d1["name"] == "abc"
    assert torch.equal(torch.cat([l0[0], l1[0]]), x)
    assert l0[1] == l1[1] == 3
    (d1["input"].sum() * 2).backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 0], [2, 2], [2, 2], [2, 2]]))


def test_scatter_kwargs_pads():
    x = torch.zeros(3, 1)
    inputs, kwargs = scatter_kwargs((x,), None, ["cpu", "cpu"], 0, [2, 1])
    assert [i[0].shape[0] for i in inputs] == [2, 1]
    assert kwargs == ({}, {})
    inputs, kwargs = scatter_kwargs((), {"batch": x}, ["cpu", "cpu"], 0, [1, 2])
    assert inputs == ((), ()) and [k["batch"].shape[0] for k in kwargs] == [1, 2]


def test_data_parallel_factory_and_cpu_passthrough(tmp_path):
    net = torch.nn.Linear(2, 3)
    assert type(DataParallel(net, device_ids=[0, 1], chunk_sizes=[4, 4])) is torch.nn.DataParallel
    assert type(DataParallel(net)) is torch.nn.DataParallel
    dp = DataParallel(net, device_ids=[0, 1], chunk_sizes=[1, 3])
    assert isinstance(dp, _DataParallel) and dp.chunk_sizes == [1, 3]
    pieces, _ = dp.scatter((torch.zeros(4, 2),), {}, ["cpu", "cpu"])
    assert [p[0].shape[0] for p in pieces] == [1, 3]
    x = torch.randn(4, 2)
    if not torch.cuda.is_available():
        assert dp.device_ids == []
        assert torch.equal(dp(x), net(x))
    save_model(str(tmp_path / "m.pth"), 1, dp)
    assert list(torch.load(tmp_path / "m.pth", weights_only=True)["state_dict"]) == ["weight", "bias"]


@pytest.mark.skipif(torch.cuda.device_count() < 1, reason="needs CUDA")
def test_scatter_cuda_uneven():
    x = torch.randn(5, 3, requires_grad=True)
    a, b = scatter(x, [0, 0], 0, [2, 3])
    assert a.is_cuda and a.shape[0] == 2 and b.shape[0] == 3
    (a.sum() + 2 * b.sum()).backward()
    assert torch.equal(x.grad, torch.tensor([1.0] * 6 + [2.0] * 9).reshape(5, 3))


def test_imagenet_weights_missing_warns_once_and_corrupt_is_one_line(tmp_path, monkeypatch, capsys):
    """A missing hub file gives one warning line (once); a broken one stops with one line naming it."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(common, "_warned", set())
    net = torch.nn.Linear(2, 2)
    url = "https://example.invalid/resnet18-test.pth"
    assert not common.load_imagenet(net, url) and not common.load_imagenet(net, url)
    err = capsys.readouterr().err
    assert err.count("warning: ImageNet weights resnet18-test.pth") == 1 and "Traceback" not in err
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resnet18-test.pth").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="resnet18-test.pth: not a readable ImageNet weights file"):
        common.load_imagenet(net, url)
