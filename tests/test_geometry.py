from fractions import Fraction

import numpy as np
import pytest

from ganime.geometry import Rect, aspect_label, compute_layout, detect_bars, parse_aspect


def test_square_pixels_640x480() -> None:
    lay = compute_layout(640, 480)
    assert (lay.canvas_width, lay.canvas_height) == (856, 480)
    assert lay.left == lay.right == 108
    assert lay.left % 2 == 0 and lay.canvas_width % 2 == 0
    assert lay.display_aspect >= 16 / 9  # rounded up, never short of the target
    assert abs(lay.display_aspect - 16 / 9) < 0.01
    assert lay.needs_fill and not lay.has_bars and not lay.at_target


@pytest.mark.parametrize(
    ("w", "h", "sar", "canvas_w"),
    [
        (720, 480, Fraction(8, 9), 960),  # NTSC DVD 4:3
        (720, 576, Fraction(16, 15), 960),  # PAL DVD 4:3
        (720, 478, Fraction(8, 9), 956),
        (704, 480, Fraction(10, 11), 940),
    ],
)
def test_anamorphic_sources_keep_their_sar(w: int, h: int, sar: Fraction, canvas_w: int) -> None:
    lay = compute_layout(w, h, sar)
    assert lay.sar == sar
    assert lay.canvas_width == canvas_w and lay.canvas_height == h
    assert lay.left == lay.right and lay.left % 2 == 0
    # Right proportions on screen: 16:9 after the SAR, not the storage ratio.
    assert abs(lay.display_aspect - 16 / 9) < 0.01
    assert lay.canvas_width * sar / h >= Fraction(16, 9)


def test_odd_geometry_is_made_even() -> None:
    lay = compute_layout(641, 481)
    assert lay.content.width % 2 == 0 and lay.content.height % 2 == 0
    assert lay.left % 2 == 0 and lay.canvas_width % 2 == 0


def test_already_wide_is_at_target() -> None:
    assert compute_layout(1920, 1080).at_target
    assert compute_layout(720, 480, Fraction(32, 27)).at_target  # anamorphic 16:9 DVD
    lay = compute_layout(1920, 1080)
    assert lay.left == lay.right == 0 and not lay.needs_fill


def test_other_aspects() -> None:
    lay = compute_layout(640, 480, aspect=Fraction(239, 100))
    assert lay.display_aspect >= 2.39 and lay.display_aspect < 2.40
    assert parse_aspect("16:9") == Fraction(16, 9)
    assert parse_aspect("16x9") == Fraction(16, 9)
    assert parse_aspect("2.39") == Fraction(239, 100)
    assert aspect_label(Fraction(16, 9)) == "16x9"
    for bad in ("wide", "0:9", "16:0", ""):
        with pytest.raises(ValueError):
            parse_aspect(bad)


