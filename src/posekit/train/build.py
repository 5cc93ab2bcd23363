"""Networks for training, their model files, and the pipelines that run them.

A *model file* (``model.pt``, written by the trainer) is ``{"format": "posekit-model", "task",
"model": ModelConfig fields, "state_dict"}``: it describes its own architecture, so
``posekit predict/eval --model trained --checkpoint model.pt`` rebuilds it without any other input.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posekit.schemas import get_schema
from posekit.train.config import ModelConfig

__all__ = ["build_model", "load_model_file", "model_pipeline", "save_model_file", "vitpose_config"]

MODEL_FORMAT = "posekit-model"


def vitpose_config(cfg: ModelConfig) -> Any:
    from posekit.models.torch.vitpose import VitPoseConfig

    w, h = cfg.input_size
    return VitPoseConfig(
        embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
        patch_size=cfg.patch_size, img_size=(h, w), drop_path_rate=cfg.drop_path_rate, decoder=cfg.decoder,
        num_keypoints=get_schema(cfg.schema).num_keypoints, deconv_channels=cfg.deconv_channels,
    )  # fmt: skip


def build_model(cfg: ModelConfig, *, progress: bool = True) -> nn.Module:
    """The network of ``cfg`` with its initial weights (``cfg.init``)."""
    if cfg.kind == "vitpose":
        from posekit.models.torch.vitpose import VitPose, spec_for

        vc = vitpose_config(cfg)
        model: nn.Module = VitPose(vc, spec_for(vc, get_schema(cfg.schema)))
        if cfg.init == "pretrained":
            raise ValueError("model.init='pretrained' is only available for openpose-mobilenet-thin; "
                             "give a posekit model file path instead")  # fmt: skip
    elif cfg.kind == "fastpose":
        from posekit.models.torch.fastpose import FastPose, FastPoseConfig

        if cfg.init == "pretrained":
            raise ValueError("model.init='pretrained' is only available for openpose-mobilenet-thin; "
                             "give a posekit model file path instead")  # fmt: skip
        w, h = cfg.input_size
        model = FastPose(FastPoseConfig(depth=cfg.resnet_depth, num_keypoints=get_schema(cfg.schema).num_keypoints,
                                        head=cfg.head, conv_dim=cfg.conv_dim, input_size=(h, w)))  # fmt: skip
    elif cfg.kind == "openpose-mobilenet-thin":
        from posekit.models.torch.openpose_mobilenet import OpenPoseMobileNetThin

        model = (
            OpenPoseMobileNetThin.from_graph(progress=progress) if cfg.init == "pretrained" else OpenPoseMobileNetThin()
        )
        model.train()
    else:  # guarded by TrainConfig
        raise ValueError(f"unknown model kind {cfg.kind!r}")
    if cfg.init not in ("random", "pretrained"):
        state, saved, _ = _read_model_file(cfg.init)
        if saved.kind != cfg.kind:
            raise ValueError(f"{cfg.init} holds a {saved.kind!r} model; the config asks for {cfg.kind!r}")
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{cfg.init} does not fit the configured model: missing {list(missing)[:5]}, "
                             f"unexpected {list(unexpected)[:5]} (sizes must match)")  # fmt: skip
    return model


def save_model_file(
    path: str | Path, model: nn.Module, cfg: ModelConfig, task: str, *, flip_augmented: bool = True
) -> Path:
    """Write a self-describing model file atomically (temporary file, then rename).

    ``flip_augmented`` records whether the network was trained on mirrored samples too: the
    ``trained`` preset turns its flip test on by default only then (a network that never saw a
    mirrored person is hurt by averaging in its mirrored prediction).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"format": MODEL_FORMAT, "version": 1, "task": task, "model": asdict(cfg),
           "flip_augmented": bool(flip_augmented), "state_dict": state}  # fmt: skip
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def model_config_from(values: dict[str, Any]) -> ModelConfig:
    known = {f.name for f in fields(ModelConfig)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known}
    return ModelConfig(**kw)


def _read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelConfig, dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file {p} does not exist")
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and obj.get("format") == "posekit-train":  # a training checkpoint
        meta = {"flip_augmented": bool(obj["config"]["data"].get("augment", True))}
        return obj["model_state"], model_config_from(obj["config"]["model"]), meta
    if not (isinstance(obj, dict) and obj.get("format") == MODEL_FORMAT):
        raise ValueError(f"{p} is not a posekit model file (written by `posekit train`: model.pt or last.pt)")
    return obj["state_dict"], model_config_from(obj["model"]), {"flip_augmented": obj.get("flip_augmented", True)}


def load_model_file(path: str | Path) -> tuple[nn.Module, ModelConfig]:
    """The network saved in a posekit model file (or training checkpoint), in eval mode."""
    model, cfg, _ = load_model_file_meta(path)
    return model, cfg


def load_model_file_meta(path: str | Path) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """:func:`load_model_file` and the file's notes (``flip_augmented``)."""
    state, cfg, meta = _read_model_file(path)
    model = build_model(ModelConfig(**{**asdict(cfg), "init": "random", "drop_path_rate": 0.0}), progress=False)
    model.load_state_dict(state, strict=True)
    return model.eval(), cfg, meta


def model_pipeline(model: nn.Module, cfg: ModelConfig, *, detector: Any = None, flip_test: bool = True,
                   input_size: int = 432, **kwargs: Any) -> Any:  # fmt: skip
    """A ready pipeline around ``model``: ``TopDown`` (ViTPose, FastPose; ``detector`` may be ``None`` when
    boxes are always given) or ``BottomUp`` (OpenPose networks, ``input_size`` = input height)."""
    from posekit.pipeline import BottomUp, TopDown

    if cfg.kind == "vitpose":
        from posekit.models.torch.estimator import TorchHeatmapEstimator

        spec = model.spec  # type: ignore[attr-defined]
        est = TorchHeatmapEstimator(model, input_size=spec.input_size, decode="udp", mean=spec.mean, std=spec.std,
                                    schema=spec.schema, flip_test=flip_test)  # fmt: skip
        return TopDown(detector, est, **kwargs)
    if cfg.kind == "fastpose":
        from posekit.models.torch.estimator import ALPHAPOSE_MEAN, ALPHAPOSE_STD, TorchHeatmapEstimator

        est = TorchHeatmapEstimator(model, input_size=cfg.input_size, decode=cfg.head, mean=ALPHAPOSE_MEAN,
                                    std=ALPHAPOSE_STD, schema=cfg.schema, flip_test=flip_test)  # fmt: skip
        return TopDown(detector, est, **kwargs)
    from posekit.models.openpose import MOBILENET_THIN, OpenPoseNet
    from posekit.runtimes.torch import TorchModule

    return BottomUp(OpenPoseNet(MOBILENET_THIN, runtime=TorchModule(model)), input_size=input_size, **kwargs)
