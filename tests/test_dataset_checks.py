"""Load-time annotation checks (datasets/dataset/checks.py), the empty-split rules and the image reader."""
import json
import os
import time

import cv2
import numpy as np
import pytest

from datasets.dataset.checks import BoxSummary, ListField, check_annotations, id_ranges
from datasets.dataset_factory import dataset_factory, get_dataset
from opts import opts
from utils import image_io
from utils.errors import UserError

PATH = "data/x/annotations/instances_train.json"
KPS = ListField("keypoints", 6, "regenerate it", "x, y, visibility of 2 joints")


def _doc(n_images=2, anns=None):
    images = [{"id": i + 1, "file_name": f"{i + 1}.jpg", "width": 100, "height": 80} for i in range(n_images)]
    if anns is None:
        anns = [{"id": i + 1, "image_id": i % n_images + 1, "category_id": 1 + i % 3,
                 "bbox": [10.0, 10.0, 20.0, 30.0], "keypoints": [1, 2, 2, 3, 4, 2]} for i in range(6)]
    return {"images": images, "annotations": anns}


def test_clean_file_passes():
    assert check_annotations(_doc(), PATH, [1, 2, 3], [KPS]) == BoxSummary(6)
    assert check_annotations({"images": []}, PATH, [1]) == BoxSummary(0)  # nothing to check


def test_unknown_category_names_file_id_example_and_valid_ids():
    doc = _doc()
    doc["annotations"][4]["category_id"] = 99
    with pytest.raises(UserError) as e:
        check_annotations(doc, PATH, [1, 2, 3, 5])
    msg = str(e.value)
    for words in (PATH, "category_id 99", "1 of 6 annotations", "annotation 5 of image 1", "(1-3, 5)"):
        assert words in msg, (words, msg)
    doc["annotations"][0]["category_id"] = 0
    with pytest.raises(UserError, match=r"category_ids 0, 99 \(in 2 of 6 .*annotation 1 of image 1\) are not"):
        check_annotations(doc, PATH, [1, 2, 3])


def test_category_compared_as_the_samples_look_it_up():
    doc = _doc()
    doc["annotations"][0]["category_id"] = 1.0  # cat_ids[1.0] works in the samples
    check_annotations(doc, PATH, [1, 2, 3])
    doc["annotations"][1]["category_id"] = "2"  # cat_ids["2"] would be a KeyError
    with pytest.raises(UserError, match="category_id '2'"):
        check_annotations(doc, PATH, [1, 2, 3])
    del doc["annotations"][2]["category_id"]
    with pytest.raises(UserError, match="1 of 6 annotations have no category_id"):
        check_annotations(doc, PATH, [1, 2, 3])


def test_list_field_missing_or_wrong_length():
    doc = _doc()
    doc["annotations"][3]["keypoints"] = [1, 2, 2]
    with pytest.raises(UserError) as e:
        check_annotations(doc, PATH, [1, 2, 3], [KPS])
    msg = str(e.value)
    for words in (PATH, "1 of 6 annotations have a wrong 'keypoints', e.g. annotation 4 of image 2 with 3 values "
                  "instead of 6 (x, y, visibility of 2 joints); regenerate it",):
        assert words in msg, (words, msg)
    doc["annotations"][3]["keypoints"] = None
    with pytest.raises(UserError, match="with NoneType None instead of 6"):
        check_annotations(doc, PATH, [1, 2, 3], [KPS])
    for a in doc["annotations"]:
        del a["keypoints"]
    with pytest.raises(UserError, match="6 of 6 annotations have no 'keypoints' .*annotation 1 of image 1.*regen"):
        check_annotations(doc, PATH, [1, 2, 3], [KPS])


def test_malformed_bbox():
    doc = _doc()
    doc["annotations"][2]["bbox"] = [1.0, 2.0, 3.0]
    with pytest.raises(UserError, match=r"bbox \[1.0, 2.0, 3.0\] of annotation 3 of image 1 is not \[x, y, width"):
        check_annotations(doc, PATH, [1, 2, 3])
    del doc["annotations"][2]["bbox"]
    with pytest.raises(UserError, match="have no bbox"):
        check_annotations(doc, PATH, [1, 2, 3])


