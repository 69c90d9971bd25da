"""Catalogue cases: option values that cannot work stop at parse time with the option and its fix."""
from catalogue import Case


def _demo(w):
    """demo.py on one synthetic validation image with the template checkpoint."""
    image = sorted((w.synth / "images" / "val").iterdir())[0]
    return ["--demo", str(image), "--load_model", str(w.checkpoint), "--demo_out_dir", str(w.base / "vis")]


def _test(w):
    return ["--load_model", str(w.checkpoint)]


def _a_file(w):
    (w.base / "taken").write_text("not a folder")


def _nothing_trained(w, res):
    assert not (w.save_dir / "model_last.pth").exists(), "an epoch ran before the error"


CASES = [
    Case("opt_batch_size_zero_main", "main", ["--batch_size", "0"], check=_nothing_trained,
         error=("--batch_size 0", "at least 1")),
    Case("opt_batch_size_negative_main", "main", ["--batch_size", "-4"], error=("--batch_size -4", "at least 1")),
    Case("opt_batch_size_zero_with_debug_main", "main", ["--batch_size", "0", "--debug", "4"], exit=0),
    Case("opt_num_workers_negative_main", "main", ["--num_workers", "-1"], error=("--num_workers -1", "pass 0")),
    Case("opt_num_epochs_zero_main", "main", ["--num_epochs", "0"], error=("--num_epochs 0", "at least 1")),
    Case("opt_k_zero_test", "test", lambda w: [*_test(w), "--K", "0"], error=("--K 0", "at least 1")),
    Case("opt_k_zero_demo", "demo", lambda w: [*_demo(w), "--K", "0"], error=("--K 0", "at least 1")),
    Case("opt_test_scales_zero_test", "test", lambda w: [*_test(w), "--test_scales", "1,0"],
         error=("--test_scales 1,0", "above 0")),
    Case("opt_test_scales_negative_demo", "demo", lambda w: [*_demo(w), "--test_scales", "-0.5"],
         error=("--test_scales -0.5", "above 0")),
    Case("opt_lr_step_decreasing_main", "main", ["--num_epochs", "5", "--lr_step", "3,1"], check=_nothing_trained,
         error=("--lr_step 3,1", "strictly increasing", "--lr_step 1,3")),
    Case("opt_lr_step_repeated_main", "main", ["--num_epochs", "5", "--lr_step", "2,2"],
         error=("--lr_step 2,2", "strictly increasing")),
    Case("opt_lr_step_beyond_num_epochs_main", "main", ["--lr_step", "5"], exit=0,
         warnings=("--lr_step 5", "--num_epochs 1")),
    Case("opt_input_res_not_multiple_main", "main", ["--input_res", "100"], check=_nothing_trained,
         error=("--input_res 100", "multiple of 32", "res_18", "96 or 128")),
    Case("opt_input_res_not_multiple_test", "test", lambda w: [*_test(w), "--input_res", "80"],
         error=("--input_res 80", "multiple of 32", "64 or 96")),
    Case("opt_input_res_not_multiple_demo", "demo", lambda w: [*_demo(w), "--input_res", "72"],
         error=("--input_res 72", "multiple of 32", "64 or 96")),
    Case("opt_input_h_not_multiple_main", "main", ["--input_h", "48"], error=("--input_h 48", "multiple of 32")),
    Case("opt_input_w_not_multiple_test", "test", lambda w: [*_test(w), "--input_w", "90"],
         error=("--input_w 90", "multiple of 32")),
    Case("opt_input_res_hourglass_main", "main", ["--arch", "hourglass", "--input_res", "192"],
         error=("--input_res 192", "multiple of 128", "hourglass", "128 or 256")),
    # --keep_res pads every image up to a multiple of 32, so the fixed size is never used
    Case("opt_input_res_unused_with_keep_res_test", "test", lambda w: [*_test(w), "--input_res", "100", "--keep_res"],
         exit=0),
    Case("opt_master_batch_size_too_large_main", "main", ["--batch_size", "2", "--master_batch_size", "6"],
         error=("--master_batch_size 6", "--batch_size 2", "-1")),
    Case("opt_master_batch_size_zero_main", "main", ["--master_batch_size", "0"],
         error=("--master_batch_size 0", "-1")),
    Case("opt_amp_fp16_on_cpu_main", "main", ["--amp", "fp16"], check=_nothing_trained,
         error=("--amp fp16", "GPU", "--amp bf16")),
    Case("opt_amp_fp16_on_cpu_test", "test", lambda w: [*_test(w), "--amp", "fp16"], error=("--amp fp16", "bf16")),
    Case("opt_sync_bn_on_cpu_main", "main", ["--sync_bn"], check=_nothing_trained,
         error=("--sync_bn", "GPUs", "--gpus -1")),
    Case("opt_demo_out_dir_is_a_file_demo", "demo", lambda w: [*_demo(w), "--demo_out_dir", str(w.base / "taken")],
         prepare=_a_file, survive=lambda w: [w.base / "taken"],
         error=("--demo_out_dir", "taken", "existing file", "folder")),
    Case("opt_num_iters_zero_main", "main", ["--num_iters", "0"], check=_nothing_trained,
         error=("--num_iters 0", "-1 for the whole training set")),
    Case("opt_down_ratio_main", "main", ["--down_ratio", "8"], error=("--down_ratio 8", "drop --down_ratio")),
    Case("opt_head_conv_negative_test", "test", lambda w: [*_test(w), "--head_conv", "-5"],
         error=("--head_conv -5", "0 for none")),
    Case("opt_flip_probability_main", "main", ["--flip", "2"], error=("--flip 2", "from 0 to 1")),
    Case("opt_reg_loss_unknown_main", "main", ["--reg_loss", "l3"], check=_nothing_trained,
         error=("--reg_loss l3", "l1 or sl1")),
    Case("opt_demo_out_dir_impossible_demo", "demo", lambda w: [*_demo(w), "--demo_out_dir", "/proc/no_such/vis"],
         error=("/proc/no_such", "check the path")),
]
