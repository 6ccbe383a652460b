"""The Python API's functions: ``convert`` and ``load_model`` (``import ganime`` loads them on first use)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from . import models
from .pipeline import ConvertOptions, ProgressCallback, Result, convert_many


def convert(
    inputs: str | Path | list[str | Path],
    output: str | Path | None = None,
    options: ConvertOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    **changes: object,
) -> list[Result]:
    """Convert files and/or folders the way ``ganime convert`` does; returns one Result per file.

    ``options`` holds every setting (``ConvertOptions``); ``changes`` set single fields
    of it by name (``model="edge"``, ``temporal=False``), and ``codec``, ``crf`` and
    ``preset`` those of its encoder. An unknown name is a ``TypeError``.
    """
    from .geometry import parse_aspect

    options = options or ConvertOptions()
    encoder = {k: changes.pop(k) for k in ("codec", "crf", "preset") if k in changes}
    if encoder:
        changes["encoder"] = dataclasses.replace(options.encoder, **encoder)
    if isinstance(changes.get("aspect"), str):
        changes["aspect"] = parse_aspect(changes["aspect"])  # type: ignore[arg-type]
    if changes.get("weights") is not None:
        changes["weights"] = Path(changes["weights"])  # type: ignore[arg-type]
    options = dataclasses.replace(options, **changes)  # type: ignore[arg-type]
    items = inputs if isinstance(inputs, list) else [inputs]
    return convert_many(items, output, options, progress)


def load_model(name: str, weights: str | Path | None = None, device: str = "cpu") -> nn.Module:
    """A registered model with its weights, in eval mode on ``device`` (auto, cpu, cuda:N).

    Weight-free fills need no file; a neural model without weights raises
    ``WeightsError`` saying how to get them, never runs with random ones.
    """
    from .engine import select_device

    return models.load_model(name, weights, select_device(device))
