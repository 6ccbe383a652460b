"""Weight files, LaMa checkpoint import, and the Hub download path against a local cache."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import cartoon_frames
from typer.testing import CliRunner

from ganime import synthetic, weights
from ganime.cli import app
from ganime.models import ARCHS, REGISTRY, build_model, import_lama, load_file, load_model, pull
from ganime.models.lama import Lama, LamaConfig

runner = CliRunner()
TINY = {"n_blocks": 2, "ngf": 8, "n_downsampling": 3}


def tiny_lama(seed: int = 0) -> Lama:
    torch.manual_seed(seed)
    model = Lama(LamaConfig(**TINY))
    # Non-trivial BatchNorm statistics, so a model that ignored them would differ.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def sample() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 40, 72, generator=g)
    mask = torch.zeros(1, 1, 40, 72)
    mask[..., :12] = 1
    mask[..., -12:] = 1
    return image, mask


class HyperParameters:
    """Stands for the config objects (OmegaConf) a Lightning checkpoint pickles."""

    def __init__(self) -> None:
        self.generator = {"kind": "ffc_resnet"}


class AttributeDict(dict):
    """Lightning pickles its hyper-parameters as a dict subclass."""


class Trap:
    """Unpickling this would create a file: a restricted loader must never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def official_checkpoint(path: Path, model: Lama, trap: Path, zip_format: bool = True) -> Path:
    """A checkpoint laid out like LaMa's Lightning best.ckpt: generator, discriminator, losses, config objects."""
    state = {k: v for k, v in model.state_dict().items()}  # generator.model.N...
    state["discriminator.model0.0.weight"] = torch.randn(8, 3, 4, 4)
    state["loss_resnet_pl.impl.conv1.weight"] = torch.randn(8, 3, 3, 3)
    torch.save(
        {
            "state_dict": state,
            "hyper_parameters": HyperParameters(),
            "hparams": AttributeDict(training_model="DefaultInpaintingTrainingModule", generator={"n_blocks": 2}),
            "callbacks": Trap(trap),
            "pytorch-lightning_version": "1.2.9",
            "epoch": 40,
        },
        path,
        _use_new_zipfile_serialization=zip_format,  # 2020-era Lightning files may be either
    )
    return path


