"""Loading a checkpoint never runs code from it; old numpy-valued files still load; opt-ins work."""
import io

import numpy as np
import pytest
import torch
from payloads import VARIANTS, write_payload

from models.model import create_model, load_checkpoint_file, load_model, save_model
from utils.errors import UserError

torch.set_num_threads(1)
HEADS = {"hm": 3, "wh": 2, "reg": 2}


@pytest.mark.parametrize("variant", VARIANTS)
def test_payload_never_runs(tmp_path, variant):
    marker = tmp_path / "ran"
    path = write_payload(tmp_path / f"{variant}.pth", marker, variant)
    with pytest.raises(UserError) as e:
        load_checkpoint_file(str(path))
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "--trust_checkpoint" in msg
    assert "posix.system" in msg or "os.system" in msg
    assert not marker.exists()
    with pytest.raises(UserError, match="--trust_checkpoint"):
        load_model(create_model("res_18", HEADS, 64), str(path))
    assert not marker.exists()


def test_trusted_file_with_python_objects_loads_with_a_warning(tmp_path, capsys):
    model = create_model("res_18", HEADS, 64)
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 2, "state_dict": model.state_dict(), "note": io.StringIO("x")}, path)
    with pytest.raises(UserError, match="_io.StringIO"):
        load_model(create_model("res_18", HEADS, 64), str(path))
    loaded = load_model(create_model("res_18", HEADS, 64), str(path), trust=True)
    assert torch.equal(loaded.conv1.weight, model.conv1.weight)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "--trust_checkpoint" in err


def _numpy_checkpoint(tmp_path, model, legacy_names: bool):
    """A checkpoint with numpy scalars/arrays, optionally with numpy 1.x module names (as old files have)."""
    obj = {"epoch": np.int64(7), "best": np.float64(0.25), "mean": np.zeros(3, np.float32),
           "state_dict": model.state_dict()}
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    if legacy_names:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path = tmp_path / ("old.pth" if legacy_names else "new.pth")
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("legacy_names", [False, True])
def test_numpy_scalars_load_safely(tmp_path, capsys, legacy_names):
    model = create_model("res_18", HEADS, 64)
    path = _numpy_checkpoint(tmp_path, model, legacy_names)
    loaded = load_model(create_model("res_18", HEADS, 64), str(path))
    assert torch.equal(loaded.layer1[0].conv1.weight, model.layer1[0].conv1.weight)
    assert "epoch 7" in capsys.readouterr().out


def test_model_zoo_style_checkpoint_loads(tmp_path):
    """The original's layout, saved in the legacy format with an optimizer, loads and resumes."""
    model = create_model("res_18", HEADS, 64)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    path = tmp_path / "zoo.pth"
    torch.save({"epoch": 230, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}, path,
               _use_new_zipfile_serialization=False)
    fresh = create_model("res_18", HEADS, 64)
    _, _, epoch = load_model(fresh, str(path), torch.optim.Adam(fresh.parameters(), 1e-3), resume=True, lr=1e-3,
                             lr_step=[90, 120])
    assert epoch == 230


def test_other_architecture_is_refused_unless_partial(tmp_path, capsys):
    src = create_model("res_18", HEADS, 64)
    path = tmp_path / "res18.pth"
    save_model(str(path), 3, src)
    with pytest.raises(UserError) as e:
        load_model(create_model("res_50", HEADS, 64), str(path), verbose=False)
    msg = str(e.value)
    assert "--load_partial" in msg and "of" in msg and str(path) in msg
    out = capsys.readouterr().out
    assert "No param" not in out and "Drop parameter" not in out
    model = load_model(create_model("res_50", HEADS, 64), str(path), allow_partial=True, verbose=False)
    out = capsys.readouterr().out
    assert "Loaded " in out and " model tensors from " in out and "No param" not in out
    assert model is not None


def test_fine_tuning_other_classes_loads_with_one_summary_line(tmp_path, capsys):
    src = create_model("res_18", HEADS, 64)
    path = tmp_path / "coco.pth"
    save_model(str(path), 3, src)
    target = create_model("res_18", {"hm": 7, "wh": 2, "reg": 2}, 64)
    load_model(target, str(path), verbose=False)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("Loaded ")]
    assert len(lines) == 1 and "heads hm" in lines[0] and "Skip loading" not in out
    total = len(target.state_dict())
    assert lines[0].startswith(f"Loaded {total - 2} of {total} model tensors")


def test_state_dict_of_non_tensors_is_one_line(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"epoch": 1, "state_dict": {"conv1.weight": [1, 2, 3]}}, path)
    with pytest.raises(UserError, match="not a mapping of names to tensors"):
        load_model(create_model("res_18", HEADS, 64), str(path))


def test_resume_without_model_last_names_resume(tmp_path):
    with pytest.raises(UserError, match=r"^--resume: no model_last.pth in .*exp_a; train this experiment"):
        load_checkpoint_file(str(tmp_path / "exp_a" / "model_last.pth"), culprit="--resume")
