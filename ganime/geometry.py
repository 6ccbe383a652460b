"""Output geometry in display space: canvas size, side widths, burnt-in bars, masks.

Pure numpy; imports nothing from ganime.

All sizes here are *storage* pixels (what the codec stores), with the sample aspect
ratio (SAR) saying how wide one storage pixel is displayed. The canvas keeps the
source SAR, so the original picture lands in the centre pixel for pixel and the
target aspect is reached in display space: a 720x480 SAR 8:9 DVD frame (4:3 on
screen) becomes 960x480 SAR 8:9 (16:9 on screen), not a stretched 854x480.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# A source within this relative distance of the target aspect counts as already there.
# How far the output's display aspect may be from the target (0.1 %).
ASPECT_EXACT = 0.001
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Rect:
    """An axis-aligned rectangle in storage pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height


@dataclass(frozen=True)
class Layout:
    """Where the source picture goes on the output canvas and what must be generated.

    The content rectangle of the source (its picture without burnt-in bars) is placed
    at ``(left, 0)`` on a ``canvas_width`` x ``canvas_height`` canvas; the columns left
    and right of it are generated.
    """

    source_width: int
    source_height: int
    sar: Fraction
    content: Rect
    canvas_width: int
    canvas_height: int
    left: int
    right: int
    target_aspect: Fraction
    canvas_sar: Fraction | None = None  # the output's sample aspect ratio; None: the source's

    @property
    def output_sar(self) -> Fraction:
        """The SAR the output is tagged with: the source's, nudged where even side widths
        would miss the target display aspect by more than ``ASPECT_EXACT``."""
        return self.canvas_sar if self.canvas_sar is not None else self.sar

    @property
    def content_aspect(self) -> float:
        """Display aspect ratio of the source picture (bars excluded)."""
        return float(self.content.width * self.sar / self.content.height)

    @property
    def display_aspect(self) -> float:
        """Display aspect ratio of the output canvas (as players show it)."""
        return float(self.canvas_width * self.output_sar / self.canvas_height)

    @property
    def side_width(self) -> int:
        """Width of the wider generated strip (they are equal unless the canvas is odd)."""
        return max(self.left, self.right)

    @property
    def needs_fill(self) -> bool:
        """True when there is anything to generate."""
        return self.left + self.right > 0

    @property
    def has_bars(self) -> bool:
        """True when burnt-in bars were found and are cropped away."""
        c = self.content
        return (c.x, c.y, c.width, c.height) != (0, 0, self.source_width, self.source_height)

    @property
    def at_target(self) -> bool:
        """True when the source picture is already at (or wider than) the target aspect."""
        return self.content_aspect >= float(self.target_aspect) * (1 - ASPECT_TOLERANCE)

    def mask(self) -> np.ndarray:
        """(H, W) float32 mask of the canvas: 1 where pixels are generated, 0 where known."""
        m = np.zeros((self.canvas_height, self.canvas_width), np.float32)
        m[:, : self.left] = 1.0
        m[:, self.canvas_width - self.right :] = 1.0
        return m

    def describe(self) -> str:
        """One line a user can read: source -> canvas with the side widths."""
        c = self.content
        sar = "" if self.sar == 1 else f" SAR {self.sar.numerator}:{self.sar.denominator}"
        out_sar = self.output_sar
        osar = "" if out_sar == 1 else f" SAR {out_sar.numerator}:{out_sar.denominator}"
        bars = f" (picture {c.width}x{c.height} at {c.x},{c.y}, bars cropped)" if self.has_bars else ""
        return (
            f"{self.source_width}x{self.source_height}{sar}{bars} -> "
            f"{self.canvas_width}x{self.canvas_height}{osar} "
            f"(display {self.display_aspect:.3f}:1, sides {self.left}+{self.right} px)"
        )


