"""Camera motion on analysis thumbnails (``ganime.motion``): shifts, zooms, thumbnails, cuts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import view

from ganime import synthetic
from ganime.motion import match, median, nanmedian_rows, sample_grid, thumbnail, to_frame


@pytest.mark.parametrize("shift", [0, 3, 11, -7])
def test_translation_is_recovered_despite_a_character(shift: int) -> None:
    world = synthetic.paint_background(400, 96, seed=2)
    a, b = world[:, 100:228].copy(), world[:, 100 + shift : 228 + shift].copy()
    # A character that moves the other way must not pull the estimate.
    synthetic._draw_character(a, 60, 84, 40, 0)
    synthetic._draw_character(b, 60 - 2 * shift + 9, 84, 40, 1)
    m = match(thumbnail(a, 1), thumbnail(b, 1))
    motion = to_frame(m.motion, 1)
    assert abs(motion.bx - shift) < 0.25 and abs(motion.by) < 0.25 and abs(motion.a - 1) < 0.005
    assert m.difference < 0.5


def test_zoom_is_recovered() -> None:
    m = match(thumbnail(view(1.0), 1), thumbnail(view(1 / 1.04), 1))  # zooming in by 4 %
    assert abs(m.motion.a - 1 / 1.04) < 0.003
    assert m.difference < 0.5


@pytest.mark.parametrize(("a", "bx", "by"), [(1.0, 3.0, 0.0), (1.0, 2.37, -1.61), (0.93, 4.2, 5.5), (1.08, -0.5, 0.25)])
def test_separable_sampling_equals_bilinear_sampling(a: float, bx: float, by: float) -> None:
    """The rectangle sampler (shifts and zooms) agrees with torch's bilinear grid_sample."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    x = a * np.arange(5, 30, dtype=np.float64) + bx
    y = a * np.arange(4, 28, dtype=np.float64) + by
    ours = sample_grid(image, x, y)
    gx, gy = np.meshgrid(x, y)  # pixel centres -> grid_sample's [-1, 1] (align_corners=False)
    grid = torch.from_numpy(np.stack([(2 * gx + 1) / 50 - 1, (2 * gy + 1) / 40 - 1], -1)).float()[None]
    src = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    ref = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert ours.shape == (y.size, x.size, 3)
    assert np.abs(ours - ref[0].permute(1, 2, 0).numpy()).max() < 1e-3


