"""Reading images as RGB uint8, whatever their storage (grey, alpha, 16-bit, EXIF-rotated)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "iter_image_paths", "read_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file and the reason."""


def read_image(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """Read ``path`` as an RGB uint8 ``(H, W, 3)`` array, applying EXIF orientation.

    Grey images are expanded to three channels, alpha is dropped and 16-bit images are scaled to
    8 bits. Raises :class:`ImageReadError` for missing, empty or undecodable files.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"{p}: no such file")
    data = np.fromfile(p, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{p}: the file is empty")
    # IMREAD_COLOR applies EXIF orientation and converts grey/alpha/16-bit to 8-bit BGR.
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(f"{p}: not a readable image (corrupt, truncated or an unsupported format)")
    return np.ascontiguousarray(img[..., ::-1])


def iter_image_paths(sources: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Expand files and folders (images directly inside, sorted) into image paths.

    Files are yielded as given, whatever their suffix, so a bad one is reported by ``read_image``.
    A source that does not exist is yielded too, for the same reason.
    """
    for src in sources:
        p = Path(src)
        if p.is_dir():
            yield from sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield p