def column_runs(cols: np.ndarray, gap: int = 0) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D bool array (the generated columns of a
    mask); runs at most ``gap`` entries apart are joined into one."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(cols).astype(np.int8), [0]])))
    out = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    if gap <= 0 or len(out) < 2:
        return out
    joined = [out[0]]
    for a, b in out[1:]:
        if a - joined[-1][1] <= gap:
            joined[-1] = (joined[-1][0], b)
        else:
            joined.append((a, b))
    return joined


def widened_runs(cols: np.ndarray, margin: Callable[[int], int]) -> list[tuple[int, int]]:
    """``column_runs``, each widened by ``margin(its width)`` either way, clipped, overlaps merged."""
    w = len(cols)
    bands: list[tuple[int, int]] = []
    for x0, x1 in column_runs(cols):
        m = margin(x1 - x0)
        lo, hi = max(0, x0 - m), min(w, x1 + m)
        if bands and lo <= bands[-1][1]:
            bands[-1] = (bands[-1][0], hi)
        else:
            bands.append((lo, hi))
    return bands


def parse_aspect(text: str) -> Fraction:
    """Parse an aspect ratio written ``16:9``, ``16/9``, ``16x9`` or ``1.778``."""
    s = text.strip().lower()
    for sep in (":", "/", "x"):
        if sep in s:
            num, _, den = s.partition(sep)
            try:
                value = Fraction(num.strip()) / Fraction(den.strip())
            except (ValueError, ZeroDivisionError):
                break
            if value > 0:
                return value
            break
    else:
        try:
            value = Fraction(s).limit_denominator(1000)
        except ValueError:
            value = Fraction(0)
        if value > 0:
            return value
    raise ValueError(f"not an aspect ratio: {text!r} (expected e.g. 16:9 or 1.85)")


def aspect_label(aspect: Fraction) -> str:
    """File-name friendly label: 16:9 -> '16x9', 2.39 -> '2.39'."""
    if aspect.denominator <= 32 and aspect.numerator <= 64:
        return f"{aspect.numerator}x{aspect.denominator}"
    return f"{float(aspect):.2f}"


def _even_down(v: int) -> int:
    return v - (v % 2)


def _even_up(v: int) -> int:
    return v + (v % 2)


def compute_layout(
    width: int,
    height: int,
    sar: Fraction | None = None,
    aspect: Fraction = Fraction(16, 9),
    content: Rect | None = None,
) -> Layout:
    """Canvas for a ``width`` x ``height`` source at ``sar`` to reach ``aspect`` on screen.

    ``content`` is the picture inside burnt-in bars (default: the whole frame). Its
    edges are moved inwards to even coordinates, so the picture is cut on the 4:2:0
    chroma grid, and both side strips have even widths: an odd offset would shift
    chroma against luma and the centre would no longer be the original picture. The
    canvas is rounded *up* to the next such width, so it never falls short of the
    target aspect (a 640x480 source becomes 856x480 with 108 px sides).
    """
    sar = Fraction(sar) if sar else Fraction(1)
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid frame size {width}x{height}")
    c = content or Rect(0, 0, width, height)
    x0, y0 = _even_up(c.x), _even_up(c.y)
    x1, y1 = _even_down(c.right), _even_down(c.bottom)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"picture area {c} is too small")
    rect = Rect(x0, y0, x1 - x0, y1 - y0)

    # Storage width that shows ``aspect`` on screen at this SAR and height.
    exact = Fraction(rect.height) * aspect / sar
    side = max(0, math.ceil((exact - rect.width) / 4) * 2)  # per side, even, rounded up
    canvas_w = rect.width + 2 * side
    canvas_sar = None
    if side and abs(canvas_w / exact - 1) > ASPECT_EXACT:
        # Even side widths overshoot (640x480 -> 856x480 is 1.783:1, GIFs up to 0.8 %):
        # the output's pixels are tagged a little narrower, so players show the target.
        canvas_sar = (sar * exact / canvas_w).limit_denominator(10_000)
    return Layout(
        source_width=width,
        source_height=height,
        sar=sar,
        content=rect,
        canvas_width=canvas_w,
        canvas_height=rect.height,
        left=side,
        right=side,
        target_aspect=aspect,
        canvas_sar=canvas_sar,
    )


