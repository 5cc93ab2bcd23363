"""PyTorch datasets and the sampler for training: augmented samples with their targets.

Every random draw of a sample comes from ``np.random.default_rng([seed, epoch, index])``, so a
sample is a pure function of (seed, epoch, index): independent of the process, the worker, the
batch it lands in, or whether the run was resumed. :class:`EpochSampler` hands out those
``(index, epoch)`` keys batch by batch (a seeded permutation per epoch) and splits each global
batch over distributed ranks, which is what makes a ``torchrun`` run with N processes equal to one
process with the same global batch, and a resumed run equal to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from posekit.codecs.heatmap import render_gaussians
from posekit.codecs.paf import encode_heatmaps, encode_pafs
from posekit.codecs.udp import UDPHeatmap
from posekit.models.openpose import MOBILENET_THIN, OpenPoseSpec
from posekit.schemas import convert_keypoints, get_schema
from posekit.train.augment import random_top_down
from posekit.train.datasets import CocoKeypoints

__all__ = [
    "BottomUpTrainSet",
    "EpochSampler",
    "IntegralTargets",
    "StrideHeatmapTargets",
    "TopDownTrainSet",
    "UdpTargets",
    "collate",
]

Key = tuple[int, int]


class EpochSampler:
    """Batches of ``(index, epoch)`` keys: epoch ``e`` visits a permutation seeded by ``(seed, e)``.

    ``batch_size`` is the *global* batch; ``rank`` of ``world`` takes every ``world``-th key of it
    (``batch_size`` must divide evenly). An epoch has ``len(dataset) // batch_size`` batches (the
    incomplete tail is dropped; with fewer samples than one batch, keys wrap around the permutation
    so every batch is full). :meth:`batches` starts at any global step.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world: int = 1) -> None:  # fmt: skip
        if num_samples < 1:
            raise ValueError("the training set has no samples")
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} does not split evenly over {world} processes")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.shuffle, self.rank, self.world = seed, shuffle, rank, world
        self.steps_per_epoch = max(num_samples // batch_size, 1)

    def order(self, epoch: int) -> NDArray[np.int64]:
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch, 7919]).permutation(self.num_samples)

    def global_batch(self, step: int) -> list[Key]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        order = self.order(epoch)
        idx = np.arange(pos * self.batch_size, (pos + 1) * self.batch_size) % self.num_samples
        return [(int(order[i]), epoch) for i in idx]

    def batches(self, start_step: int, end_step: int) -> Iterator[list[Key]]:
        """This rank's keys for global steps ``start_step .. end_step - 1``."""
        for step in range(start_step, end_step):
            yield self.global_batch(step)[self.rank :: self.world]


def collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class _Images:
    """Decoded RGB images, kept in memory when the set is small (``cache``; per process), else read each time."""

    def __init__(self, cache: bool) -> None:
        self._cache: dict[Path, NDArray[np.uint8]] | None = {} if cache else None

    def __call__(self, path: Path) -> NDArray[np.uint8]:
        from posekit.io.images import read_image

        if self._cache is None:
            return read_image(path)
        img = self._cache.get(path)
        if img is None:
            img = self._cache[path] = read_image(path)
        return img


# Training sets of at most this many images keep their decoded images in memory (~1 MB each for COCO).
CACHE_IMAGES_UP_TO = 256


def _normalise(image: NDArray[np.uint8], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class UdpTargets:
    """ViTPose's targets: UDP Gaussian heatmaps ``heatmaps (K, h, w)`` and ``weights (K,)``."""

    def __init__(self, codec: UDPHeatmap) -> None:
        self.codec, self.input_size = codec, codec.input_size

    def __call__(self, keypoints: NDArray[np.float64]) -> dict[str, NDArray[np.float32]]:
        heat, weight = self.codec.encode(keypoints[:, :2], keypoints[:, 2])
        return {"heatmaps": heat, "weights": weight}


def _on_grid(xy: NDArray[np.float64], vis: NDArray[np.float64], w: int, h: int) -> NDArray[np.float32]:
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= h - 0.5)
    return ((vis > 0) & inside & np.isfinite(xy).all(axis=1)).astype(np.float32)


