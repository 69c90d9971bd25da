"""Batched inference: detector.run on a list of images equals running them one at a time; test.py's rule."""
import importlib.util
import os

import cv2
import numpy as np
import torch

from detectors.detector_factory import detector_factory
from models.model import create_model, save_model
from opts import inference_batch_size, opts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _detector(tmp_path, extra=()):
    torch.manual_seed(0)
    heads = {"hm": 6, "wh": 2, "reg": 2}
    model = create_model("res_18", heads, 8)
    with torch.no_grad():  # varied heatmaps, so the top-K has no ties to order differently
        for p in model.hm.parameters():
            p.normal_(0, 0.2)
    save_model(str(tmp_path / "m.pth"), 1, model)
    opt = opts().init(["ctdet", "--arch", "res_18", "--dataset", "synth", "--head_conv", "8", "--input_res", "64",
                       "--gpus", "-1", "--load_model", str(tmp_path / "m.pth"), "--exp_root", str(tmp_path), *extra])
    return detector_factory["ctdet"](opt)


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=shape, dtype=np.uint8) for shape in ((64, 64, 3), (48, 80, 3), (70, 50, 3))]


def test_run_on_a_list_equals_one_at_a_time(tmp_path):
    # flipped copies, two scales, and --keep_res so that the images' inputs differ in size (several batches)
    detector = _detector(tmp_path, ("--flip_test", "--test_scales", "1,1.5", "--keep_res"))
    images = _images()
    singles = [detector.run(img) for img in images]
    batched = detector.run(images)
    assert isinstance(batched, list) and len(batched) == len(images)
    for one, many in zip(singles, batched):
        assert set(many) >= {"results", "tot", "net"}
        assert one["results"].keys() == many["results"].keys()
        for cls in one["results"]:
            np.testing.assert_allclose(many["results"][cls], one["results"][cls], rtol=1e-4, atol=1e-4)


def test_scripts_batch_only_when_asked():
    opt = type("Opt", (), {"batch_size": 32})()  # the training default
    assert inference_batch_size(opt, ["ctdet", "--arch", "res_18"]) == 1
    opt.batch_size = 8
    assert inference_batch_size(opt, ["ctdet", "--batch_size", "8"]) == 8
    assert inference_batch_size(opt, ["ctdet", "--batch_size=8"]) == 8


def test_demo_folder_in_batches_skips_a_bad_file(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("centernet_demo_script", os.path.join(ROOT, "src", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(_images()):
        cv2.imwrite(str(folder / f"im{i}.jpg"), img)
    (folder / "im1b.jpg").write_bytes(b"not a jpeg")  # sorted between im1 and im2: in the second batch of 2
    detector = _detector(tmp_path, ("--demo", str(folder), "--demo_out_dir", str(tmp_path / "vis")))
    monkeypatch.setattr(demo.sys, "argv", ["demo.py", "ctdet", "--batch_size", "2"])
    monkeypatch.setattr(demo, "display_available", lambda: False)
    opt = detector.opt
    opt.batch_size = 2
    demo.demo(opt)
    out = capsys.readouterr()
    assert out.out.count("tot ") == 3  # one time line per readable image
    assert "im1b.jpg" in out.err and "skipped" in out.err
    written = sorted(p.name for p in (tmp_path / "vis").iterdir())
    assert [n for n in written if n.startswith("im")] and not any(n.startswith("im1b") for n in written)


def test_channels_last_gives_the_same_outputs(tmp_path):
    plain = _detector(tmp_path / "a", ("--flip_test",))
    nhwc = _detector(tmp_path / "b", ("--flip_test", "--channels_last"))
    conv = next(m for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for img in _images():
        images, _ = plain.pre_process(img, 1)
        a, b = plain._network_output(images), nhwc._network_output(images)
        for head in a:
            assert b[head].is_contiguous()  # decoding views the maps
            torch.testing.assert_close(b[head], a[head], rtol=1e-5, atol=1e-5)
        # this random model's heat map has many exact ties, so the detections compare by score only
        best = [np.sort(np.concatenate([r[:, 4] for r in d.run(img)["results"].values()]))[-10:]
                for d in (plain, nhwc)]
        np.testing.assert_allclose(best[1], best[0], rtol=1e-5, atol=1e-5)
