"""ganime train on tiny synthetic data: every family learns, resume is exact, exports convert."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cartoon_frames, decoded_frames
from PIL import Image

import ganime
from ganime import metrics, synthetic
from ganime.train import Trainer, TrainOptions
from ganime.train import losses as L
from ganime.train.data import DataOptions, Samples, gather, read_shots

TINY = {
    "glcic": {"width": 0.125, "dilations": [1, 2]},
    "context-encoder": {"base": 8, "depth": 3, "max_channels": 32},
    "big-lama": {"n_blocks": 1, "ngf": 8},
}


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few tiny 16:9 clips (two shots each, held drawings) and stills."""
    root = tmp_path_factory.mktemp("footage")
    for s in range(3):
        a = cartoon_frames(8, 86, 48, seed=s, pan=1.0)
        b = cartoon_frames(8, 86, 48, seed=s + 50, pan=0.5)
        synthetic.write_clip(root / f"clip{s}.mkv", a + b, crf=10)
    for s in range(3):
        Image.fromarray(cartoon_frames(1, 86, 48, seed=100 + s)[0]).save(root / f"still{s}.png")
    return root


def options(footage: Path, out: Path, model: str, **kw: object) -> TrainOptions:
    base = dict(data=[footage], output=out, model=model, steps=4, batch_size=2, lr=1e-3, config=TINY[model],
                device="cpu", height=32, width=56, val_every=2, checkpoint_every=2, half=False)  # fmt: skip
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def test_shots_and_held_frames(tmp_path: Path) -> None:
    a = cartoon_frames(6, 86, 48, seed=1, pan=1.0)
    held = [a[0]] * 4  # a drawing held for four frames
    b = [255 - f for f in cartoon_frames(6, 86, 48, seed=9, pan=0.0)]  # another shot, another palette
    clip = synthetic.write_clip(tmp_path / "c.mkv", held + a[1:] + b, crf=0)
    shots = read_shots(clip, DataOptions())
    assert len(shots) == 2
    assert len(shots[0].frames) <= 6  # the held copies were skipped
    train, val = gather([clip], DataOptions(height=32, width=56, val_fraction=0.5))
    assert {id(f) for s in train for f in s.frames}.isdisjoint({id(f) for s in val for f in s.frames})


def test_samples_are_reproducible_and_masked(footage: Path) -> None:
    o = DataOptions(height=32, width=56)
    train, val = gather([footage], o)
    assert train and val
    samples = Samples(train, val, o, seed=3)
    x1, m1 = samples.batch(7, 4)
    x2, m2 = samples.batch(7, 4)
    assert torch.equal(x1, x2) and torch.equal(m1, m2)
    assert x1.shape == (4, 3, 32, 56) and m1.shape == (4, 1, 32, 56)
    assert 0 <= float(x1.min()) and float(x1.max()) <= 1
    _, vm = samples.validation()
    centre = samples.centre_width()
    assert vm[0, 0, :, (56 - centre) // 2 : (56 + centre) // 2].max() == 0 and vm[0, 0, :, 0].min() == 1


def test_validation_includes_fades(footage: Path) -> None:
    """A fixed share of held-out frames is faded to black, the same ones every run."""
    o = DataOptions(height=32, width=56)
    train, val = gather([footage], o)
    plain, _ = Samples(train, val, DataOptions(height=32, width=56, fade_share=0.0)).validation()
    faded, _ = Samples(train, val, o).validation()
    ratio = faded.flatten(1).sum(1) / plain.flatten(1).sum(1)
    dark = torch.nonzero(ratio < 0.99).flatten().tolist()
    assert dark == list(range(1, len(plain), 5))
    assert float(ratio[1]) == pytest.approx(0.08, abs=1e-4)


@pytest.mark.parametrize("model", sorted(TINY))
def test_each_family_learns(model: str, footage: Path, tmp_path: Path) -> None:
    # The optional structural term rides along, so every family's use of it is exercised.
    trainer = Trainer(options(footage, tmp_path / "w.safetensors", model, glcic_phases=(0.0, 0.0), ssim_weight=0.1))
    images, masks = trainer.samples.batch(0, 4)
    history = [trainer.train_step(images, masks) for _ in range(12)]
    rec = [h.get("rec", h.get("mse")) for h in history]
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert np.mean(rec[-3:]) < np.mean(rec[:3])


def test_ssim_loss_is_the_eval_metric() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    mask = np.ones((24, 40), bool)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255

    loss = L.ssim_loss(t(b), t(a), torch.ones(2, 1, 24, 40))
    assert float(loss) == pytest.approx(1 - metrics.ssim(b, a, mask), abs=1e-4)
    assert float(L.ssim_loss(t(a), t(a), torch.ones(2, 1, 24, 40))) == pytest.approx(0, abs=1e-6)


def test_structure_term_trains() -> None:
    """With ``ssim_weight`` the structural term joins the loss and still descends."""
    x = torch.rand(2, 3, 16, 28)
    pred = torch.full_like(x, 0.5, requires_grad=True)
    m = torch.ones(2, 1, 16, 28)
    opt = torch.optim.Adam([pred], lr=0.05)
    values = []
    for _ in range(20):
        loss = L.ssim_loss(pred, x, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert values[-1] < 0.5 * values[0]


@pytest.mark.parametrize("model", ["context-encoder", "big-lama"])
def test_resume_reproduces_the_uninterrupted_run(model: str, footage: Path, tmp_path: Path) -> None:
    whole = Trainer(options(footage, tmp_path / "a.safetensors", model))
    whole.run()
    first = Trainer(options(footage, tmp_path / "b.safetensors", model, steps=2))
    first.run()
    resumed = Trainer(options(footage, tmp_path / "b.safetensors", model, resume=first.o.checkpoint))
    assert resumed.step == 2
    resumed.run()
    for (k, a), b in zip(whole.g.state_dict().items(), resumed.g.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert resumed.best == whole.best


def test_exported_weights_load_and_convert(footage: Path, tmp_path: Path) -> None:
    out = Trainer(options(footage, tmp_path / "glcic.safetensors", "glcic")).run()
    model = ganime.load_model("glcic", weights=out)
    assert sum(p.numel() for p in model.parameters()) > 0
    src = synthetic.write_clip(tmp_path / "ep.mkv", cartoon_frames(4, 64, 48), Fraction(24))
    results = ganime.convert(src, tmp_path / "ep.16x9.mkv", model="glcic", weights=out, preset="ultrafast")
    assert results[0].status == "converted"
    assert len(decoded_frames(tmp_path / "ep.16x9.mkv")) == 4
    log = (tmp_path / "glcic.jsonl").read_text().splitlines()
    # Where the run started (step 0), then one line per step.
    assert len(log) == 5 and '"step": 0' in log[0] and "val_psnr" in log[0] and "val_psnr" in log[-1]


def test_stored_frames_are_square_pixels_and_shrunk(tmp_path: Path) -> None:
    # An anamorphic 64x48 clip at SAR 4:3 shows as 85x48: stored at 24 lines, it is 43 wide.
    clip = synthetic.write_clip(tmp_path / "ana.mkv", cartoon_frames(4, 64, 48), sar=Fraction(4, 3))
    shots = read_shots(clip, DataOptions(store_height=24))
    assert shots and shots[0].frames[0].shape == (24, 43, 3)
