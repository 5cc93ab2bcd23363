"""Sources and sinks: reading images, writing results atomically."""

from __future__ import annotations

from posekit.io.files import atomic_write_bytes, atomic_write_json
from posekit.io.images import IMAGE_SUFFIXES, ImageReadError, iter_image_paths, read_image

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "atomic_write_bytes", "atomic_write_json", "iter_image_paths",
           "read_image"]  # fmt: skip
