"""ONNX export (src/tools/export.py, deploy/): ONNX Runtime and OpenVINO against PyTorch, both DCN forms.

The default run is lean (each export takes seconds); CENTERNET_EXPORT_ALL=1 exports every network and
task in both DCN forms.
"""
import functools
import importlib.util
import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch

from deploy.decode_graph import DecodedOutput
from deploy.network_io import HeadsOutput
from deploy.onnx_export import compare_with_onnxruntime, export_onnx
from deploy.runtime import ExportedModel
from models.decode import ctdet_decode, ddd_decode, multi_pose_decode
from models.model import create_model, save_model
from models.networks.DCNv2 import dcn_v2
from models.networks.DCNv2.dcn_v2 import DCN
from opts import opts
from utils.errors import UserError
from utils.post_process import depth_from_output

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING}"),
              pytest.mark.skipif(not dcn_v2.extension_available(), reason="DCNv2 extension not built")]
TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _torchlib_once():
    """The exporter rebuilds its table of ~500 ONNX functions on every call (4 s here): build it once."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    apis = _registration.onnxscript_apis
    original = apis.get_torchlib_ops
    apis.get_torchlib_ops = functools.cache(original)
    yield
    apis.get_torchlib_ops = original


def _export_script():
    spec = importlib.util.spec_from_file_location("centernet_export_tool", os.path.join(ROOT, "src", "tools",
                                                                                        "export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _opt(task, arch, res=64, extra=()):
    dataset = {"ctdet": "synth", "multi_pose": "synth_hp", "ddd": "synth_kitti", "exdet": "synth"}[task]
    return opts().init([task, "--arch", arch, "--dataset", dataset, "--head_conv", "8", "--input_res", str(res),
                        *extra])


def _net(opt, seed=0):
    """The network with DCN offsets and masks that really move the samples (the init gives zero offsets)."""
    torch.manual_seed(seed)
    model = create_model(opt.arch, opt.heads, opt.head_conv)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "conv_offset_mask" in name:
                p.normal_(0, 0.02)
    return model.eval()


class TinyDCNNet(torch.nn.Module):
    """A CenterNet-shaped network (images -> [heads]) small enough to export in a second: conv, DCN, heads."""

    def __init__(self, heads: dict, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.dcn = DCN(8, 8, 3, 1, 1, deformable_groups=2)
        self.heads = torch.nn.ModuleDict({h: torch.nn.Conv2d(8, c, 1) for h, c in heads.items()})
        with torch.no_grad():
            self.dcn.conv_offset_mask.weight.normal_(0, 0.3)  # offsets of a few pixels, masks away from 0.5

    def forward(self, x):
        y = torch.relu(self.dcn(torch.relu(self.stem(x))))
        return [{h: head(y) for h, head in self.heads.items()}]


def _max_diff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """resdcn_18 ctdet (moving DCN offsets) saved as a checkpoint and exported by the CLI: (dir, diffs, stdout)."""
    tmp = tmp_path_factory.mktemp("export")
    opt = _opt("ctdet", "resdcn_18")
    save_model(str(tmp / "m.pth"), 1, _net(opt))
    diffs = _export_script().main(["ctdet", "--arch", "resdcn_18", "--dataset", "synth", "--head_conv", "8",
                                   "--input_res", "64", "--load_model", str(tmp / "m.pth"),
                                   "--output", str(tmp / "m.onnx")])
    return tmp, diffs


def test_export_cli_deformconv_matches_pytorch(exported):
    tmp, diffs = exported
    assert set(diffs) == {"hm", "wh", "reg"} and max(diffs.values()) <= TOL
    import onnx
    nodes = {n.op_type for n in onnx.load(str(tmp / "m.onnx")).graph.node}
    assert "DeformConv" in nodes and "GridSample" not in nodes


def test_test_py_on_exported_model_matches_pytorch(exported, monkeypatch):
    tmp, _ = exported
    subprocess.run([sys.executable, os.path.join(ROOT, "src", "tools", "gen_synthetic.py"), "--kind", "det",
                    "--out", str(tmp / "data" / "synth"), "--train", "1", "--val", "3", "--seed", "2"],
                   check=True, capture_output=True, timeout=300)
    results = {}
    for name in ("m.pth", "m.onnx"):
        argv = ["test.py", "ctdet", "--dataset", "synth", "--arch", "resdcn_18", "--head_conv", "8",
                "--input_res", "64", "--gpus", "-1", "--data_dir", str(tmp / "data"), "--exp_root",
                str(tmp / "exp"), "--exp_id", name, "--load_model", str(tmp / name), "--not_prefetch_test",
                "--flip_test"]
        monkeypatch.setattr(sys, "argv", argv)
        runpy.run_path(os.path.join(ROOT, "src", "test.py"), run_name="__main__")
        with open(tmp / "exp" / "ctdet" / name / "results.json") as f:
            results[name] = sorted(json.load(f), key=lambda d: (d["image_id"], d["category_id"], -round(d["score"], 3),
                                                                [round(v) for v in d["bbox"]]))
    torch_dets, onnx_dets = results["m.pth"], results["m.onnx"]
    assert len(torch_dets) == len(onnx_dets) > 0
    for a, b in zip(torch_dets, onnx_dets):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert abs(a["score"] - b["score"]) <= 1e-3 and _max_diff(a["bbox"], b["bbox"]) <= 1e-2


def test_runtime_errors_are_one_line(exported):
    tmp, _ = exported
    model = ExportedModel(str(tmp / "m.onnx"))
    with pytest.raises(UserError, match="exported for input 64x64 .* export with --dynamic"):
        model(torch.randn(1, 3, 96, 64))
    assert model(torch.randn(2, 3, 64, 64))[0]["hm"].shape == (2, 6, 16, 16)  # a fixed batch of 1, run twice
    if importlib.util.find_spec("openvino"):
        with pytest.raises(UserError, match="--dcn gridsample"):
            ExportedModel(str(tmp / "m.onnx"), "openvino")
    with pytest.raises(UserError, match="no such file"):
        ExportedModel(str(tmp / "missing.onnx"))


@pytest.mark.parametrize("argv,match", [
    (["--arch", "res_7"], "--arch res_7 is unknown"),
    (["--arch", "res_18", "--output", "{tmp}/file.txt/m.onnx"], "not a writable folder"),
    (["--arch", "res_18", "--output", "m.txt"], "must end in .onnx"),
    (["--arch", "res_18", "--dcn", "deformconv", "--opset", "17"], "needs opset 19"),
])
def test_export_cli_bad_input_is_one_line(tmp_path, argv, match):
    (tmp_path / "file.txt").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--output" not in argv:
        argv = [*argv, "--output", str(tmp_path / "m.onnx")]
    with pytest.raises(UserError, match=match):
        _export_script().main(["ctdet", "--dataset", "synth", "--input_res", "64", *argv])


def test_export_refuses_checkpoint_of_other_heads(tmp_path):
    ckpt = tmp_path / "pose.pth"
    save_model(str(ckpt), 1, create_model("res_18", {"hm": 1, "wh": 2, "hps": 34, "reg": 2}, 8))
    with pytest.raises(UserError, match="heads do not match"):
        _export_script().main(["ctdet", "--arch", "res_18", "--dataset", "synth", "--head_conv", "8",
                               "--input_res", "64", "--load_model", str(ckpt), "--output", str(tmp_path / "m.onnx")])


def test_gridsample_dynamic_onnxruntime_and_openvino(tmp_path):
    heads = {"hm": 2, "wh": 2, "reg": 2}
    names = list(heads)
    module = HeadsOutput(TinyDCNNet(heads, seed=1), names).eval()
    path = str(tmp_path / "g.onnx")
    export_onnx(module, torch.randn(1, 3, 64, 64), path, names, dcn="gridsample", dynamic=True)
    import onnx
    assert "DeformConv" not in {n.op_type for n in onnx.load(path).graph.node}
    backends = ["onnxruntime"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    runtimes = {b: ExportedModel(path, b) for b in backends}  # OpenVINO with its precision hint at f32
    for shape in ((3, 3, 64, 96), (1, 3, 96, 64)):  # other batch sizes and input sizes than the export's
        x = torch.randn(*shape)
        with torch.no_grad():
            want = module(x)
        for backend, runtime in runtimes.items():
            got = runtime(x)[0]
            for name, w in zip(names, want):
                assert got[name].shape == w.shape
                assert _max_diff(got[name], w) <= TOL, (backend, shape, name)


def test_deformconv_dynamic_batch_and_size(tmp_path):
    heads = {"hm": 2, "wh": 2}
    module = HeadsOutput(TinyDCNNet(heads, seed=2), list(heads)).eval()
    path = str(tmp_path / "d.onnx")
    export_onnx(module, torch.randn(1, 3, 64, 64), path, list(heads), dynamic=True)
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        want = module(x)
    got = ExportedModel(path)(x)[0]
    assert max(_max_diff(got[n], w) for n, w in zip(heads, want)) <= TOL


def _python_decode(task, out, K):
    """What the detectors compute from the heads (without flip test)."""
    heat = out["hm"].sigmoid()
    if task == "ctdet":
        return ctdet_decode(heat, out["wh"], reg=out["reg"], K=K)
    if task == "multi_pose":
        return multi_pose_decode(heat, out["wh"], out["hps"], reg=out["reg"], hm_hp=out["hm_hp"].sigmoid(),
                                 hp_offset=out["hp_offset"], K=K)
    return ddd_decode(heat, out["rot"], depth_from_output(out["dep"]), out["dim"], wh=out["wh"], reg=out["reg"], K=K)


@pytest.mark.parametrize("task,width", [("ctdet", 6), ("multi_pose", 40), ("ddd", 18)])
def test_decode_in_graph_equals_python_decode(tmp_path, task, width):
    opt = _opt(task, "res_18", extra=["--K", "20"])
    net = TinyDCNNet(opt.heads, seed=3).eval()
    module = DecodedOutput(net, opt).eval()
    path = str(tmp_path / "d.onnx")
    x = torch.randn(2, 3, 64, 64)
    export_onnx(module, x, path, ["dets"])
    import onnxruntime as ort
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = _python_decode(task, net(x)[-1], 20)
    assert got.shape == (2, 20, width)
    assert _max_diff(got, want) <= TOL


@pytest.mark.parametrize("task", ["ctdet", "ddd"])
def test_dynamic_decode_in_graph_takes_any_batch_and_size(tmp_path, task):
    opt = _opt(task, "res_18", extra=["--K", "20"])
    net = TinyDCNNet(opt.heads, seed=3).eval()
    path = str(tmp_path / "d.onnx")
    export_onnx(DecodedOutput(net, opt).eval(), torch.randn(2, 3, 64, 64), path, ["dets"], dynamic=True)
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 96, 64), (3, 3, 64, 128)]:
        x = torch.randn(*shape)
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = _python_decode(task, net(x)[-1], 20)
        assert got.shape[:2] == (shape[0], 20)
        assert _max_diff(got, want) <= TOL


def test_half_export_with_dcn_is_valid_onnx(tmp_path):
    import onnx
    heads = {"hm": 2, "wh": 2}
    module = HeadsOutput(TinyDCNNet(heads), list(heads)).half().eval()
    path = str(tmp_path / "h.onnx")
    export_onnx(module, torch.randn(1, 3, 64, 64).half(), path, list(heads))  # runs onnx.checker
    model = onnx.load(path)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert "DeformConv" in {n.op_type for n in model.graph.node}


ALL_ARCHS = ("res_18", "resdcn_18", "dla_34", "dlav0_34", "hourglass")
ALL_TASKS = ("ctdet", "multi_pose", "ddd", "exdet")


@pytest.mark.skipif(os.environ.get("CENTERNET_EXPORT_ALL") != "1", reason="set CENTERNET_EXPORT_ALL=1 (minutes)")
@pytest.mark.parametrize("arch", ALL_ARCHS)
@pytest.mark.parametrize("task", ALL_TASKS)
@pytest.mark.parametrize("dcn", ("deformconv", "gridsample"))
def test_every_network_and_task_exports(tmp_path, arch, task, dcn):
    if dcn == "gridsample" and arch in ("res_18", "dlav0_34", "hourglass"):
        pytest.skip("no DCN in this network: the two forms are the same file")
    opt = _opt(task, arch, res=128 if arch == "hourglass" else 64)
    names = list(opt.heads)
    if arch == "hourglass":  # the same network code with narrow layers: Hourglass-104 takes many minutes
        from models.networks.large_hourglass import exkp
        net = exkp(n=5, nstack=2, dims=[256, 16, 24, 24, 24, 32], modules=[1, 1, 1, 1, 1, 2], heads=opt.heads,
                   cnv_dim=16).eval()
    else:
        net = _net(opt)
    module = HeadsOutput(net, names).eval()
    x = torch.randn(1, 3, opt.input_h, opt.input_w)
    path = str(tmp_path / "m.onnx")
    export_onnx(module, x, path, names, dcn=dcn)
    diffs = compare_with_onnxruntime(path, module, x, names)
    print(f"{task} {arch} {dcn}: max abs diff {max(diffs.values()):.2e}")
    assert max(diffs.values()) <= TOL, diffs

