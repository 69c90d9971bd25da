"""A huge image with --keep_res stops with one line before the forward pass allocates (nothing big is allocated)."""
import cv2
import numpy as np
import pytest
import torch
from catalogue import Case, build_template, judge, make_world

import utils.memory as memory
from detectors.ctdet import CtdetDetector
from opts import opts
from utils.errors import UserError

torch.set_num_threads(1)
GIB = 1 << 30
SMALL = 1 * GIB  # the "available" memory the tests pretend to have


def small_memory(monkeypatch, size=SMALL):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": size)


def test_bytes_per_pixel_by_family():
    per_px = memory.forward_bytes_per_pixel
    assert per_px("res_18") == per_px("res_34") == per_px("resdcn_18") < per_px("res_50") == per_px("resdcn_152")
    assert per_px("dlav0_34") < per_px("dla_34") < per_px("hourglass")
    assert memory.forward_bytes("res_18", 2, 512, 256) == 2 * 512 * 256 * per_px("res_18")


def test_available_is_the_smaller_of_host_and_container(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 8 * GIB)
    monkeypatch.setattr(memory, "_cgroup_available", lambda: 3 * GIB)
    assert memory.available_bytes("cpu") == 3 * GIB
    monkeypatch.setattr(memory, "_cgroup_available", lambda: None)
    assert memory.available_bytes(torch.device("cpu")) == 8 * GIB
    monkeypatch.setattr(memory, "_meminfo_available", lambda: None)
    assert memory.available_bytes("cpu") is None
    memory.check_fits(1 << 50, "cpu", "x", "y")  # unknown: no check, the allocation guard remains


def test_cgroup_room_counts_idle_page_cache_as_free(monkeypatch):
    files = {"/sys/fs/cgroup/memory.max": 4 * GIB, "/sys/fs/cgroup/memory.current": 3 * GIB}
    monkeypatch.setattr(memory, "_read_int", files.get)
    monkeypatch.setattr(memory, "_read_stat", lambda path, key: GIB if key == "inactive_file" else None)
    assert memory._cgroup_available() == 2 * GIB
    files["/sys/fs/cgroup/memory.max"] = memory._NO_LIMIT
    assert memory._cgroup_available() is None


def test_meminfo_is_read():
    assert memory._meminfo_available() is None or memory._meminfo_available() > 0


def test_check_fits_names_the_device(monkeypatch):
    small_memory(monkeypatch)
    memory.check_fits(SMALL, "cpu", "x", "y")
    with pytest.raises(UserError, match=r"^image needs about 2.0 GiB, more than the 1.0 GiB of GPU memory "
                                        r"available; fix it$"):
        memory.check_fits(2 * GIB, "cuda", "image", "fix it")


@pytest.mark.parametrize("exc,oom", [
    (MemoryError(), True),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                  "you tried to allocate 40000000000000 bytes."), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"), True),
    (cv2.error("OpenCV(4.10) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 9 bytes"), True),
    (RuntimeError("The size of tensor a (4) must match the size of tensor b (3)"), False),
    (ValueError("out of memory"), False),
])
def test_is_out_of_memory(exc, oom):
    assert memory.is_out_of_memory(exc) == oom


def test_a_real_failed_allocation_becomes_the_line():
    with pytest.raises(UserError, match="^too big$"), memory.out_of_memory_as_error("too big"):
        torch.empty(10 ** 15)  # refused by the allocator at once, nothing is committed
    with pytest.raises(KeyError), memory.out_of_memory_as_error("too big"):
        raise KeyError("other errors pass through")


# -- the detector -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("memory_template"))


def detector(template, tmp_path, *extra):
    args = ["ctdet", "--dataset", "synth", "--arch", "res_18", "--gpus", "-1", "--input_res", "64",
            "--load_model", str(template / "model.pth"), "--exp_root", str(tmp_path / "exp"), *extra]
    return CtdetDetector(opts().init(args))


def test_huge_keep_res_image_stops_before_pre_processing(template, tmp_path, monkeypatch):
    det = detector(template, tmp_path, "--keep_res")
    small_memory(monkeypatch)

    def no_resize(*args, **kwargs):
        raise AssertionError("the image was resized before the memory check")

    monkeypatch.setattr(cv2, "resize", no_resize)
    with pytest.raises(UserError) as e:
        det.run(np.zeros((3000, 4000, 3), np.uint8))
    msg = str(e.value)
    for word in ("image 4000x3000", "--keep_res network input 4032x3008", "--arch res_18", "more than the 1.0 GiB",
                 "drop --keep_res", "--fix_res", "--input_res", "--test_scales"):
        assert word in msg


def test_flip_test_doubles_the_estimate(template, tmp_path, monkeypatch):
    det = detector(template, tmp_path, "--keep_res", "--flip_test")
    needed = memory.forward_bytes("res_18", 2, 1024, 1024) + memory.preprocess_bytes(2, 1024, 1024)
    small_memory(monkeypatch, needed - 1)
    with pytest.raises(UserError, match=r"1024x1024, twice with --flip_test\) with --arch res_18 needs about"):
        det.run(np.zeros((1000, 1000, 3), np.uint8))


def test_small_image_passes_the_check(template, tmp_path, monkeypatch):
    det = detector(template, tmp_path, "--keep_res")
    small_memory(monkeypatch)
    assert set(det.run(np.zeros((60, 80, 3), np.uint8))["results"]) == set(range(1, 7))


@pytest.mark.parametrize("keep_res,fix", [(True, "drop --keep_res"), (False, "pass a smaller --input_res")])
def test_failed_allocation_in_the_forward_pass_becomes_one_line(template, tmp_path, monkeypatch, keep_res, fix):
    det = detector(template, tmp_path, *(["--keep_res"] if keep_res else []))

    def oom(images, return_time=False):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 123456789 bytes.")

    monkeypatch.setattr(det, "process", oom)
    with pytest.raises(UserError) as e:
        det.run(np.zeros((50, 70, 3), np.uint8))
    assert "image 70x50" in str(e.value) and "ran out of memory" in str(e.value) and fix in str(e.value)


# -- the scripts, judged like the catalogue's cases, with the available memory patched ----------------

def _huge_val_images(w):
    for path in (w.synth / "images" / "val").iterdir():
        cv2.imwrite(str(path), np.zeros((4000, 4000, 3), np.uint8))


@pytest.mark.parametrize("case", [
    Case("memory_huge_keep_res_test", "test", lambda w: ["--keep_res", "--load_model", str(w.checkpoint)],
         prepare=_huge_val_images, error=("image 4000x4000", "4032x4032", "--fix_res", "--input_res")),
    Case("memory_huge_keep_res_not_prefetch_test", "test",
         lambda w: ["--keep_res", "--not_prefetch_test", "--load_model", str(w.checkpoint)],
         prepare=_huge_val_images, error=("image 4000x4000", "--fix_res")),
    Case("memory_huge_keep_res_demo", "demo",
         lambda w: ["--keep_res", "--load_model", str(w.checkpoint), "--demo_out_dir", str(w.base / "vis"),
                    "--demo", str(sorted((w.synth / "images" / "val").iterdir())[0])],
         prepare=_huge_val_images, error=("image 4000x4000", "4032x4032", "--fix_res", "--input_res")),
], ids=lambda c: c.id)
def test_scripts_stop_on_a_huge_image(case, template, tmp_path, capfd, monkeypatch):
    small_memory(monkeypatch)
    judge(case, make_world(template, tmp_path), capfd)
