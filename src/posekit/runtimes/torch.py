"""PyTorch runtime: runs an in-memory ``torch.nn.Module`` behind the :class:`~posekit.runtimes.Runtime` protocol.

This is how a network being trained (or just converted) plugs into the numpy pipelines, e.g.
``OpenPoseNet(MOBILENET_THIN, runtime=TorchModule(model))`` inside :class:`~posekit.pipeline.BottomUp`.
The module is run in eval mode under :func:`torch.inference_mode`; its previous training mode is
restored afterwards, so evaluating during training does not disturb the training loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

__all__ = ["TorchModule"]


class TorchModule:
    """A runtime over a live PyTorch module: float32 ``(N, C, H, W)`` in, its output tensors out."""

    name = "torch"

    def __init__(self, module: torch.nn.Module, *, device: str | torch.device | None = None) -> None:
        self.module = module
        if device is None:
            p = next(module.parameters(), None)
            device = p.device if p is not None else torch.device("cpu")
        self.device = torch.device(device)

    def run(self, inputs: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                out: Any = self.module(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)).to(self.device))
        finally:
            self.module.train(was_training)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.detach().float().cpu().numpy() for o in outs]
