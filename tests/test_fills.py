"""The fill models and the engine around them: contract, compositing, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import cartoon_frames
from torch import nn

from ganime.compositor import Compositor, SideSeam, column_bands, nearest_known
from ganime.engine import Filler, select_device
from ganime.geometry import compute_layout
from ganime.models import REGISTRY, build_model, default_model, list_models
from ganime.models.classical import (
    EdgeFill,
    _reflect_index,
    blur_matrix,
    blur_radius,
    gaussian_blur,
    push_pull,
    shrink,
    upsample_columns,
)


def _canvas(n: int = 2, h: int = 24, w: int = 44, left: int = 6, right: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(n, 3, h, w, generator=g)
    mask = torch.zeros(n, 1, h, w)
    mask[..., :left] = 1
    mask[..., w - right :] = 1
    return image * (1 - mask), mask


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str) -> None:
    model = build_model(name)
    image, mask = _canvas()
    before = image.clone()
    with torch.inference_mode():
        out = model(image, mask)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert torch.equal(image, before)  # the model never writes into its input
    # The fill is built from the picture: the strips are not left black.
    assert out[..., :6].mean() > 0.2
    # Same result one frame at a time as in a batch.
    with torch.inference_mode():
        single = torch.cat([model(image[i : i + 1], mask[i : i + 1]) for i in range(2)])
    assert torch.allclose(single, out, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_model_fills_holes_inside_the_picture(name: str) -> None:
    image, mask = _canvas(1)
    mask[..., 10:14, 20:24] = 1
    image = image * (1 - mask)
    with torch.inference_mode():
        out = build_model(name)(image, mask)
    assert torch.isfinite(out).all()
    assert out[..., 10:14, 20:24].mean() > 0.2


def test_edge_fill_continues_the_picture_at_the_seam() -> None:
    # A vertical stripe pattern: mirrored, the column next to the seam repeats the edge column.
    x = torch.linspace(0, 1, 64).repeat(3, 48, 1)
    image = torch.zeros(1, 3, 48, 124)
    image[..., 30:94] = x
    mask = torch.zeros(1, 1, 48, 124)
    mask[..., :30] = 1
    mask[..., 94:] = 1
    with torch.inference_mode():
        out = build_model("edge")(image * (1 - mask), mask)
    assert torch.allclose(out[..., 29], image[..., 30], atol=0.05)
    assert torch.allclose(out[..., 94], image[..., 93], atol=0.05)


def test_default_model_is_registered() -> None:
    assert default_model() in REGISTRY


def test_nearest_known_and_bands() -> None:
    mask = np.zeros((5, 12), bool)
    mask[:, :3] = True
    mask[:, 9:] = True
    source, steps = nearest_known(mask, 2)
    assert steps[0, 2] == 1 and steps[0, 1] == 2 and steps[0, 0] == 3  # beyond reach
    assert source[0, 2] == 3 and source[0, 1] == 3 and source[0, 0] == -1
    assert source[2, 10] == 2 * 12 + 8
    assert column_bands(mask, 1) == [(0, 4), (8, 12)]


def test_compositor_feathers_only_generated_pixels() -> None:
    layout = compute_layout(32, 24)
    comp = Compositor.for_mask(layout.mask(), torch.device("cpu"), feather=4)
    canvas = torch.zeros(1, 3, 24, layout.canvas_width)
    canvas[..., layout.left : layout.left + 32] = 0.5
    prediction = torch.ones_like(canvas)
    bands = comp.blend(canvas, prediction)
    left = bands[0]
    x0 = comp.bands[0][0]
    seam = layout.left - x0
    # Next to the seam the output starts near the known colour and reaches the prediction.
    assert left[..., seam - 1].mean().item() < 0.6
    assert left[..., seam - 5].mean().item() == pytest.approx(1.0)
    values = left[0, 0, 0, :seam].numpy()
    assert np.all(np.diff(values[::-1]) >= -1e-6)  # monotone from the seam outwards


@pytest.mark.parametrize(("width", "height", "feather"), [(32, 24, 3), (30, 24, 4), (48, 36, 0)])
def test_side_seam_is_the_compositors_blend_on_the_side_grid(width: int, height: int, feather: int) -> None:
    """The temporal engine's seam (sides held apart from the picture) blends exactly as the compositor."""
    layout = compute_layout(width, height)
    comp = Compositor.for_mask(layout.mask(), torch.device("cpu"), feather=feather)
    seam = SideSeam.of(comp, layout)
    assert seam.bands is not None  # beside a full-height picture the seam is whole-height bands
    rng = np.random.default_rng(0)
    h, w, c = layout.canvas_height, layout.canvas_width, layout.content
    picture = rng.integers(0, 256, (c.height, c.width, 3)).astype(np.uint8)
    canvas = torch.zeros(1, 3, h, w)
    canvas[0, :, :, layout.left : layout.left + c.width] = torch.from_numpy(picture).permute(2, 0, 1).float() / 255
    prediction = torch.from_numpy(rng.random((1, 3, h, w), dtype=np.float32))
    full = prediction.clone()
    for (x0, x1), band in zip(comp.bands, comp.blend(canvas, prediction), strict=True):
        full[..., x0:x1] = band
    cols = np.r_[0 : layout.left, layout.left + c.width : w]
    values = prediction[0].permute(1, 2, 0)[:, cols]
    want = (full[0].permute(1, 2, 0)[:, cols] * 255).round().clamp(0, 255).byte().numpy()
    got = seam.blend(torch.from_numpy(picture).to(torch.int32), values, 255.0, np.uint8)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # rounding of the 8-bit edge only
    # The general path (pixel by pixel) gives the same as the bands.
    by_pixel = SideSeam(seam.rows, seam.cols, seam.alphas, seam.sources, seam.at, None)
    assert np.array_equal(by_pixel.blend(torch.from_numpy(picture).to(torch.int32), values, 255.0, np.uint8), got)


