"""src/tools/bench_train.py: one process and DDP on the CPU, a table of images/s with ratios."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "tools"))
import bench_train  # noqa: E402

from utils.errors import UserError  # noqa: E402


def test_single_and_ddp_rows_with_ratios(capsys):
    rows = bench_train.main(["--input_res", "64", "--batch_size", "1", "--steps", "1", "--warmup", "0",
                             "--nproc", "2", "--amp", "", "--gpus", "-1"])
    assert [r[0] for r in rows] == ["1 process fp32", "DDP x2 fp32"]
    assert all(speed > 0 for _, speed, _ in rows) and rows[0][2] == 1.0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ctdet res_18 64x64") and len(out) == 3 and "images/s" in out[2]


def test_bad_values_are_one_line():
    with pytest.raises(UserError, match="--input_res 40"):
        bench_train.main(["--input_res", "40"])
    with pytest.raises(UserError, match="--amp fp16"):
        bench_train.main(["--amp", "fp16", "--gpus", "-1", "--nproc", "0"])
