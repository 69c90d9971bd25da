"""Dataset classes: error messages, factory, result conversion, COCO and VOC07 evaluation, VOC download."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from datasets.dataset_factory import _sample_factory, dataset_factory, get_dataset
from evaluation import voc
from evaluation.voc import voc_ap
from opts import opts
from utils.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _opt(tmp_path, task="ctdet"):
    opt = opts().init([task])
    opt.data_dir = str(tmp_path)
    return opt


def _write_coco(root, n_images=3):
    os.makedirs(os.path.join(root, "coco", "val2017"), exist_ok=True)
    os.makedirs(os.path.join(root, "coco", "annotations"), exist_ok=True)
    images = [{"id": i + 10, "file_name": f"{i}.jpg", "height": 100, "width": 120} for i in range(n_images)]
    anns = [{"id": i + 1, "image_id": i + 10, "category_id": [1, 3, 90][i % 3], "bbox": [10.0 + i, 20.0, 30.0, 40.0],
             "area": 1200.0, "iscrowd": 0} for i in range(n_images)]
    cats = [{"id": c, "name": str(c)} for c in (1, 3, 90)]
    with open(os.path.join(root, "coco", "annotations", "instances_val2017.json"), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return anns


def test_factory_names_and_lazy_lookup():
    for name in ("coco", "pascal", "kitti", "coco_hp", "synth", "synth_hp", "synth_kitti"):
        assert name in dataset_factory
    assert set(_sample_factory) == {"exdet", "ctdet", "ddd", "multi_pose", "centernet2"}
    assert dataset_factory["coco"].__name__ == "COCO"
    assert dataset_factory["synth"].num_classes == 6
    with pytest.raises(UserError, match="coco, pascal"):
        get_dataset("imagenet", "ctdet")
    with pytest.raises(UserError, match="ctdet"):
        get_dataset("coco", "segment")
    cls = get_dataset("pascal", "ctdet")
    assert cls.num_classes == 20 and hasattr(cls, "__getitem__") and hasattr(cls, "run_eval")


def test_missing_annotation_file_names_path_and_fix(tmp_path):
    with pytest.raises(UserError) as e:
        dataset_factory["coco"](_opt(tmp_path), "val")
    msg = str(e.value)
    assert os.path.join("coco", "annotations", "instances_val2017.json") in msg and "download" in msg
    with pytest.raises(UserError, match="make data"):
        dataset_factory["synth"](_opt(tmp_path), "train")
    with pytest.raises(UserError, match="pascal_test2007.json"):
        dataset_factory["pascal"](_opt(tmp_path), "val")
    with pytest.raises(UserError, match="no 'test' split"):
        dataset_factory["pascal"](_opt(tmp_path), "test")


def test_missing_image_folder(tmp_path):
    _write_coco(str(tmp_path))
    os.rmdir(os.path.join(str(tmp_path), "coco", "val2017"))
    with pytest.raises(UserError, match="val2017"):
        dataset_factory["coco"](_opt(tmp_path), "val")


def test_coco_attributes_and_convert_eval_format(tmp_path):
    _write_coco(str(tmp_path))
    ds = dataset_factory["coco"](_opt(tmp_path), "val")
    assert len(ds) == 3 and ds.images == [10, 11, 12] and ds.max_objs == 128
    assert len(ds._valid_ids) == 80 and ds.cat_ids[90] == 79 and ds.class_name[1] == "person"
    assert ds.mean.shape == (1, 1, 3) and ds._data_rng.uniform() == np.random.RandomState(123).uniform()
    rows = np.array([[10.123, 20.456, 40.0, 60.0, 0.98765]], np.float32)
    out = ds.convert_eval_format({10: {1: rows, 80: np.zeros((0, 5), np.float32)}})
    assert out == [{"image_id": 10, "category_id": 1, "bbox": [10.12, 20.46, 29.88, 39.54], "score": 0.99}]
    ext = ds.convert_eval_format({11: {2: [[1.0, 2.0, 4.0, 6.0, 0.5] + list(range(8))]}})
    assert ext[0]["category_id"] == 2 and ext[0]["bbox"] == [1.0, 2.0, 3.0, 4.0]
    assert ext[0]["extreme_points"] == [float(v) for v in range(8)]


def test_coco_perfect_detections_give_ap_1(tmp_path, capsys):
    anns = _write_coco(str(tmp_path), n_images=6)
    ds = dataset_factory["coco"](_opt(tmp_path), "val")
    results = {}
    for a in anns:
        x, y, w, h = a["bbox"]
        cls = ds.cat_ids[a["category_id"]] + 1
        results.setdefault(a["image_id"], {})[cls] = np.array([[x, y, x + w, y + h, 0.9]], np.float32)
    save = tmp_path / "out"
    save.mkdir()
    stats = ds.run_eval(results, str(save))
    assert stats[0] == pytest.approx(1.0) and stats[1] == pytest.approx(1.0)
    assert "Average Precision" in capsys.readouterr().out
    saved = json.load(open(save / "results.json"))
    assert len(saved) == 6 and not [p for p in os.listdir(save) if p.endswith(".tmp")]
    assert ds.run_eval({}, str(save)) is None  # nothing detected: no crash


def _write_voc(root, n=4):
    devkit = os.path.join(root, "voc", "VOCdevkit", "VOC2007")
    os.makedirs(os.path.join(devkit, "Annotations"))
    os.makedirs(os.path.join(devkit, "ImageSets", "Main"))
    names = [f"{i:06d}" for i in range(n)]
    boxes = {}
    for i, name in enumerate(names):
        b = [10 + i, 20, 60 + i, 80]
        boxes[name] = b
        difficult = "<object><name>dog</name><pose>Left</pose><truncated>0</truncated><difficult>1</difficult>" \
                    "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        with open(os.path.join(devkit, "Annotations", name + ".xml"), "w") as f:
            f.write(f"<annotation><object><name>cat</name><pose>Left</pose><truncated>0</truncated>"
                    f"<difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                    f"<ymax>{b[3]}</ymax></bndbox></object>{difficult}</annotation>")
    with open(os.path.join(devkit, "ImageSets", "Main", "test.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return names, boxes


def _perfect_voc_dets(names, boxes):
    """detections[class][image]: every cat found exactly, nothing else."""
    cat = voc.CLASSES.index("cat")
    dets = [[[] for _ in names] for _ in voc.CLASSES]
    for i, n in enumerate(names):
        x1, y1, x2, y2 = boxes[n]
        dets[cat][i] = [[x1 - 1, y1 - 1, x2 - 1, y2 - 1, 0.9]]  # 0-based, as the detector writes them
    return dets


def _reval(*args, cwd=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "src", "tools", "reval.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_voc07_eval_perfect_and_half(tmp_path):
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5]), use_07_metric=True) == pytest.approx((6 + 5 * .5) / 11)
    names, boxes = _write_voc(str(tmp_path))
    dets = _perfect_voc_dets(names, boxes)
    devkit = os.path.join(str(tmp_path), "voc", "VOCdevkit")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(dets))
    proc = _reval(path, "--devkit", devkit, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "AP for cat = 1.0000" in proc.stdout and "AP for dog = 0.0000" in proc.stdout
    assert "Mean AP = 0.0500" in proc.stdout  # 1 of 20 classes perfect
    assert not [p for p in os.listdir(os.path.join(devkit, "results", "VOC2007", "Main"))]
    cat = voc.CLASSES.index("cat")
    dets[cat][0] = [[300, 300, 400, 400, 0.95]]  # one false positive ranked first, one miss
    rec, prec = np.array([0, .25, .5, .75]), np.array([0, .5, 2 / 3, .75])
    want = voc_ap(rec, prec, use_07_metric=True)
    assert voc.evaluate_detections(dets, devkit) == pytest.approx(want / 20)


def test_voc_annotation_cache_is_json(tmp_path):
    names, boxes = _write_voc(str(tmp_path))
    devkit = os.path.join(str(tmp_path), "voc", "VOCdevkit")
    cache = os.path.join(devkit, "annotations_cache", "test_annots.json")
    assert voc.evaluate_detections(_perfect_voc_dets(names, boxes), devkit) == pytest.approx(1 / 20)
    recs = json.load(open(cache))
    assert sorted(recs) == names and recs[names[0]][0]["name"] == "cat"
    # a damaged cache is parsed again from the xml files, and rewritten
    with open(cache, "w") as f:
        f.write("{not json")
    assert voc.evaluate_detections(_perfect_voc_dets(names, boxes), devkit) == pytest.approx(1 / 20)
    assert sorted(json.load(open(cache))) == names


def test_reval_reads_data_only_pickles_and_refuses_code(tmp_path):
    names, boxes = _write_voc(str(tmp_path))
    devkit = os.path.join(str(tmp_path), "voc", "VOCdevkit")
    # the original's other input: a pickle of numpy arrays (float32 rows, empty arrays for nothing found)
    dets = [[np.asarray(d, np.float32).reshape(-1, 5) for d in per_class]
            for per_class in _perfect_voc_dets(names, boxes)]
    good = tmp_path / "detections.pkl"
    good.write_bytes(pickle.dumps(dets, protocol=2))
    proc = _reval(good, "--devkit", devkit)
    assert proc.returncode == 0, proc.stderr
    assert "AP for cat = 1.0000" in proc.stdout and "Mean AP = 0.0500" in proc.stdout
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        good.write_bytes(pickle.dumps(dets, protocol=protocol))
        cat = voc.CLASSES.index("cat")
        assert all(np.array_equal(a, b) for a, b in zip(voc.load_detections(str(good))[cat], dets[cat]))

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Touch(str(marker))))
    proc = _reval(evil, "--devkit", devkit)
    assert proc.returncode == 2 and not marker.exists()
    assert proc.stderr.startswith(f"error: {evil}: refused, the pickle names ") and "results.json" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    for bad, reason in ((b"not a pickle", "not a readable pickle"), (pickle.dumps({"a": 1}), "holds a dict")):
        (tmp_path / "bad.pkl").write_bytes(bad)
        with pytest.raises(UserError, match=reason):
            voc.load_detections(str(tmp_path / "bad.pkl"))
    with pytest.raises(UserError, match="detection file not found"):
        voc.load_detections(str(tmp_path / "none.json"))


class _Touch:
    """Unpickling this creates a file: stands for a pickle that runs code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pascal_run_eval_in_process(tmp_path, capsys):
    names, boxes = _write_voc(str(tmp_path))
    os.makedirs(tmp_path / "voc" / "images")
    os.makedirs(tmp_path / "voc" / "annotations")
    images = [{"id": i, "file_name": f"{n}.jpg", "height": 100, "width": 100} for i, n in enumerate(names)]
    (tmp_path / "voc" / "annotations" / "pascal_test2007.json").write_text(json.dumps(
        {"images": images, "annotations": [], "categories": [{"id": c} for c in range(1, 21)]}))
    ds = dataset_factory["pascal"](_opt(tmp_path), "val")
    cat = voc.CLASSES.index("cat")
    results = {}
    for i, n in enumerate(names):
        results[i] = {j: np.zeros((0, 5), np.float32) for j in range(1, 21)}
        x1, y1, x2, y2 = boxes[n]
        results[i][cat] = np.array([[x1 - 1, y1 - 1, x2 - 1, y2 - 1, 0.9]], np.float32)
    path_before = list(sys.path)
    ds.run_eval(results, str(tmp_path / "exp"))
    assert sys.path == path_before
    out = capsys.readouterr().out
    assert "Evaluating detections" in out and "AP for cat = 1.0000" in out and "Mean AP = 0.0500" in out
    assert len(json.load(open(tmp_path / "exp" / "results.json"))) == 21
    shutil.rmtree(tmp_path / "voc" / "VOCdevkit")
    with pytest.raises(UserError, match="VOC2007 not found.*get_pascal_voc.sh"):
        ds.run_eval(results, str(tmp_path / "exp"))