def test_filler_keeps_known_pixels_bit_exact_and_batch_invariant() -> None:
    frames = cartoon_frames(5, 64, 48)
    layout = compute_layout(64, 48)
    outs = []
    for batch in (1, 2, 5):
        filler = Filler(build_model("blur"), layout, torch.device("cpu"), batch_size=batch)
        outs.append(filler.fill(frames))
    for a, b in zip(outs[0], outs[2], strict=True):
        assert np.array_equal(a, b)
    for f, out in zip(frames, outs[0], strict=True):
        assert out.shape == (48, layout.canvas_width, 3)
        assert np.array_equal(out[:, layout.left : layout.left + 64], f)


def test_filler_sixteen_bit() -> None:
    frames = [f.astype(np.uint16) * 257 for f in cartoon_frames(2, 64, 48)]
    layout = compute_layout(64, 48)
    out = Filler(build_model("edge"), layout, torch.device("cpu")).fill(frames)
    assert out[0].dtype == np.uint16
    assert np.array_equal(out[0][:, layout.left : layout.left + 64], frames[0])
    assert out[0][:, : layout.left].max() > 255  # the strips use the full 16-bit range


class _OutOfMemoryAbove(nn.Module):
    """A real model with a memory limit: raises CUDA's OOM error for batches above ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sizes: list[int] = []

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.sizes.append(image.shape[0])
        if image.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test limit)")
        return image.flip(-1)


def test_out_of_memory_halves_the_batch() -> None:
    frames = cartoon_frames(7, 64, 48)
    layout = compute_layout(64, 48)
    model = _OutOfMemoryAbove(limit=2)
    filler = Filler(model, layout, torch.device("cpu"), batch_size=8)
    out = filler.fill(frames)
    assert len(out) == 7
    assert filler.batch_size == 2 and filler.stats.oom_retries == 2
    assert model.sizes[:3] == [7, 4, 2]


def test_select_device() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            select_device("cuda:0")


def test_resize_frames() -> None:
    from ganime.engine import resize_frames

    flat = np.full((3, 40, 60, 3), 77, np.uint8)
    small = resize_frames(flat, 20, 30, chunk=2)
    assert small.shape == (3, 20, 30, 3) and small.dtype == np.uint8 and (small == 77).all()
    ramp = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, None, :, None], 3, axis=3).repeat(8, axis=1)
    half = resize_frames(ramp, 8, 32)
    assert np.all(np.diff(half[0, 0, :, 0].astype(int)) >= 0)  # still a ramp, left to right


@pytest.mark.parametrize(("h", "w"), [(17, 30), (9, 33), (480, 34)])
def test_push_pull_fills_gaps_along_odd_borders(h: int, w: int) -> None:
    """A gap on the last row or column of an odd-sized image is filled from its neighbours, not left black."""
    colour = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1)
    image = colour.expand(1, 3, h, w).clone()
    known = torch.ones(1, 1, h, w)
    known[..., -1, :] = 0  # the bottom row
    known[..., :, -2:] = 0  # and the last two columns
    out = push_pull(image * known, known)
    assert torch.allclose(out, image, atol=1e-5)


def test_small_holes_close_locally_like_the_whole_pyramid() -> None:
    from ganime.models.classical import close_holes, push_pull

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 200), indexing="ij")
    image = torch.stack([yy, xx, (yy + xx) / 2])[None]  # smooth: the fill is well defined
    known = torch.ones(1, 1, 120, 200)
    known[..., 50:53, 90:94] = 0
    holed = image * known
    local, whole = close_holes(holed, known), push_pull(holed, known)
    assert torch.equal(local[known.expand_as(local) > 0.5], holed[known.expand_as(holed) > 0.5])
    assert (local - whole).abs().max() < 0.02 and (local - image).abs().max() < 0.05
    big = torch.ones(1, 1, 120, 200)
    big[..., 10:110, 20:180] = 0  # most of the picture: the whole pyramid, exactly
    assert torch.equal(close_holes(image * big, big), push_pull(image * big, big))


@pytest.mark.parametrize(("h", "w", "sigma"), [(7, 10, 1.0), (40, 57, 3.3), (5, 9, 10.0), (2, 3, 0.4)])
def test_blur_matrices_are_the_separable_blur(h: int, w: int, sigma: float) -> None:
    x = torch.rand(1, 2, h, w, generator=torch.Generator().manual_seed(3))
    radius = blur_radius(sigma, h, w)
    by, bx = blur_matrix(h, sigma, radius).float(), blur_matrix(w, sigma, radius).float()
    assert torch.allclose(by @ x @ bx.T, gaussian_blur(x, sigma), atol=1e-5)


def test_shrink_of_a_cropped_view_by_whole_blocks_is_area_averaging() -> None:
    x = torch.rand(2, 3, 24, 48, generator=torch.Generator().manual_seed(4))[..., 4:36]
    assert torch.allclose(shrink(x, (6, 8)), F.adaptive_avg_pool2d(x.contiguous(), (6, 8)), atol=1e-6)
    assert shrink(x, (5, 7)).shape[-2:] == (5, 7)  # not whole blocks: pooling


@pytest.mark.parametrize(
    ("h", "w", "box"), [(48, 86, (0, 48, 11, 75)), (50, 90, (4, 46, 13, 77)), (31, 57, (0, 31, 7, 49))]
)
def test_edge_blur_is_mirror_blur_and_enlarge(h: int, w: int, box: tuple[int, int, int, int]) -> None:
    # The fill's blur, done step by step: the quarter-size picture mirrored to the
    # quarter-size canvas, blurred, and the generated columns enlarged.
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(5))
    cols = torch.tensor([x for x in range(w) if not box[2] <= x < box[3]])
    fill = EdgeFill()
    y0, y1, x0, x1 = box
    sh, sw = max(2, round(h / 4)), max(2, round(w / 4))
    ph, pw = max(1, round((y1 - y0) * sh / h)), max(1, round((x1 - x0) * sw / w))
    oy, ox = round(y0 * sh / h), round(x0 * sw / w)
    small = F.adaptive_avg_pool2d(image[:, :, y0:y1, x0:x1], (ph, pw))
    small = small[..., _reflect_index(sw, ox, ox + pw, torch.device("cpu")) - ox]
    small = small[:, :, _reflect_index(sh, oy, oy + ph, torch.device("cpu")) - oy]
    expected = upsample_columns(gaussian_blur(small, fill.config.sigma * sh), h, w, cols)
    _, blurred, _ = fill.column_parts(image, box, cols)
    assert torch.allclose(blurred, expected, atol=1e-5)


# ------------------------------------------------------------------ patch


def _stripes(h: int = 64, w: int = 160, period: int = 10) -> torch.Tensor:
    """(1, 3, h, w) a sawtooth wall: a dark line, then a ramp to light, repeating. Its
    mirror image runs the ramp the other way, so a mirror is told from a continuation."""
    x = torch.arange(w).float()
    ramp = (x % period) / period
    row = torch.stack([0.2 + 0.6 * ramp, 0.3 + 0.5 * ramp, 0.9 - 0.5 * ramp])  # (3, w)
    img = row[:, None, :].expand(3, h, w).clone()
    img[:, h // 2 :, :] = img[:, h // 2 :, :].flip(0)  # a floor in other colours
    return img[None]


def test_patch_continues_a_texture_where_the_mirror_reverses_it() -> None:
    truth = _stripes()
    mask = torch.zeros(1, 1, 64, 160)
    mask[..., :30] = mask[..., -30:] = 1
    image = truth * (1 - mask)
    with torch.inference_mode():
        patch = build_model("patch")(image, mask)
        edge = build_model("edge")(image, mask)

    def err(out: torch.Tensor) -> float:
        # Position-free: every generated column should be some column of the wall.
        cols = out[0, :, 4:28, 2:28].permute(2, 0, 1).flatten(1)  # left strip, away from the border
        wall = truth[0, :, 4:28, :].permute(2, 0, 1).flatten(1)
        return float(torch.cdist(cols, wall).min(dim=1).values.mean())

    assert err(patch) < 0.05 and err(patch) < 0.25 * err(edge)
    grad = (patch[..., :30].diff(dim=-1).abs().mean() / truth[..., :30].diff(dim=-1).abs().mean()).item()
    assert 0.7 < grad < 1.3  # as sharp as the wall, neither smeared nor noisy
    with torch.inference_mode():
        assert torch.equal(build_model("patch")(image, mask), patch)  # seeded: same frame, same sides


@pytest.mark.parametrize("radius", [0, 1, 3, 4])
def test_dilate_is_a_max_pool_of_the_mask(radius: int) -> None:
    from ganime.models.classical import dilate

    mask = torch.rand(2, 37, 53, generator=torch.Generator().manual_seed(radius)) > 0.93
    pooled = F.max_pool2d(mask[:, None].float(), 2 * radius + 1, 1, radius)[:, 0] > 0.5
    assert torch.equal(dilate(mask, radius), pooled)
    assert torch.equal(
        ~dilate(~mask, radius), -F.max_pool2d(-mask[:, None].float(), 2 * radius + 1, 1, radius)[:, 0] > 0.5
    )


def test_patch_fills_each_side_on_its_own_whichever_thread_runs_it() -> None:
    """Strips whose context ranges do not meet are completed apart, the second on a thread
    of its own: the same bits as each side filled alone."""
    from ganime.models.patch import _bands

    truth = torch.cat([_stripes(), _stripes().flip(-1)], dim=-1)
    mask = torch.zeros(1, 1, 64, 320)
    mask[..., :30] = mask[..., -30:] = 1
    assert _bands(mask[0, 0] > 0.5, 3.0, 32) == [(0, 120), (200, 320)]
    assert _bands(mask[0, 0, :, 80:240] > 0.5, 3.0, 32) == []
    image = truth * (1 - mask)
    left, right = mask.clone(), mask.clone()
    left[..., -30:] = 0
    right[..., :30] = 0
    fill = build_model("patch")
    with torch.inference_mode():
        both = fill(image, mask)
        alone = torch.cat([fill(image, left)[..., :160], fill(image, right)[..., 160:]], dim=-1)
    assert torch.equal(both, alone)
    assert not torch.equal(both[..., :30], image[..., :30])  # filled


@pytest.mark.parametrize("height", [136, 330])
def test_patch_splits_a_lone_bands_largest_steps_over_two_threads_to_the_same_bits(height: int) -> None:
    """A band alone (its strips' context ranges meet) votes and costs its fine scales in
    chunks, half of them on the band thread, which has made the finer scales' pictures
    and masks meanwhile (3 scales at 330 rows): the same bits as all on one thread."""
    truth = torch.cat([_stripes(), _stripes().flip(-1)], dim=-1)[..., :256]
    truth = F.interpolate(truth, size=(height, 256), mode="bilinear", align_corners=False)
    mask = torch.zeros(1, 1, height, 256)
    mask[..., :70] = mask[..., -70:] = 1  # 19040 hole pixels at 136 rows: two chunks at the finest scale
    image = truth * (1 - mask)
    fill = build_model("patch")
    hole = mask[0, 0] > 0.5
    with torch.inference_mode():
        one = fill._complete(image[0], lambda: image[0], hole, ~hole, split=False)
        two = fill._complete(image[0], lambda: image[0], hole, ~hole, split=True)
        assert torch.equal(one, two)
        assert torch.equal(fill(image, mask)[0][:, hole], one[:, hole])  # what forward gives


def test_patch_never_copies_what_it_is_told_moves() -> None:
    image = _stripes()
    mask = torch.zeros(1, 1, 64, 160)
    mask[..., :30] = mask[..., -30:] = 1
    image[..., 20:50, 40:60] = torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1)  # a character by the seam
    image = image * (1 - mask)
    source = 1 - mask
    source[..., 16:54, 36:64] = 0  # ... that the engine saw moving

    def magenta(out: torch.Tensor) -> int:
        side = torch.cat([out[..., :30], out[..., -30:]], dim=-1)
        return int(((side[0, 0] > 0.8) & (side[0, 1] < 0.2) & (side[0, 2] > 0.8)).sum())

    model = build_model("patch")
    with torch.inference_mode():
        assert magenta(model(image, mask, source)) == 0
        assert magenta(model(image, mask)) > 0  # allowed, it is a fine patch to copy


def _sky_floor_and_character() -> tuple[torch.Tensor, torch.Tensor]:
    """A 64x160 canvas: sky over floor, a magenta character standing at the left seam; both sides to fill."""
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(1, 3, 64, 160)
    img[:, :, :32] = torch.tensor([0.4, 0.6, 0.9]).view(1, 3, 1, 1)
    img[:, :, 32:] = torch.tensor([0.3, 0.6, 0.2]).view(1, 3, 1, 1)
    img += 0.05 * torch.rand(1, 3, 64, 160, generator=g)
    img[:, :, 10:55, 30:52] = torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    mask = torch.zeros(1, 1, 64, 160)
    mask[..., :30] = mask[..., -30:] = 1
    return img * (1 - mask), mask


def test_patch_continues_the_background_behind_a_character() -> None:
    """A character marked -1 in ``source`` is neither copied nor continued: beside it the side
    goes on as what is around it (sky beside its head, floor beside its legs)."""
    image, mask = _sky_floor_and_character()

    def layout(out: torch.Tensor) -> tuple[int, float, float]:
        side = out[0, :, :, 2:28]
        magenta = int(((side[0] > 0.8) & (side[1] < 0.2) & (side[2] > 0.8)).sum())
        sky, floor = side[:, 12:29], side[:, 36:53]
        return magenta, float((sky[2] > sky[1]).float().mean()), float((floor[1] > floor[2]).float().mean())

    model = build_model("patch")
    hidden = 1 - mask
    hidden[..., 6:59, 26:56] = -1
    not_copied = 1 - mask
    not_copied[..., 6:59, 26:56] = 0
    with torch.inference_mode():
        out = model(image, mask, hidden)
        magenta, sky, floor = layout(out)
        assert magenta == 0 and sky > 0.95 and floor > 0.95
        assert torch.equal(out[mask.expand_as(out) < 0.5], image[mask.expand_as(image) < 0.5])  # the picture kept
        assert layout(model(image, mask))[0] > 500  # told nothing, it continues the character
        assert layout(model(image, mask, not_copied))[2] < 0.5  # not copied, but still steering the layout
        # Nothing at all to copy from: the mirror it falls back to has the character closed over.
        assert layout(model(image, mask, torch.where(hidden < 0, hidden, torch.zeros_like(hidden))))[0] == 0


def test_patch_hardly_changes_for_a_few_more_pixels_of_character() -> None:
    """A character mask a few pixels larger changes the sides where those pixels were
    sources, not everywhere: the random search draws per position, so one source or
    target more shifts no other draw (drawn from a list, it redrew whole sides)."""
    from ganime import synthetic

    world = synthetic.paint_background(214, 120, seed=4)
    image = torch.from_numpy(world).permute(2, 0, 1)[None].float() / 255
    mask = torch.zeros(1, 1, 120, 214)
    mask[..., :27] = mask[..., -27:] = 1
    image = image * (1 - mask)
    source = 1 - mask
    source[..., 40:100, 90:130] = -1  # a character in the middle of the picture
    wider = source.clone()
    wider[..., 38:40, 90:96] = -1  # 12 pixels more of it
    model = build_model("patch")
    with torch.inference_mode():
        a, b = model(image, mask, source), model(image, mask, wider)
    sides = mask.expand_as(a) > 0.5
    changed = ((a - b).abs() > 8 / 255) & sides
    assert float(changed.sum()) < 0.01 * float(sides.sum())  # (drawn from a list: 6 %)


def test_patch_traces_what_it_copied_from_a_character() -> None:
    """``traced`` says where each generated pixel came from: on the sides, its trace of the
    magenta character matches where magenta went (how eval's copied-character figure was
    validated), and tracing changes nothing of the fill."""
    image, mask = _sky_floor_and_character()
    chars = torch.zeros(1, 1, 64, 160)
    chars[..., 10:55, 30:52] = 1
    model = build_model("patch")
    with torch.inference_mode():
        plain = model(image, mask)
        out, trace = model.traced(image, mask, chars)
        assert torch.equal(out, plain) and trace.shape == (1, 1, 64, 160)
        side = (mask[0, 0] > 0.5) & (torch.arange(160) < 80)[None]  # the left side
        magenta = (out[0, 0] > 0.8) & (out[0, 1] < 0.2) & (out[0, 2] > 0.8)
        assert int((magenta & side).sum()) > 500  # told nothing, it continues the character ...
        assert float(trace[0, 0][magenta & side].mean()) > 0.9  # ... and the trace says so
        assert float(trace[0, 0][~magenta & side].mean()) < 0.1
        assert float(trace[0, 0, :, 80:][mask[0, 0, :, 80:] > 0.5].max()) < 0.05  # the far side: none
        # Told to leave the character out, nothing on the sides comes from it.
        hidden = 1 - mask
        hidden[..., 6:59, 26:56] = -1
        _, trace = model.traced(image, mask, chars, hidden)
        assert float(trace[mask > 0.5].max()) < 0.05
