"""Option validation: values that cannot work are refused when parsed; the original's derived values still pass."""
import pytest
import torch

from datasets.dataset_factory import dataset_factory, get_dataset
from datasets.sample.common import SampleDataset
from models.model import create_model
from opts import network_stride, opts
from utils.errors import UserError


def init(line: str):
    return opts().init(line.split())


def sized(line: str, dataset):
    """Parse `line` and size it for `dataset` as main.py (a sample class) or test.py (a dataset class) do."""
    o = opts()
    samples = isinstance(dataset, type) and issubclass(dataset, SampleDataset)
    return o.update_dataset_info_and_set_heads(o.parse(line.split()), dataset, samples=samples)


@pytest.mark.parametrize("line,words", [
    ("ctdet --batch_size 0", ("--batch_size 0", "at least 1")),
    ("ctdet --num_workers -2", ("--num_workers -2", "pass 0")),
    ("ctdet --num_epochs 0", ("--num_epochs 0", "at least 1")),
    ("ctdet --K 0", ("--K 0", "at least 1")),
    ("ctdet --test_scales 0.5,0", ("--test_scales 0.5,0", "above 0")),
    ("ctdet --lr_step 3,1", ("--lr_step 3,1", "strictly increasing", "--lr_step 1,3")),
    ("ctdet --lr_step 90,90", ("--lr_step 90,90", "strictly increasing")),
    ("ctdet --gpus 0,1 --batch_size 4 --master_batch_size 8", ("--master_batch_size 8", "--batch_size 4", "-1")),
    ("ctdet --master_batch_size -3", ("--master_batch_size -3",)),
    ("ctdet --arch res_18 --input_res 100", ("--input_res 100", "multiple of 32", "res_18", "96 or 128")),
    ("ctdet --input_h 300", ("--input_h 300", "multiple of 32", "288 or 320")),
    ("ctdet --input_res 512 --input_w 500", ("--input_w 500", "multiple of 32")),
    ("ctdet --input_res 16", ("--input_res 16", "pass --input_res 32")),
    ("ctdet --arch hourglass --input_res 384 --input_h 192", ("--input_h 192", "multiple of 128", "hourglass")),
    ("ddd --keep_res --input_w 1250", ("--input_w 1250", "multiple of 32")),
])
def test_bad_values_name_option_and_fix(line, words):
    with pytest.raises(UserError) as e:
        init(line)
    msg = str(e.value)
    assert "\n" not in msg
    for word in words:
        assert word in msg


def test_demo_out_dir_that_is_a_file(tmp_path):
    taken = tmp_path / "out.png"
    taken.write_bytes(b"x")
    with pytest.raises(UserError, match="--demo_out_dir .*out.png: an existing file"):
        init(f"ctdet --demo_out_dir {taken}")
    assert init(f"ctdet --demo_out_dir {tmp_path}").demo_out_dir == str(tmp_path)


def test_derived_values_of_the_original_still_pass():
    # --debug forces batch 1 and resets the master batch, as the original, before the checks look
    opt = init("ctdet --debug 1 --batch_size 0 --master_batch_size 7 --num_workers -1 --gpus 0,1")
    assert (opt.batch_size, opt.master_batch_size, opt.num_workers, opt.chunk_sizes) == (1, 1, 0, [1])
    assert init("ctdet --trainval --num_epochs 1").val_intervals == 100000000
    assert init("ctdet --gpus 0,1 --batch_size 32 --master_batch_size 32").chunk_sizes == [32, 0]
    assert init("ctdet --lr_step 1 --num_epochs 1").lr_step == [1]
    assert init("ctdet --arch hourglass").input_res == 512
    assert init("ddd --arch hourglass").input_w == 1280


def test_keep_res_skips_the_size_check_where_images_are_padded():
    # ctdet training samples and every detector pad each image to a multiple of pad + 1
    assert sized("ctdet --keep_res --input_res 100", get_dataset("synth", "ctdet")).input_res == 100
    assert sized("multi_pose --keep_res --input_res 100", dataset_factory["coco_hp"]).input_res == 100
    # multi_pose and exdet training samples are input_res squares whatever --keep_res says
    for task, dataset in (("multi_pose", "coco_hp"), ("exdet", "coco")):
        with pytest.raises(UserError, match="--input_res 100: not a multiple of 32"):
            sized(f"{task} --keep_res --input_res 100", get_dataset(dataset, task))


def test_lr_step_beyond_num_epochs_warns_when_training_only(capsys):
    sized("ctdet --num_epochs 10 --lr_step 5,20", get_dataset("synth", "ctdet"))
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: --lr_step 5,20: epoch 20 comes after the last epoch (--num_epochs 10), so the lr "
                   "never drops there; lower --lr_step or raise --num_epochs"]
    sized("ctdet --num_epochs 10 --lr_step 5,20 --test", get_dataset("synth", "ctdet"))
    sized("ctdet --num_epochs 10 --lr_step 5,20", dataset_factory["synth"])
    init("ctdet --num_epochs 10")
    sized("ctdet --num_epochs 10 --lr_step 5,10", get_dataset("synth", "ctdet"))
    assert capsys.readouterr().err == ""


@pytest.fixture(scope="module")
def res18():
    torch.manual_seed(0)
    return create_model("res_18", {"hm": 2, "wh": 2, "reg": 2}, 64).eval()


@pytest.mark.parametrize("size", [32, 64, 96, 100, 112, 128])
def test_stride_rule_matches_the_network(res18, size):
    """The check's rule agrees with res_18: an output of exactly input / 4 iff the size is a multiple of 32."""
    with torch.no_grad():
        out = res18(torch.zeros(1, 3, size, size))[-1]["hm"]
    fits = tuple(out.shape[2:]) == (size // 4, size // 4)
    assert fits == (size % network_stride("res_18") == 0)
    assert network_stride("hourglass") == 128 and network_stride("dla_34") == 32
