"""src/tools/convert_hourglass_weight.py on a generated ExtremeNet-style checkpoint."""
import os
import subprocess
import sys

import pytest
import torch

from models.model import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "src", "tools", "convert_hourglass_weight.py")
sys.path.insert(0, os.path.join(ROOT, "src", "tools"))
import convert_hourglass_weight as conv  # noqa: E402

EXTREME_HEADS = ["t_heats", "l_heats", "b_heats", "r_heats", "ct_heats", "t_regrs", "l_regrs", "b_regrs", "r_regrs"]
RENAMED = ["hm_t", "hm_l", "hm_b", "hm_r", "hm_c", "reg_t", "reg_l", "reg_b", "reg_r"]


class MiniExkp(torch.nn.Module):
    """A tiny stand-in with the hourglass' naming scheme (trunk + per-stack head ModuleLists)."""

    def __init__(self, heads):
        super().__init__()
        self.heads = heads
        self.pre = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
        for h, n in heads.items():
            self.__setattr__(h, torch.nn.ModuleList([torch.nn.Conv2d(4, n, 1) for _ in range(2)]))


def fake_extremenet(path):
    """ExtremeNet's saved layout: DataParallel 'module.' keys and its head names."""
    torch.manual_seed(0)
    src = MiniExkp({h: 2 if "regrs" in h else 5 for h in EXTREME_HEADS})
    sd = {"module." + k: v for k, v in src.state_dict().items()}
    torch.save(sd, path)
    return sd


@pytest.mark.parametrize("old,new", list(zip(EXTREME_HEADS, RENAMED)))
def test_convert_key(old, new):
    assert conv.convert_key(f"module.{old}.1.0.conv.weight") == f"module.{new}.1.0.conv.weight"


def test_convert_key_leaves_trunk():
    for k in ("module.pre.0.conv.weight", "module.kps.0.low2.up1.0.bn1.running_mean", "module.cnvs_.0.1.bias"):
        assert conv.convert_key(k) == k


def test_cli_converts_and_loads(tmp_path):
    src_path, out_path = str(tmp_path / "ExtremeNet_500000.pkl"), str(tmp_path / "out" / "ExtremeNet_500000.pth")
    sd = fake_extremenet(src_path)
    r = subprocess.run([sys.executable, TOOL, src_path, out_path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "replace module.ct_heats.0.weight to module.hm_c.0.weight" in r.stdout
    assert "hm_t" in r.stdout and "chm_t" not in r.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["ExtremeNet_500000.pth"]

    ckpt = torch.load(out_path, weights_only=True)
    assert ckpt["epoch"] == 0
    out = ckpt["state_dict"]
    assert len(out) == len(sd)
    assert torch.equal(out["module.hm_c.1.bias"], sd["module.ct_heats.1.bias"])
    assert torch.equal(out["module.reg_r.0.weight"], sd["module.r_regrs.0.weight"])
    assert torch.equal(out["module.pre.0.weight"], sd["module.pre.0.weight"])

    # loads into the exdet naming, 'module.' stripped by load_model
    target = MiniExkp({h: 2 if h.startswith("reg") else 5 for h in RENAMED})
    load_model(target, out_path)
    assert torch.equal(target.hm_t[1].weight, sd["module.t_heats.1.weight"])
    assert torch.equal(target.pre[0].weight, sd["module.pre.0.weight"])


def test_cli_missing_input_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, TOOL, str(tmp_path / "none.pkl"), str(tmp_path / "o.pth")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: input checkpoint {tmp_path / 'none.pkl'}: no such file; "
                                             "check the path"]
    assert not os.path.exists(tmp_path / "o.pth")


def test_accepts_wrapped_checkpoint(tmp_path):
    src_path = str(tmp_path / "in.pth")
    torch.save({"epoch": 3, "state_dict": {"module.t_heats.0.bias": torch.ones(2)}}, src_path)
    assert conv.convert(src_path, str(tmp_path / "o.pth")) == 1
    assert list(torch.load(tmp_path / "o.pth", weights_only=True)["state_dict"]) == ["module.hm_t.0.bias"]
