"""End to end on the CPU: generate data, train, resume, test and demo through the original's entry scripts."""
import glob
import json

import pytest
import torch
from script_runner import gen_synthetic
from script_runner import run_script as run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    gen_synthetic(base / "data" / "synth", "det", 8, 3, seed=1)
    return base


def common(base, exp_id="e2e"):
    return ["--dataset", "synth", "--exp_id", exp_id, "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--data_dir", str(base / "data"), "--exp_root", str(base / "exp")]


def test_train_resume_test_demo(workdir):
    args = common(workdir)
    save_dir = workdir / "exp" / "ctdet" / "e2e"
    run(["main.py", "ctdet", *args, "--batch_size", "2", "--num_epochs", "2", "--num_iters", "2",
         "--val_intervals", "2", "--num_workers", "0", "--lr_step", "1"])
    for name in ("opt.txt", "model_last.pth", "model_best.pth", "model_1.pth"):
        assert (save_dir / name).is_file(), name
    logs = glob.glob(str(save_dir / "logs_*" / "log.txt"))
    assert logs and open(logs[0]).read().count("epoch:") == 2
    ckpt = torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2 and "optimizer" in ckpt and "hm.2.bias" in ckpt["state_dict"]

    # resume continues after the saved epoch
    out = run(["main.py", "ctdet", *args, "--batch_size", "2", "--num_epochs", "3", "--num_iters", "1",
               "--val_intervals", "0", "--num_workers", "0", "--resume"]).stdout
    assert "resumed" in out.lower()
    assert torch.load(save_dir / "model_last.pth", map_location="cpu", weights_only=False)["epoch"] == 3

    # test.py writes results.json and prints the COCO summary
    out = run(["test.py", "ctdet", *args, "--resume"]).stdout
    assert "Average Precision" in out
    results = json.load(open(save_dir / "results.json"))
    assert isinstance(results, list)

    # demo.py with no display writes annotated images to the chosen folder
    demo_out = workdir / "demo_out"
    images = workdir / "data" / "synth"
    one = sorted(glob.glob(str(images / "**" / "*.jpg"), recursive=True) +
                 glob.glob(str(images / "**" / "*.png"), recursive=True))[0]
    run(["demo.py", "ctdet", *args, "--resume", "--demo", one, "--demo_out_dir", str(demo_out)])
    assert glob.glob(str(demo_out / "*"))


def test_bad_inputs_give_one_line(workdir):
    args = common(workdir, "bad")
    proc = run(["test.py", "ctdet", *args, "--load_model", str(workdir / "nope.pth")], ok=False)
    assert proc.returncode == 2 and "nope.pth" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(["main.py", "ctdet", *args, "--data_dir", str(workdir / "missing")], ok=False)
    assert proc.returncode == 2 and "missing" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(["main.py", "ctdet", *common(workdir), "--arch", "res_7"], ok=False)
    assert proc.returncode == 2 and "--arch" in proc.stderr
    proc = run(["demo.py", "ctdet", *args, "--load_model", str(workdir / "x.pth"), "--demo",
                str(workdir / "no_such.jpg")], ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
