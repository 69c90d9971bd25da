"""Reading image files: one reader for training samples, test.py and the detectors, with one-line errors.

A missing or undecodable file raises ImageReadError (a UserError naming the file). A JPEG or PNG
that decodes but lacks its end marker was cut short (an interrupted copy or download): OpenCV
returns it with the missing part filled in and libjpeg prints a message without the file's name,
so read_image names it in one warning line, once per file and process.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from utils.errors import UserError, warn

_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_PNG_START = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND"
# Some writers append padding or a few bytes of metadata after the end marker: look a little way back.
_TAIL_BYTES = 1024

# files already looked at for truncation in this process (each loader worker has its own)
_checked: set[str] = set()


class ImageReadError(UserError):
    """An image file that is missing or cannot be decoded (a UserError, so the CLI prints one line).

    A loader worker re-creates it from the message alone, so path and reason are optional.
    """

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def truncation(path: str) -> str | None:
    """'JPEG' or 'PNG' when `path` is such a file without its end marker; None otherwise (or unknown format)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_PNG_START))
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - _TAIL_BYTES, len(head)))
            tail = f.read()
    except OSError:
        return None
    if head.startswith(_JPEG_START):
        # entropy-coded data escapes every 0xFF byte, so FF D9 in the tail can only be the end marker
        return None if _JPEG_END in tail else "JPEG"
    if head.startswith(_PNG_START):
        return None if _PNG_END in tail else "PNG"
    return None


def read_image(path: str, fix: str = "check the path") -> np.ndarray:
    """BGR image of `path` (cv2.imread); ImageReadError when it cannot be read, a warning when truncated.

    fix: what the error tells the user to do about a missing file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: no such image file; {fix}", path, "no such image file")
    image = cv2.imread(path)
    if image is None:
        reason = "cannot be read as an image (corrupt, or not a JPEG/PNG/BMP/WebP file)"
        raise ImageReadError(f"{path}: {reason}; replace the file", path, reason)
    if path not in _checked:
        _checked.add(path)
        kind = truncation(path)
        if kind is not None:
            warn(f"{path}: truncated {kind} file (no end marker), its missing part decodes as grey; "
                 "replace the file")
    return image
