"""ONNX Runtime (CPU) as a runtime: runs ONNX files, e.g. the OpenPose export of
:func:`posekit.models.torch.openpose_mobilenet.export_onnx`. Needs the ``onnxruntime`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["OnnxRuntime"]


class OnnxRuntime:
    """Run an ONNX model with ``onnxruntime`` on the CPU.

    The model's first input takes the tensor; ``outputs`` names the outputs to return, in that
    order (default: all, in the model's order). ``threads`` sets the session's intra-op thread
    count (``None``: onnxruntime's default, one per physical core); inter-op runs sequentially.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        model_format: str = "onnx",
        outputs: tuple[str, ...] = (),
        threads: int | None = None,
    ) -> None:
        if model_format != "onnx":
            raise ValueError(f"onnxruntime runs 'onnx' models, not {model_format!r}")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"threads must be >= 1, got {threads}")
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        available = [o.name for o in self.session.get_outputs()]
        unknown = [o for o in outputs if o not in available]
        if unknown:
            raise ValueError(f"the model has no outputs {unknown}; it has {available}")
        self.outputs = list(outputs) or available
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, inputs: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        feed = {self.input_name: np.ascontiguousarray(inputs, dtype=np.float32)}
        outs = self.session.run(self.outputs, feed)
        return [np.asarray(o, dtype=np.float32) for o in outs]
