"""The records the engine's parts share (the canvas geometry, a frame under way, the sides
last shown, the shot memory's panorama) and array helpers on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import video
from ..geometry import Layout
from ..models.classical import dilate
from ..motion import IDENTITY, Match, Similarity, block_sums, sample_grid, span, taps, whole

# Levels of mean brightness a held drawing's picture may drift from the frame its sides
# were made for (a slow fade) before the sides are made again. At ``hold`` (0.6) a clip
# drawn on threes with a moving camera renders more frames anew and flickers more
# (anime_cuts 1.98 -> 2.15); at 1 no eval clip changes.
RELIGHT = 1.0


@dataclass(frozen=True)
class Geometry:
    """Where the sides are on the canvas, as every part of the engine needs it (read only).

    The sides are handled as one (H, S) grid: the left strip's columns, then the right's.
    """

    layout: Layout
    h: int  # canvas height (the picture's: sides are never above or below it)
    w: int  # canvas width
    pic_w: int  # picture width
    left: int  # canvas column where the picture starts (the left strip's width)
    factor: int  # canvas pixels per analysis-thumbnail pixel
    side_cols: torch.Tensor  # (S,) float: the canvas column of each side-grid column
    strips: tuple[tuple[int, int], ...]  # side-grid column ranges [s0, s1) of the strips present

    @classmethod
    def of(cls, layout: Layout, thumb_height: int) -> Geometry:
        h, w, pic_w = layout.canvas_height, layout.canvas_width, layout.content.width
        side_cols = torch.cat([torch.arange(0, layout.left), torch.arange(layout.left + pic_w, w)]).float()
        strips = tuple(r for r in ((0, layout.left), (layout.left, side_cols.numel())) if r[1] > r[0])
        return cls(layout, h, w, pic_w, layout.left, max(1, round(h / thumb_height)), side_cols, strips)

    @property
    def n_side(self) -> int:
        """Side pixels per frame (0: the canvas is the picture)."""
        return self.h * self.side_cols.numel()


def scale_of(picture: torch.Tensor) -> float:
    """The top sample value of a picture (``Entry.picture``: uint8, or int32 holding 16-bit samples)."""
    return 65535.0 if picture.dtype == torch.int32 else 255.0


def at_brightness(values: np.ndarray, t: Entry) -> np.ndarray:
    """Shot-memory values (reference brightness) at frame t's brightness."""
    if t.gain == 1.0 and t.offset == 0.0:
        return values
    return np.clip(values * t.gain + t.offset, 0, 1)


@dataclass(frozen=True)
class Prepared:
    """A frame with what analysis needs of it, made by ``TemporalFiller.prepare``."""

    frame: video.Frame
    picture: torch.Tensor  # (h, w, 3) source samples of the picture area, uint8 or int32 (16-bit)
    thumb: np.ndarray  # grey, 8-bit levels
    contrast: float  # the thumbnail's standard deviation (levels): blank frames have next to none
    # The camera motion from the frame prepared just before, measured here so that a
    # conversion does it on the decoding thread; ``hint`` is what it was measured from.
    # The engine uses it only when it would have measured the very same pair, same hint.
    match: Match | None = None
    hint: Similarity | None = None
    colour: np.ndarray | None = None  # the colour thumbnail (``Entry.colour``), made there too


@dataclass
class Entry:
    """One frame on its way through the engine."""

    index: int
    frame: video.Frame
    picture: torch.Tensor  # (h, w, 3) source samples, uint8 or int32 (16-bit)
    thumb: np.ndarray
    contrast: float
    shot: int = -1
    to_ref: Similarity = IDENTITY  # canvas coordinates -> shot reference
    gain: float = 1.0  # brightness: value here = gain * value in the reference frame + offset
    offset: float = 0.0
    fit: float = 0.0  # how badly the camera motion explains this frame against the last (0 = exactly)
    single: bool = False  # filled on its own (flash or blank)
    held: bool = False  # repeats the previous frame
    continues: bool = False  # starts a new shot that continues the last one's scene (a long zoom)
    decided: bool = False
    match: Match | None = None
    moving: np.ndarray | None = None  # thumbnail-sized: moves against the camera (made when first needed)
    colour: np.ndarray | None = None  # (th, tw, 3) colour thumbnail in 8-bit levels (made when first needed)


@dataclass
class Shown:
    """The sides of the last frame rendered, for held drawings and cross-fades."""

    index: int
    values: torch.Tensor  # (H, S, 3) in [0, 1], before the seam blend
    sides: np.ndarray  # (H, S, 3) output samples, seam blended
    seam_thumb: np.ndarray  # thumbnail of the frame whose picture edge the seam blends
    brightness: float  # mean of the thumbnail of the frame the sides were made for
    trace: torch.Tensor | None = None  # (H, S) share copied from characters (TemporalOptions.provenance)


