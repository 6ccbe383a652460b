"""ganime: convert 4:3 animation to 16:9 by generating the missing sides.

Python API::

    import ganime
    ganime.convert("episode.mkv")                 # -> episode.16x9.mkv beside it
    ganime.convert(["season1/"], output="out/", model="edge")
    model = ganime.load_model("anime-lama", device="cuda")   # after `ganime models pull anime-lama`
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from torch import nn

from .models import default_model, list_models
from .models import load_model as _load_model
from .pipeline import ConvertError, ConvertOptions, Progress, ProgressCallback, Result, convert_file, convert_many
from .video import EncoderSettings
from .weights import WeightsError

__version__ = "0.1.0"

__all__ = [
    "ConvertError",
    "ConvertOptions",
    "EncoderSettings",
    "Progress",
    "Result",
    "WeightsError",
    "__version__",
    "convert",
    "convert_file",
    "convert_many",
    "default_model",
    "list_models",
    "load_model",
]


def convert(
    inputs: str | Path | list[str | Path],
    output: str | Path | None = None,
    *,
    model: str | None = None,
    aspect: str | Fraction = Fraction(16, 9),
    codec: str = "x264",
    crf: float | None = None,
    preset: str | None = None,
    device: str = "auto",
    batch_size: int = 0,
    start: float | None = None,
    duration: float | None = None,
    overwrite: bool = False,
    force: bool = False,
    detect_bars: bool = True,
    weights: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> list[Result]:
    """Convert files and/or folders the way ``ganime convert`` does; returns one Result per file."""
    from .geometry import parse_aspect

    options = ConvertOptions(
        model=model,
        aspect=parse_aspect(aspect) if isinstance(aspect, str) else Fraction(aspect),
        encoder=EncoderSettings(codec=codec, crf=crf, preset=preset),
        device=device,
        batch_size=batch_size,
        start=start,
        duration=duration,
        overwrite=overwrite,
        force=force,
        detect_bars=detect_bars,
        weights=Path(weights) if weights is not None else None,
    )
    items = inputs if isinstance(inputs, list) else [inputs]
    return convert_many(items, output, options, progress)


def load_model(name: str, weights: str | Path | None = None, device: str = "cpu") -> nn.Module:
    """A registered model with its weights, in eval mode on ``device`` (auto, cpu, cuda:N).

    Weight-free fills need no file; a neural model without weights raises
    ``WeightsError`` saying how to get them, never runs with random ones.
    """
    from .engine import select_device

    return _load_model(name, weights, select_device(device))
