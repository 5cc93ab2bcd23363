"""Model-zoo presets for the PyTorch top-down networks: ViTPose (S/B/L/H), AlphaPose's FastPose and
Sapiens (0.3B-2B; 17, 133 or 308 keypoints).

Each preset reads a checkpoint, either a local file::

    posekit.load("vitpose-b", checkpoint="vitpose-b.pth")

or, without ``checkpoint=``, the official file registered in :mod:`posekit.weights` (downloaded on
first use; the URLs below). Nobody has been able to check those files from where posekit is
developed (no network), so their entries are *not pinned*: the first download is trusted and its
sha256 recorded, later uses are checked against it. Offline, a preset says which URL it needs and
how to give the file by hand (``checkpoint=`` / ``--checkpoint FILE``, or ``posekit weights fetch
NAME --from FILE``).

Files are converted strictly (:mod:`posekit.models.torch.convert` for ViTPose, in the reference
mmpose 0.x layout, mmpose 1.x's or Hugging Face's; :mod:`posekit.models.torch.convert_alphapose`
for FastPose; :func:`posekit.models.torch.sapiens.from_sapiens_checkpoint` for Sapiens): any
missing, unexpected or mis-shaped tensor is an error, and a checkpoint of another size than the
preset's is refused. People are found by posekit's BlazePose detector, whose alignment points give
a body box (:class:`AlignmentBoxes`), and each person is estimated by
:class:`~posekit.models.torch.estimator.TorchHeatmapEstimator`.

Licences: ViTPose's code and checkpoints are Apache-2.0 (``ViTAE-Transformer/ViTPose``; the mmpose
1.x files come from OpenMMLab's model zoo, Apache-2.0). AlphaPose's code and models come under its
own "Software License Agreement, academic or non-profit organization noncommercial research use
only" (``MVIG-SJTU/AlphaPose``, LICENSE): no commercial use and no redistribution. Sapiens'
checkpoints are CC BY-NC 4.0 (the Hugging Face model cards) under Meta's Sapiens licence: no
commercial use. The BlazePose detector is Apache-2.0 (MediaPipe).

This module imports no torch until a preset is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from posekit.detectors import Detections
from posekit.models import register_model
from posekit.weights import UrlSource, WeightsEntry, WeightsUnavailableError, fetch, get_entry, register

__all__ = [
    "ALPHAPOSE_SOURCES",
    "CHECKPOINT_PRESETS",
    "SAPIENS_SOURCES",
    "VITPOSE_SOURCES",
    "AlignmentBoxes",
    "CheckpointPreset",
    "CheckpointRequiredError",
    "CheckpointUnavailableError",
    "LoadedNetwork",
    "load_network",
]

log = logging.getLogger(__name__)

VITPOSE_SOURCES = (
    "OpenMMLab's model zoo https://github.com/open-mmlab/mmpose/blob/main/configs/body_2d_keypoint/"
    "topdown_heatmap/coco/vitpose_coco.md (mmpose 1.x .pth files), the reference repository "
    "https://github.com/ViTAE-Transformer/ViTPose (README, 'Results from this repo on MS COCO val set'; "
    "mmpose 0.x layout, shared through OneDrive), or for ViTPose-B Hugging Face "
    "https://huggingface.co/usyd-community/vitpose-base (model.safetensors, transformers layout)"
)
ALPHAPOSE_SOURCES = (
    "AlphaPose's model zoo https://github.com/MVIG-SJTU/AlphaPose/blob/master/docs/MODEL_ZOO.md "
    "(fast_res50_256x192.pth, Google Drive https://drive.google.com/open?id=1kQhnMRURFiy7NsdS8EFL-8vtqEXOgECn); "
    "licensed for non-commercial research only"
)
SAPIENS_SOURCES = (
    "Sapiens' pose model zoo https://github.com/facebookresearch/sapiens/blob/main/docs/POSE_README.md "
    "(COCO-17 and COCO-WholeBody-133 files on https://huggingface.co/noahcao/sapiens-pose-coco, 308-keypoint "
    "files on https://huggingface.co/facebook/sapiens-pose-0.3b, -0.6b, -1b); CC BY-NC 4.0"
)


class CheckpointRequiredError(FileNotFoundError):
    """A preset was given a checkpoint path that is not a file."""


class CheckpointUnavailableError(CheckpointRequiredError, WeightsUnavailableError):
    """A preset's registered checkpoint could not be downloaded (offline, or the server refused)."""