@dataclass
class Panorama:
    """The shot memory: a panorama in reference coordinates, first value written wins."""

    x0: int
    y0: int
    values: np.ndarray  # (h, w, 3) float32 in [0, 1]: sides are read from it as (rows, columns, colour)
    valid: np.ndarray  # (h, w) bool
    made: np.ndarray  # (h, w) bool: generated by the model (or smoothed over), not seen in a frame
    gain: float = 1.0  # brightness gain of the frame that started it (see SideTrust.light)
    trace: np.ndarray | None = None  # (h, w, 1) float32: share copied from characters (provenance only)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.values.shape[1], self.y0 + self.values.shape[0]


def memory_grid(
    mem: Panorama, x: np.ndarray, y: np.ndarray, plane: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(len(y), len(x), 3) values and validity of the memory at reference points y x x.

    Valid only where every memory pixel the sample mixes is valid. ``plane``: an (h, w, C)
    array laid out as the memory (its trace) sampled instead of its values.
    """
    h, w = mem.valid.shape
    gx, gy = x - mem.x0, y - mem.y0
    values = mem.values if plane is None else plane
    out = np.zeros((y.size, x.size, values.shape[2]), np.float32)
    ok = np.zeros((y.size, x.size), bool)
    cs, rs = span((gx >= 0) & (gx <= w - 1)), span((gy >= 0) & (gy <= h - 1))
    if cs is None or rs is None:
        return out, ok
    (c0, c1), (r0, r1) = cs, rs
    gx, gy = gx[c0:c1], gy[r0:r1]
    if whole(gx) and whole(gy):  # whole-pixel positions (a still camera): the memory's own pixels
        rows = slice(int(gy[0]), int(gy[0]) + gy.size) if whole_run(gy) else gy.astype(np.intp)
        cols = gx.astype(np.intp)
        out[r0:r1, c0:c1] = np.take(values[rows], cols, axis=1)
        ok[r0:r1, c0:c1] = np.take(mem.valid[rows], cols, axis=1)
        return out, ok
    out[r0:r1, c0:c1] = sample_grid(values, gx, gy, cubic=True)
    x0, x1, _ = taps(gx, w)
    y0, y1, _ = taps(gy, h)
    v = mem.valid[:, x0] & mem.valid[:, x1]
    ok[r0:r1, c0:c1] = v[y0] & v[y1]
    return out, ok


def widen(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` widened by ``radius`` pixels every way (a square)."""
    if radius <= 0 or not mask.any():
        return mask
    return dilate(torch.from_numpy(mask), radius).numpy()


def whole_run(c: np.ndarray) -> bool:
    """Whether increasing, evenly spaced coordinates are consecutive whole pixels (k, k + 1, ...)."""
    mid = c.size // 2
    return float(c[0]).is_integer() and float(c[-1] - c[0]) == c.size - 1 and float(c[mid] - c[0]) == mid


def bbox(flags: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1): the bounding box of the set entries of a 2-D bool array, or None."""
    rows = span(flags.any(axis=1))
    if rows is None:
        return None
    cols = span(flags.any(axis=0))
    assert cols is not None
    return rows[0], rows[1], cols[0], cols[1]


def relight(values: np.ndarray, u: Entry, t: Entry) -> np.ndarray:
    """Values seen in frame u, at frame t's brightness (fades)."""
    if u.gain == t.gain and u.offset == t.offset:
        return values
    return np.clip(t.gain * (values - u.offset) / u.gain + t.offset, 0, 1)


def relit_levels(values: np.ndarray, then: tuple[float, float], now: tuple[float, float]) -> np.ndarray:
    """Thumbnail values (8-bit levels) seen at light ``then``, at light ``now``: each a
    frame's (gain, offset) against the shot's reference (``Entry.gain``, ``Entry.offset``)."""
    return (values - then[1] * 255) / then[0] * now[0] + now[1] * 255


def colour_thumbnail(picture: torch.Tensor, shape: tuple[int, ...], factor: int) -> np.ndarray:
    """(th, tw, 3) block means of a (h, w, 3) picture (uint8 or int32 16-bit samples), 8-bit levels."""
    th, tw = shape
    if picture.dtype == torch.uint8:
        return colour_of(block_sums(picture[: th * factor, : tw * factor].numpy(), factor), factor)
    pic = picture[: th * factor, : tw * factor].float() / 257.0  # 16-bit samples
    return pic.view(th, factor, tw, factor, 3).mean(dim=(1, 3)).numpy()


def colour_of(sums: np.ndarray, factor: int) -> np.ndarray:
    """The colour thumbnail (8-bit levels) of an 8-bit frame's ``motion.block_sums``: exact
    integer sums, one division last (the same floats as a float mean, at half the cost)."""
    return sums.astype(np.float32) / np.float32(factor * factor)
