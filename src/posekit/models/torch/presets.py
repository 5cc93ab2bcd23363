"""Model-zoo presets for the PyTorch top-down networks: ViTPose (S/B/L/H) and AlphaPose's FastPose.

Their weights are not in :mod:`posekit.weights` (no digest has been pinned, and no hub is
reachable from where posekit is developed), so every preset needs a local checkpoint::

    posekit.load("vitpose-b", checkpoint="vitpose-b.pth")

The file is converted strictly (:mod:`posekit.models.torch.convert` for ViTPose, in the reference
mmpose layout or Hugging Face's; :mod:`posekit.models.torch.convert_alphapose` for FastPose): any
missing, unexpected or mis-shaped tensor is an error. People are found by posekit's BlazePose
detector, whose alignment points give a body box (:class:`AlignmentBoxes`), and each person is
estimated by :class:`~posekit.models.torch.estimator.TorchHeatmapEstimator`.

Licences: ViTPose's code and checkpoints are Apache-2.0 (``ViTAE-Transformer/ViTPose``).
AlphaPose's code and models come under its own "Software License Agreement, academic or
non-profit organization noncommercial research use only" (``MVIG-SJTU/AlphaPose``, LICENSE): no
commercial use and no redistribution. The BlazePose detector is Apache-2.0 (MediaPipe).

This module imports no torch until a preset is built.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from posekit.detectors import Detections
from posekit.models import register_model

__all__ = ["ALPHAPOSE_SOURCES", "VITPOSE_SOURCES", "AlignmentBoxes", "CheckpointRequiredError"]

VITPOSE_SOURCES = (
    "the reference repository https://github.com/ViTAE-Transformer/ViTPose (README, 'Results from this repo "
    "on MS COCO val set'; COCO 256x192 .pth files in the mmpose layout, shared through OneDrive), or for "
    "ViTPose-B Hugging Face https://huggingface.co/usyd-community/vitpose-base and "
    "https://huggingface.co/usyd-community/vitpose-base-simple (model.safetensors, transformers layout)"
)
ALPHAPOSE_SOURCES = (
    "AlphaPose's model zoo https://github.com/MVIG-SJTU/AlphaPose/blob/master/docs/MODEL_ZOO.md "
    "(fast_res50_256x192.pth, Google Drive https://drive.google.com/open?id=1kQhnMRURFiy7NsdS8EFL-8vtqEXOgECn); "
    "licensed for non-commercial research only"
)

_VITPOSE_ARCHS = {"s": "ViT-S", "b": "ViT-B", "l": "ViT-L", "h": "ViT-H"}
# embed dim, depth of the published sizes (checked against the checkpoint, so that "vitpose-b"
# never silently runs a ViT-L file)
_VITPOSE_SIZES = {"s": (384, 12), "b": (768, 12), "l": (1024, 24), "h": (1280, 32)}


class CheckpointRequiredError(FileNotFoundError):
    """A preset was built without the local checkpoint it needs."""


def _require_checkpoint(name: str, checkpoint: str | Path | None, sources: str) -> Path:
    if checkpoint is None:
        raise CheckpointRequiredError(
            f"{name} needs a local checkpoint: posekit.load({name!r}, checkpoint='path/to/file'). "
            f"posekit does not download these weights and no model hub is reachable from here; "
            f"get the official checkpoint from {sources}."
        )
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointRequiredError(
            f"{name}: checkpoint {str(path)!r} is not a file; official ones come from {sources}"
        )
    return path


def _require_torch(name: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ImportError(f"{name} runs on PyTorch; install torch to use it") from None


def _read_state_dict(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"{path} is a safetensors file; install safetensors to read it") from None
        return dict(load_file(str(path)))
    from posekit.models.torch.convert_alphapose import read_checkpoint

    return read_checkpoint(path)


class AlignmentBoxes:
    """Person boxes from the BlazePose detector's alignment points.

    The detector's own boxes frame the face; its keypoints 0 (hip centre) and 1 (above the head)
    span the body: the box is the square of half-side ``|p1 - p0|`` centred on the hip centre
    (the circle MediaPipe crops the whole body from), so people bending or lying down still fit.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def __call__(self, image: np.ndarray) -> Detections:
        det = self.detector(image)
        if det.keypoints is None or len(det) == 0:
            return det
        p0, p1 = det.keypoints[:, 0].astype(np.float64), det.keypoints[:, 1].astype(np.float64)
        r = np.hypot(*(p1 - p0).T)[:, None]
        return Detections(np.concatenate([p0 - r, p0 + r], axis=1), det.scores, det.keypoints)


