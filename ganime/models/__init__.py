"""The model registry: one literal dict, name -> ModelSpec.

Every entry follows the model contract ``forward(image, mask) -> image``. Weight-free
fills live here beside the neural models, so ``--model`` selects either the same way.
Where weights come from is data (``HubFile``), kept apart from the architectures.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import weights as W
from .classical import BlurConfig, BlurFill, EdgeConfig, EdgeFill
from .context_encoder import ContextEncoder, ContextEncoderConfig
from .glcic import CompletionNetwork, GlcicConfig
from .lama import Lama, LamaConfig
from .patch import PatchConfig, PatchFill

# Architecture name -> builder from a config dict (the dict stored in weight files).
ARCHS: dict[str, Callable[[dict], nn.Module]] = {
    "blur": lambda c: BlurFill(BlurConfig(**c)),
    "edge": lambda c: EdgeFill(EdgeConfig(**c)),
    "patch": lambda c: PatchFill(PatchConfig(**c)),
    "lama": lambda c: Lama(LamaConfig(**c)),
    "context-encoder": lambda c: ContextEncoder(ContextEncoderConfig(**c)),
    "glcic": lambda c: CompletionNetwork(GlcicConfig(**{**c, "dilations": tuple(c.get("dilations", (2, 4, 8, 16)))})),
}

_TRAIN = "train: `ganime train --model {name}` on your shows"


@dataclass(frozen=True)
class ModelSpec:
    """One selectable model: its architecture, default config and where its weights come from."""

    name: str
    summary: str
    arch: str
    config: dict = field(default_factory=dict)
    needs_weights: bool = False
    source: W.HubFile | None = None
    how_to_get: str = ""  # for models without a download: how a user obtains the weights
    license: str = "Apache-2.0 (ganime)"


REGISTRY: dict[str, ModelSpec] = {
    "blur": ModelSpec(
        name="blur",
        summary="blurred, scaled copy of the picture behind it (the broadcast look); no weights",
        arch="blur",
    ),
    "edge": ModelSpec(
        name="edge",
        summary="picture mirrored across its edges, fading into a blur; no weights",
        arch="edge",
    ),
    "patch": ModelSpec(
        name="patch",
        summary="patches of the picture continue its background (multi-scale PatchMatch and voting); no weights",
        arch="patch",
    ),
    "context-encoder": ModelSpec(
        name="context-encoder",
        summary="Context Encoder (Pathak et al. 2016): encoder, channel-wise FC, decoder; works at 128x224",
        arch="context-encoder",
        config=ContextEncoderConfig(base=32, max_channels=256, prefill="edge").to_dict(),
        needs_weights=True,
        how_to_get=_TRAIN.format(name="context-encoder"),
    ),
    "glcic": ModelSpec(
        name="glcic",
        summary="GLCIC completion network (Iizuka et al. 2017): paints a colour residual over patch",
        arch="glcic",
        config=GlcicConfig(width=0.375, prefill="patch").to_dict(),
        needs_weights=True,
        how_to_get=_TRAIN.format(name="glcic"),
    ),
    "lama": ModelSpec(
        name="lama",
        summary="LaMa, Fourier-convolution ResNet (Suvorov et al. 2022), 4 blocks, paints over patch; trained here",
        arch="lama",
        config=LamaConfig(n_blocks=4, ngf=32, max_features=256, prefill="patch").to_dict(),
        needs_weights=True,
        how_to_get=_TRAIN.format(name="lama"),
    ),
    "big-lama": ModelSpec(
        name="big-lama",
        summary="LaMa, Fourier-convolution ResNet, 18 blocks (Suvorov et al. 2022), official Places2 weights",
        arch="lama",
        config=LamaConfig(n_blocks=18).to_dict(),
        needs_weights=True,
        # The official release as linked from advimman/lama; no revision or hash could be
        # established offline, so the download is checked by loading every tensor.
        source=W.HubFile("smartywu/big-lama", "big-lama.zip", "main", "lama-zip", license="Apache-2.0"),
    ),
    "lama-fourier": ModelSpec(
        name="lama-fourier",
        summary="LaMa, Fourier-convolution ResNet, 9 blocks (Suvorov et al. 2022)",
        arch="lama",
        config=LamaConfig(n_blocks=9).to_dict(),
        needs_weights=True,
        how_to_get=(
            "download lama-models.zip as the official LaMa README says, then "
            "`ganime models import-lama lama-fourier/models/best.ckpt --name lama-fourier`"
        ),
        license="Apache-2.0",
    ),
    "anime-lama": ModelSpec(
        name="anime-lama",
        summary="big-lama fine-tuned on 300k anime and manga images (dreMaz)",
        arch="lama",
        config=LamaConfig(n_blocks=18).to_dict(),
        needs_weights=True,
        source=W.HubFile(
            "dreMaz/AnimeMangaInpainting",
            "lama_large_512px.ckpt",
            "2953a4e935bf01ad1471f6cbfd26ab81abeeb92d",
            "lama-ckpt",
            license="MIT",
        ),
        license="MIT",
    ),
}

# Best first by strip LPIPS with the temporal engine on the tuning split of the eval
# clips (benchmarks/results/issue21; README, "Quality"): the default is the first of
# these that can run here; `ganime train` without --model trains the first neural one.
# The networks paint over `patch` and, trained on a CPU for two hours, score as it does
# (tuning 0.2504 against 0.2498; report 0.4828 / 0.4837 against 0.4837): `patch` stays
# first, being as good and three times lighter on a GPU-less machine.
PREFERENCE: tuple[str, ...] = ("patch", "glcic", "lama", "edge", "context-encoder", "blur")


def list_models() -> list[str]:
    """Names of every registered model."""
    return list(REGISTRY)


def default_model() -> str:
    """The best model that can run without anything more to download."""
    for name in PREFERENCE:
        if not REGISTRY[name].needs_weights or find_weights(name) is not None:
            return name
    return PREFERENCE[-1]


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``, with an error that lists the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})") from None


def find_weights(name: str) -> Path | None:
    """The local weight file of a registered model: pulled/imported first, then shipped."""
    for folder in (W.store_dir(), W.shipped_dir()):
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return path
    return None


def missing_weights_message(name: str) -> str:
    spec = get_spec(name)
    ways = []
    if spec.source is not None:
        ways.append(f"download: `ganime models pull {name}`")
    if spec.how_to_get:
        ways.append(spec.how_to_get)
    if spec.arch == "lama" and spec.source is not None:
        ways.append(f"import a LaMa checkpoint you have: `ganime models import-lama CHECKPOINT --name {name}`")
    ways.append("or pass a ganime weight file with `--weights FILE`")
    return f"model {name!r} needs weights and none are installed; " + "; ".join(ways)


def model_for_weights(path: str | Path) -> str:
    """The registered model a ganime weight file is for (what ``--weights`` without ``-m`` runs).

    Its ``model`` tag (``ganime train`` and ``import-lama --name`` write one), else the
    model of its architecture whose config it shares most, best first.
    """
    arch, config, meta = W.read_header(path)
    tagged = meta.get("model")
    if tagged in REGISTRY and REGISTRY[tagged].arch == arch:
        return tagged
    order = [n for n in (*PREFERENCE, *REGISTRY) if n in REGISTRY and REGISTRY[n].arch == arch]
    if not order:
        raise W.WeightsError(f"{path}: holds a {arch} model, which none of ganime's models runs")

    def shared(name: str) -> int:
        return sum(1 for k, v in REGISTRY[name].config.items() if config.get(k) == v)

    return max(dict.fromkeys(order), key=shared)  # the first of the best on a tie


def resolve_weights(name: str, weights: str | Path | None = None) -> Path | None:
    """The weight file ``name`` will run with (None for weight-free fills); raises WeightsError."""
    spec = get_spec(name)
    if weights is not None:
        path = Path(weights)
        arch = W.read_header(path)[0]
        if arch != spec.arch:
            raise W.WeightsError(_wrong_model(path, arch, name))
        return path
    if not spec.needs_weights:
        return None
    path = find_weights(name)
    if path is None:
        raise W.WeightsError(missing_weights_message(name))
    return path


def build_model(name: str) -> nn.Module:
    """A weight-free model (or an untrained one, for training and tests) in eval mode."""
    spec = get_spec(name)
    return ARCHS[spec.arch](dict(spec.config)).eval()


def reseed(model: nn.Module, seed: int) -> bool:
    """Give a model with a seeded random search (``patch``) another seed; returns whether
    it has one (the others are deterministic without one)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "seed"):
        return False
    config.seed = int(seed)
    return True


