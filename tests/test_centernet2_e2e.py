"""centernet2 end to end on the CPU through the original's entry scripts: train, resume, test, demo."""
import json

import pytest
import torch
from script_runner import gen_synthetic
from script_runner import run_script as run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    base = tmp_path_factory.mktemp("cn2")
    gen_synthetic(base / "data" / "synth", "det", 4, 2, seed=1)
    return base


def common(base):
    # a lean network: 16-wide box heads, few proposals, 64 x 64 inputs
    return ["--dataset", "synth", "--exp_id", "e2e", "--arch", "res_18_fpn", "--gpus", "-1", "--input_res", "64",
            "--head_conv", "16", "--num_proposals_train", "32", "--num_proposals_test", "16", "--roi_batch_size", "32",
            "--data_dir", str(base / "data"), "--exp_root", str(base / "exp")]


def test_train_resume_test_demo(workdir):
    args = common(workdir)
    save_dir = workdir / "exp" / "centernet2" / "e2e"
    run(["main.py", "centernet2", *args, "--batch_size", "2", "--num_epochs", "1", "--num_iters", "2",
         "--val_intervals", "0", "--num_workers", "0", "--optim", "sgd", "--lr", "0.01", "--warmup_iters", "2"])
    for name in ("opt.txt", "model_last.pth"):
        assert (save_dir / name).is_file(), name
    log = next((save_dir).glob("logs_*/log.txt")).read_text()
    assert "giou_loss" in log and "cls_loss" in log
    ckpt = torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and "optimizer" in ckpt
    assert "roi_heads.box_predictor.2.cls_score.weight" in ckpt["state_dict"]

    out = run(["main.py", "centernet2", *args, "--batch_size", "2", "--num_epochs", "2", "--num_iters", "1",
               "--val_intervals", "0", "--num_workers", "0", "--optim", "sgd", "--lr", "0.01", "--resume"]).stdout
    assert "resumed" in out.lower()
    assert torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=True)["epoch"] == 2

    out = run(["test.py", "centernet2", *args, "--resume", "--not_prefetch_test"]).stdout
    assert "Average Precision" in out
    assert isinstance(json.load(open(save_dir / "results.json")), list)

    demo_dir = workdir / "demo"
    image = next((workdir / "data" / "synth" / "images").rglob("*.jpg"))
    out = run(["demo.py", "centernet2", *args, "--load_model", str(save_dir / "model_last.pth"), "--demo", str(image),
               "--demo_out_dir", str(demo_dir)]).stdout
    # the timing line carries the three stages
    assert all(f"{stage} " in out for stage in ("backbone", "proposals", "roi_heads"))
    assert list(demo_dir.glob("*.png")) or list(demo_dir.glob("*.jpg"))


def test_sigmoid_ce_and_federated_loss(workdir):
    args = [*common(workdir), "--exp_id", "fed", "--sigmoid_ce"]
    out = run(["main.py", "centernet2", *args, "--batch_size", "2", "--num_epochs", "1", "--num_iters", "2",
               "--val_intervals", "0", "--num_workers", "0", "--fed_loss", "--fed_loss_num_cat", "3"]).stdout
    # 4 generated training images: each class counted by the images that hold it
    assert "federated loss: 3 of 6 classes per step" in out
    log = next((workdir / "exp" / "centernet2" / "fed").glob("logs_*/log.txt")).read_text()
    cls_loss = float(log.split("cls_loss")[1].split("|")[0])
    assert 0 < cls_loss < 100
    out = run(["test.py", "centernet2", *args, "--resume", "--not_prefetch_test"]).stdout
    assert "Average Precision" in out
