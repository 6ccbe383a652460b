"""Weight files: safetensors with the model's config in the metadata, where they come
from (a path, the local store, the Hugging Face Hub), and converters for foreign
checkpoint layouts.

Nothing here unpickles arbitrary objects: foreign ``.ckpt`` files are read with
``torch.load(weights_only=True)``, or, when a checkpoint also carries config objects
(Lightning's hyper-parameters), with a restricted unpickler that rebuilds tensors
and plain containers and turns every other class into an inert placeholder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

FORMAT = "ganime-weights-1"


class WeightsError(Exception):
    """A weight file that is missing, unreadable or does not fit its model."""


@dataclass(frozen=True)
class HubFile:
    """A pinned file on the Hugging Face Hub.

    ``sha256`` is checked after download when known; ``layout`` names the converter
    that turns the file into a ganime weight file.
    """

    repo: str
    filename: str
    revision: str
    layout: str  # "ganime" | "lama-ckpt" | "lama-zip"
    sha256: str | None = None
    license: str = ""


def store_dir() -> Path:
    """Where pulled and imported weights are kept (``$GANIME_HOME/weights``)."""
    home = os.environ.get("GANIME_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganime"
    return Path(home) / "weights"


def shipped_dir() -> Path:
    """Weights that ship with ganime: ``ganime/shipped`` when installed, ``weights/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "shipped"
    return installed if installed.is_dir() else here.parent / "weights"


# --------------------------------------------------------------- ganime files


def save(
    model: nn.Module, path: str | Path, arch: str, config: dict, meta: dict | None = None, half: bool = False
) -> Path:
    """Write ``model``'s state dict as safetensors with ``arch`` and ``config`` in the metadata.

    Written to a temporary name and renamed, so a file under ``path`` is always whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        tensors[k] = t.half() if half and t.is_floating_point() else t
    metadata = {"format": FORMAT, "arch": arch, "config": json.dumps(config)}
    metadata.update({k: str(v) for k, v in (meta or {}).items()})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary file: weights are meant to be shared and shipped
    os.replace(tmp, path)
    return path


def read_header(path: str | Path) -> tuple[str, dict, dict[str, str]]:
    """(arch, config, metadata) of a ganime weight file, without reading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weight file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:
        raise WeightsError(f"{path}: not a safetensors file ({e})") from e
    if meta.get("format") != FORMAT or "arch" not in meta:
        raise WeightsError(f"{path}: not a ganime weight file (no model config in its metadata)")
    return meta["arch"], json.loads(meta.get("config", "{}")), meta


def read(path: str | Path) -> tuple[str, dict, dict[str, torch.Tensor], dict[str, str]]:
    """(arch, config, state dict, metadata) of a ganime weight file."""
    arch, config, meta = read_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise WeightsError(f"{path}: not a safetensors file ({e})") from e
    return arch, config, tensors, meta


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------- foreign checkpoints


class _Opaque:
    """Stands in for any class a restricted load meets; it keeps nothing and runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Opaque:
        return _Opaque()

    # Containers pickled as dict or list subclasses (Lightning's AttributeDict) get
    # their items set or appended after construction: accept and drop them.
    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass


# What a tensor checkpoint legitimately needs to rebuild itself.
_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        if module == "torch" and name in ("float32", "float16", "bfloat16", "float64", "int64", "uint8", "bool"):
            return getattr(torch, name)
        return _Opaque


class _RestrictedPickle:
    """A ``pickle_module`` for torch.load that only rebuilds tensors and containers."""

    Unpickler = _RestrictedUnpickler
    __name__ = "ganime_restricted_pickle"

    @staticmethod
    def load(f: object, **kw: object) -> object:
        return _RestrictedUnpickler(f, **kw).load()  # type: ignore[arg-type]


def load_checkpoint(source: str | Path | bytes) -> object:
    """A torch checkpoint's contents, tensors only.

    ``weights_only=True`` first; a checkpoint carrying config objects (Lightning
    hyper-parameters, OmegaConf) is read with the restricted unpickler instead.
    """

    def stream() -> io.BytesIO | str:
        return io.BytesIO(source) if isinstance(source, bytes) else str(source)

    try:
        return torch.load(stream(), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(stream(), map_location="cpu", weights_only=False, pickle_module=_RestrictedPickle)  # type: ignore[arg-type]


_LAMA_PREFIXES = ("model.generator.", "generator.", "module.generator.")


def lama_state_dict(contents: object) -> dict[str, torch.Tensor]:
    """The generator tensors of a LaMa checkpoint, keyed like ``generator.model.N...``.

    Understands the official Lightning ``best.ckpt`` (``state_dict`` with generator,
    discriminator and loss weights: only the generator is kept), generator-only
    state dicts (``model.N...``), and ``gen_state_dict`` containers.
    """
    sd = contents
    for key in ("state_dict", "gen_state_dict", "generator"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise WeightsError("no state dict in this checkpoint")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in _LAMA_PREFIXES:
            if k.startswith(p):
                out["generator." + k[len(p) :]] = v
                break
        else:
            if k.startswith("model."):
                out["generator." + k] = v
    if not any(k.startswith("generator.model.1.ffc.") for k in out):
        raise WeightsError("this is not a LaMa FFC generator checkpoint (no generator.model.1.ffc.* tensors)")
    return out


def lama_config(sd: dict[str, torch.Tensor]) -> dict:
    """The generator config implied by a LaMa state dict's shapes."""
    ngf = int(sd["generator.model.1.ffc.convl2l.weight"].shape[0])
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"generator\.model\.(\d+)\.conv1\.", k))}
    down = sum(1 for i in range(2, 2 + 8) if f"generator.model.{i}.ffc.convl2l.weight" in sd and i not in blocks)
    return {"n_blocks": len(blocks), "ngf": ngf, "n_downsampling": down}


def read_lama(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, generator state dict) from an official LaMa checkpoint, its zip, or a conversion."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if zipfile.is_zipfile(path) and not _is_torch_zip(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(("best.ckpt", ".ckpt", ".pth"))]
            if not names:
                raise WeightsError(f"{path}: no .ckpt inside this zip")
            contents = load_checkpoint(z.read(sorted(names, key=lambda n: "best.ckpt" not in n)[0]))
    elif path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            contents = {k: f.get_tensor(k) for k in f.keys()}
    else:
        contents = load_checkpoint(path)
    sd = lama_state_dict(contents)
    return lama_config(sd), sd


def _is_torch_zip(path: Path) -> bool:
    """torch.save writes zip files too; those hold data.pkl."""
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("data.pkl") for n in z.namelist())
