"""The ``trained`` preset: a network trained with ``posekit train``, from its self-describing ``model.pt``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posekit.models import register_model


@register_model(
    "trained",
    family="top-down / bottom-up",
    description="a network trained with `posekit train` (checkpoint= OUT/model.pt; needs PyTorch); ViTPose "
    "and FastPose run on BlazePose person boxes, OpenPose networks bottom-up",
    weights=(),
    schema="coco17",
    license="that of your data and initial weights",
)
def _build(*, checkpoint: str | Path | None = None, flip_test: bool | None = None, **kwargs: Any) -> Any:
    """``checkpoint`` (required): a ``model.pt`` or ``last.pt`` from ``posekit train``. ViTPose / FastPose:
    ``flip_test`` (default: on when the network was trained with flips), ``threads`` / ``progress`` /
    ``DetectorParams`` fields for the detector; OpenPose networks: ``input_size``, ``scales``, ``peaks``,
    ``paf`` as for the bottom-up presets."""
    if checkpoint is None:
        raise ValueError("the 'trained' model needs checkpoint= (a model.pt written by `posekit train`; "
                         "on the command line: --checkpoint OUT/model.pt)")  # fmt: skip
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ValueError("the 'trained' model needs PyTorch: pip install 'posekit[torch]'") from None
    from posekit.train.build import load_model_file_meta, model_pipeline

    model, cfg, meta = load_model_file_meta(checkpoint)
    if flip_test is None:
        flip_test = bool(meta.get("flip_augmented", True))
    if cfg.kind in ("vitpose", "fastpose"):
        from posekit.models.torch.presets import _detector

        return model_pipeline(model, cfg, detector=_detector(kwargs), flip_test=flip_test, **kwargs)
    kwargs.pop("threads", None)
    kwargs.pop("progress", None)
    return model_pipeline(model, cfg, **kwargs)
