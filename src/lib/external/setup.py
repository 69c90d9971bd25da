"""Build the Cython soft-NMS extension in place: `python setup.py build_ext --inplace`."""
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [Extension("nms", ["nms.pyx"], extra_compile_args=["-O3"])]

setup(
    name="nms",
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
)
