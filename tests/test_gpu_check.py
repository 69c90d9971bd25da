"""src/tools/gpu_check.sh: valid bash, and on a machine without a CUDA GPU one line, exit 0, no files."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join("src", "tools", "gpu_check.sh")


def test_bash_syntax():
    subprocess.run(["bash", "-n", SCRIPT], cwd=ROOT, check=True)
    # shellcheck is optional on a developer machine, so only used when installed
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-S", "warning", SCRIPT], cwd=ROOT, check=True)


def test_no_gpu_runs_nothing(tmp_path):
    # hide any GPU, so that the test checks the no-GPU path on a GPU machine too: an nvidia-smi that
    # finds none comes first on PATH, and CUDA_VISIBLE_DEVICES="" leaves torch no device
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    out = tmp_path / "gpu_check"
    env = dict(os.environ, GPU_CHECK_OUT=str(out), CUDA_VISIBLE_DEVICES="",
               PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("GPU_CHECK_FORCE", None)
    default_out = os.path.join(ROOT, "exp", "gpu_check")
    existed = os.path.exists(default_out)
    proc = subprocess.run(["bash", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["gpu-check: no CUDA GPU here; nothing run"]
    assert proc.stderr == ""
    assert not out.exists()
    assert os.path.exists(default_out) == existed
