"""ganime train on tiny synthetic data: every family learns, resume is exact, exports convert."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cartoon_frames, decoded_frames
from PIL import Image

import ganime
from ganime import metrics, synthetic, weights
from ganime.perceptual import VGGFeatures, load_vgg16
from ganime.train import Trainer, TrainOptions
from ganime.train import losses as L
from ganime.train.data import DataOptions, Samples, gather, read_shots
from ganime.weights import WeightsError

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
    assert resumed.best == whole.best and resumed.best_step == whole.best_step


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


def test_a_fine_tune_keeps_the_normalisation_statistics(footage: Path, tmp_path: Path) -> None:
    base = Trainer(options(footage, tmp_path / "base.safetensors", "glcic", steps=2, half=False)).run()

    def stats(t: Trainer) -> list[torch.Tensor]:
        return [b.clone() for n, b in t.g.named_buffers() if n.endswith("running_mean")]

    tuned = Trainer(options(footage, tmp_path / "tuned.safetensors", "glcic", init=str(base), val_every=100))
    assert tuned.freeze_norm and tuned.phases[0] == 0  # no MSE phase for a trained generator
    before, weights_before = stats(tuned), [p.clone() for p in tuned.g.parameters()]
    tuned.run()
    assert all(torch.equal(a, b) for a, b in zip(before, stats(tuned), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, tuned.g.parameters(), strict=True))
    live = Trainer(options(footage, tmp_path / "live.safetensors", "glcic", init=str(base), freeze_norm=False))
    start = stats(live)
    live.run()
    assert any(not torch.equal(a, b) for a, b in zip(start, stats(live), strict=True))


def test_a_fine_tune_may_add_a_detail_branch_that_starts_at_zero(footage: Path, tmp_path: Path) -> None:
    plain = {**TINY["glcic"], "detail": 0}  # weights trained before the branch existed
    base = Trainer(options(footage, tmp_path / "base.safetensors", "glcic", steps=2, config=plain)).run()
    tuned = Trainer(options(footage, tmp_path / "tuned.safetensors", "glcic", init=str(base), config={"detail": 4}))
    assert tuned.g.detail is not None and tuned.config["detail"] == 4
    x, m = tuned.validation.images[:2], tuned.validation.masks[:2]
    with torch.no_grad():
        assert torch.equal(tuned.g.eval()(x * (1 - m), m), ganime.load_model("glcic", weights=base)(x * (1 - m), m))
    with pytest.raises(WeightsError, match="do not fit"):  # any other change of shape is refused
        Trainer(options(footage, tmp_path / "wide.safetensors", "glcic", init=str(base), config={"width": 0.25}))


def test_stored_frames_are_square_pixels_and_shrunk(tmp_path: Path) -> None:
    # An anamorphic 64x48 clip at SAR 4:3 shows as 85x48: stored at 24 lines, it is 43 wide.
    clip = synthetic.write_clip(tmp_path / "ana.mkv", cartoon_frames(4, 64, 48), sar=Fraction(4, 3))
    shots = read_shots(clip, DataOptions(store_height=24))
    assert shots and shots[0].frames[0].shape == (24, 43, 3)


def test_side_crops_reach_every_strip_not_the_holes_inside_the_picture() -> None:
    m = torch.zeros(3, 1, 16, 64)
    m[0, ..., :10] = 1
    m[0, ..., 54:] = 1
    m[1, ..., :4] = 1
    m[1, ..., 44:] = 1  # the widest strip: 20 columns on the right
    m[2, ..., 5:9, 20:40] = 1  # a hole inside the picture does not widen the crops
    assert L.side_span(m, context=6, modulo=8) == 32  # 20 + 6, rounded up to 8
    assert L.side_span(torch.ones(1, 1, 8, 40), context=6) == 40  # all generated: the whole width


def test_perceptual_loss_sees_the_sides_only_and_grows_with_damage() -> None:
    torch.manual_seed(0)
    loss = L.PerceptualLoss(VGGFeatures(), context=8)  # the real network; random weights suffice here
    x = torch.rand(2, 3, 32, 96)
    m = torch.zeros(2, 1, 32, 96)
    m[..., :16] = 1
    m[..., 80:] = 1
    assert float(loss(x, x, m)) == pytest.approx(0.0, abs=1e-6)
    centre = x.clone()
    centre[..., 40:56] = 0  # beyond the strips and their context: not looked at
    assert float(loss(centre, x, m)) == pytest.approx(0.0, abs=1e-6)
    small, large = x.clone(), x.clone()
    small[..., :16] += 0.05 * torch.randn_like(small[..., :16])
    large[..., :16] = 0.5
    assert 0 < float(loss(small, x, m)) < float(loss(large, x, m))


def test_vgg16_loads_from_the_perceptual_folder(perceptual_dir: Path) -> None:
    vgg = load_vgg16(perceptual_dir)
    img = torch.from_numpy(np.array(Image.open(perceptual_dir / "ex_ref.png").convert("RGB"))).permute(2, 0, 1)
    feats = vgg(img[None].float() / 255)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert all(torch.isfinite(f).all() and f.abs().sum() > 0 for f in feats)


def test_without_vgg16_lama_says_so_and_falls_back(footage: Path, tmp_path: Path) -> None:
    # GANIME_OFFLINE is set and no folder is given: nothing to load.
    trainer = Trainer(options(footage, tmp_path / "w.safetensors", "big-lama"))
    assert trainer.perceptual is None and trainer.validation.score == "psnr"
    assert any("VGG16" in n for n in trainer.notes)
    with pytest.raises(ValueError, match="VGG16"):  # asked for by name: an error, not a fallback
        Trainer(options(footage, tmp_path / "x.safetensors", "glcic", perceptual_weight=1.0))


def test_lama_trains_with_the_perceptual_loss_and_keeps_the_best_lpips(
    footage: Path, tmp_path: Path, perceptual_dir: Path
) -> None:
    trainer = Trainer(options(footage, tmp_path / "w.safetensors", "big-lama", perceptual=perceptual_dir, steps=4))
    assert trainer.perceptual is not None and trainer.validation.score == "lpips"
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    vals = [r for r in records if "val_lpips" in r]
    assert [r["step"] for r in vals] == [0, 2, 4]
    assert all(r["perceptual"] > 0 for r in records if r["step"] > 0)
    assert trainer.best == pytest.approx(min(r["val_lpips"] for r in vals))
    # The file holds the weights that scored best.
    best = min(vals, key=lambda r: r["val_lpips"])
    _, _, _, meta = weights.read(tmp_path / "w.safetensors")
    assert int(meta["trained_steps"]) == best["step"] == trainer.best_step


def test_ctrl_c_stops_after_a_whole_step_and_resume_loses_nothing(footage: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.safetensors"
    cmd = [sys.executable, "-m", "ganime", "train", "-d", str(footage), "-o", str(out), "-m", "glcic",
           "--set", "width=0.125", "--height", "32", "--batch-size", "2", "--device", "cpu",
           "--val-every", "1000", "--checkpoint-every", "1000"]  # fmt: skip
    proc = subprocess.Popen([*cmd, "--steps", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "w.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with --resume" in " ".join(err.split())
    last = json.loads(log.read_text().splitlines()[-1])["step"]
    state = torch.load(tmp_path / "w.ckpt", weights_only=True)
    assert state["step"] == last >= 3  # no finished step lost, although checkpoints were due every 1000
    done = subprocess.run(
        [*cmd, "--steps", str(last + 2), "--resume", str(tmp_path / "w.ckpt")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(log.read_text().splitlines()[-1])["step"] == last + 2
    told = " ".join(done.stderr.split())  # the data it learns from, and that it is too little
    shots = Trainer(options(footage, tmp_path / "x.safetensors", "glcic")).shots
    assert f"training on {shots[1]} frames in {shots[0]} shots" in told
    assert "note: only" in told and "give it more episodes" in told
    said = " ".join(done.stdout.split())  # what the checkpoint beside the weights is, and its size
    mb = (tmp_path / "w.ckpt").stat().st_size / 1e6
    assert f"w.ckpt ({mb:.1f} MB): what --resume needs" in said and "discriminator and its Adam moments" in said


def test_validation_metrics_reach_tensorboard(footage: Path, tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    Trainer(options(footage, tmp_path / "w.safetensors", "glcic")).run()
    acc = event_accumulator.EventAccumulator(str(tmp_path / "w.tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"val_psnr", "val_ssim", "val_sharpness"} <= set(tags)
    assert [e.step for e in acc.Scalars("val_psnr")] == [0, 2, 4]


def test_context_encoder_trains_at_any_training_height(footage: Path, tmp_path: Path) -> None:
    # 40 lines is no multiple of the encoder's stride (8 with depth 3): it works at the nearest one.
    trainer = Trainer(options(footage, tmp_path / "w.safetensors", "context-encoder", height=40, width=72))
    assert (trainer.config["height"], trainer.config["width"]) == (40, 72)
    trainer = Trainer(options(footage, tmp_path / "w.safetensors", "context-encoder", height=42, width=74))
    assert (trainer.config["height"], trainer.config["width"]) == (40, 72)
    images, masks = trainer.samples.batch(0, 2)
    assert np.isfinite(trainer.train_step(images, masks)["rec"])


def test_a_run_that_never_beats_its_start_says_so(footage: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ganime.cli import app

    out = tmp_path / "w.safetensors"
    args = ["train", "-d", str(footage), "-o", str(out), "-m", "glcic", "--set", "width=0.125", "--height", "32",
            "--batch-size", "2", "--device", "cpu", "--steps", "2", "--val-every", "1",
            "--val-frames", "4"]  # fmt: skip
    still = CliRunner().invoke(app, [*args, "--lr", "0"])  # the weights cannot move: no step is better
    assert still.exit_code == 0, still.output
    assert "no validation beat the start" in " ".join(still.output.split())
    moving = CliRunner().invoke(app, [*args, "--lr", "1e-2", "-o", str(tmp_path / "m.safetensors")])
    assert moving.exit_code == 0, moving.output
    # Said exactly when the file holds the start's weights.
    assert ("no validation beat the start" in " ".join(moving.output.split())) == (
        int(weights.read(tmp_path / "m.safetensors")[3]["trained_steps"]) == 0
    )
