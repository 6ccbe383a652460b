import math

import numpy as np
import pytest

from ganime import metrics


def _clip(t: int = 4, h: int = 24, w: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(40, 200, (t, h, w, 3), dtype=np.uint8)


def _sides(h: int = 24, w: int = 40, side: int = 6) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[:, :side] = True
    m[:, w - side :] = True
    return m


def test_identical_is_perfect() -> None:
    a, m = _clip(), _sides()
    a[1] = a[0]  # a held frame: still pixels for the flicker figure to judge
    got = metrics.all_metrics(a, a.copy(), m)
    assert got["psnr"] == math.inf
    assert got["ssim"] == pytest.approx(1.0)
    assert got["temporal"] == 0.0 and got["seam"] == 0.0 and got["flicker"] == 0.0


def test_flicker_counts_made_up_motion_where_the_scene_is_still() -> None:
    a, m = _clip(t=6), _sides()
    still = np.repeat(a[:1], 6, axis=0)  # a still scene
    noisy = still.astype(np.int16)
    noisy[1::2][:, m] += 6  # sides that pump by 6 levels every other frame
    assert metrics.flicker(noisy.astype(np.uint8), still, m) == pytest.approx(6.0)
    # Sides frozen while the scene moves are not flicker (the temporal error counts them).
    moving = still.astype(np.int16)
    for t in range(6):
        moving[t][m] = 100 + 5 * t
    frozen = moving.copy()
    frozen[:, m] = 100
    assert math.isnan(metrics.flicker(frozen.astype(np.uint8), moving.astype(np.uint8), m))
    assert metrics.temporal_error(frozen.astype(np.uint8), moving.astype(np.uint8), m) == pytest.approx(5.0)
    # Only the still pixels are judged: half the sides move with the truth, half pump.
    mixed_truth, mixed_out = moving.copy(), moving.copy()
    mixed_truth[:, :, :3] = still[:, :, :3]  # the left strip is still in the truth...
    mixed_out[:, :, :3] = still[:, :, :3]
    mixed_out[1::2, :, :3] += 4  # ...and pumps by 4 in the output
    assert metrics.flicker(mixed_out.astype(np.uint8), mixed_truth.astype(np.uint8), m) == pytest.approx(4.0)


def test_the_centre_is_excluded() -> None:
    a, m = _clip(), _sides()
    b = a.copy()
    b[:, :, 6:34] = 0  # wreck everything that was kept
    got = metrics.all_metrics(b, a, m)
    assert got["psnr"] == math.inf and got["ssim"] == pytest.approx(1.0) and got["temporal"] == 0.0
    # ...except the seam, which looks at the pixel on each side of the join.
    assert got["seam"] > 0


def test_known_offset() -> None:
    a, m = _clip(), _sides()
    b = a.copy()
    b[:, m] += 16
    assert metrics.psnr(b, a, m) == pytest.approx(10 * math.log10(255**2 / 16**2))
    # A constant offset of the strips is a step of 16 at every seam pixel.
    assert metrics.seam_error(b, a, m) == pytest.approx(16.0)
    # The same offset in every frame does not flicker.
    assert metrics.temporal_error(b, a, m) == pytest.approx(0.0)
    assert metrics.ssim(b, a, m) < 1.0


def test_noise_psnr() -> None:
    a, m = _clip(t=8, h=64, w=96), _sides(64, 96, 16)
    rng = np.random.default_rng(1)
    noisy = a.astype(np.float64) + rng.normal(0, 8, a.shape)
    b = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    assert metrics.psnr(b, a, m) == pytest.approx(20 * math.log10(255 / 8), abs=0.3)


def test_flicker_and_frozen_sides() -> None:
    a, m = _clip(t=6), _sides()
    flicker = a.astype(np.int16)
    flicker[1::2][:, m] += 10  # every other frame 10 levels brighter
    assert metrics.temporal_error(flicker.astype(np.uint8), a, m) == pytest.approx(10.0)
    # Sides frozen while the ground truth brightens by 5 a frame.
    moving = a.copy().astype(np.int16)
    for t in range(6):
        moving[t][m] = 100 + 5 * t
    frozen = moving.copy()
    frozen[:, m] = 100
    assert metrics.temporal_error(frozen.astype(np.uint8), moving.astype(np.uint8), m) == pytest.approx(5.0)


def test_sixteen_bit_is_read_in_eight_bit_levels() -> None:
    a, m = _clip(), _sides()
    b = a.copy()
    b[:, m] += 16
    wide_a, wide_b = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    assert metrics.psnr(wide_b, wide_a, m) == pytest.approx(metrics.psnr(b, a, m))
    assert metrics.seam_error(wide_b, wide_a, m) == pytest.approx(16.0)


def test_bad_arguments() -> None:
    a = _clip()
    with pytest.raises(ValueError):
        metrics.psnr(a, a[:, :, :-1], _sides())
    with pytest.raises(ValueError):
        metrics.psnr(a, a, np.zeros((24, 40), bool))


def _panning(frames: int = 8, h: int = 48, w: int = 86, seed: int = 0) -> np.ndarray:
    """A textured background sliding one pixel a frame (every block changes a little)."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(110, 150, (h, w + frames, 3)).astype(np.float32)
    wide = (wide + np.roll(wide, 1, axis=1) + np.roll(wide, 1, axis=0)) / 3  # some smoothness
    return np.stack([wide[:, i : i + w] for i in range(frames)]).astype(np.uint8)


def test_pops_count_a_fragment_that_flashes_into_a_side() -> None:
    truth = _panning()
    m = np.zeros(truth.shape[1:3], bool)
    m[:, :10] = m[:, -10:] = True
    assert metrics.pops(truth.copy(), truth, m) == 0  # the truth itself never pops
    out = truth.copy()
    out[3, 10:22, 1:9] = (255, 40, 200)  # a fragment in the left side for one frame
    assert metrics.pops(out, truth, m) == 2  # it appears (pair 2-3) and goes (pair 3-4)
    # The same change in the picture too (a cut, a flash) is not a pop.
    flashed = truth.copy()
    flashed[3] = 0  # a black frame
    both = flashed.copy()
    both[3, 10:22, 1:9] = (255, 40, 200)
    assert metrics.pops(both, flashed, m) == 0
    # Nor is a change the true side has there.
    moving = truth.copy()
    moving[3, 10:22, 1:9] = (0, 0, 0)
    assert metrics.pops(out, moving, m) == 0


def test_sides_that_follow_the_truth_softly_do_not_pop() -> None:
    truth = _panning(seed=1)
    m = np.zeros(truth.shape[1:3], bool)
    m[:, :12] = True
    smooth = truth.astype(np.float32)
    smooth[:, :, :12] = smooth[:, :, :12].mean(axis=(1, 2), keepdims=True)  # a flat, drifting side
    assert metrics.pops(smooth.astype(np.uint8), truth, m) == 0
