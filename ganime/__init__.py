"""ganime: convert 4:3 animation to 16:9 by generating the missing sides.

Python API::

    import ganime
    ganime.convert("episode.mkv")                 # -> episode.16x9.mkv beside it
    ganime.convert(["season1/"], output="out/", model="edge")
    ganime.convert("ep.mkv", options=ganime.ConvertOptions(temporal=False, weights=Path("mine.safetensors")))
    model = ganime.load_model("anime-lama", device="cuda")   # after `ganime models pull anime-lama`
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Importing ganime is cheap (the command line starts, and can be interrupted, before
# torch loads): each name is imported from its module on first use.
_WHERE = {
    "ConvertError": "plan",
    "ConvertOptions": "plan",
    "Progress": "plan",
    "ProgressCallback": "plan",
    "Result": "plan",
    "EncoderSettings": "video",
    "WeightsError": "weights",
    "convert_file": "pipeline",
    "convert_many": "pipeline",
    "default_model": "models",
    "list_models": "models",
    "convert": "api",
    "load_model": "api",
}

__all__ = sorted([*_WHERE, "__version__"], key=str.lower)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ganime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
