"""Global camera motion and shot changes, measured on small grey thumbnails.

Animation moves its camera by sliding and scaling painted backgrounds, so one
translation plus one zoom per frame explains the background; characters move on
their own and must not pull the estimate. The estimate is found in two steps:

1. phase correlation gives the dominant translation, however large (the strongest
   peak belongs to whatever covers most of the picture: the background);
2. robust Gauss-Newton refines translation and zoom together, with Huber weights
   first and Tukey weights after, so pixels that do not follow the camera (a
   character, a mouth, rain) stop counting.

The same fit says whether two frames show the same shot: after the motion is undone
the z-scored thumbnails of one shot agree, those of two shots do not, and z-scoring
makes that indifferent to fades and brightness changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Similarity:
    """``x' = a * x + bx``, ``y' = a * y + by``: zoom and translation, no rotation."""

    a: float = 1.0
    bx: float = 0.0
    by: float = 0.0

    def then(self, inner: Similarity) -> Similarity:
        """self o inner: apply ``inner`` first."""
        return Similarity(self.a * inner.a, self.a * inner.bx + self.bx, self.a * inner.by + self.by)

    def inverse(self) -> Similarity:
        return Similarity(1 / self.a, -self.bx / self.a, -self.by / self.a)

    def apply(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a * x + self.bx, self.a * y + self.by

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        """Image of the axis-aligned box (x0, y0, x1, y1) (a > 0 keeps it axis-aligned)."""
        return self.a * x0 + self.bx, self.a * y0 + self.by, self.a * x1 + self.bx, self.a * y1 + self.by

    @property
    def is_identity(self) -> bool:
        return self.a == 1.0 and self.bx == 0.0 and self.by == 0.0


IDENTITY = Similarity()


@dataclass(frozen=True)
class Match:
    """How frame ``cur`` relates to frame ``prev`` (thumbnail coordinates).

    ``motion`` maps a point of ``cur`` to where the same background point is in
    ``prev``. ``difference`` is the mean absolute difference of the z-scored
    thumbnails once the motion is undone (0 = same picture; about 1.1 for unrelated
    pictures). ``change`` is the plain mean absolute difference in 8-bit levels.
    ``gain`` and ``offset`` map prev's brightness to cur's where both show the same
    thing (fades): cur = gain * prev + offset.
    """

    motion: Similarity
    difference: float
    change: float
    gain: float
    overlap: float  # share of cur that prev also shows
    offset: float = 0.0  # cur brightness = gain * prev + offset (offset in [0, 1] units)


def thumbnail(picture: np.ndarray, factor: int) -> torch.Tensor:
    """(h // factor, w // factor) grey float thumbnail in 8-bit levels of an (h, w, 3) frame."""
    x = torch.from_numpy(np.ascontiguousarray(picture))
    scale = 255.0 / 65535.0 if picture.dtype == np.uint16 else 1.0
    if picture.dtype == np.uint16:
        x = x.to(torch.int32)
    h, w = x.shape[:2]
    x = x[: h // factor * factor, : w // factor * factor].permute(2, 0, 1)[None].float()
    grey = (x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114) * scale
    return F.avg_pool2d(grey, factor)[0, 0] if factor > 1 else grey[0, 0]


def _phase_peaks(prev: torch.Tensor, cur: torch.Tensor, count: int = 3) -> list[tuple[float, float]]:
    """The ``count`` strongest integer shifts (dx, dy) with cur(x) ~ prev(x + dx, y + dy).

    Phase correlation: one peak per layer that moves as a whole. The strongest is
    usually the background, but a big character with hard outlines can beat a flat
    painted sky, so the next peaks are returned too and the fit decides.
    """
    h, w = cur.shape
    win = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False))
    fp = torch.fft.rfft2((prev - prev.mean()) * win)
    fc = torch.fft.rfft2((cur - cur.mean()) * win)
    cross = fp * fc.conj()
    r = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-6), s=(h, w))
    peaks = []
    for _ in range(count):
        k = int(torch.argmax(r))
        dy, dx = divmod(k, w)
        ys = torch.arange(dy - 2, dy + 3) % h
        xs = torch.arange(dx - 2, dx + 3) % w
        r[ys[:, None], xs[None, :]] = -math.inf  # suppress this peak's neighbourhood
        peaks.append((float(dx - w if dx > w // 2 else dx), float(dy - h if dy > h // 2 else dy)))
    return peaks


def _sample(img: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of (h, w) or (c, h, w) ``img`` at pixel coordinates (x, y) (border clamped)."""
    h, w = img.shape[-2:]
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)[None]
    planes = img[None, None] if img.dim() == 2 else img[None]
    out = F.grid_sample(planes, grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    return out[0] if img.dim() == 2 else out


def _smooth(img: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    x = F.pad(img[None, None], (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 5))
    return F.conv2d(x, k.view(1, 1, 5, 1))[0, 0]


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = torch.zeros_like(img)
    gy = torch.zeros_like(img)
    gx[:, 1:-1] = (img[:, 2:] - img[:, :-2]) / 2
    gy[1:-1] = (img[2:] - img[:-2]) / 2
    return gx, gy


Params = tuple[float, float, float, float, float]  # zoom, x shift, y shift, gain, offset


class _Fit:
    """Robust Gauss-Newton for prev(s * (x - c) + c + t) = cur(x) on one pair of thumbnails."""

    margin = 1.0

    def __init__(self, prev: torch.Tensor, cur: torch.Tensor) -> None:
        self.h, self.w = h, w = cur.shape
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        self.cx, self.cy = (w - 1) / 2, (h - 1) / 2
        self.rx, self.ry = xs - self.cx, ys - self.cy
        # Flat colours and hard outlines linearise badly: a light blur widens the basin.
        self.prev, self.cur = _smooth(prev), _smooth(cur)
        self.gx, self.gy = _gradients(self.prev)
        self.stack = torch.stack([self.prev, self.gx, self.gy])
        self.cgx, self.cgy = _gradients(self.cur)
        # Flat paint matches any shift: only pixels with some texture tell starts apart.
        self.textured = (self.cgx.abs() + self.cgy.abs()) > 2.0

    def coords(self, p: Params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, tx, ty = p[:3]
        px, py = s * self.rx + self.cx + tx, s * self.ry + self.cy + ty
        m = self.margin
        inside = (px >= m) & (px <= self.w - 1 - m) & (py >= m) & (py <= self.h - 1 - m)
        return px, py, inside

    def inliers(self, p: Params, tolerance: float = 6.0) -> float:
        """Share of the frame's texture that ``p`` explains to within ``tolerance`` levels."""
        px, py, inside = self.coords(p)
        r = (p[3] * _sample(self.prev, px, py) + p[4] - self.cur).abs()
        return float(((r < tolerance) & inside & self.textured).sum()) / max(1, int(self.textured.sum()))

    def refine(self, p: Params, iterations: int, zoom: bool = True) -> Params:
        """Robust Gauss-Newton on (zoom, translation) and brightness (gain, offset) together.

        Brightness is part of the fit so that fades are not explained as zooms.
        """
        s, tx, ty, g, o = p
        for it in range(iterations):
            px, py, inside = self.coords((s, tx, ty, g, o))
            if int(inside.sum()) < 0.2 * self.h * self.w:
                break
            warped, wgx, wgy = _sample(self.stack, px, py)[:, inside]  # image and gradients, one pass
            r = g * warped + o - self.cur[inside]
            # Efficient second-order minimisation: the mean of both images' gradients.
            ix = (g * wgx + self.cgx[inside]) / 2
            iy = (g * wgy + self.cgy[inside]) / 2
            sigma = 1.4826 * float(r.abs().median()) + 0.5
            a = r.abs()
            if it < 3:  # Huber to settle, then Tukey so outliers stop counting at all
                k = 1.345 * sigma
                wgt = torch.where(a <= k, torch.ones_like(a), k / a)
            else:
                c = 4.685 * sigma
                wgt = torch.where(a < c, (1 - (a / c) ** 2) ** 2, torch.zeros_like(a))
            jac = torch.stack(
                [ix, iy, ix * self.rx[inside] + iy * self.ry[inside], warped / 128, torch.ones_like(warped)], dim=1
            ).double()
            jw = jac * wgt.double()[:, None]
            hess = jw.T @ jac + 1e-3 * torch.eye(5, dtype=torch.float64)
            if not zoom:  # translation only: the zoom row and column say nothing
                hess[2, :], hess[:, 2], hess[2, 2] = 0, 0, 1
            grad = jw.T @ r.double()
            if not zoom:
                grad[2] = 0
            step = torch.linalg.solve(hess, -grad)
            tx, ty, s = tx + float(step[0]), ty + float(step[1]), s + float(step[2])
            g, o = g + float(step[3]) / 128, o + float(step[4])
            if not all(math.isfinite(v) for v in (s, tx, ty, g, o)) or not (0.8 < s < 1.25 and 0.3 < g < 3):
                return p  # a runaway fit: keep the start, the caller judges it
            if float(step[:2].abs().max()) < 0.02 and abs(float(step[2])) * max(self.h, self.w) < 0.02:
                break
        return s, tx, ty, g, o


def match(
    prev: torch.Tensor,
    cur: torch.Tensor,
    hint: Similarity | None = None,
    still: float = 0.15,
    exact: Similarity | None = None,
) -> Match:
    """Camera motion from ``cur`` to ``prev`` and how well it explains the pair.

    ``hint`` (the previous frame's motion, thumbnail coordinates) is tried beside the
    phase-correlation peaks: cameras move smoothly. Pairs that differ by less than
    ``still`` levels on average are the same picture (no fit is run). With ``exact``
    (an estimate known to be close, e.g. chained through frames between), its shift
    is refined and its zoom kept.
    """
    change = float((cur - prev).abs().mean())
    if change < still:  # the same picture up to codec noise: nothing moved
        return Match(Similarity(), 0.0, change, 1.0, 1.0)
    sp, sc = float(prev.std()), float(cur.std())
    if min(sp, sc) < 1.0:  # (nearly) flat: no motion to see; compare brightness only
        return Match(Similarity(), 0.0 if abs(sp - sc) < 1.0 and change < 4 else 2.0, change, 1.0, 1.0)
    fit = _Fit(prev, cur)

    def centred(m: Similarity) -> Params:  # about the origin -> about the centre
        return m.a, m.bx - fit.cx * (1 - m.a), m.by - fit.cy * (1 - m.a), 1.0, 0.0

    if exact is not None:  # a good estimate is known: refine its shift (and brightness) only
        s, tx, ty, g, o = fit.refine(centred(exact), 6, zoom=False)
    else:
        starts: list[Params] = [(1.0, dx, dy, 1.0, 0.0) for dx, dy in _phase_peaks(prev, cur, 2)]
        starts.append((1.0, 0.0, 0.0, 1.0, 0.0))
        if hint is not None:
            starts.append(centred(hint))
        unique: list[Params] = []
        for p in starts:
            if all(abs(p[1] - q[1]) + abs(p[2] - q[2]) > 1.0 or abs(p[0] - q[0]) > 0.01 for q in unique):
                unique.append(p)
        # The start that explains most of the frame's texture is refined.
        best = max(unique, key=fit.inliers) if len(unique) > 1 else unique[0]
        s, tx, ty, g, o = fit.refine(best, 10)
    # A zoom must earn its place: on soft or flat pictures it is poorly determined and
    # would make a level pan wobble. Keep it only if it explains clearly more texture.
    if s != 1.0 and exact is None:
        # Translation of the picture centre under the zoom fit, as the start without zoom.
        flat = fit.refine((1.0, tx, ty, g, o), 4, zoom=False)
        if fit.inliers((s, tx, ty, g, o)) < fit.inliers(flat) + 0.02:
            s, tx, ty, g, o = flat
    motion = Similarity(s, fit.cx + tx - s * fit.cx, fit.cy + ty - s * fit.cy)
    px, py, inside = fit.coords((s, tx, ty, g, o))
    overlap = float(inside.float().mean())
    if overlap < 0.2:
        return Match(motion, 2.0, change, 1.0, overlap)
    warped = _sample(prev, px, py)[inside]
    now = cur[inside]
    zw = (warped - warped.mean()) / (warped.std() + 1e-6)
    zc = (now - now.mean()) / (now.std() + 1e-6)
    difference = float((zw - zc).abs().mean())
    if abs(g - 1) < 0.01 and abs(o) < 1.0:  # no fade: keep brightness exactly
        g, o = 1.0, 0.0
    return Match(motion, difference, change, g, overlap, o / 255)


def to_frame(motion: Similarity, factor: int, offset_x: float = 0.0) -> Similarity:
    """A thumbnail-space motion in full-resolution coordinates, shifted by ``offset_x``.

    A thumbnail pixel i covers full pixels [i*f, (i+1)*f), so its centre is at
    f*i + (f-1)/2; the picture starts ``offset_x`` columns into the canvas.
    """
    c = (factor - 1) / 2
    # full = f * thumb + c  =>  thumb = (full - c) / f
    inner = Similarity(1 / factor, -(c + offset_x) / factor, -c / factor)  # canvas -> thumb
    outer = Similarity(factor, c + offset_x, c)  # thumb -> canvas
    return outer.then(motion).then(inner)


def to_thumb(motion: Similarity, factor: int, offset_x: float = 0.0) -> Similarity:
    """The inverse of ``to_frame``: a canvas-space motion in thumbnail coordinates."""
    c = (factor - 1) / 2
    inner = Similarity(factor, c + offset_x, c)  # thumb -> canvas
    outer = Similarity(1 / factor, -(c + offset_x) / factor, -c / factor)  # canvas -> thumb
    return outer.then(motion).then(inner)
