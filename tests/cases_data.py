"""Catalogue cases: bad data (annotations, empty splits, damaged images) stops at load time with one line.

Each prepare function spoils the world's private copy of the tiny synthetic set (6 train, 2 val
images), or builds what a task other than ctdet needs next to it.
"""
import contextlib
import io
import json
import shutil

from catalogue import Case


def _edit_json(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _synth_json(w, split):
    return w.synth / "annotations" / f"instances_{split}.json"


def _spoil(split, change):
    """A prepare function applying `change` to the synth annotation document of `split`."""
    return lambda w: _edit_json(_synth_json(w, split), change)


def _set(index, key, value):
    def change(doc):
        doc["annotations"][index][key] = value
    return change


def _empty(doc):
    doc["images"], doc["annotations"] = [], []


def _no_annotations(doc):
    doc["annotations"] = []


def _unusable_boxes(doc):
    first, second = doc["annotations"][:2]
    first["bbox"][2] = 0.0  # zero width
    width = next(im["width"] for im in doc["images"] if im["id"] == second["image_id"])
    second["bbox"][0] = width + 5.0  # right of its image


def _no_extreme_points(doc):
    for ann in doc["annotations"]:
        del ann["extreme_points"]


def _test(w):
    return ["--load_model", str(w.checkpoint)]


def _main_test(w):
    return ["--test", "--load_model", str(w.checkpoint)]


def _one_error_not_batch_size(w, res):
    assert "batch_size" not in res.lines("error:")[0]


def _one_box_warning(w, res):
    lines = [ln for ln in res.lines("warning:") if "boxes are unusable" in ln]
    assert len(lines) == 1, res.stderr


# ------------------------------------------------------------------------------- multi_pose, exdet worlds
def _synth_hp(w, change=None, split="train"):
    from datasets.synthetic import people

    with contextlib.redirect_stdout(io.StringIO()):
        people.generate(str(w.data_dir / "synth_hp"), n_train=3, n_val=1, seed=5)
    if change is not None:
        _edit_json(w.data_dir / "synth_hp" / "annotations" / f"person_keypoints_{split}.json", change)


def _short_keypoints(doc):
    doc["annotations"][0]["keypoints"] = doc["annotations"][0]["keypoints"][:-3]


def _coco_from_synth(w):
    """data/coco for exdet made of the synth images, with plain instance files under the extreme-point names."""
    coco = w.data_dir / "coco"
    (coco / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        shutil.copytree(w.synth / "images" / split, coco / f"{split}2017")
        _edit_json(_synth_json(w, split), _no_extreme_points)
        shutil.copy(_synth_json(w, split), coco / "annotations" / f"instances_extreme_{split}2017.json")


# ------------------------------------------------------------------------------------------ damaged images
def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])


def _val_image(w, index=0):
    return sorted((w.synth / "images" / "val").iterdir())[index]


def _truncate_val(w):
    _truncate(_val_image(w))


def _truncate_all_train(w):
    for path in (w.synth / "images" / "train").iterdir():
        _truncate(path)


def _garbage_val(w, index=1):
    _val_image(w, index).write_bytes(b"this is not an image")


def _garbage_all_val(w):
    for index in range(2):
        _garbage_val(w, index)


def _demo_folder(w):
    return ["--demo", str(w.synth / "images" / "val"), "--load_model", str(w.checkpoint),
            "--demo_out_dir", str(w.base / "vis")]


def _demo_one(w):
    return ["--demo", str(_val_image(w, 1)), "--load_model", str(w.checkpoint),
            "--demo_out_dir", str(w.base / "vis")]


def _other_image_shown(w, res):
    assert list((w.base / "vis").iterdir()), "the readable image of the folder was not processed"


