"""Trainers (ctdet, exdet), the training loop, train_factory and the Logger files."""
import glob
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from logger import Logger
from models.model import create_model
from opts import opts
from trains.ctdet import CtdetLoss, CtdetTrainer
from trains.exdet import ExdetLoss
from trains.train_factory import train_factory
from utils.utils import AverageMeter

torch.set_num_threads(1)
NUM_CLASSES = 2
INFO = SimpleNamespace(default_resolution=[64, 64], num_classes=NUM_CLASSES,
                       mean=np.array([0.4, 0.45, 0.5], np.float32).reshape(1, 1, 3),
                       std=np.array([0.28, 0.27, 0.28], np.float32).reshape(1, 1, 3))


def make_opt(tmp_path, task="ctdet", *extra):
    o = opts()
    opt = o.parse([task, "--arch", "res_18", "--gpus", "-1", "--exp_root", str(tmp_path / "exp"), *extra])
    opt.dataset = "pascal"
    opt = o.update_dataset_info_and_set_heads(opt, INFO)
    opt.device = torch.device("cpu")
    return opt


def ctdet_batch(max_objs=4):
    """One 64x64 sample with two objects, in the ctdet sample layout (output 16x16)."""
    hm = np.zeros((NUM_CLASSES, 16, 16), np.float32)
    hm[0, 5, 4] = 1
    hm[1, 10, 12] = 1
    hm[0, 5, 5] = 0.5
    ind = np.zeros(max_objs, np.int64)
    ind[:2] = [5 * 16 + 4, 10 * 16 + 12]
    wh = np.zeros((max_objs, 2), np.float32)
    wh[:2] = [[4, 6], [8, 3]]
    reg = np.zeros((max_objs, 2), np.float32)
    reg[:2] = [[0.3, 0.6], [0.5, 0.1]]
    mask = np.zeros(max_objs, np.uint8)
    mask[:2] = 1
    gt_det = np.array([[[14, 18, 30, 42, 1, 0], [42, 36, 74, 48, 1, 1]]], np.float32) / [4, 4, 4, 4, 1, 1]
    batch = {"input": torch.randn(1, 3, 64, 64), "hm": torch.from_numpy(hm)[None],
             "ind": torch.from_numpy(ind)[None], "wh": torch.from_numpy(wh)[None], "reg": torch.from_numpy(reg)[None],
             "reg_mask": torch.from_numpy(mask)[None],
             "meta": {"c": torch.tensor([[32., 32.]]), "s": torch.tensor([64.]), "img_id": torch.tensor([7]),
                      "gt_det": torch.from_numpy(gt_det.astype(np.float32))}}
    return batch


def clone_batch(b):
    return {k: (clone_batch(v) if isinstance(v, dict) else v.clone()) for k, v in b.items()}


def test_average_meter_weighted():
    m = AverageMeter()
    m.update(2.0, 1)
    m.update(4.0, 3)
    assert m.val == 4.0 and m.count == 4 and m.avg == pytest.approx(3.5)


def test_train_factory_registry():
    assert set(train_factory) == {"ctdet", "exdet", "multi_pose", "ddd", "centernet2"}
    assert train_factory["ctdet"] is CtdetTrainer


def test_ctdet_loss_stats_and_sigmoid_in_place(tmp_path):
    opt = make_opt(tmp_path)
    out = {"hm": torch.zeros(1, NUM_CLASSES, 16, 16), "wh": torch.zeros(1, 2, 16, 16), "reg": torch.zeros(1, 2, 16, 16)}
    loss, stats = CtdetLoss(opt)([out], ctdet_batch())
    assert list(stats) == ["loss", "hm_loss", "wh_loss", "off_loss"]
    # all-zero predictions: |0 - wh| averaged over the 4 masked values, same for the offsets
    assert stats["wh_loss"].item() == pytest.approx((4 + 6 + 8 + 3) / 4, rel=1e-3)
    assert stats["off_loss"].item() == pytest.approx((0.3 + 0.6 + 0.5 + 0.1) / 4, rel=1e-3)
    assert loss.item() == pytest.approx(stats["hm_loss"].item() + 0.1 * stats["wh_loss"].item()
                                        + stats["off_loss"].item(), rel=1e-5)
    assert torch.allclose(out["hm"], torch.full_like(out["hm"], 0.5))  # the trainer's debug/save see sigmoids


def test_norm_wh_alone_changes_nothing_as_in_the_original(tmp_path):
    """--norm_wh only picks the loss of the --cat_spec_wh branch; the plain size term stays crit_reg."""
    def wh_loss(*extra):
        out = {"hm": torch.zeros(1, NUM_CLASSES, 16, 16), "wh": torch.ones(1, 2, 16, 16),
               "reg": torch.zeros(1, 2, 16, 16)}
        return CtdetLoss(make_opt(tmp_path, "ctdet", *extra))([out], ctdet_batch())[1]["wh_loss"].item()

    assert wh_loss("--norm_wh") == wh_loss() == pytest.approx((3 + 5 + 7 + 2) / 4, rel=1e-3)


def test_ctdet_oracle_outputs_zero_regression_loss(tmp_path):
    pytest.importorskip("numba")
    opt = make_opt(tmp_path, "ctdet", "--eval_oracle_hm", "--eval_oracle_wh", "--eval_oracle_offset")
    out = {"hm": torch.zeros(1, NUM_CLASSES, 16, 16), "wh": torch.zeros(1, 2, 16, 16), "reg": torch.zeros(1, 2, 16, 16)}
    _, stats = CtdetLoss(opt)([out], ctdet_batch())
    assert stats["wh_loss"].item() == pytest.approx(0, abs=1e-4)
    assert stats["off_loss"].item() == pytest.approx(0, abs=1e-4)