def load_file(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a ganime weight file describes and load every tensor into it."""
    arch, config, state, _ = W.read(path)
    if arch not in ARCHS:
        raise W.WeightsError(f"{path}: unknown architecture {arch!r}")
    model = ARCHS[arch](config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # half storage is fine
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise W.WeightsError(f"{path}: tensors do not fit the {arch} model ({first})") from e
    return model.to(device).eval()


def load_model(name: str, weights: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """A registered model, with its weights, in eval mode on ``device``.

    A model that needs weights is never run with random ones: without a file this
    raises WeightsError saying how to get them.
    """
    path = resolve_weights(name, weights)
    if path is None:
        return build_model(name).to(device)
    arch = W.read_header(path)[0]
    if arch != get_spec(name).arch:
        raise W.WeightsError(_wrong_model(path, arch, name))
    return load_file(path, device)


def _wrong_model(path: Path, arch: str, name: str) -> str:
    """Why a weight file does not fit ``-m name``, and what would."""
    runs = get_spec(name).arch
    kind = name if runs == name else f"{name} ({runs})"
    try:
        fits = f"-m {model_for_weights(path)}, or leave -m out"
    except W.WeightsError:
        fits = "a weight file made for it"
    return f"{path}: holds a {arch} model, not a {kind} one; use {fits}"


def import_lama(checkpoint: str | Path, out: str | Path, meta: dict | None = None, half: bool = False) -> Path:
    """Convert a LaMa checkpoint (official Lightning ckpt, its zip, or a generator-only
    conversion) into a ganime weight file, checking that every generator tensor fits."""
    config, state = W.read_lama(checkpoint)
    model = Lama(LamaConfig(**config))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise W.WeightsError(f"{checkpoint}: not the LaMa generator this tool builds ({first})") from e
    info = {"source": Path(checkpoint).name, "source_sha256": W.sha256(checkpoint), **(meta or {})}
    return W.save(model, out, "lama", LamaConfig(**config).to_dict(), info, half=half)


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_routes(name: str) -> str:
    """How to get a model's weights without the Hub."""
    dest = W.store_dir() / f"{name}.safetensors"
    routes = [f"copy a ganime weight file for it to {dest}"]
    if get_spec(name).arch == "lama":
        routes.append(f"import a LaMa checkpoint you have: `ganime models import-lama CKPT --name {name}`")
    routes.append("or pass a weight file to convert with `--weights FILE`")
    return "without a network: " + "; ".join(routes)


def pull(name: str, cache_dir: str | Path | None = None) -> Path:
    """Download a model's weights from the Hugging Face Hub and install them.

    The file is pinned by repo, name and revision, and by sha256 where one is known;
    it lands in the Hub cache (``cache_dir``, default the standard one: a file already
    there at the pinned commit is used without a download), and the installed ganime
    weight file goes to the local store.
    """
    spec = get_spec(name)
    src = spec.source
    if src is None:
        raise W.WeightsError(f"model {name!r} has no download" + (f": {spec.how_to_get}" if spec.how_to_get else ""))
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cached = try_to_load_from_cache(src.repo, src.filename, cache_dir=cache_dir, revision=src.revision)
    if not isinstance(cached, str):  # not in the cache: the Hub must be reachable, else say so at once
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or not _reachable(endpoint):
            raise W.WeightsError(f"cannot reach {endpoint} to download {name}; {_offline_routes(name)}")
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings are not for the user; the error below is
    try:
        local = hf_hub_download(src.repo, src.filename, revision=src.revision, cache_dir=cache_dir)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise W.WeightsError(f"cannot download {src.repo}/{src.filename}@{src.revision}: {e}") from e
    finally:
        hub_log.setLevel(level)
    digest = W.sha256(local)
    if src.sha256 and digest != src.sha256:
        raise W.WeightsError(f"{src.repo}/{src.filename}: sha256 {digest} does not match the pinned {src.sha256}")
    dest = W.store_dir() / f"{name}.safetensors"
    meta = {"hub": f"{src.repo}/{src.filename}@{src.revision}", "license": src.license or spec.license}
    if src.layout in ("lama-ckpt", "lama-zip"):
        return import_lama(local, dest, meta)
    if src.layout == "ganime":
        load_file(local)  # every tensor must fit before it is installed
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path(local).read_bytes())
        return dest
    raise W.WeightsError(f"unknown layout {src.layout!r} for {name}")
