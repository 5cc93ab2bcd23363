"""Inference runtimes: one module per runtime, each behind the small :class:`Runtime` protocol.

Runtimes are imported lazily, so a missing optional runtime costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["RUNTIMES", "Runtime", "load_runtime"]


@runtime_checkable
class Runtime(Protocol):
    """Runs one network: a float32 input tensor in, its output tensors out (in a fixed order)."""

    name: str

    def run(self, inputs: NDArray[np.float32]) -> list[NDArray[np.float32]]: ...


# runtime name -> "module:factory"; the factory takes (path, model_format, outputs, threads).
RUNTIMES: dict[str, str] = {
    "opencv": "posekit.runtimes.opencv_dnn:OpenCVDNN",
    "litert": "posekit.runtimes.litert:LiteRT",
    "onnxruntime": "posekit.runtimes.onnxruntime:OnnxRuntime",
}


def load_runtime(
    name: str,
    path: str | Path,
    *,
    model_format: str,
    outputs: Sequence[str] = (),
    threads: int | None = None,
) -> Runtime:
    """Create runtime ``name`` for the model file at ``path``."""
    try:
        target = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}; expected one of {sorted(RUNTIMES)}") from None
    module, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    runtime: Runtime = factory(Path(path), model_format=model_format, outputs=tuple(outputs), threads=threads)
    return runtime