def test_disabled_loss_terms_are_zero_tensors(tmp_path):
    # a term whose weight is 0 is never accumulated, yet is a tensor like the others (logged as 0)
    opt = make_opt(tmp_path, "ctdet", "--wh_weight", "0", "--not_reg_offset")
    out = {"hm": torch.zeros(1, NUM_CLASSES, 16, 16), "wh": torch.zeros(1, 2, 16, 16)}
    loss, stats = CtdetLoss(opt)([out], ctdet_batch())
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in stats.values())
    assert stats["wh_loss"].item() == 0 and stats["off_loss"].item() == 0
    assert loss.item() == pytest.approx(stats["hm_loss"].item(), rel=1e-6)
    opt = make_opt(tmp_path, "exdet", "--not_reg_offset")
    outs = {k: torch.zeros(1, c, 16, 16) for k, c in opt.heads.items()}
    batch = {f"hm_{p}": torch.zeros(1, NUM_CLASSES, 16, 16) for p in "tlbrc"}
    _, stats = ExdetLoss(opt)([outs], batch)
    assert torch.is_tensor(stats["off_loss"]) and stats["off_loss"].item() == 0


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("res_18", {"hm": NUM_CLASSES, "wh": 2, "reg": 2}, 64)


def test_one_training_iteration_and_save_result(tmp_path, tiny_model):
    opt = make_opt(tmp_path, "ctdet", "--print_iter", "1")
    model = tiny_model
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    trainer = CtdetTrainer(opt, model, optimizer)
    trainer.set_device(opt.gpus, opt.chunk_sizes, opt.device)
    before = [p.detach().clone() for p in model.parameters()]
    ret, results = trainer.train(1, [clone_batch(ctdet_batch())])
    assert set(ret) == {"loss", "hm_loss", "wh_loss", "off_loss", "time"}
    assert all(np.isfinite(v) for v in ret.values())
    assert 0 < ret["loss"] < 1e4 and results == {}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))

    opt.test = True
    with torch.no_grad():
        ret, results = trainer.val(0, [clone_batch(ctdet_batch())])
    assert list(results) == [7]
    assert sorted(results[7]) == [1, 2]
    assert sum(len(v) for v in results[7].values()) == opt.K


def test_zero_weight_term_is_logged(tmp_path, tiny_model):
    opt = make_opt(tmp_path, "ctdet", "--wh_weight", "0", "--num_iters", "1")
    trainer = CtdetTrainer(opt, tiny_model, torch.optim.Adam(tiny_model.parameters(), 1e-4))
    trainer.set_device(opt.gpus, opt.chunk_sizes, opt.device)
    ret, _ = trainer.train(1, [clone_batch(ctdet_batch()), clone_batch(ctdet_batch())])
    assert ret["wh_loss"] == 0.0


def test_debug_4_writes_images(tmp_path, tiny_model):
    opt = make_opt(tmp_path, "ctdet", "--debug", "4")
    os.makedirs(opt.debug_dir)
    trainer = CtdetTrainer(opt, tiny_model, torch.optim.Adam(tiny_model.parameters(), 1e-4))
    trainer.set_device(opt.gpus, opt.chunk_sizes, opt.device)
    trainer.train(1, [clone_batch(ctdet_batch())])
    assert sorted(os.listdir(opt.debug_dir)) == ["0gt_hm.png", "0out_gt.png", "0out_pred.png", "0pred_hm.png"]


def test_exdet_loss_finite(tmp_path):
    opt = make_opt(tmp_path, "exdet")
    outs = {k: torch.zeros(1, c, 16, 16) for k, c in opt.heads.items()}
    batch = {f"hm_{p}": torch.zeros(1, NUM_CLASSES, 16, 16) for p in "tlbrc"}
    for p in "tlbrc":
        batch[f"hm_{p}"][0, 0, 4, 4] = 1
    for p in "tlbr":
        batch[f"ind_{p}"] = torch.tensor([[4 * 16 + 4, 0]])
        batch[f"reg_{p}"] = torch.tensor([[[0.25, 0.5], [0, 0]]])
    batch["reg_mask"] = torch.tensor([[1, 0]], dtype=torch.uint8)
    loss, stats = ExdetLoss(opt)([outs], batch)
    assert set(stats) == {"loss", "hm_loss", "off_loss"}
    assert torch.isfinite(loss)
    assert stats["off_loss"].item() == pytest.approx(4 * 0.375, rel=1e-3)


def test_logger_files(tmp_path):
    opt = make_opt(tmp_path)
    logger = Logger(opt)
    logger.write("epoch: 1 |")
    logger.write("loss 1.500000 | ")
    logger.write("\n")
    logger.scalar_summary("train_loss", 1.5, 1)
    logger.close()
    text = open(os.path.join(opt.save_dir, "opt.txt")).read()
    assert text.startswith("==> torch version: ")
    assert "==> Cmd:\n" in text and "\n==> Opt:\n" in text and "  arch: res_18\n" in text
    assert os.path.isdir(opt.debug_dir)
    logs = glob.glob(os.path.join(opt.save_dir, "logs_*"))
    assert len(logs) == 1
    assert open(os.path.join(logs[0], "opt.txt")).read() == text
    line = open(os.path.join(logs[0], "log.txt")).read()
    assert line.endswith(": epoch: 1 |loss 1.500000 | \n")
    assert len(line.split(": ", 1)[0]) == len("2019-04-20-12-31")
