"""posekit: multi-person 2D human pose estimation on the CPU, behind one API.

>>> import posekit
>>> model = posekit.load("openpose-mobilenet-thin")
>>> poses = model(posekit.read_image("people.jpg"))   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["MODELS", "KeypointSchema", "Poses", "__version__", "get_schema", "load", "read_image"]

_LAZY = {
    "Poses": "posekit.poses",
    "KeypointSchema": "posekit.schemas",
    "get_schema": "posekit.schemas",
    "load": "posekit.models",
    "MODELS": "posekit.models",
    "read_image": "posekit.io.images",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'posekit' has no attribute {name!r}")
