"""Checkpoint I/O: save_model / load_model (load_weights, resume_training) format, messages, resume, lr, errors."""
import argparse
import os

import pytest
import torch

from models.model import create_model, load_model, load_weights, resume_training, save_model
from utils.errors import UserError
from utils.lr_schedule import lr_at_epoch

torch.set_num_threads(1)
HEADS = {"hm": 3, "wh": 2, "reg": 2}
MSG = "If you see this, your model does not fully load the pre-trained weight."


def fresh(seed, heads=HEADS):
    torch.manual_seed(seed)
    return create_model("res_18", heads, 64)


def run(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)[0]


@pytest.fixture(scope="module")
def trained():
    """A res_18 whose BN statistics and weights differ from any fresh init."""
    model = fresh(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.train()
    model(torch.randn(2, 3, 64, 64))  # moves running stats and num_batches_tracked
    return model


def test_round_trip_identical_outputs(tmp_path, trained, capsys):
    path = str(tmp_path / "model_last.pth")
    save_model(path, 3, trained)
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"epoch", "state_dict"} and ckpt["epoch"] == 3
    assert list(ckpt["state_dict"]) == list(trained.state_dict())
    assert [p for p in os.listdir(tmp_path)] == ["model_last.pth"]  # no temporary file left behind

    model = load_model(fresh(2), path)
    assert f"loaded {path}, epoch 3" in capsys.readouterr().out
    x = torch.randn(1, 3, 64, 64)
    want, got = run(trained, x), run(model, x)
    for head in HEADS:
        assert torch.equal(want[head], got[head])
    assert model.bn1.num_batches_tracked.item() == 1


