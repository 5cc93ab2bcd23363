"""Person detectors: image in, boxes (and, for some, alignment keypoints) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Detections", "Detector"]


@dataclass(frozen=True, eq=False)
class Detections:
    """``boxes (N, 4)`` xyxy image pixels, ``scores (N,)``, optional ``keypoints (N, P, 2)``."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    keypoints: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        b = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        s = np.asarray(self.scores, dtype=np.float32).reshape(len(b))
        object.__setattr__(self, "boxes", b)
        object.__setattr__(self, "scores", s)
        if self.keypoints is not None:
            k = np.asarray(self.keypoints, dtype=np.float32)
            if k.ndim != 3 or k.shape[0] != len(b) or k.shape[2] != 2:
                raise ValueError(f"keypoints must have shape ({len(b)}, P, 2), got {k.shape}")
            object.__setattr__(self, "keypoints", k)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: ArrayLike) -> Detections:
        idx = np.atleast_1d(np.asarray(index))
        return Detections(self.boxes[idx], self.scores[idx], None if self.keypoints is None else self.keypoints[idx])


@runtime_checkable
class Detector(Protocol):
    def __call__(self, image: NDArray[np.uint8]) -> Detections: ...
