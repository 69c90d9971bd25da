"""Put src/lib first on sys.path so the library imports by its top-level module names."""
import os.path as osp
import sys


def add_path(path: str) -> None:
    """Prepend `path` to sys.path once."""
    if path not in sys.path:
        sys.path.insert(0, path)


add_path(osp.join(osp.dirname(osp.abspath(__file__)), "lib"))