def test_unusable_boxes_counted_with_an_example():
    doc = _doc()
    anns = doc["annotations"]
    anns[1]["bbox"] = [10.0, 10.0, 0.0, 5.0]  # zero width
    anns[2]["bbox"] = [10.0, 10.0, 5.0, -1.0]  # negative height
    anns[3]["bbox"] = [100.0, 10.0, 5.0, 5.0]  # starts at the right edge of its 100 px wide image
    anns[4]["bbox"] = [-20.0, 10.0, 20.0, 5.0]  # ends at the left edge
    anns[5]["bbox"] = [-20.0, -20.0, 25.0, 25.0]  # partly inside: kept
    summary = check_annotations(doc, PATH, [1, 2, 3])
    assert (summary.total, summary.empty, summary.outside, summary.dropped) == (6, 2, 2, 4)
    assert summary.example == "annotation 2 of image 2"
    line = summary.warning(PATH)
    assert "\n" not in line and PATH in line and "4 of 6 boxes" in line and "annotation 2 of image 2" in line
    # past the right edge needs the image's width: not judged for an unknown image or size
    anns[3]["image_id"] = 7
    assert check_annotations(doc, PATH, [1, 2, 3]).outside == 1
    anns[3]["image_id"] = 2
    del doc["images"][1]["width"]
    assert check_annotations(doc, PATH, [1, 2, 3]).outside == 1
    doc["images"][1]["width"] = 0
    assert check_annotations(doc, PATH, [1, 2, 3]).outside == 1


def test_id_ranges():
    assert id_ranges([9, 1, 2, 3, 5, 7, 8, 9]) == "1-3, 5, 7-9"
    assert id_ranges([4, 6]) == "4, 6"


def test_many_annotations_checked_quickly():
    # COCO's training file holds ~860k annotations: the checks must stay a small part of loading it
    rng = np.random.default_rng(0)
    n_img, n = 30_000, 200_000
    images = [{"id": 3 * i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(n_img)]
    img_of = (3 * rng.integers(0, n_img, n)).tolist()
    xy = rng.uniform(0, 600, (n, 2)).round(2).tolist()
    anns = [{"id": i, "image_id": img_of[i], "category_id": 1 + i % 80, "bbox": [x, y, 30.5, 20.25]}
            for i, (x, y) in enumerate(xy)]
    doc = {"images": images, "annotations": anns}
    best = min(_cpu_seconds(check_annotations, doc, PATH, range(1, 91)) for _ in range(2))
    assert best < 1.0, f"{best:.2f} s for {n} annotations"
    summary = check_annotations(doc, PATH, range(1, 91))
    assert summary.outside == int(sum(y >= 480 for _, y in xy)) and summary.empty == 0


def _cpu_seconds(fn, *args):
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


# ---------------------------------------------------------------------------------- the dataset classes
def _opt(tmp_path, task="ctdet", *extra):
    opt = opts().init([task, *extra])
    opt.data_dir = str(tmp_path)
    return opt


def _write_synth(root, split="train", anns=None, n_images=2):
    img_dir = root / "synth" / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    (root / "synth" / "annotations").mkdir(parents=True, exist_ok=True)
    doc = _doc(n_images, anns)
    for a in doc["annotations"]:
        a.pop("keypoints", None)
        a["extreme_points"] = [20, 10, 10, 25, 20, 40, 30, 25]
    path = root / "synth" / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps(doc))
    return path, doc


def test_dataset_class_checks_at_load(tmp_path, capsys):
    path, doc = _write_synth(tmp_path)
    doc["annotations"][0]["bbox"] = [5.0, 5.0, 0.0, 0.0]
    path.write_text(json.dumps(doc))
    ds = get_dataset("synth", "ctdet")(_opt(tmp_path), "train")
    assert len(ds) == 2
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and str(path) in warnings[0] and "1 of 6 boxes" in warnings[0]
    doc["annotations"][1]["category_id"] = 42
    path.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"category_id 42 .* \(1-6\)"):
        get_dataset("synth", "ctdet")(_opt(tmp_path), "train")


def test_exdet_needs_extreme_points(tmp_path):
    path, doc = _write_synth(tmp_path)
    for a in doc["annotations"]:
        del a["extreme_points"]
    path.write_text(json.dumps(doc))
    get_dataset("synth", "ctdet")(_opt(tmp_path), "train")  # ctdet does not read them
    with pytest.raises(UserError, match="have no 'extreme_points'.*make data"):
        get_dataset("synth", "exdet")(_opt(tmp_path, "exdet"), "train")
    coco = dataset_factory["coco"]
    assert "instances_extreme" in coco.extreme_points_fix


