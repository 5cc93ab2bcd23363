"""OpenCV's DNN module as a runtime (no TensorFlow or PyTorch needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["OpenCVDNN"]

_READERS = {
    "tensorflow": cv2.dnn.readNetFromTensorflow,
    "onnx": cv2.dnn.readNetFromONNX,
}


class OpenCVDNN:
    """Run a frozen TensorFlow graph or an ONNX file with ``cv2.dnn`` on the CPU.

    ``threads`` sets OpenCV's (process-wide) thread count when given.
    """

    name = "opencv"

    def __init__(
        self,
        path: Path,
        *,
        model_format: str,
        outputs: tuple[str, ...] = (),
        threads: int | None = None,
    ) -> None:
        try:
            reader = _READERS[model_format]
        except KeyError:
            raise ValueError(
                f"OpenCV DNN cannot read {model_format!r} models; expected one of {sorted(_READERS)}"
            ) from None
        if threads is not None:
            cv2.setNumThreads(int(threads))
        self.net = reader(str(path))
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.outputs = list(outputs) or list(self.net.getUnconnectedOutLayersNames())

    def run(self, inputs: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        self.net.setInput(np.ascontiguousarray(inputs, dtype=np.float32))
        outs = self.net.forward(self.outputs)
        return [np.asarray(o, dtype=np.float32) for o in outs]
