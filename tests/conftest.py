"""Test set-up: import the library by the original's top-level module names."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
LIB = os.path.join(SRC, "lib")
for p in (SRC, LIB):
    if p not in sys.path:
        sys.path.insert(0, p)

# Nothing may reach the network: point the hub cache at an empty folder unless a test sets one.
os.environ.setdefault("TORCH_HOME", os.path.join(ROOT, "build", "torch_home_tests"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
