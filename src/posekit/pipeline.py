"""Pipelines: a network plus the decoding that turns its outputs into :class:`~posekit.Poses`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from posekit.bottomup import PafParams, PeakParams, parse_people
from posekit.models.openpose import OpenPoseNet, network_input_size
from posekit.poses import Poses

__all__ = ["BottomUp", "Timings"]


@dataclass
class Timings:
    """Seconds spent in each stage of the last call."""

    stages: dict[str, float] = field(default_factory=dict)


def _check_image(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"image must be an RGB uint8 array of shape (H, W, 3), got shape {shape} dtype {dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"image is too small: {image.shape[1]}x{image.shape[0]} pixels")
    return image


class BottomUp:
    """OpenPose-style bottom-up pipeline: one forward pass, then PAF parsing.

    ``input_size`` is the network input height (width follows the image's aspect ratio), or a
    fixed (W, H). Its cost does not grow with the number of people.
    """

    def __init__(
        self,
        net: OpenPoseNet,
        *,
        input_size: int | tuple[int, int] = 432,
        peaks: PeakParams = PeakParams(),
        paf: PafParams = PafParams(),
    ) -> None:
        self.net = net
        self.input_size = input_size
        self.peaks = peaks
        self.paf = paf
        self.schema = net.spec.schema
        self.last_timings = Timings()

    def maps(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[int, int]]:
        """Network outputs for an RGB image: heatmaps, PAFs and the input size (W, H) used."""
        size = network_input_size(image.shape[:2], self.input_size, self.net.spec.size_multiple)
        heat, pafs = self.net(image, size)
        return heat, pafs, size

    def decode(self, heat: NDArray[np.float32], pafs: NDArray[np.float32], size: tuple[int, int],
               image_hw: tuple[int, int]) -> Poses:  # fmt: skip
        """People from network maps, in original-image pixels."""
        kp, ks, sc = parse_people(heat, pafs, self.schema.skeleton, self.peaks, self.paf)
        stride = self.net.spec.stride
        h, w = image_hw
        # map pixel centre -> input pixel centre -> original pixel centre
        kp_in = (kp + 0.5) * stride - 0.5
        scale = np.array([w / size[0], h / size[1]], dtype=np.float32)
        kp_img = (kp_in + 0.5) * scale - 0.5
        return Poses(kp_img, ks, sc, self.schema)

    def __call__(self, image: NDArray[np.uint8]) -> Poses:
        """All people in an RGB uint8 image ``(H, W, 3)``."""
        image = _check_image(image)
        t0 = time.perf_counter()
        heat, pafs, size = self.maps(image)
        t1 = time.perf_counter()
        poses = self.decode(heat, pafs, size, image.shape[:2])
        t2 = time.perf_counter()
        self.last_timings = Timings({"network": t1 - t0, "decode": t2 - t1})
        return poses
