"""Mixed precision (--amp): float32 losses on half-precision outputs, bf16 training and inference on the CPU,
the fp16 scaler in checkpoints, --amp auto, and the fp16/NCCL paths on a GPU."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from detectors.ctdet import CtdetDetector
from models.losses import FocalLoss
from models.model import create_model, resume_training, save_model
from models.utils import _sigmoid
from opts import opts
from trains.ctdet import CtdetTrainer
from utils import amp
from utils.errors import UserError

torch.set_num_threads(1)
INFO = SimpleNamespace(default_resolution=[64, 64], num_classes=2,
                       mean=np.array([0.4, 0.45, 0.5], np.float32).reshape(1, 1, 3),
                       std=np.array([0.28, 0.27, 0.28], np.float32).reshape(1, 1, 3))
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def make_opt(tmp_path, *extra):
    o = opts()
    opt = o.parse(["ctdet", "--arch", "res_18", "--gpus", "-1", "--exp_root", str(tmp_path / "exp"),
                   "--head_conv", "16", *extra])
    opt.dataset = "pascal"
    return o.update_dataset_info_and_set_heads(opt, INFO)


def heat_target(dtype=torch.float32):
    gt = torch.zeros(1, 2, 8, 8, dtype=dtype)
    gt[0, 0, 3, 3] = 1
    gt[0, 0, 3, 4] = 0.5
    gt[0, 1, 6, 2] = 1
    return gt


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_sigmoid_breaks_the_original_focal_loss_and_float_outputs_fix_it(dtype):
    # logits up to 20 on negatives: 1 - 1e-4 is 1.0 in half precision, so log(1 - p) is -inf
    logits = torch.full((1, 2, 8, 8), 20.0)
    gt = heat_target()
    broken = FocalLoss()(_sigmoid(logits.to(dtype)), gt.to(dtype))
    assert not torch.isfinite(broken)
    for value in (-20.0, 0.0, 8.5, 12.0, 20.0):
        half_logits = torch.full((1, 2, 8, 8), value, dtype=dtype)
        fixed = FocalLoss()(_sigmoid(amp.to_float(half_logits)), gt)
        assert fixed.dtype == torch.float32 and torch.isfinite(fixed), value


def test_to_float_casts_nested_outputs_and_keeps_integers():
    out = amp.to_float([{"hm": torch.ones(2, dtype=torch.bfloat16), "ind": torch.ones(2, dtype=torch.int64)}])
    assert out[0]["hm"].dtype == torch.float32 and out[0]["ind"].dtype == torch.int64


def ctdet_batch(seed):
    g = torch.Generator().manual_seed(seed)
    hm = torch.zeros(2, 2, 16, 16)
    hm[0, 0, 5, 4] = hm[0, 1, 10, 12] = hm[1, 0, 8, 8] = 1
    ind = torch.zeros(2, 4, dtype=torch.int64)
    ind[0, :2] = torch.tensor([5 * 16 + 4, 10 * 16 + 12])
    ind[1, 0] = 8 * 16 + 8
    mask = torch.zeros(2, 4, dtype=torch.uint8)
    mask[0, :2] = mask[1, 0] = 1
    wh = torch.rand(2, 4, 2, generator=g) * 8
    return {"input": torch.randn(2, 3, 64, 64, generator=g), "hm": hm, "ind": ind, "wh": wh,
            "reg": torch.rand(2, 4, 2, generator=g), "reg_mask": mask}


def train_losses(tmp_path, precision: str, steps: int = 3) -> list[float]:
    opt = make_opt(tmp_path, *(["--amp", precision] if precision else []))
    torch.manual_seed(0)
    model = create_model("res_18", opt.heads, opt.head_conv)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    trainer = CtdetTrainer(opt, model, optimizer)
    trainer.set_device([-1], [2], torch.device("cpu"), amp=precision)
    trainer.model_with_loss.train()
    losses = []
    for step in range(steps):
        _, loss, stats = trainer.model_with_loss(ctdet_batch(step))
        assert loss.dtype == torch.float32 and stats["hm_loss"].dtype == torch.float32
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_bf16_cpu_training_steps_are_finite_and_close_to_float32(tmp_path):
    fp32 = train_losses(tmp_path, "")
    bf16 = train_losses(tmp_path, "bf16")
    assert all(np.isfinite(bf16))
    # the same weights give the same loss up to bf16's 8-bit mantissa; after a few steps the two runs
    # drift apart a little, as two float32 runs on different hardware would
    np.testing.assert_allclose(bf16[0], fp32[0], rtol=0.01)
    np.testing.assert_allclose(bf16, fp32, rtol=0.1)
    assert bf16[-1] < bf16[0]


def test_scaler_state_is_saved_under_its_own_key_and_resumed(tmp_path):
    model = create_model("res_18", {"hm": 2, "wh": 2, "reg": 2}, 16)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    path = str(tmp_path / "model_last.pth")
    save_model(path, 3, model, optimizer, scaler)
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"epoch", "state_dict", "optimizer", "scaler"}
    assert saved["scaler"]["scale"] == 1024.0
    fresh = torch.amp.GradScaler("cpu")
    _, _, epoch = resume_training(model, path, optimizer, 1e-3, [90], scaler=fresh)
    assert epoch == 3 and fresh.get_scale() == 1024.0
    # without a scaler the file is the original's layout
    save_model(path, 3, model, optimizer)
    assert set(torch.load(path, weights_only=True)) == {"epoch", "state_dict", "optimizer"}


def test_bf16_detector_matches_float32(tmp_path):
    torch.manual_seed(0)
    model = create_model("res_18", {"hm": 2, "wh": 2, "reg": 2}, 16)
    ckpt = str(tmp_path / "m.pth")
    save_model(ckpt, 0, model)
    image = np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    heat, scores = {}, {}
    for precision in ("", "bf16"):
        opt = make_opt(tmp_path, "--load_model", ckpt, *(["--amp", precision] if precision else []))
        detector = CtdetDetector(opt)
        output = detector._network_output(detector.pre_process(image, 1)[0])
        assert output["hm"].dtype == torch.float32
        heat[precision] = output["hm"].sigmoid()
        results = detector.run(image)["results"]
        scores[precision] = np.sort(np.concatenate([r[:, 4] for r in results.values()]))[::-1]
    assert (heat["bf16"] - heat[""]).abs().max() < 0.02
    np.testing.assert_allclose(scores["bf16"][:20], scores[""][:20], atol=0.02)


def test_amp_checks_and_auto(monkeypatch, capsys):
    with pytest.raises(UserError, match="--amp fp16.*--amp bf16"):
        amp.check_amp("fp16", torch.device("cpu"))
    amp.check_amp("bf16", torch.device("cpu"))
    assert amp.grad_scaler("bf16", torch.device("cpu")) is None
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: True)
    assert amp.resolve_amp("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: False)
    assert amp.resolve_amp("auto", torch.device("cpu")) == ""
    assert amp.resolve_amp("bf16", torch.device("cpu")) == "bf16"
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 2 and "native bfloat16" in said[0] and "float32" in said[1]


@CUDA
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_amp_training_step(tmp_path, precision):
    opt = make_opt(tmp_path, "--amp", precision)
    model = create_model("res_18", opt.heads, opt.head_conv)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    trainer = CtdetTrainer(opt, model, optimizer)
    device = torch.device("cuda", 0)
    trainer.set_device([0], [2], device, amp=precision, scaler=amp.grad_scaler(precision, device))
    batch = {k: v.to(device) for k, v in ctdet_batch(0).items()}
    _, loss, _ = trainer.model_with_loss(batch)
    assert torch.isfinite(loss)
    if trainer.scaler is not None:
        trainer.scaler.scale(loss).backward()
        trainer.scaler.step(optimizer)
        trainer.scaler.update()
        assert trainer.scaler.get_scale() > 0