def test_module_prefix_is_stripped(tmp_path, trained, capsys):
    path = str(tmp_path / "dp.pth")
    sd = {"module." + k: v for k, v in trained.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": sd}, path)
    model = load_model(fresh(3), path)
    out = capsys.readouterr().out
    assert "Drop parameter" not in out and "No param" not in out
    assert torch.equal(model.hm[2].weight, trained.hm[2].weight)


def test_module_list_names_keep_their_prefix(tmp_path, capsys):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module_list = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    src, dst = Net(), Net()
    path = str(tmp_path / "ml.pth")
    torch.save({"epoch": 0, "state_dict": src.state_dict()}, path)
    load_model(dst, path)
    assert torch.equal(src.module_list[0].weight, dst.module_list[0].weight)
    assert "Drop parameter" not in capsys.readouterr().out


def test_other_number_of_classes_skips_heads(tmp_path, trained, capsys):
    path = str(tmp_path / "coco.pth")
    save_model(path, 140, trained)
    target = fresh(4, {"hm": 7, "wh": 2, "reg": 2})
    hm_before = target.hm[2].weight.clone()
    load_model(target, path)
    out = capsys.readouterr().out
    assert (f"Skip loading parameter hm.2.weight, required shapetorch.Size([7, 64, 1, 1]), "
            f"loaded shapetorch.Size([3, 64, 1, 1]). {MSG}") in out
    assert "Skip loading parameter hm.2.bias" in out
    assert "; kept at their initialisation: heads hm;" in out or "; kept at their initialisation: heads hm." in out
    assert torch.equal(target.hm[2].weight, hm_before)
    assert torch.all(target.hm[2].bias == -2.19)
    assert torch.equal(target.hm[0].weight, trained.hm[0].weight)  # same-shaped part of the head loads
    assert torch.equal(target.wh[2].weight, trained.wh[2].weight)


def test_drop_and_missing_parameters(tmp_path, trained, capsys):
    sd = dict(trained.state_dict())
    sd["extra.weight"] = torch.zeros(3)
    del sd["wh.2.bias"]
    path = str(tmp_path / "partial.pth")
    torch.save({"epoch": 5, "state_dict": sd}, path)
    target = fresh(5)
    load_model(target, path)
    out = capsys.readouterr().out
    assert f"Drop parameter extra.weight.{MSG}" in out
    assert f"No param wh.2.bias.{MSG}" in out
    assert "kept at their initialisation: heads wh" in out and "1 checkpoint tensors unused" in out
    assert torch.all(target.wh[2].bias == 0)
    assert torch.equal(target.wh[2].weight, trained.wh[2].weight)


def _train_step(model, opt):
    model.train()
    out = model(torch.randn(2, 3, 32, 32))[0]
    sum(v.mean() for v in out.values()).backward()
    opt.step()
    opt.zero_grad()


@pytest.mark.parametrize("epoch,want_lr", [(95, 1.25e-5), (89, 1.25e-4), (90, 1.25e-5), (120, 1.25e-6)])
def test_resume_restores_optimizer_epoch_and_lr(tmp_path, capsys, epoch, want_lr):
    model = fresh(6)
    opt = torch.optim.Adam(model.parameters(), 1.25e-4)
    _train_step(model, opt)
    path = str(tmp_path / "model_last.pth")
    save_model(path, epoch, model, opt)

    model2 = fresh(7)
    opt2 = torch.optim.Adam(model2.parameters(), 1.25e-4)
    model2, opt2, start_epoch = load_model(model2, path, opt2, resume=True, lr=1.25e-4, lr_step=[90, 120])
    assert start_epoch == epoch
    assert all(g["lr"] == pytest.approx(want_lr) for g in opt2.param_groups)
    assert "Resumed optimizer with start lr" in capsys.readouterr().out
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and len(s1) > 0
    for k in s1:
        assert torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"])
        assert torch.equal(s1[k]["step"], s2[k]["step"])
    # training continues from the restored state
    _train_step(model2, opt2)


def test_resume_without_optimizer_in_checkpoint(tmp_path, trained, capsys):
    path = str(tmp_path / "weights_only.pth")
    save_model(path, 30, trained)
    opt = torch.optim.Adam(trained.parameters(), 1e-3)
    _, opt2, start_epoch = load_model(fresh(8), path, opt, resume=True, lr=1e-3, lr_step=[10])
    assert start_epoch == 0 and opt2 is opt
    assert "No optimizer parameters in checkpoint." in capsys.readouterr().out


def test_fine_tune_keeps_fresh_optimizer(tmp_path):
    model = fresh(9)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    _train_step(model, opt)
    path = str(tmp_path / "m.pth")
    save_model(path, 50, model, opt)
    opt2 = torch.optim.Adam(model.parameters(), 5e-4)
    _, _, start_epoch = load_model(fresh(10), path, opt2, resume=False, lr=5e-4, lr_step=[10])
    assert start_epoch == 0 and opt2.param_groups[0]["lr"] == 5e-4 and not opt2.state_dict()["state"]


def test_load_model_dispatches_to_the_explicit_functions(tmp_path, capsys):
    model = fresh(13)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    _train_step(model, opt)
    path = str(tmp_path / "m.pth")
    save_model(path, 12, model, opt)
    x = torch.randn(1, 3, 32, 32)
    want = run(model, x)
    # weights only: the model comes back alone, whatever the resume flag says without an optimizer
    for loaded in (load_weights(fresh(14), path), load_model(fresh(14), path),
                   load_model(fresh(14), path, resume=True)):
        assert isinstance(loaded, torch.nn.Module)
        assert all(torch.equal(want[k], v) for k, v in run(loaded, x).items())
    # resuming: (model, optimizer, start_epoch), the lr where the schedule stands after epoch 12
    opt2 = torch.optim.Adam(fresh(15).parameters(), 1e-3)
    model2, opt3, start_epoch = resume_training(fresh(15), path, opt2, 1e-3, [10, 20])
    assert opt3 is opt2 and start_epoch == 12 and opt2.param_groups[0]["lr"] == lr_at_epoch(1e-3, [10, 20], 12)
    assert "Resumed optimizer with start lr 0.0001" in capsys.readouterr().out
    # no lr given: the checkpoint's own lr
    _, opt4, _ = resume_training(fresh(15), path, torch.optim.Adam(fresh(15).parameters(), 7.0))
    assert opt4.param_groups[0]["lr"] == 1e-3


def test_lr_at_epoch_matches_the_per_epoch_drop():
    steps = [90, 120]
    assert [lr_at_epoch(1.25e-4, steps, e) for e in (0, 89, 90, 119, 120, 140)] == [
        1.25e-4, 1.25e-4, 1.25e-4 * 0.1 ** 1, 1.25e-4 * 0.1 ** 1, 1.25e-4 * 0.1 ** 2, 1.25e-4 * 0.1 ** 2]
    # main.py drops to the same float at each step epoch as a run resumed after that epoch restarts with
    for lr in (1.25e-4, 5e-4, 2.5e-4, 7e-4):
        for index, epoch in enumerate(steps):
            assert lr_at_epoch(lr, steps, epoch) == lr * (0.1 ** (index + 1))
    assert lr_at_epoch(5e-4, [], 300) == 5e-4


def test_missing_and_broken_files(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(UserError, match=f"^--load_model {missing}: no such file; "):
        load_model(fresh(0), missing)
    with pytest.raises(UserError, match="--load_model: no checkpoint given"):
        load_model(fresh(0), "")
    broken = tmp_path / "broken.pth"
    good = tmp_path / "good.pth"
    torch.save({"epoch": 1, "state_dict": {"a": torch.zeros(100)}}, good)
    broken.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_model(fresh(0), str(broken))
    torch.save({"epoch": 1, "weights": {}}, good)
    with pytest.raises(UserError, match="no 'state_dict'"):
        load_model(fresh(0), str(good))


def test_bare_state_dict_and_python_objects(tmp_path, trained, capsys):
    bare = str(tmp_path / "bare.pth")
    torch.save(trained.state_dict(), bare)
    model = load_model(fresh(11), bare)
    assert torch.equal(model.conv1.weight, trained.conv1.weight)
    # a checkpoint carrying pickled Python objects: refused, then loaded when the user trusts it
    odd = str(tmp_path / "odd.pth")
    torch.save({"epoch": 2, "state_dict": trained.state_dict(), "opt": argparse.Namespace(lr=1)}, odd)
    with pytest.raises(UserError, match="argparse.Namespace"):
        load_model(fresh(12), odd)
    model = load_model(fresh(12), odd, trust=True)
    assert torch.equal(model.layer1[0].conv1.weight, trained.layer1[0].conv1.weight)
    captured = capsys.readouterr()
    assert "epoch 2" in captured.out and "warning:" in captured.err


def test_save_model_unwraps_data_parallel(tmp_path, trained):
    path = str(tmp_path / "dp.pth")
    save_model(path, 1, torch.nn.DataParallel(trained))
    keys = list(torch.load(path, weights_only=True)["state_dict"])
    assert keys == list(trained.state_dict())