class StrideHeatmapTargets:
    """AlphaPose's heatmap targets: a Gaussian (``sigma`` map pixels) at input pixel / stride, the frame
    :class:`~posekit.models.torch.estimator.TorchHeatmapEstimator` decodes (input = stride x map)."""

    def __init__(self, input_size: tuple[int, int], stride: int = 4, sigma: float = 2.0) -> None:
        self.input_size, self.stride, self.sigma = input_size, stride, sigma
        self.map_size = (input_size[0] // stride, input_size[1] // stride)

    def __call__(self, keypoints: NDArray[np.float64]) -> dict[str, NDArray[np.float32]]:
        xy = keypoints[:, :2] / self.stride
        weight = _on_grid(xy, keypoints[:, 2], *self.map_size)
        heat = render_gaussians(np.where(np.isfinite(xy), xy, 0.0)[None], weight[None] > 0, self.map_size, self.sigma)
        return {"heatmaps": heat, "weights": weight}


class IntegralTargets:
    """Symmetric integral regression targets: ``xy (K, 2)`` in heatmap pixels (input pixel / stride,
    AlphaPose's convention, see :mod:`posekit.codecs.integral`) and ``weights (K,)``, 0 for unlabelled
    keypoints and those outside the map."""

    def __init__(self, input_size: tuple[int, int], stride: int = 4) -> None:
        self.input_size, self.stride = input_size, stride
        self.map_size = (input_size[0] // stride, input_size[1] // stride)

    def __call__(self, keypoints: NDArray[np.float64]) -> dict[str, NDArray[np.float32]]:
        xy = keypoints[:, :2] / self.stride
        weight = _on_grid(xy, keypoints[:, 2], *self.map_size)
        return {"xy": np.where(weight[:, None] > 0, xy, 0.0).astype(np.float32), "weights": weight}


class TopDownTrainSet(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Person crops with their targets: items ``image (3, H, W)`` and what ``targets`` makes of the
    crop's keypoints (:class:`UdpTargets` — a bare ``UDPHeatmap`` codec means that —,
    :class:`StrideHeatmapTargets`, :class:`IntegralTargets`). ``augment=False`` gives the plain
    padded box crop (for evaluation-like samples and tests); ``box_noise`` (a
    :mod:`posekit.train.boxnoise` sampler) perturbs boxes."""

    def __init__(
        self,
        coco: CocoKeypoints,
        targets: UDPHeatmap | UdpTargets | StrideHeatmapTargets | IntegralTargets,
        *,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        augment: bool = True,
        box_noise: Any = None,
        seed: int = 0,
    ) -> None:
        self.coco = coco
        self.targets = UdpTargets(targets) if isinstance(targets, UDPHeatmap) else targets
        self.samples = coco.top_down_samples()
        if not self.samples:
            raise ValueError("no labelled, non-crowd person in the training set")
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment, self.box_noise, self.seed = augment, box_noise, seed
        self._images = _Images(len({x.image_path for x in self.samples}) <= CACHE_IMAGES_UP_TO)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Key | int) -> dict[str, torch.Tensor]:
        index, epoch = (key, 0) if isinstance(key, int) else key
        s = self.samples[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        kw: dict[str, Any] = {"schema": self.coco.schema, "out_size": self.targets.input_size}
        if not self.augment:
            kw.update(scale_range=(1.0, 1.0), rotation_prob=0.0, flip_prob=0.0, half_body_prob=0.0, jitter=None)
        elif self.box_noise is not None:
            kw["box_noise"] = self.box_noise
        crop = random_top_down(s, rng, image=self._images(s.image_path), **kw)
        item = {k: torch.from_numpy(v) for k, v in self.targets(crop.keypoints).items()}
        return {"image": _normalise(crop.image, self.mean, self.std), **item}


def openpose_targets(
    keypoints: NDArray[np.float64],
    ignore: NDArray[np.bool_],
    input_size: tuple[int, int],
    spec: OpenPoseSpec = MOBILENET_THIN,
    *,
    src_schema: str = "coco17",
    sigma: float = 1.0,
    limb_width: float = 1.0,
    render_scale: int = 1,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The network's raw target ``(C, h, w)`` (heatmaps, background, PAF channels in ``spec``'s order)
    and its loss mask ``(1, h, w)`` for ``(N, K, 3)`` input-pixel keypoints of ``src_schema``.

    The background channel is ``1 - max`` of the part heatmaps (tf-pose's target). ``ignore`` is
    the ``(H, W)`` input-pixel mask of unannotated people; a map cell is masked (0) when more than
    half of its pixels are ignored. ``sigma`` and ``limb_width`` are in map pixels (stride 8: 8 px).
    ``render_scale`` > 1 draws the targets on a grid that many times finer and area-averages them down
    to the map (``render_scale = stride``: drawn at input resolution, as tf-pose made its targets).
    """
    w_in, h_in = input_size
    r = int(render_scale)
    if r < 1:
        raise ValueError(f"render_scale must be >= 1, got {render_scale}")
    s = spec.stride / r
    mw, mh = w_in * r // spec.stride, h_in * r // spec.stride
    dst = spec.schema
    n = len(keypoints)
    if n:
        kp, vis = convert_keypoints(keypoints[..., :2], keypoints[..., 2], get_schema(src_schema), dst)
        kp = (kp.astype(np.float64) + 0.5) / s - 0.5  # input pixel -> map pixel
        kp[~(vis > 0)] = 0.0
    else:
        kp, vis = np.zeros((0, dst.num_keypoints, 2)), np.zeros((0, dst.num_keypoints))
    heat = encode_heatmaps(kp, vis, (mw, mh), sigma=sigma * r)
    pafs = encode_pafs(kp, vis, dst.skeleton, (mw, mh), limb_width=limb_width * r)  # (L, h, w, 2)
    k = dst.num_keypoints
    channels = spec.paf_offset + 2 * len(dst.skeleton)
    out = np.zeros((channels, mh, mw), dtype=np.float32)
    out[:k] = heat
    if spec.paf_offset > k:  # a background channel
        out[k] = 1.0 - (heat.max(axis=0) if k else 0.0)
    for limb, (cx, cy) in enumerate(spec.paf_channels):
        out[spec.paf_offset + cx] = pafs[limb, :, :, 0]
        out[spec.paf_offset + cy] = pafs[limb, :, :, 1]
    if r > 1:
        mw, mh = mw // r, mh // r
        out = cv2.resize(out.transpose(1, 2, 0), (mw, mh), interpolation=cv2.INTER_AREA).reshape(mh, mw, -1)
        out = np.ascontiguousarray(out.transpose(2, 0, 1))
    ign = cv2.resize(ignore.astype(np.float32), (mw, mh), interpolation=cv2.INTER_AREA)
    mask = (ign <= 0.5).astype(np.float32)[None]
    return out, mask


class BottomUpTrainSet(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Whole-image samples for OpenPose networks: items ``image (3, H, W)`` (the network's own input
    format: BGR 0..255 minus ``spec.mean``), ``target (C, h, w)`` and ``mask (1, h, w)``.

    Targets are drawn ``render_scale`` times finer than the maps and area-averaged down (see
    :func:`openpose_targets`): tf-pose drew its targets at input resolution, and with 4 the real
    MobileNet-thin's own outputs sit 22% closer (masked L2) to the targets than with 1, nearly as
    close as with 8 (measured on coco-train2017-mini), at a third of the cost."""

    def __init__(
        self,
        coco: CocoKeypoints,
        spec: OpenPoseSpec = MOBILENET_THIN,
        *,
        input_size: tuple[int, int] = (368, 368),
        augment: bool = True,
        seed: int = 0,
        render_scale: int = 4,
    ) -> None:
        if input_size[0] % spec.stride or input_size[1] % spec.stride:
            raise ValueError(f"input_size {input_size} must be multiples of the stride {spec.stride}")
        self.coco, self.spec, self.input_size = coco, spec, (int(input_size[0]), int(input_size[1]))
        self.samples = coco.bottom_up_samples()
        if not self.samples:
            raise ValueError("no image with labelled people in the training set")
        self.augment, self.seed, self.render_scale = augment, seed, render_scale
        self._images = _Images(len(self.samples) <= CACHE_IMAGES_UP_TO)

    def __len__(self) -> int:
        return len(self.samples)

    def _plain(self, image: NDArray[np.uint8], kps: NDArray[np.float64], ignore: NDArray[np.bool_]) -> tuple[Any, ...]:
        """Scale the whole image into the input (aspect kept, padded right/bottom), no randomness."""
        w, h = self.input_size
        k = min(w / image.shape[1], h / image.shape[0])
        m = np.array([[k, 0.0, 0.5 * k - 0.5], [0.0, k, 0.5 * k - 0.5]])  # pixel centres map to pixel centres
        img = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        ign = cv2.warpAffine(ignore.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
        out = kps.copy()
        out[..., :2] = kps[..., :2] * k + (0.5 * k - 0.5)
        return img, out, ign

    def __getitem__(self, key: Key | int) -> dict[str, torch.Tensor]:
        index, epoch = (key, 0) if isinstance(key, int) else key
        s = self.samples[index]
        image = self._images(s.image_path)
        ignore = self.coco.ignore_mask(s.image_id, image.shape[:2])
        if self.augment:
            from posekit.train.augment import random_bottom_up

            rng = np.random.default_rng([self.seed, epoch, index])
            crop = random_bottom_up(
                s, rng, image=image, ignore=ignore, schema=self.coco.schema, out_size=self.input_size
            )
            img, kps, ign = crop.image, crop.keypoints, crop.ignore
        else:
            img, kps, ign = self._plain(image, s.keypoints, ignore)
        target, mask = openpose_targets(kps, ign, self.input_size, self.spec, src_schema=self.coco.schema.name,
                                        render_scale=self.render_scale)  # fmt: skip
        x = img[..., ::-1] if self.spec.bgr else img
        x = x.astype(np.float32) * self.spec.scale - self.spec.mean
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
            "target": torch.from_numpy(target),
            "mask": torch.from_numpy(mask),
        }