def test_get_pascal_voc_script_offline(tmp_path):
    """The download script, fed local archives through file:// URLs (nothing goes to the network)."""
    script = os.path.join(ROOT, "src", "tools", "get_pascal_voc.sh")
    assert os.access(script, os.X_OK)
    out = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "pascal_trainval0712.json" in out.stdout
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    mirror = tmp_path / "mirror"
    for year, archive, image in (("2007", "VOCtrainval_06-Nov-2007.tar", "000005.jpg"),
                                 ("2007", "VOCtest_06-Nov-2007.tar", "000001.jpg"),
                                 ("2012", "VOCtrainval_11-May-2012.tar", "2008_000008.jpg")):
        content = tmp_path / "content" / archive
        jpegs = content / "VOCdevkit" / f"VOC{year}" / "JPEGImages"
        jpegs.mkdir(parents=True)
        (jpegs / image).write_bytes(b"jpeg")
        (mirror / f"voc{year}").mkdir(parents=True, exist_ok=True)
        with tarfile.open(mirror / f"voc{year}" / archive, "w") as tar:
            tar.add(content / "VOCdevkit", arcname="VOCdevkit")
    with zipfile.ZipFile(mirror / "PASCAL_VOC.zip", "w") as z:
        for k, part in enumerate(("train2007", "val2007", "train2012", "val2012", "test2007")):
            anns = [{"id": i + 1, "image_id": 10 * k + i} for i in range(k + 1)]
            z.writestr(f"PASCAL_VOC/pascal_{part}.json", json.dumps(
                {"images": [{"id": 10 * k}], "annotations": anns, "categories": [{"id": 1}]}))
    env = dict(os.environ, VOC_URL=f"file://{mirror}", VOC_JSON_URL=f"file://{mirror}/PASCAL_VOC.zip",
               PYTHON=sys.executable)
    voc_dir = tmp_path / "data" / "voc"
    proc = subprocess.run(["bash", script, str(voc_dir)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(voc_dir / "images")) == ["000001.jpg", "000005.jpg", "2008_000008.jpg"]
    assert (voc_dir / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000001.jpg").is_file()
    merged = json.load(open(voc_dir / "annotations" / "pascal_trainval0712.json"))
    assert len(merged["images"]) == 4 and merged["categories"] == [{"id": 1}]
    ids = [a["id"] for a in merged["annotations"]]
    assert len(ids) == 1 + 2 + 3 + 4 and len(set(ids)) == len(ids)
    assert (voc_dir / "annotations" / "pascal_test2007.json").is_file()
    assert sorted(os.listdir(voc_dir)) == ["VOCdevkit", "annotations", "images"]


def test_pascal_convert_eval_format(tmp_path):
    os.makedirs(tmp_path / "voc" / "images")
    os.makedirs(tmp_path / "voc" / "annotations")
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 10, "width": 10} for i in (5, 2)]
    (tmp_path / "voc" / "annotations" / "pascal_test2007.json").write_text(json.dumps(
        {"images": images, "annotations": [], "categories": [{"id": c} for c in range(1, 21)]}))
    ds = dataset_factory["pascal"](_opt(tmp_path), "val")
    assert ds.images == [2, 5] and ds.max_objs == 50 and ds.cat_ids[20] == 19
    res = {i: {j: np.zeros((0, 5), np.float32) for j in range(1, 21)} for i in (2, 5)}
    res[5][3] = np.array([[1, 2, 3, 4, 0.5]], np.float32)
    out = ds.convert_eval_format(res)
    assert len(out) == 21 and out[0] == [[], []] and out[3][1] == [[1, 2, 3, 4, 0.5]] and out[3][0] == []
