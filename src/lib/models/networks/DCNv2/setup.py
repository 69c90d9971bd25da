"""Build the DCNv2 extension `_ext` next to this file.

    cd src/lib/models/networks/DCNv2 && python setup.py build develop

`develop` here builds in place with the running interpreter's torch (`build_ext --inplace`) instead
of handing the job to pip, whose isolated build environment has no torch. CUDA kernels are built
when torch is a CUDA build and nvcc is found (or FORCE_CUDA=1); otherwise only the CPU kernels.
"""
import glob
import os
import shutil
import sys

from setuptools import Command, setup

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)  # setuptools wants source paths relative to the setup script

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as exc:  # e.g. pip's isolated build environment
    sys.exit(f"DCNv2: building needs torch importable by {sys.executable} ({exc}); run "
             "`python setup.py build develop` with the project's python instead of `pip install`")


def _with_cuda() -> bool:
    """Whether to compile the CUDA kernels."""
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None and os.path.exists(
        os.path.join(CUDA_HOME, "bin", "nvcc"))


def _extension():
    """The `_ext` extension: CPU kernels always, CUDA kernels when available."""
    sources = ["src/vision.cpp"] + sorted(glob.glob("src/cpu/*.cpp"))
    cxx = ["-O3"]
    link = []
    if sys.platform.startswith("linux"):
        # at::parallel_for runs threads only when compiled with OpenMP; the libgomp torch loads is reused
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    if _with_cuda():
        print("DCNv2: building CPU and CUDA kernels")
        nvcc = ["-O3", "--expt-relaxed-constexpr", "-DCUDA_HAS_FP16=1", "-D__CUDA_NO_HALF_OPERATORS__",
                "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]
        return CUDAExtension("_ext", sources + sorted(glob.glob("src/cuda/*.cu")),
                             include_dirs=[os.path.join(HERE, "src")], define_macros=[("WITH_CUDA", None)],
                             extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=link)
    print("DCNv2: building CPU kernels only (no CUDA torch or nvcc; FORCE_CUDA=1 overrides)")
    return CppExtension("_ext", sources, include_dirs=[os.path.join(HERE, "src")],
                        extra_compile_args={"cxx": cxx}, extra_link_args=link)


class develop(Command):  # noqa: N801 - replaces setuptools' command of this name
    """Build the extension in place for use from the source tree (no pip, no egg-link)."""

    description = "build the DCNv2 extension in place (build_ext --inplace)"
    user_options = [("install-dir=", "d", "ignored"), ("no-deps", "N", "ignored"), ("user", None, "ignored"),
                    ("prefix=", None, "ignored"), ("index-url=", "i", "ignored")]
    boolean_options = ["no-deps", "user"]

    def initialize_options(self) -> None:
        self.install_dir = self.prefix = self.index_url = None
        self.no_deps = self.user = False

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        # Reuse what `build` produced (a second build_ext run would recompile everything).
        if not self.distribution.have_run.get("build_ext"):
            self.run_command("build_ext")
        build_ext = self.get_finalized_command("build_ext")
        for ext in build_ext.extensions:
            built = build_ext.get_ext_fullpath(ext.name)
            target = os.path.join(HERE, build_ext.get_ext_filename(ext.name))
            if os.path.abspath(built) != target:
                tmp = target + ".tmp"
                shutil.copy2(built, tmp)
                os.replace(tmp, target)  # never leave a half-written library a running process might load
            print(f"DCNv2: {os.path.relpath(target, HERE)} ready in {HERE}")


setup(
    name="DCNv2",
    version="0.1",
    description="Modulated deformable convolution (DCNv2) and deformable PSROI pooling for PyTorch 2",
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension, "develop": develop},
    py_modules=[],
)