def detect_bars(
    frames: list[np.ndarray],
    threshold: float = 0.11,
    min_bar: int = 4,
) -> Rect | None:
    """Find black bars burnt into the picture (pillarbox and/or letterbox).

    ``frames`` are HWC RGB arrays (uint8 or uint16) sampled across the video. A row
    or column belongs to a bar when, in every frame that is not itself dark, it is
    dark (98th percentile below ``threshold`` of full scale) and flat. Dark frames
    (fades, night shots) carry no information and are ignored, so one black frame
    cannot turn the whole picture into a bar. Bars thinner than ``min_bar`` pixels
    are ignored; up to 4 dim transition lines next to a bar join it. Returns the
    picture rectangle, or None when there are no bars.
    """
    if not frames:
        return None
    h, w = frames[0].shape[:2]
    scale = 65535.0 if frames[0].dtype == np.uint16 else 255.0
    dark_cols = np.ones(w, bool)
    dark_rows = np.ones(h, bool)
    col_peak = np.zeros(w, np.float32)  # brightest 98th percentile each column reaches
    row_peak = np.zeros(h, np.float32)
    informative = 0
    for f in frames:
        if f.shape[:2] != (h, w):
            continue
        # (H, W) brightest channel, in the frame's own integers (a reduction over the
        # colour axis, or floats, cost several times more on a whole frame).
        luma = np.maximum(np.maximum(f[..., 0], f[..., 1]), f[..., 2])
        if np.percentile(luma, 98) < threshold * scale:
            continue  # a dark frame says nothing about where the bars are
        informative += 1
        col_hi = (np.percentile(luma, 98, axis=0) / scale).astype(np.float32)
        row_hi = (np.percentile(luma, 98, axis=1) / scale).astype(np.float32)
        dark_cols &= (col_hi < threshold) & (luma.std(axis=0) < threshold / 4 * scale)
        dark_rows &= (row_hi < threshold) & (luma.std(axis=1) < threshold / 4 * scale)
        np.maximum(col_peak, col_hi, out=col_peak)
        np.maximum(row_peak, row_hi, out=row_peak)
    if informative == 0:
        return None

    def run(flags: np.ndarray) -> int:
        """Length of the leading run of True."""
        idx = np.flatnonzero(~flags)
        return int(idx[0]) if idx.size else len(flags)

    left, right = run(dark_cols), run(dark_cols[::-1])
    top, bottom = run(dark_rows), run(dark_rows[::-1])
    if left >= w or top >= h:
        return None  # everything dark: no picture to anchor on
    left, right = (left if left >= min_bar else 0), (right if right >= min_bar else 0)
    top, bottom = (top if top >= min_bar else 0), (bottom if bottom >= min_bar else 0)
    if left == right == top == bottom == 0:
        return None
    # The picture's first lines next to a bar are often a soft transition (scaler
    # ringing, a dark film edge): mirrored or blurred outwards they would draw a dark
    # line along the seam. Give the bar those few dim lines.
    left, right = _soft_edge(col_peak, left), _soft_edge(col_peak[::-1], right)
    top, bottom = _soft_edge(row_peak, top), _soft_edge(row_peak[::-1], bottom)
    return Rect(left, top, w - left - right, h - top - bottom)


def _soft_edge(peak: np.ndarray, bar: int, max_extra: int = 4, ratio: float = 0.75) -> int:
    """``bar`` extended over up to ``max_extra`` lines clearly dimmer than the picture inside them."""
    if bar == 0:
        return 0
    inside = float(np.median(peak[bar + max_extra : bar + 3 * max_extra])) if peak.size > bar + 3 * max_extra else 0
    extra = 0
    while extra < max_extra and bar + extra < peak.size and peak[bar + extra] < ratio * inside:
        extra += 1
    return bar + extra