def test_cubic_sampling_keeps_detail_without_ringing() -> None:
    """Catmull-Rom, clamped: whole pixels come back exactly; a smooth surface is followed
    closer than bilinear; no sample leaves the range of its 2x2 nearest pixels (no halo
    beside an outline); moved half a pixel and back, a drawing keeps more of its detail."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    x, y = np.arange(6, 31, dtype=np.float64), np.arange(3, 29, dtype=np.float64)
    assert np.array_equal(sample_grid(image, x, y, cubic=True), image[3:29, 6:31].astype(np.float32))
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    bowl = ((xx - 20) ** 2 / 10 + (yy - 18) ** 2 / 8)[..., None]
    xs, ys = 0.93 * np.arange(8, 40) + 2.37, 0.93 * np.arange(6, 32) + 1.61
    truth = ((xs[None, :] - 20) ** 2 / 10 + (ys[:, None] - 18) ** 2 / 8)[..., None]
    cubic, linear = sample_grid(bowl, xs, ys, cubic=True), sample_grid(bowl, xs, ys)
    assert np.abs(cubic - truth).max() < 0.25 * np.abs(linear - truth).max()
    got = sample_grid(image, xs, ys, cubic=True)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    near = np.stack([image[y0 + dy][:, x0 + dx] for dy in (0, 1) for dx in (0, 1)]).astype(np.float32)
    assert (got >= near.min(0) - 1e-3).all() and (got <= near.max(0) + 1e-3).all()
    # Fine line work (a period of 5 px), moved half a pixel and back as a side is copied
    # into the shot memory and out again: bilinear keeps 65 % of its contrast.
    stripes = np.repeat((128 + 100 * np.sin(2 * np.pi * np.arange(50) / 5))[None, :, None], 8, 0)
    stripes = stripes.repeat(3, 2).astype(np.float32)
    rows = np.arange(8, dtype=np.float64)

    def contrast_kept(cubic: bool) -> float:
        moved = sample_grid(stripes, np.arange(2, 45) + 0.5, rows, cubic=cubic)
        back = sample_grid(moved, np.arange(2, 40) - 0.5, rows, cubic=cubic)
        return float((back - 128).std() / (stripes[:, 4:42] - 128).std())

    assert contrast_kept(True) > 0.85 and contrast_kept(False) < 0.7


@pytest.mark.parametrize(("dtype", "factor"), [(np.uint8, 1), (np.uint8, 6), (np.uint8, 17), (np.uint16, 6)])
def test_thumbnail_is_the_mean_grey_of_each_block(dtype: type, factor: int) -> None:
    rng = np.random.default_rng(5)
    top = np.iinfo(dtype).max
    picture = rng.integers(0, top, (70, 90, 3), endpoint=True).astype(dtype)
    th, tw = 70 // factor, 90 // factor
    grey = picture[: th * factor, : tw * factor].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) * 255 / top
    expect = grey.reshape(th, factor, tw, factor).mean(axis=(1, 3))
    got = thumbnail(picture, factor)
    assert got.shape == (th, tw) and got.dtype == np.float32
    assert np.abs(got - expect).max() < 1e-3


@pytest.mark.parametrize("n", [1, 2, 7, 8, 1001])
def test_median_by_partition_is_the_median(n: int) -> None:
    a = np.random.default_rng(n).normal(size=n).astype(np.float32)
    assert median(a) == pytest.approx(float(np.median(a.astype(np.float64))), abs=1e-6)


def test_fit_preparations_follow_each_thumbnail() -> None:
    """Fits keep per-thumbnail work while the thumbnail lives; a new array never gets an old one's."""
    world = synthetic.paint_background(400, 96, seed=6)
    for shift in range(0, 40, 3):  # new arrays every round: freed ids are reused
        a, b = thumbnail(world[:, 100:228], 1), thumbnail(world[:, 100 + shift : 228 + shift], 1)
        assert match(a, b) == match(a.copy(), b.copy())
        assert abs(to_frame(match(a, b).motion, 1).bx - shift) < 0.25


def test_unrelated_pictures_are_a_cut() -> None:
    a = synthetic.paint_background(128, 96, seed=1)
    b = np.ascontiguousarray(synthetic.paint_background(128, 96, seed=9)[::-1, ::-1])  # another layout
    assert match(thumbnail(a, 1), thumbnail(b, 1)).difference > 0.5


def test_nanmedian_of_rows_is_numpys_to_the_bit() -> None:
    """The one-sort median of each row, leaving NaN out, gives np.nanmedian's values
    exactly (odd and even counts, rows of NaN alone, float32 kept), so the propagation
    that uses it makes the same sides."""
    rng = np.random.default_rng(3)
    for _ in range(400):
        k, m = int(rng.integers(1, 5)), int(rng.integers(1, 300))
        a = (rng.normal(size=(k, m, 3)) * rng.choice([1e-3, 1.0, 40.0])).astype(np.float32)
        a[rng.random((k, m)) < rng.random()] = np.nan
        a[0, :, 1] = np.nan if rng.random() < 0.2 else a[0, :, 1]  # a channel with nothing
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(a, axis=1)
        got = nanmedian_rows(a)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_whole_rows_skip_the_cubic_row_pass_to_the_same_bits() -> None:
    """At whole rows (a level pan) the Catmull-Rom row weights are 0, 1, 0, 0: the rows
    are taken as they are, the same values as the row pass gives, inside the picture
    and past its top and bottom."""
    from ganime import motion

    rng = np.random.default_rng(4)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(2, 40, 2))
        image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        x = np.sort(rng.uniform(0.5, 1.5) * np.arange(int(rng.integers(1, 20))) + rng.uniform(-5, w + 3))
        y = (np.arange(int(rng.integers(1, 12))) + int(rng.integers(-3, h))).astype(np.float64)
        lo, hi = max(int(y[0]) - 1, 0), min(int(y[-1]) + 3, h)
        if lo >= hi:
            continue
        cols = motion._cubic_axis(image[lo:hi].astype(np.float32), x, 1)
        want = motion._cubic_axis(cols, y - lo, 0)
        np.testing.assert_array_equal(sample_grid(image, x, y, cubic=True), want)