# --- registered checkpoints ------------------------------------------------------------------------
# None of these digests could be computed here (no network): the entries are not pinned (sha256 None).

_MMPOSE_V1 = "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/"
# COCO train2017, 256x192, classic decoder: the "ckpt" links of mmpose's vitpose_coco.md (checked in
# that file; the files themselves and their sizes were not, no network).
_VITPOSE_FILES = {
    "s": "td-hm_ViTPose-small_8xb64-210e_coco-256x192-62d7a712_20230314.pth",
    "b": "td-hm_ViTPose-base_8xb64-210e_coco-256x192-216eae50_20230314.pth",
    "l": "td-hm_ViTPose-large_8xb64-210e_coco-256x192-53609f55_20230314.pth",
    "h": "td-hm_ViTPose-huge_8xb64-210e_coco-256x192-e32adcd4_20230314.pth",
}
_VITPOSE_AP = {"s": 0.739, "b": 0.757, "l": 0.782, "h": 0.788}  # mmpose's table, COCO val2017, AP-56 boxes

for _arch, _file in _VITPOSE_FILES.items():
    register(
        WeightsEntry(
            name=f"vitpose-{_arch}-coco",
            filename=_file,
            sha256=None,
            size=None,
            sources=(UrlSource(_MMPOSE_V1 + _file),),
            license="Apache-2.0",
            description=f"ViTPose-{_arch.upper()} COCO 256x192 (mmpose 1.x, AP {_VITPOSE_AP[_arch]} on val2017)",
            extra={"layout": "mmpose1"},
        )
    )

# AlphaPose publishes FastPose-R50 on Google Drive only (MODEL_ZOO.md: open?id=1kQh...). The link is a
# web page; for large files Drive's "uc?export=download" answers with a virus-scan confirmation page.
# The drive.usercontent.google.com form with confirm=t is what download tools use to skip it; it could
# not be tried from here. A page instead of the file is refused (see posekit.weights), not trusted.
_FASTPOSE_DRIVE_ID = "1kQhnMRURFiy7NsdS8EFL-8vtqEXOgECn"
register(
    WeightsEntry(
        name="fastpose-r50-coco",
        filename="fast_res50_256x192.pth",
        sha256=None,
        size=None,
        sources=(
            UrlSource(
                f"https://drive.usercontent.google.com/download?id={_FASTPOSE_DRIVE_ID}&export=download&confirm=t"
            ),
        ),
        license="AlphaPose licence: non-commercial research only",
        description="AlphaPose FastPose ResNet-50 COCO 256x192 (AP 72.0 with YOLOv3 boxes, AlphaPose's model zoo)",
    )
)

