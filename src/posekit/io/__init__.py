"""Sources and sinks: reading images, writing results atomically."""

from __future__ import annotations

from posekit.io.files import atomic_write_bytes, atomic_write_json
from posekit.io.images import IMAGE_SUFFIXES, ImageReadError, iter_image_paths, read_image
from posekit.io.video import Frame, Source, SourceError, open_source

__all__ = ["IMAGE_SUFFIXES", "Frame", "ImageReadError", "Source", "SourceError", "atomic_write_bytes",
           "atomic_write_json", "iter_image_paths", "open_source", "read_image"]  # fmt: skip