def test_lama_matches_the_published_sizes() -> None:
    big, fourier = Lama(LamaConfig(n_blocks=18)), Lama(LamaConfig(n_blocks=9))
    assert len(big.state_dict()) == 989 and sum(p.numel() for p in big.parameters()) == 50_975_875
    assert len(fourier.state_dict()) == 521
    assert "generator.model.5.conv1.ffc.convg2g.fu.conv_layer.weight" in big.state_dict()
    assert big.state_dict()["generator.model.24.weight"].shape == (512, 256, 3, 3)


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = tiny_lama()
    path = weights.save(model, tmp_path / "m.safetensors", "lama", model.config.to_dict(), {"note": "test"})
    arch, config, _, meta = weights.read(path)
    assert arch == "lama" and config == model.config.to_dict() and meta["note"] == "test"
    again = load_file(path)
    image, mask = sample()
    with torch.inference_mode():
        assert torch.equal(model(image, mask), again(image, mask))
    half = weights.save(model, tmp_path / "h.safetensors", "lama", model.config.to_dict(), half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    with torch.inference_mode():
        assert torch.allclose(model(image, mask), load_file(half)(image, mask), atol=2e-2)


@pytest.mark.parametrize("zip_format", [True, False])
def test_import_official_checkpoint_runs_nothing_but_tensors(tmp_path: Path, zip_format: bool) -> None:
    model = tiny_lama()
    trap = tmp_path / "pwned"
    ckpt = official_checkpoint(tmp_path / "best.ckpt", model, trap, zip_format)
    out = import_lama(ckpt, tmp_path / "lama.safetensors")
    assert not trap.exists()  # the checkpoint's objects were never executed
    arch, config, state, meta = weights.read(out)
    assert arch == "lama" and config["n_blocks"] == 2 and config["ngf"] == 8
    assert not any(k.startswith(("discriminator", "loss")) for k in state)
    assert set(state) == set(model.state_dict())  # every generator tensor, nothing else
    assert meta["source"] == "best.ckpt" and len(meta["source_sha256"]) == 64
    image, mask = sample()
    with torch.inference_mode():
        assert torch.equal(model(image, mask), load_file(out)(image, mask))


def test_import_zip_and_generator_only_layouts(tmp_path: Path) -> None:
    model = tiny_lama(3)
    ckpt = official_checkpoint(tmp_path / "best.ckpt", model, tmp_path / "trap")
    z = tmp_path / "big-lama.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("big-lama/config.yaml", "generator:\n  kind: ffc_resnet\n")
        f.write(ckpt, "big-lama/models/best.ckpt")
    from safetensors.torch import save_file

    gen_only = {k.removeprefix("generator."): v for k, v in model.state_dict().items()}
    save_file(gen_only, str(tmp_path / "gen.safetensors"))
    torch.save({"gen_state_dict": gen_only}, tmp_path / "anime.ckpt")
    image, mask = sample()
    with torch.inference_mode():
        expected = model(image, mask)
        for src in (z, tmp_path / "gen.safetensors", tmp_path / "anime.ckpt"):
            out = import_lama(src, tmp_path / f"{src.stem}.ganime.safetensors")
            assert torch.equal(load_file(out)(image, mask), expected), src


def test_import_refuses_what_is_not_lama(tmp_path: Path) -> None:
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(weights.WeightsError, match="not a LaMa"):
        import_lama(tmp_path / "other.ckpt", tmp_path / "x.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not weights")
    with pytest.raises(weights.WeightsError):
        load_file(tmp_path / "junk.safetensors")


def test_missing_weights_are_never_replaced_by_random_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANIME_HOME", str(tmp_path / "home"))
    with pytest.raises(weights.WeightsError, match="ganime models pull big-lama"):
        load_model("big-lama")
    src = synthetic.write_clip(tmp_path / "ep.mkv", cartoon_frames(4))
    r = runner.invoke(app, ["convert", str(src), "--model", "big-lama", "--no-progress"])
    assert r.exit_code == 2 and "ganime models pull big-lama" in " ".join(r.output.split())
    assert not (tmp_path / "ep.16x9.mkv").exists()


def test_convert_with_a_weight_file(tmp_path: Path) -> None:
    model = tiny_lama()
    w = weights.save(model, tmp_path / "tiny.safetensors", "lama", model.config.to_dict())
    src = synthetic.write_clip(tmp_path / "ep.mkv", cartoon_frames(4))
    r = runner.invoke(
        app, ["convert", str(src), "-m", "big-lama", "--weights", str(w), "--no-progress", "--preset", "ultrafast"]
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ep.16x9.mkv").exists()


def test_pull_from_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pull` through huggingface_hub's real code, against a local Hub cache holding the pinned commit."""
    spec = REGISTRY["anime-lama"]
    src = spec.source
    assert src is not None and len(src.revision) == 40  # pinned to a commit
    cache = tmp_path / "hub"
    snapshot = cache / f"models--{src.repo.replace('/', '--')}" / "snapshots" / src.revision
    snapshot.mkdir(parents=True)
    model = tiny_lama(5)
    gen_only = {k.removeprefix("generator."): v for k, v in model.state_dict().items()}
    torch.save({"gen_state_dict": gen_only}, snapshot / src.filename)
    monkeypatch.setenv("GANIME_HOME", str(tmp_path / "home"))
    installed = pull("anime-lama", cache_dir=cache)
    assert installed == tmp_path / "home" / "weights" / "anime-lama.safetensors" and installed.exists()
    _, _, _, meta = weights.read(installed)
    assert meta["hub"] == f"{src.repo}/{src.filename}@{src.revision}" and meta["license"] == "MIT"
    image, mask = sample()
    with torch.inference_mode():
        assert torch.equal(model(image, mask), load_file(installed)(image, mask))
    listing = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert listing.exit_code == 0 and "present" in listing.output


def test_every_registered_model_builds_and_fills_a_frame() -> None:
    """Each registry entry builds from its own config, has parameters exactly when it needs
    weights, and fills a small frame: the right shape, finite; a weight-free fill paints the
    sides with the picture's texture (an untrained network may leave them flat)."""
    image, mask = sample()
    for name, spec in REGISTRY.items():
        assert spec.arch in ARCHS, name
        model = build_model(name)
        neural = sum(p.numel() for p in model.parameters())
        assert (neural > 0) == spec.needs_weights, name
        with torch.inference_mode():
            out = model(image * (1 - mask), mask)
        assert out.shape == image.shape and torch.isfinite(out).all(), name
        if not spec.needs_weights:
            sides = torch.cat([out[..., :12], out[..., -12:]], -1)
            assert float(sides.std()) > 0.05, name  # random input: painted, not left flat


def test_pull_without_a_network_fails_at_once_and_names_the_offline_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    monkeypatch.setenv("GANIME_HOME", str(tmp_path / "home"))
    started = time.perf_counter()
    r = CliRunner().invoke(app, ["models", "pull", "anime-lama"], env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert time.perf_counter() - started < 10
    assert r.exit_code == 1
    said = " ".join(r.output.split())
    assert "cannot reach http://127.0.0.1:9" in said and "import-lama CKPT --name anime-lama" in said
    assert "--weights FILE" in said and "Traceback" not in said