# Sapiens (docs/POSE_README.md). 308 keypoints: facebook/sapiens-pose-<size> on Hugging Face; the
# 1B file was seen listed there (sapiens_1b_goliath_best_goliath_AP_640.pth, 4.68 GB); the 0.3B and
# 0.6B repositories and file names follow the README's names but were not seen listed. No 2B
# 308-keypoint file is published ("coming soon"). 17 and 133 keypoints: the README sends users to
# https://huggingface.co/noahcao/sapiens-pose-coco/tree/main/sapiens_host (a repository of one of
# the authors' collaborators, not under facebook/); the paths inside it are the README's
# "$SAPIENS_CHECKPOINT_ROOT/pose/checkpoints/..." with sapiens_host as the root, not confirmed.
_SAPIENS_COCO = "https://huggingface.co/noahcao/sapiens-pose-coco/resolve/main/sapiens_host/pose/checkpoints/"
_SAPIENS_FILES: dict[tuple[str, int], tuple[str, str]] = {
    ("0.3b", 17): (_SAPIENS_COCO + "sapiens_0.3b/", "sapiens_0.3b_coco_best_coco_AP_796.pth"),
    ("0.6b", 17): (_SAPIENS_COCO + "sapiens_0.6b/", "sapiens_0.6b_coco_best_coco_AP_812.pth"),
    ("1b", 17): (_SAPIENS_COCO + "sapiens_1b/", "sapiens_1b_coco_best_coco_AP_821.pth"),
    ("2b", 17): (_SAPIENS_COCO + "sapiens_2b/", "sapiens_2b_coco_best_coco_AP_822.pth"),
    ("0.3b", 133): (_SAPIENS_COCO + "sapiens_0.3b/", "sapiens_0.3b_coco_wholebody_best_coco_wholebody_AP_620.pth"),
    ("0.6b", 133): (_SAPIENS_COCO + "sapiens_0.6b/", "sapiens_0.6b_coco_wholebody_best_coco_wholebody_AP_695.pth"),
    ("1b", 133): (_SAPIENS_COCO + "sapiens_1b/", "sapiens_1b_coco_wholebody_best_coco_wholebody_AP_727.pth"),
    ("2b", 133): (_SAPIENS_COCO + "sapiens_2b/", "sapiens_2b_coco_wholebody_best_coco_wholebody_AP_745.pth"),
    ("0.3b", 308): ("https://huggingface.co/facebook/sapiens-pose-0.3b/resolve/main/",
                    "sapiens_0.3b_goliath_best_goliath_AP_575.pth"),
    ("0.6b", 308): ("https://huggingface.co/facebook/sapiens-pose-0.6b/resolve/main/",
                    "sapiens_0.6b_goliath_best_goliath_AP_600.pth"),
    ("1b", 308): ("https://huggingface.co/facebook/sapiens-pose-1b/resolve/main/",
                  "sapiens_1b_goliath_best_goliath_AP_640.pth"),
}  # fmt: skip
_SAPIENS_SCHEMAS = {17: "coco17", 133: "coco_wholebody133", 308: "sapiens308"}
_SAPIENS_SUFFIX = {17: "", 133: "-wholebody", 308: "-308"}
_SAPIENS_DATA = {17: "COCO", 133: "COCO-WholeBody", 308: "Goliath (308 keypoints)"}
_SAPIENS_WEIGHTS = {17: "coco", 133: "coco-wholebody", 308: "goliath"}
_SAPIENS_LICENSE = "CC BY-NC 4.0 (Sapiens licence): non-commercial"

for (_size, _k), (_base, _file) in _SAPIENS_FILES.items():
    register(
        WeightsEntry(
            name=f"sapiens-{_size}-{_SAPIENS_WEIGHTS[_k]}",
            filename=_file,
            sha256=None,
            size=None,
            sources=(UrlSource(_base + _file),),
            license=_SAPIENS_LICENSE,
            description=f"Sapiens-{_size.upper()} pose, {_k} keypoints, {_SAPIENS_DATA[_k]}, 1024x768",
        )
    )


# --- presets as data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedNetwork:
    """A network read from a checkpoint, with how to feed it and decode its heatmaps.

    ``input_size`` is ``(W, H)``; pixels are RGB / 255, then ``(x - mean) / std``; ``decode`` and
    ``alignment`` as :class:`~posekit.models.torch.estimator.TorchHeatmapEstimator` takes them.
    """

    model: Any  # torch.nn.Module
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    schema: str
    decode: str
    codec: str  # human-readable description of the heatmap codec, for exported files
    source: Path
    estimator_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointPreset:
    """A top-down preset that reads one checkpoint: its registered weights and its network loader.

    ``load(path, **options)`` returns a :class:`LoadedNetwork`; ``options`` are the preset's own
    keyword arguments (e.g. ``layout`` for ViTPose).
    """

    name: str
    weights: str
    sources: str
    load: Callable[..., LoadedNetwork]
    options: tuple[str, ...] = ()


CHECKPOINT_PRESETS: dict[str, CheckpointPreset] = {}


def _checkpoint_path(preset: CheckpointPreset, checkpoint: str | Path | None, progress: bool) -> Path:
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointRequiredError(
                f"{preset.name}: checkpoint {str(path)!r} is not a file; official ones come from {preset.sources}"
            )
        return path
    entry = get_entry(preset.weights)
    try:
        return fetch(entry, progress=progress)
    except WeightsUnavailableError as exc:
        urls = ", ".join(s.url for s in entry.sources if isinstance(s, UrlSource))
        reasons = "; ".join(exc.errors) or str(exc)
        raise CheckpointUnavailableError(
            f"{preset.name} needs its checkpoint {entry.filename} and it could not be downloaded from {urls} "
            f"({reasons}).\n"
            "Get the file on a machine with internet, then either\n"
            f"  - give it directly: posekit.load({preset.name!r}, checkpoint='path/to/{entry.filename}'), "
            "or --checkpoint FILE on the command line, or\n"
            f"  - put it in posekit's cache once: posekit weights fetch {entry.name} --from FILE\n"
            f"Other official checkpoints: {preset.sources}."
        ) from exc