def _boxed(w: int, h: int, box: Rect, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[box.y : box.bottom, box.x : box.right] = rng.integers(40, 255, (box.height, box.width, 3))
    return img


def test_pillarbox_in_16x9_frame_is_4x3_content() -> None:
    box = Rect(240, 0, 1440, 1080)
    frames = [_boxed(1920, 1080, box, s) for s in range(3)]
    found = detect_bars(frames)
    assert found == box
    lay = compute_layout(1920, 1080, Fraction(1), Fraction(16, 9), found)
    assert lay.content == box
    assert (lay.canvas_width, lay.left, lay.right) == (1920, 240, 240)
    assert lay.has_bars and lay.needs_fill and not lay.at_target


def test_anamorphic_1440x1080_master_with_black_sides() -> None:
    # HDCAM-style 1440x1080 SAR 4:3 (16:9 on screen) holding 4:3 content with bars.
    box = Rect(180, 0, 1080, 1080)
    found = detect_bars([_boxed(1440, 1080, box, s) for s in range(3)])
    assert found == box
    lay = compute_layout(1440, 1080, Fraction(4, 3), Fraction(16, 9), found)
    assert abs(lay.content_aspect - 4 / 3) < 1e-9
    assert (lay.canvas_width, lay.left) == (1440, 180)


def test_bars_with_noise_and_dark_frames() -> None:
    box = Rect(60, 0, 200, 180)
    frames = [_boxed(320, 180, box, s) for s in range(4)]
    rng = np.random.default_rng(1)
    for f in frames:  # codec noise in the bars
        f[:, :60] = rng.integers(0, 8, (180, 60, 3))
    frames.append(np.zeros((180, 320, 3), np.uint8))  # a fade to black says nothing
    assert detect_bars(frames) == box


def test_no_bars_in_a_full_picture_or_dark_scene() -> None:
    rng = np.random.default_rng(0)
    assert detect_bars([rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)]) is None
    assert detect_bars([np.zeros((48, 64, 3), np.uint8)]) is None  # all dark: no evidence
    # A dark left edge that is not dark in every frame is content, not a bar.
    a = _boxed(64, 48, Rect(16, 0, 48, 48))
    b = rng.integers(40, 255, (48, 64, 3), dtype=np.uint8)
    assert detect_bars([a, b]) is None


def test_mask_marks_exactly_the_sides() -> None:
    lay = compute_layout(64, 48)
    m = lay.mask()
    assert m.shape == (48, lay.canvas_width)
    assert m[:, : lay.left].min() == 1 and m[:, lay.canvas_width - lay.right :].min() == 1
    assert m[:, lay.left : lay.left + 64].max() == 0


def test_soft_transition_next_to_a_bar_joins_the_bar() -> None:
    box = Rect(40, 0, 160, 120)
    frames = [_boxed(240, 120, box, s) for s in range(3)]
    for f in frames:  # a scaler's soft edge: two dim columns at each side of the picture
        f[:, 40:42] = 20
        f[:, 198:200] = 60
    found = detect_bars(frames)
    assert found == Rect(42, 0, 156, 120)


@pytest.mark.parametrize(
    ("width", "height", "sar"),
    [(640, 480, Fraction(1)), (480, 360, Fraction(1)), (500, 375, Fraction(1)), (320, 240, Fraction(1)),
     (720, 480, Fraction(8, 9)), (704, 480, Fraction(10, 11)), (720, 576, Fraction(16, 15)), (350, 262, Fraction(1))],
)  # fmt: skip
def test_the_output_shows_the_target_aspect_within_a_tenth_of_a_percent(width: int, height: int, sar: Fraction) -> None:
    lay = compute_layout(width, height, sar)
    assert lay.left % 2 == 0 and lay.canvas_width % 2 == 0  # even sides, on the chroma grid
    assert abs(lay.display_aspect / (16 / 9) - 1) <= 0.001
    stored = lay.canvas_width * lay.sar / lay.canvas_height
    if abs(stored / Fraction(16, 9) - 1) <= Fraction(1, 1000):
        assert lay.output_sar == lay.sar  # only nudged where rounding misses


def test_column_runs_and_widened_runs() -> None:
    from ganime.geometry import column_runs, widened_runs

    cols = np.zeros(40, bool)
    cols[:3] = cols[10:12] = cols[30:] = True
    assert column_runs(cols) == [(0, 3), (10, 12), (30, 40)]
    assert column_runs(np.zeros(5, bool)) == []
    assert column_runs(cols, gap=7) == [(0, 12), (30, 40)]  # 7 columns apart: joined
    assert column_runs(cols, gap=6) == [(0, 3), (10, 12), (30, 40)]
    # The margin grows with the run's width; runs whose widened ranges meet are merged, ends clipped.
    assert widened_runs(cols, lambda width: width) == [(0, 6), (8, 14), (20, 40)]
    assert widened_runs(cols, lambda width: 4) == [(0, 16), (26, 40)]