CASES = [
    # category ids the dataset does not know (was: KeyError: 99 mid-epoch)
    Case("data_unknown_category_main", "main", prepare=_spoil("train", _set(2, "category_id", 99)),
         error=("instances_train.json", "category_id 99", "annotation 3 of image", "category ids (1-6)")),
    Case("data_unknown_category_main_test", "main", _main_test, prepare=_spoil("val", _set(0, "category_id", 99)),
         error=("instances_val.json", "category_id 99", "(1-6)")),
    Case("data_unknown_category_test", "test", _test, prepare=_spoil("val", _set(0, "category_id", 0)),
         error=("instances_val.json", "category_id 0", "(1-6)")),
    # keypoint lists of the wrong length (was: a reshape ValueError)
    Case("data_short_keypoints_main", "main", ["--dataset", "synth_hp"], task="multi_pose",
         prepare=lambda w: _synth_hp(w, _short_keypoints),
         error=("person_keypoints_train.json", "wrong 'keypoints'", "48 values instead of 51")),
    Case("data_short_keypoints_test", "test", ["--dataset", "synth_hp"], task="multi_pose",
         prepare=lambda w: _synth_hp(w, _short_keypoints, "val"),
         error=("person_keypoints_val.json", "instead of 51")),
    # exdet on annotations without extreme points (was: KeyError: 'extreme_points')
    Case("data_exdet_no_extreme_points_synth_main", "main", task="exdet",
         prepare=_spoil("train", _no_extreme_points),
         error=("instances_train.json", "no 'extreme_points'", "make data")),
    Case("data_exdet_no_extreme_points_coco_main", "main", ["--dataset", "coco"], task="exdet",
         prepare=_coco_from_synth, error=("instances_extreme_val2017.json", "no 'extreme_points'", "ExtremeNet")),
    # empty splits, and splits with images but no annotations
    Case("data_empty_train_main", "main", prepare=_spoil("train", _empty), check=_one_error_not_batch_size,
         error=("instances_train.json", "train split has no images", "make data")),
    Case("data_unannotated_train_main", "main", prepare=_spoil("train", _no_annotations),
         error=("instances_train.json", "6 images but no annotations")),
    Case("data_empty_val_unused_main", "main", prepare=_spoil("val", _empty), exit=0),
    Case("data_empty_val_validating_main", "main", ["--val_intervals", "1"], prepare=_spoil("val", _empty),
         error=("instances_val.json", "val split has no images")),
    Case("data_empty_val_main_test", "main", _main_test, prepare=_spoil("val", _empty),
         error=("instances_val.json", "val split has no images")),
    Case("data_empty_val_test", "test", _test, prepare=_spoil("val", _empty),
         error=("instances_val.json", "val split has no images")),
    Case("data_unannotated_val_test", "test", _test, prepare=_spoil("val", _no_annotations),
         error=("instances_val.json", "2 images but no annotations")),
    # boxes the samples drop: counted once at load
    Case("data_unusable_boxes_main", "main", prepare=_spoil("train", _unusable_boxes), exit=0,
         check=_one_box_warning,
         warnings=("instances_train.json: 2 of", "boxes are unusable", "1 with zero or negative width/height",
                   "1 entirely outside", "e.g. annotation 1 of image 1")),
    # damaged image files
    Case("data_truncated_jpeg_test", "test", _test, prepare=_truncate_val, exit=0,
         warnings=("images/val/000001.jpg: truncated JPEG",)),
    Case("data_truncated_jpeg_main", "main", prepare=_truncate_all_train, exit=0,
         warnings=("images/train/", "truncated JPEG")),
    Case("data_truncated_jpeg_demo", "demo", _demo_folder, prepare=_truncate_val, exit=0,
         warnings=("000001.jpg: truncated JPEG",)),
    Case("data_unreadable_image_in_folder_demo", "demo", _demo_folder, prepare=_garbage_val, exit=0,
         check=_other_image_shown, warnings=("000002.jpg: cannot be read as an image", "skipped")),
    Case("data_unreadable_image_demo", "demo", _demo_one, prepare=_garbage_val,
         error=("000002.jpg", "cannot be read as an image")),
    Case("data_unreadable_folder_demo", "demo", _demo_folder, prepare=_garbage_all_val,
         error=("images/val", "none of its 2 images")),
]