def _detector(kwargs: dict[str, Any]) -> AlignmentBoxes:
    from posekit.detectors.blazepose import BlazePoseDetector, DetectorParams

    common = {k: kwargs.pop(k) for k in ("threads", "progress") if k in kwargs}
    det = {f.name: kwargs.pop(f.name) for f in fields(DetectorParams) if f.name in kwargs}
    return AlignmentBoxes(BlazePoseDetector(DetectorParams(**det), **common))


_ESTIMATOR_KEYS = ("flip_test", "device", "batch_size", "box_scale", "blur_kernel_size")


def _vitpose_factory(arch: str) -> Any:
    name = f"vitpose-{arch}"

    def build(*, checkpoint: str | Path | None = None, layout: str | None = None, **kwargs: Any) -> Any:
        path = _require_checkpoint(name, checkpoint, VITPOSE_SOURCES)
        _require_torch(name)
        from posekit.models.torch.convert import load_vitpose
        from posekit.models.torch.estimator import TorchHeatmapEstimator
        from posekit.pipeline import TopDown

        model = load_vitpose(_read_state_dict(path), layout, strict=True)
        got, want = (model.cfg.embed_dim, model.cfg.depth), _VITPOSE_SIZES[arch]
        if got != want:
            raise ValueError(
                f"{path} holds a ViTPose of width {got[0]} and depth {got[1]}; {name} is "
                f"{_VITPOSE_ARCHS[arch]} (width {want[0]}, depth {want[1]})"
            )
        spec = model.spec
        est_kw = {k: kwargs.pop(k) for k in _ESTIMATOR_KEYS if k in kwargs}
        est = TorchHeatmapEstimator(model, input_size=spec.input_size, decode="udp", mean=spec.mean, std=spec.std,
                                    schema=spec.schema, **est_kw)  # fmt: skip
        return TopDown(_detector(kwargs), est, **kwargs)

    build.__doc__ = (
        f"{name}: ``checkpoint`` (required, a local .pth / .safetensors), ``layout`` ('mmpose' or "
        "'transformers', guessed from the keys by default), estimator options (``flip_test``, ``device``, "
        "``batch_size``, ``box_scale``), ``threads`` / ``progress`` / ``DetectorParams`` fields for the "
        "BlazePose detector, and ``nms`` for TopDown."
    )
    return build


for _arch, _label in _VITPOSE_ARCHS.items():
    register_model(
        f"vitpose-{_arch}",
        family="top-down",
        description=f"ViTPose-{_arch.upper()} ({_label}, COCO 256x192, UDP) on BlazePose person boxes; "
        "needs checkpoint= (local file, PyTorch)",
        weights=("blazepose-detector",),
        schema="coco17",
        license="Apache-2.0",
    )(_vitpose_factory(_arch))


@register_model(
    "fastpose-r50",
    family="top-down",
    description="AlphaPose FastPose ResNet-50 (COCO 256x192) on BlazePose person boxes; needs checkpoint= "
    "(local file, PyTorch)",
    weights=("blazepose-detector",),
    schema="coco17",
    license="AlphaPose licence: non-commercial research only",
)
def _build_fastpose(*, checkpoint: str | Path | None = None, decode: str = "heatmap", **kwargs: Any) -> Any:
    """``checkpoint`` (required, an AlphaPose .pth); ``decode``: ``"heatmap"`` for the MSE-trained
    COCO model of the model zoo (``fast_res50_256x192.pth``), ``"integral"`` for checkpoints
    trained with integral regression; estimator and detector options as for ViTPose."""
    path = _require_checkpoint("fastpose-r50", checkpoint, ALPHAPOSE_SOURCES)
    _require_torch("fastpose-r50")
    from posekit.models.torch.convert_alphapose import infer_config, load_alphapose, read_checkpoint
    from posekit.models.torch.estimator import ALPHAPOSE_MEAN, ALPHAPOSE_STD, TorchHeatmapEstimator
    from posekit.models.torch.fastpose import FastPose
    from posekit.pipeline import TopDown

    state = read_checkpoint(path)
    cfg = infer_config(state)
    if cfg.depth != 50 or cfg.num_keypoints != 17:
        raise ValueError(f"{path} is a FastPose ResNet-{cfg.depth} with {cfg.num_keypoints} keypoints; "
                         "fastpose-r50 is ResNet-50 with the 17 COCO keypoints")  # fmt: skip
    model = FastPose(cfg)  # heatmap head: the estimator decodes the maps itself
    load_alphapose(model, state, strict=True)
    h, w = cfg.input_size
    est_kw = {k: kwargs.pop(k) for k in _ESTIMATOR_KEYS if k in kwargs}
    est = TorchHeatmapEstimator(model, input_size=(w, h), decode=decode, mean=ALPHAPOSE_MEAN,  # type: ignore[arg-type]
                                std=ALPHAPOSE_STD, schema="coco17", **est_kw)  # fmt: skip
    return TopDown(_detector(kwargs), est, **kwargs)
