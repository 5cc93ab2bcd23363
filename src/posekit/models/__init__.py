"""The model zoo: named presets that build ready-to-run pipelines.

A preset is plain data plus a factory registered with :func:`register_model`; ``posekit.load``
looks it up by name. Importing this package registers the built-in presets and their weights (no
files are read or fetched until a model is built).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["MODELS", "ModelInfo", "load", "register_model"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    description: str
    weights: tuple[str, ...]
    schema: str
    license: str
    factory: Callable[..., Any]


MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str, *, family: str, description: str, weights: tuple[str, ...], schema: str, license: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(**kwargs) -> pipeline`` under ``name``."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelInfo(name, family, description, weights, schema, license, factory)
        return factory

    return deco


def load(name: str, **kwargs: Any) -> Any:
    """Build the pipeline of preset ``name`` (fetching its weights on first use)."""
    try:
        info = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; expected one of {sorted(MODELS)}") from None
    return info.factory(**kwargs)


from posekit.models import blazepose as _blazepose  # noqa: E402,F401  (registers presets)
from posekit.models import openpose as _openpose  # noqa: E402,F401
from posekit.models import trained as _trained  # noqa: E402,F401
from posekit.models.torch import presets as _torch_presets  # noqa: E402,F401  (no torch needed to register)