def test_coco_hp_keypoint_length(tmp_path):
    root = tmp_path / "synth_hp"
    (root / "images" / "val").mkdir(parents=True)
    (root / "annotations").mkdir()
    doc = _doc(1, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 40], "keypoints": [0] * 50}])
    (root / "annotations" / "person_keypoints_val.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"50 values instead of 51 \(x, y, visibility of 17 joints\)"):
        dataset_factory["synth_hp"](_opt(tmp_path, "multi_pose", "--dataset", "synth_hp"), "val")


def test_empty_and_unannotated_splits(tmp_path):
    path, doc = _write_synth(tmp_path, "train", anns=[], n_images=0)
    with pytest.raises(UserError, match="instances_train.json: the train split has no images; generate it"):
        get_dataset("synth", "ctdet")(_opt(tmp_path), "train")
    _write_synth(tmp_path, "train", anns=[], n_images=3)
    with pytest.raises(UserError, match="has 3 images but no annotations"):
        get_dataset("synth", "ctdet")(_opt(tmp_path), "train")
    # val: needed when main.py validates or tests, not when it only trains
    _write_synth(tmp_path, "val", anns=[], n_images=0)
    with pytest.raises(UserError, match="instances_val.json: the val split has no images"):
        get_dataset("synth", "ctdet")(_opt(tmp_path, "ctdet", "--val_intervals", "1"), "val")
    with pytest.raises(UserError, match="the val split has no images"):
        get_dataset("synth", "ctdet")(_opt(tmp_path, "ctdet", "--val_intervals", "0", "--test"), "val")
    ds = get_dataset("synth", "ctdet")(_opt(tmp_path, "ctdet", "--val_intervals", "0"), "val")
    with pytest.raises(UserError, match="the val split has no images"):
        ds.require_samples()  # what test.py calls


def test_unlabelled_test_split_is_fine(tmp_path, capsys):
    root = tmp_path / "coco"
    (root / "test2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images = [{"id": 3, "file_name": "3.jpg", "width": 10, "height": 10}]
    (root / "annotations" / "image_info_test-dev2017.json").write_text(
        json.dumps({"images": images, "categories": [{"id": 1, "name": "person"}]}))
    ds = dataset_factory["coco"](_opt(tmp_path, "ctdet", "--trainval"), "test")
    ds.require_samples()
    save = tmp_path / "out"
    save.mkdir()
    assert ds.run_eval({3: {1: np.array([[1, 1, 5, 5, 0.9]], np.float32)}}, str(save)) is None
    assert "no ground truth" in capsys.readouterr().out
    assert len(json.loads((save / "results.json").read_text())) == 1


def test_no_detections_still_writes_results(tmp_path, capsys):
    path, _ = _write_synth(tmp_path, "val")
    ds = dataset_factory["synth"](_opt(tmp_path), "val")
    assert ds.run_eval({1: {}, 2: {}}, str(tmp_path)) is None
    assert "no detections" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text()) == []


# ---------------------------------------------------------------------------------- the image reader
def _jpeg(path, size=(40, 60)):
    img = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_truncated_jpeg_and_png_warn_once(tmp_path, capfd):
    good = _jpeg(tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:-300])
    png = tmp_path / "cut.png"
    cv2.imwrite(str(png), np.zeros((20, 20, 3), np.uint8))
    png.write_bytes(png.read_bytes()[:-12])  # without the IEND chunk
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(good.read_bytes() + b"\0" * 16)  # trailing bytes after the end marker are fine
    assert image_io.truncation(str(good)) is None and image_io.truncation(str(padded)) is None
    assert image_io.truncation(str(cut)) == "JPEG" and image_io.truncation(str(png)) == "PNG"
    capfd.readouterr()
    for _ in range(3):
        assert image_io.read_image(str(cut)).shape == (40, 60, 3)
        image_io.read_image(str(good))
    warnings = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and str(cut) in warnings[0] and "truncated JPEG" in warnings[0]


def test_unreadable_and_missing_images(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(image_io.ImageReadError, match="bad.jpg: cannot be read as an image") as e:
        image_io.read_image(str(bad))
    assert e.value.path == str(bad) and isinstance(e.value, UserError)
    with pytest.raises(UserError, match="none.jpg: no such image file; restore the file"):
        image_io.read_image(str(tmp_path / "none.jpg"), fix="restore the file")
    assert image_io.ImageReadError("message only").path == ""  # as a loader worker re-raises it
    from datasets.sample import common
    from detectors import base_detector
    assert base_detector.read_image is image_io.read_image
    with pytest.raises(UserError, match="regenerate the dataset"):
        common.read_image(str(tmp_path / "none.jpg"))
    assert os.path.exists(bad)
