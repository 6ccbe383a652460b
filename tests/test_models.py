"""Every neural architecture at a tiny size: contract, gradients, weight files, batching, convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cartoon_frames, decoded_frames
from typer.testing import CliRunner

from ganime import synthetic, weights
from ganime.cli import app
from ganime.engine import Filler
from ganime.geometry import compute_layout
from ganime.models import ARCHS, REGISTRY, build_model, load_file
from ganime.models.classical import EdgeFill
from ganime.models.start import prepare_for_inference

TINY = {
    "lama": {"n_blocks": 1, "ngf": 8},
    "context-encoder": {"height": 32, "width": 64, "base": 8, "depth": 3, "max_channels": 32},
    "glcic": {"width": 0.125},
}
# A registered model of each architecture, for the end-to-end conversions.
BY_ARCH = {"lama": "big-lama", "context-encoder": "context-encoder", "glcic": "glcic"}
runner = CliRunner()
CPU_DEVICE = torch.device("cpu")


def tiny(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ARCHS[arch](dict(TINY[arch])).eval()


def canvas(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(n, 3, 36, 64, generator=g)
    mask = torch.zeros(n, 1, 36, 64)
    mask[..., :10] = 1
    mask[..., -10:] = 1
    return image * (1 - mask), mask


def test_every_registered_neural_model_has_a_tiny_config() -> None:
    assert {s.arch for s in REGISTRY.values() if s.needs_weights} == set(TINY)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_contract_and_batch_invariance(arch: str) -> None:
    model = tiny(arch)
    image, mask = canvas(3)
    with torch.inference_mode():
        out = model(image, mask)
        single = torch.cat([model(image[i : i + 1], mask[i : i + 1]) for i in range(3)])
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out, single, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_gradients_reach_every_parameter(arch: str) -> None:
    model = tiny(arch).train()
    image, mask = canvas(2)
    target = torch.rand_like(image)
    loss = ((model(image, mask) - target) ** 2 * mask).mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


@pytest.mark.parametrize("arch", sorted(TINY))
def test_weight_file_round_trip(arch: str, tmp_path: Path) -> None:
    model = tiny(arch)
    path = weights.save(model, tmp_path / "w.safetensors", arch, dict(TINY[arch]))
    again = load_file(path)
    image, mask = canvas()
    with torch.inference_mode():
        assert torch.equal(model(image, mask), again(image, mask))


@pytest.mark.parametrize("arch", sorted(TINY))
def test_known_pixels_untouched_by_the_engine(arch: str) -> None:
    frames = cartoon_frames(3, 64, 48)
    layout = compute_layout(64, 48)
    out = Filler(tiny(arch), layout, torch.device("cpu"), batch_size=2).fill(frames)
    for f, o in zip(frames, out, strict=True):
        assert np.array_equal(o[:, layout.left : layout.left + 64], f)
        assert o.shape == (48, layout.canvas_width, 3)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_convert_with_each_architecture(arch: str, tmp_path: Path) -> None:
    w = weights.save(tiny(arch), tmp_path / f"{arch}.safetensors", arch, dict(TINY[arch]))
    src = synthetic.write_clip(tmp_path / "ep.mkv", cartoon_frames(5, 64, 48))
    name = BY_ARCH[arch]
    r = runner.invoke(
        app, ["convert", str(src), "-m", name, "--weights", str(w), "--preset", "ultrafast", "--no-progress"]
    )
    assert r.exit_code == 0, r.output
    out = decoded_frames(tmp_path / "ep.16x9.mkv")
    assert len(out) == 5 and out[0][1].shape == (48, 88, 3)


def test_weight_file_of_another_architecture_is_refused(tmp_path: Path) -> None:
    w = weights.save(tiny("glcic"), tmp_path / "g.safetensors", "glcic", dict(TINY["glcic"]))
    src = synthetic.write_clip(tmp_path / "ep.mkv", cartoon_frames(3, 64, 48))
    r = runner.invoke(app, ["convert", str(src), "-m", "big-lama", "--weights", str(w), "--no-progress"])
    assert r.exit_code == 2  # a usage error, before the file is opened
    assert f"{w}: holds a glcic model, not a big-lama (lama) one; use -m glcic" in " ".join(r.output.split())


def test_eval_and_preview_take_a_weight_file(tmp_path: Path) -> None:
    w = weights.save(tiny("glcic"), tmp_path / "g.safetensors", "glcic", dict(TINY["glcic"]))
    gt = synthetic.write_clip(tmp_path / "gt.mkv", cartoon_frames(3, 86, 48), crf=0)
    r = runner.invoke(app, ["eval", str(gt), "-m", "glcic", "--weights", str(w), "-o", str(tmp_path / "e"),
                            "--frames", "3", "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "glcic" in (tmp_path / "e" / "eval.md").read_text()
    r = runner.invoke(app, ["preview", str(gt), "-m", "glcic", "--weights", str(w), "-o", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    # Without weights, a neural model is refused with a way to get them, never run at random.
    r = runner.invoke(app, ["eval", str(gt), "-m", "lama-fourier", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "import-lama" in " ".join(r.output.split())


def test_python_api_load_model(tmp_path: Path) -> None:
    import ganime

    assert set(ganime.list_models()) == set(REGISTRY)
    assert not any(True for _ in ganime.load_model("edge").parameters())
    w = weights.save(tiny("lama"), tmp_path / "l.safetensors", "lama", dict(TINY["lama"]))
    model = ganime.load_model("big-lama", weights=w, device="cpu")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny("lama").parameters())
    with pytest.raises(ganime.WeightsError):
        ganime.load_model("lama-fourier")  # neither shipped nor imported here


@pytest.mark.parametrize("name", ["glcic", "lama"])
def test_shipped_weights_load_and_fill(name: str) -> None:
    import ganime
    from ganime.models import find_weights
    from ganime.weights import shipped_dir

    path = find_weights(name)
    assert path is not None and path.parent == shipped_dir()
    model = ganime.load_model(name, device="cpu")
    frames = cartoon_frames(2, 64, 48)
    layout = compute_layout(64, 48)
    out = Filler(model, layout, CPU_DEVICE, batch_size=2).fill(frames)
    assert out[0].shape == (48, layout.canvas_width, 3)
    assert np.array_equal(out[0][:, layout.left : layout.left + 64], frames[0])


def test_shipped_weights_stay_small() -> None:
    from ganime.weights import shipped_dir

    total = sum(p.stat().st_size for p in shipped_dir().glob("*.safetensors"))
    assert 0 < total < 60e6


def test_glcic_receptive_field_bounds_its_influence() -> None:
    model = ARCHS["glcic"]({"width": 0.125, "dilations": [1, 2]}).eval()
    radius = model.receptive_field
    image = torch.rand(1, 3, 32, 4 * radius, requires_grad=True)
    mask = torch.zeros(1, 1, 32, 4 * radius)
    out = model(image, mask)
    x = 2 * radius
    out[0, :, 16, x].sum().backward()
    reach = torch.nonzero(image.grad.abs().sum(dim=(0, 1, 2)) > 0).flatten()
    assert reach.min() >= x - radius and reach.max() <= x + radius


def test_strip_windows_give_the_same_result() -> None:
    """GLCIC run on each side strip plus its receptive field equals running it on the whole canvas."""
    config = {"width": 0.125, "dilations": [1, 2]}
    torch.manual_seed(0)
    model = ARCHS["glcic"](config).eval()
    frames = cartoon_frames(3, 360, 270, seed=2)
    layout = compute_layout(360, 270)
    windowed = Filler(model, layout, torch.device("cpu"), batch_size=3)
    assert windowed.window is not None and 2 * windowed.window < layout.canvas_width
    whole = Filler(model, layout, torch.device("cpu"), batch_size=3)
    whole.window = None
    for a, b in zip(windowed.fill(frames), whole.fill(frames), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_glcic_working_height_runs_small_and_returns_full_size() -> None:
    model = ARCHS["glcic"]({"width": 0.125, "working_height": 16}).eval()
    assert model.receptive_field is None  # the engine gives it the whole canvas
    image, mask = canvas(2)
    with torch.inference_mode():
        out = model(image, mask)
    assert out.shape == image.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("detail", [0, 4])
@pytest.mark.parametrize("arch", sorted(TINY))
def test_prefilled_model_starts_as_its_fill_and_learns_a_correction(arch: str, detail: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = {**TINY[arch], "prefill": "edge", "detail": detail}
    model = ARCHS[arch](config).eval()
    image, mask = canvas(2)
    with torch.no_grad():
        start = model(image, mask)
    assert torch.allclose(start, EdgeFill()(image, mask).clamp(0, 1), atol=1e-6)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    target = torch.rand_like(image)
    losses = []
    for _ in range(8):
        loss = ((model(image, mask) - target) ** 2 * mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert losses[-1] < losses[0]
    path = weights.save(model, tmp_path / "w.safetensors", arch, config)
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(image, mask), load_file(path)(image, mask))


def _output_layer(model: torch.nn.Module) -> torch.nn.Conv2d:
    """The last 3-channel convolution: the residual head of a prefilled model."""
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 3][-1]


@pytest.mark.parametrize("arch", sorted(TINY))
def test_residual_fades_out_next_to_black(arch: str) -> None:
    """A residual learnt on bright frames must not lift the blacks of a fade."""
    model = ARCHS[arch]({**TINY[arch], "prefill": "edge"}).eval()
    with torch.no_grad():
        _output_layer(model).bias.fill_(0.05)  # lift every channel by ~13 levels
    image, mask = canvas(1)
    edge = EdgeFill()
    shift = {}
    for level in (1.0, 0.02):
        x = image * level
        with torch.no_grad():
            shift[level] = float(((model(x, mask) - edge(x, mask).clamp(0, 1)) * mask).sum() / mask.sum() / 3)
    assert shift[1.0] > 0.02  # bright: the residual applies
    assert 0 <= shift[0.02] < 0.25 * shift[1.0]  # near black: it fades out


@pytest.mark.parametrize("arch", sorted(TINY))
def test_residual_paints_each_colour_and_leaves_known_pixels(arch: str) -> None:
    """R, G and B move independently where generated; known pixels stay exactly as given."""
    model = ARCHS[arch]({**TINY[arch], "prefill": "edge"}).eval()
    with torch.no_grad():
        _output_layer(model).bias.copy_(torch.tensor([-0.04, 0.03, 0.0]))
    image, mask = canvas(1)
    x = 0.3 + 0.4 * image  # bright enough that the residual is not faded, far from clipping
    with torch.no_grad():
        out = model(x, mask)
        delta = out - EdgeFill()(x, mask)
    gen = mask.expand_as(delta) > 0.5
    shift = delta[gen].view(3, -1)
    for c, want in enumerate((-0.04, 0.03, 0.0)):
        assert torch.allclose(shift[c], torch.full_like(shift[c], want), atol=1e-5)
    assert torch.equal(out[~gen], x[~gen])


@pytest.mark.parametrize(("arch", "detail"), [("glcic", 0), ("lama", 0), ("lama", 4)])
def test_the_head_learns_to_draw_a_line_the_fill_does_not_have(arch: str, detail: int) -> None:
    """A flat picture's fill is flat; trained on sides with a dark upright (a door frame)
    four pixels out from the seam, the network draws it there."""
    torch.manual_seed(0)
    model = ARCHS[arch]({**TINY[arch], "prefill": "edge", "detail": detail})
    image = torch.full((2, 3, 32, 56), 0.7)
    mask = torch.zeros(2, 1, 32, 56)
    mask[..., :12] = 1
    mask[..., 44:] = 1
    target = image.clone()
    target[..., 6:8] = 0.1  # ... columns 4-5 from each seam
    target[..., 48:50] = 0.1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = ((model(image * (1 - mask), mask) - target) ** 2 * mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(image * (1 - mask), mask)
    cols = out.mean(dim=(0, 1, 2))  # per column
    for line, beside in (((6, 8), (0, 4)), ((48, 50), (52, 56))):
        assert cols[beside[0] : beside[1]].mean() - cols[line[0] : line[1]].mean() > 0.25
    assert torch.equal(out[..., 12:44], image[..., 12:44])


def test_a_model_over_the_patch_fill_passes_the_source_on() -> None:
    """Over ``patch``, the map of copyable pixels reaches the fill: a marked region is never copied."""
    model = ARCHS["glcic"]({**TINY["glcic"], "prefill": "patch"}).eval()
    assert model.takes_source
    image = torch.full((1, 3, 48, 86), 0.5)
    mask = torch.ones(1, 1, 48, 86)
    mask[..., 11:75] = 0
    image[..., 11:20] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # a red figure by the left edge
    source = 1 - mask
    source[..., 11:20] = 0  # it moves: not to be copied
    with torch.no_grad():
        free = model(image * (1 - mask), mask)
        guarded = model(image * (1 - mask), mask, source)
    redness = lambda t: float((t[:, 0] - t[:, 1])[..., :11].mean())  # noqa: E731
    assert redness(free) > 0.05 > redness(guarded)


@pytest.mark.parametrize("arch", sorted(TINY))
@pytest.mark.parametrize("prefill", [None, "edge"])
def test_prepared_for_inference_predicts_the_same(arch: str, prefill: str | None) -> None:
    torch.manual_seed(1)
    model = ARCHS[arch]({**TINY[arch], "prefill": prefill}).eval()
    with torch.no_grad():  # weights and batch statistics away from their initial values
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
    image, mask = canvas(2)
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.inference_mode():
        before = model(image, mask)
        prepare_for_inference(model)
        after = model(image, mask)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) < norms  # folded
    assert torch.allclose(before, after, atol=1e-5)
    assert not torch.allclose(before, EdgeFill()(image, mask), atol=1e-3)  # the network counts


def test_lama_working_height_runs_small_and_returns_full_size() -> None:
    model = ARCHS["lama"]({**TINY["lama"], "working_height": 16}).eval()
    seen: list[tuple[int, int]] = []
    model.generator.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    image, mask = canvas(1)
    with torch.inference_mode():
        out = model(image, mask)
    assert out.shape == image.shape and seen == [(16, 32)]


@pytest.mark.parametrize("arch", ["glcic", "context-encoder"])
def test_rows_above_and_below_are_generated_alone_with_the_same_result(arch: str) -> None:
    # A key frame's canvas: widened by a few rows and columns, part of the sides known.
    torch.manual_seed(3)
    model = ARCHS[arch]({**TINY[arch], "prefill": "edge"}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    image = torch.rand(1, 3, 40, 70, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(1, 1, 40, 70)
    mask[..., 3:37, 12:58] = 0  # the picture
    mask[..., 10:20, 8:12] = 0  # a few side pixels seen in other frames: a hole-ridden box
    box = (3, 37, 8, 58)
    gen = torch.arange(70)
    blocks = EdgeFill.regions(mask, box, gen)
    assert [(r, c.numel()) for r, c in blocks] == [(slice(None), 24), (slice(0, 3), 46), (slice(37, 40), 46)]
    with torch.inference_mode():
        split = model(image * (1 - mask), mask)
        model.prefill.regions = lambda m, b, g: [(slice(None), g)]  # every column top to bottom
        whole = model(image * (1 - mask), mask)
    generated = mask.expand_as(split) > 0.5
    assert torch.allclose(split[generated], whole[generated], atol=1e-5)


@pytest.mark.parametrize("name", ["edge", "patch", "lama"])
def test_fill_traced_is_the_fill_and_where_it_came_from(name: str) -> None:
    """One run gives the same canvas as ``fill`` and the share of each pixel copied from the
    marked picture pixels: the mirror of a marked band by the left seam lands in the left side
    only; a network cannot say (NaN)."""
    frame = cartoon_frames(1, 128, 96, seed=3)[0]
    layout = compute_layout(128, 96)  # wide enough that patch fills each side from its own half
    model = tiny("lama") if name == "lama" else build_model(name)
    filler = Filler(model, layout, torch.device("cpu"), batch_size=1)
    chars = torch.zeros(96, 128, dtype=torch.bool)
    chars[:, :6] = True  # a band of "character" along the picture's left edge
    out, made = filler.fill_traced(frame, chars)
    assert np.array_equal(out, filler.fill([frame])[0]) and made.shape == (96, layout.canvas_width)
    threads = torch.get_num_threads()
    try:  # with one thread too (as a conversion runs torch), where CPU torch resamples
        torch.set_num_threads(1)  # 4 channels not quite as it does 3
        assert np.array_equal(filler.fill_traced(frame, chars)[0], filler.fill([frame])[0])
    finally:
        torch.set_num_threads(threads)
    if name == "lama":
        assert bool(made.isnan().all())
        return
    left, right = made[:, : layout.left], made[:, layout.left + 128 :]
    assert float(left[:, -3:].mean()) > 0.2 and float(right.max()) < 0.05
    _, none = filler.fill_traced(frame, None)
    assert float(none.max()) == 0.0
    # The same band as characters no side may be made of: `patch` copies none of it (it
    # completes the band from what lies around), the mirror is given it closed over; the
    # picture stays as it was either way.
    avoided, made = filler.fill_traced(frame, chars, chars)
    assert np.array_equal(avoided, filler.fill([frame], [chars])[0])
    assert np.array_equal(avoided[:, layout.left : layout.left + 128], frame)
    assert not np.array_equal(avoided, out)
    if name == "patch":
        assert float(made[:, : layout.left].mean()) < 0.05