def _require_torch(name: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ImportError(f"{name} runs on PyTorch; install torch to use it (pip install 'posekit[torch]')") from None


def load_network(
    name: str, checkpoint: str | Path | None = None, *, progress: bool = True, **options: Any
) -> LoadedNetwork:
    """The network of checkpoint preset ``name`` (one of :data:`CHECKPOINT_PRESETS`), read strictly
    from ``checkpoint`` or, when ``None``, from the preset's registered weights."""
    try:
        preset = CHECKPOINT_PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown checkpoint preset {name!r}; expected one of {sorted(CHECKPOINT_PRESETS)}") from None
    unknown = sorted(set(options) - set(preset.options))
    if unknown:
        raise TypeError(f"{name} takes no options {unknown}; its own options are {sorted(preset.options)}")
    path = _checkpoint_path(preset, checkpoint, progress)
    _require_torch(name)
    return preset.load(path, **options)


class AlignmentBoxes:
    """Person boxes from the BlazePose detector's alignment points.

    The detector's own boxes frame the face; its keypoints 0 (hip centre, ``p0``) and 1 (above the
    head, ``p1``) give the body's axis and size ``r = |p1 - p0|``. The box is the upright bounding
    box of a rectangle centred on ``p0``, ``2 * along * r`` long on the axis and ``2 * across * r``
    wide, so a person bending or lying down is boxed along their own axis. ``along=0.9,
    across=0.3`` were fitted on coco-train2017-mini to the labelled boxes (best mean IoU) and
    checked on coco-val2017-dev (``benchmarks/detector_boxes.py``): mean best IoU with the labelled
    boxes 0.35 and 36% of people at IoU >= 0.5, against 0.21 and 7% for MediaPipe's square
    (``along=across=1``), whose crops come out ~1.4x larger than the tight-box crops top-down
    networks are trained on.
    """

    def __init__(self, detector: Any, *, along: float = 0.9, across: float = 0.3) -> None:
        if along <= 0 or across <= 0:
            raise ValueError(f"along and across must be positive, got {along} and {across}")
        self.detector = detector
        self.along, self.across = float(along), float(across)

    def boxes(self, keypoints: np.ndarray) -> np.ndarray:
        """xyxy boxes ``(N, 4)`` from the detector's keypoints ``(N, >=2, 2)``."""
        p0, p1 = keypoints[:, 0, :2].astype(np.float64), keypoints[:, 1, :2].astype(np.float64)
        v = p1 - p0
        r = np.hypot(v[:, 0], v[:, 1])[:, None]
        u = v / np.maximum(r, 1e-9)  # unit axis; its normal is (-u_y, u_x)
        half = np.abs(u) * (self.along * r) + np.abs(u[:, ::-1]) * (self.across * r)
        return np.concatenate([p0 - half, p0 + half], axis=1)

    def __call__(self, image: np.ndarray) -> Detections:
        det = self.detector(image)
        if det.keypoints is None or len(det) == 0:
            return det
        return Detections(self.boxes(det.keypoints), det.scores, det.keypoints)


def _detector(kwargs: dict[str, Any]) -> AlignmentBoxes:
    from posekit.detectors.blazepose import BlazePoseDetector, DetectorParams

    common = {k: kwargs.pop(k) for k in ("threads", "progress") if k in kwargs}
    det = {f.name: kwargs.pop(f.name) for f in fields(DetectorParams) if f.name in kwargs}
    return AlignmentBoxes(BlazePoseDetector(DetectorParams(**det), **common))


_ESTIMATOR_KEYS = ("flip_test", "device", "batch_size", "box_scale", "blur_kernel_size")


def _build_top_down(preset: CheckpointPreset, *, checkpoint: str | Path | None = None, **kwargs: Any) -> Any:
    own = {k: kwargs.pop(k) for k in preset.options if k in kwargs}
    net = load_network(preset.name, checkpoint, progress=bool(kwargs.get("progress", True)), **own)
    from posekit.models.torch.estimator import TorchHeatmapEstimator
    from posekit.pipeline import TopDown

    est_kw = {**net.estimator_kwargs, **{k: kwargs.pop(k) for k in _ESTIMATOR_KEYS if k in kwargs}}
    est = TorchHeatmapEstimator(net.model, input_size=net.input_size, decode=net.decode, mean=net.mean,  # type: ignore[arg-type]
                                std=net.std, schema=net.schema, **est_kw)  # fmt: skip
    return TopDown(_detector(kwargs), est, **kwargs)


def _add_preset(preset: CheckpointPreset, *, description: str, schema: str, license: str, doc: str) -> None:
    CHECKPOINT_PRESETS[preset.name] = preset

    def build(**kwargs: Any) -> Any:
        return _build_top_down(preset, **kwargs)

    build.__doc__ = doc
    register_model(preset.name, family="top-down", description=description,
                   weights=("blazepose-detector", preset.weights), schema=schema, license=license)(build)  # fmt: skip


_COMMON_DOC = (
    "``checkpoint`` (a local .pth; default: the registered official file, downloaded on first use), "
    "estimator options (``flip_test``, ``device``, ``batch_size``, ``box_scale``), ``threads`` / ``progress`` / "
    "``DetectorParams`` fields for the BlazePose detector, and ``nms`` for TopDown."
)

# --- ViTPose ---------------------------------------------------------------------------------------

_VITPOSE_ARCHS = {"s": "ViT-S", "b": "ViT-B", "l": "ViT-L", "h": "ViT-H"}
# embed dim, depth of the published sizes (checked against the checkpoint, so that "vitpose-b"
# never silently runs a ViT-L file)
_VITPOSE_SIZES = {"s": (384, 12), "b": (768, 12), "l": (1024, 24), "h": (1280, 32)}


def _vitpose_loader(arch: str) -> Callable[..., LoadedNetwork]:
    name = f"vitpose-{arch}"

    def load(path: Path, *, layout: str | None = None) -> LoadedNetwork:
        from posekit.models.torch.convert import load_vitpose, read_checkpoint
        from posekit.models.torch.estimator import IMAGENET_MEAN, IMAGENET_STD

        model = load_vitpose(read_checkpoint(path), layout, strict=True)
        got, want = (model.cfg.embed_dim, model.cfg.depth), _VITPOSE_SIZES[arch]
        if got != want:
            raise ValueError(
                f"{path} holds a ViTPose of width {got[0]} and depth {got[1]}; {name} is "
                f"{_VITPOSE_ARCHS[arch]} (width {want[0]}, depth {want[1]})"
            )
        spec = model.spec
        codec = spec.codec
        return LoadedNetwork(
            model, spec.input_size, IMAGENET_MEAN, IMAGENET_STD, spec.schema.name, "udp",
            f"UDP heatmaps {codec.heatmap_size[0]}x{codec.heatmap_size[1]} (W x H), sigma {codec.sigma:g}", path,
        )  # fmt: skip

    return load


for _arch, _label in _VITPOSE_ARCHS.items():
    _add_preset(
        CheckpointPreset(
            f"vitpose-{_arch}", f"vitpose-{_arch}-coco", VITPOSE_SOURCES, _vitpose_loader(_arch), ("layout",)
        ),
        description=f"ViTPose-{_arch.upper()} ({_label}, COCO 256x192, UDP) on BlazePose person boxes "
        "(PyTorch; checkpoint downloaded on first use or checkpoint=)",
        schema="coco17",
        license="Apache-2.0",
        doc=f"vitpose-{_arch}: ``layout`` ('mmpose', 'mmpose1' or 'transformers'; guessed from the keys by default), "
        + _COMMON_DOC,
    )

# --- FastPose --------------------------------------------------------------------------------------


def _load_fastpose(path: Path, *, decode: str = "heatmap") -> LoadedNetwork:
    from posekit.models.torch.convert_alphapose import infer_config, load_alphapose, read_checkpoint
    from posekit.models.torch.estimator import ALPHAPOSE_MEAN, ALPHAPOSE_STD
    from posekit.models.torch.fastpose import FastPose

    if decode not in ("heatmap", "integral"):
        raise ValueError(f"fastpose-r50: decode must be 'heatmap' or 'integral', got {decode!r}")
    state = read_checkpoint(path)
    cfg = infer_config(state)
    if cfg.depth != 50 or cfg.num_keypoints != 17:
        raise ValueError(f"{path} is a FastPose ResNet-{cfg.depth} with {cfg.num_keypoints} keypoints; "
                         "fastpose-r50 is ResNet-50 with the 17 COCO keypoints")  # fmt: skip
    model = FastPose(cfg)  # heatmap head: the estimator decodes the maps itself
    load_alphapose(model, state, strict=True)
    h, w = cfg.input_size
    codec = "MSE heatmaps at stride 4, argmax refined" if decode == "heatmap" else "integral regression"
    return LoadedNetwork(model, (w, h), ALPHAPOSE_MEAN, ALPHAPOSE_STD, "coco17", decode, codec, path)


_add_preset(
    CheckpointPreset("fastpose-r50", "fastpose-r50-coco", ALPHAPOSE_SOURCES, _load_fastpose, ("decode",)),
    description="AlphaPose FastPose ResNet-50 (COCO 256x192) on BlazePose person boxes (PyTorch; checkpoint "
    "downloaded on first use or checkpoint=)",
    schema="coco17",
    license="AlphaPose licence: non-commercial research only",
    doc="fastpose-r50: ``decode``: ``'heatmap'`` for the MSE-trained COCO model of the model zoo "
    "(``fast_res50_256x192.pth``), ``'integral'`` for checkpoints trained with integral regression; " + _COMMON_DOC,
)

# --- Sapiens ---------------------------------------------------------------------------------------


def _sapiens_loader(size: str, k: int) -> Callable[..., LoadedNetwork]:
    name = f"sapiens-{size}{_SAPIENS_SUFFIX[k]}"

    def load(path: Path) -> LoadedNetwork:
        from posekit.models.torch import sapiens
        from posekit.models.torch.convert import read_checkpoint
        from posekit.models.torch.estimator import IMAGENET_MEAN, IMAGENET_STD
        from posekit.schemas import get_schema

        model = sapiens.load_sapiens(read_checkpoint(path))
        cfg, want = model.cfg, sapiens.ARCHS[size]
        if (cfg.embed_dim, cfg.depth) != (want.embed_dim, want.depth):
            raise ValueError(
                f"{path} holds a Sapiens of width {cfg.embed_dim} and depth {cfg.depth}; {name} is Sapiens-"
                f"{size.upper()} (width {want.embed_dim}, depth {want.depth})"
            )
        if cfg.num_keypoints != k:
            others = sorted(n for n in CHECKPOINT_PRESETS if n.startswith(f"sapiens-{size}"))
            raise ValueError(
                f"{path} predicts {cfg.num_keypoints} keypoints; {name} has {k} (the {size} presets: {others})"
            )
        spec = sapiens.sapiens_spec(get_schema(_SAPIENS_SCHEMAS[k]), cfg)
        codec = spec.codec
        return LoadedNetwork(
            model, spec.input_size, IMAGENET_MEAN, IMAGENET_STD, spec.schema.name, "udp",
            f"UDP heatmaps {codec.heatmap_size[0]}x{codec.heatmap_size[1]} (W x H), sigma {codec.sigma:g}", path,
            {"batch_size": 2},  # 1024x768 crops: small batches keep the memory in bounds
        )  # fmt: skip

    return load


for (_size, _k), (_base, _file) in _SAPIENS_FILES.items():
    _name = f"sapiens-{_size}{_SAPIENS_SUFFIX[_k]}"
    _weights = f"sapiens-{_size}-{_SAPIENS_WEIGHTS[_k]}"
    _add_preset(
        CheckpointPreset(_name, _weights, SAPIENS_SOURCES, _sapiens_loader(_size, _k)),
        description=f"Sapiens-{_size.upper()} pose ({_k} keypoints, {_SAPIENS_DATA[_k]}, 1024x768, UDP) on BlazePose "
        "person boxes (PyTorch, very slow on a CPU; checkpoint downloaded on first use or checkpoint=)",
        schema=_SAPIENS_SCHEMAS[_k],
        license=_SAPIENS_LICENSE,
        doc=f"{_name}: " + _COMMON_DOC,
    )
