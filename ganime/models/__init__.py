"""The model registry: one literal dict, name -> ModelSpec.

Every entry follows the model contract ``forward(image, mask) -> image``. Weight-free
fills live here beside the neural models, so ``--model`` selects either the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .classical import BlurFill, EdgeFill


@dataclass(frozen=True)
class ModelSpec:
    """How to build one selectable model and what a user should know about it."""

    name: str
    summary: str
    build: Callable[[], nn.Module]
    needs_weights: bool = False
    # Models whose output does not depend on neighbouring frames' randomness are
    # deterministic; every fill here is.
    license: str = "Apache-2.0 (ganime)"


REGISTRY: dict[str, ModelSpec] = {
    "blur": ModelSpec(
        name="blur",
        summary="blurred, scaled copy of the picture behind it (the broadcast look); no weights",
        build=BlurFill,
    ),
    "edge": ModelSpec(
        name="edge",
        summary="picture mirrored across its edges, fading into a blur; no weights",
        build=EdgeFill,
    ),
}

# Best first: the default is the first of these that can run here.
PREFERENCE: tuple[str, ...] = ("edge", "blur")


def list_models() -> list[str]:
    """Names of every registered model."""
    return list(REGISTRY)


def default_model() -> str:
    """The best model that can run without anything more to download."""
    for name in PREFERENCE:
        if not REGISTRY[name].needs_weights:
            return name
    return PREFERENCE[-1]


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``, with an error that lists the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})") from None


def build_model(name: str) -> nn.Module:
    """A ready-to-run model in eval mode."""
    return get_spec(name).build().eval()
