"""Options and derived settings: the original's values for typical command lines."""
import os

import pytest

from opts import chunk_sizes, opts
from utils.errors import UserError


def init(line: str):
    return opts().init(line.split())


def test_defaults_ctdet():
    opt = init("ctdet")
    assert opt.arch == "dla_34" and opt.head_conv == 256 and opt.pad == 31 and opt.num_stacks == 1
    assert opt.heads == {"hm": 80, "wh": 2, "reg": 2}
    assert (opt.input_h, opt.input_w, opt.output_h, opt.output_res) == (512, 512, 128, 128)
    assert opt.gpus == [0] and opt.chunk_sizes == [32] and opt.fix_res
    assert os.path.relpath(opt.save_dir, opt.root_dir) == os.path.join("exp", "ctdet", "default")
    assert opt.debug_dir == os.path.join(opt.save_dir, "debug")


@pytest.mark.parametrize("batch,master,gpus,want", [
    (128, 9, 8, [9, 17, 17, 17, 17, 17, 17, 17]), (114, 18, 4, [18, 32, 32, 32]),
    (32, 16, 2, [16, 16]), (24, 4, 5, [4, 5, 5, 5, 5]), (32, 32, 1, [32]), (10, 2, 3, [2, 4, 4]),
])
def test_chunk_sizes(batch, master, gpus, want):
    assert chunk_sizes(batch, master, gpus) == want


def test_gpus_renumbered_and_cpu():
    assert init("ctdet --gpus 3,5").gpus == [0, 1]
    opt = init("ctdet --gpus -1 --input_h 320 --input_w 480")
    assert opt.gpus == [-1] and (opt.input_res, opt.output_w, opt.output_h) == (480, 120, 80)


def test_task_heads():
    assert init("multi_pose --not_reg_hp_offset").heads == {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17}
    assert init("multi_pose --not_hm_hp").heads == {"hm": 1, "wh": 2, "hps": 34, "reg": 2}
    ddd = init("ddd --not_reg_bbox")
    assert ddd.heads == {"hm": 3, "dep": 1, "rot": 8, "dim": 3, "reg": 2} and (ddd.input_h, ddd.input_w) == (384, 1280)
    ex = init("exdet --agnostic_ex --not_reg_offset")
    assert ex.heads == {"hm_t": 1, "hm_l": 1, "hm_b": 1, "hm_r": 1, "hm_c": 80}
    assert init("ctdet --cat_spec_wh").heads["wh"] == 160


def test_hourglass_and_res_derived():
    hg = init("ctdet --arch hourglass")
    assert (hg.num_stacks, hg.pad, hg.head_conv) == (2, 127, 64)
    assert init("ctdet --arch res_18").head_conv == 64


def test_debug_forces_single_batch():
    opt = init("ctdet --debug 1 --gpus 0,1 --batch_size 8 --num_workers 3")
    assert (opt.batch_size, opt.num_workers, opt.gpus, opt.chunk_sizes) == (1, 0, [0], [1])


def test_trainval_and_resume_path():
    opt = init("ctdet --trainval --resume --exp_id fooTEST")
    assert opt.val_intervals == 100000000
    assert opt.load_model == os.path.join(opt.exp_dir, "foo", "model_last.pth")


def test_prefix_abbreviation_is_accepted():
    assert init("ctdet --batch_size 32 --master_batch 15 --gpus 0,1").chunk_sizes == [15, 17]


def test_init_keeps_task_default_dataset_for_original_names():
    opt = init("ctdet --dataset pascal")
    assert opt.dataset == "coco" and opt.num_classes == 80


@pytest.mark.parametrize("line,culprit", [
    ("segm", "task 'segm'"), ("ctdet --arch res_19", "--arch res_19"), ("ctdet --gpus a", "--gpus a"),
    ("ctdet --lr_step 5,x", "--lr_step"), ("ctdet --test_scales 1,y", "--test_scales"),
])
def test_bad_options_name_the_culprit(line, culprit):
    with pytest.raises(UserError, match=culprit):
        init(line)
