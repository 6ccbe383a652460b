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
import threading
import weakref
from dataclasses import dataclass

import numpy as np


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


def block_sums(picture: np.ndarray, factor: int) -> np.ndarray:
    """(h // factor, w // factor, 3) integer sums of the ``factor`` x ``factor`` blocks of an
    (h, w, 3) frame: exact, in the narrowest unsigned type that holds them.

    Rows of each block first, then its columns: one light pass over the frame, which
    matters because every frame of an episode goes through here. The grey thumbnail
    (``thumbnail``) and the colour one (``temporal.records.colour_thumbnail``) are both
    made from these sums, so a frame is summed once for the two.
    """
    h, w = picture.shape[:2]
    th, tw = h // factor, w // factor
    top = 255 if picture.dtype == np.uint8 else 65535
    acc = np.uint16 if factor * factor * top < 1 << 16 else np.uint32 if factor * factor * top < 1 << 32 else np.uint64
    x = picture[: th * factor, : tw * factor].reshape(th, factor, tw * factor * 3)
    rows = x[:, 0].astype(acc)
    for i in range(1, factor):
        rows += x[:, i]
    return np.add.reduceat(rows.reshape(th, tw * factor, 3), np.arange(0, tw * factor, factor), axis=1)


def grey_of(sums: np.ndarray, factor: int, top: int = 255) -> np.ndarray:
    """The grey thumbnail (8-bit levels, float32) of ``block_sums`` of a frame whose
    samples go up to ``top``: the colour weights applied to the small result."""
    weights = np.array([0.299, 0.587, 0.114], np.float32) * np.float32(255 / top / (factor * factor))
    return sums.astype(np.float32) @ weights


def thumbnail(picture: np.ndarray, factor: int) -> np.ndarray:
    """(h // factor, w // factor) grey float32 thumbnail in 8-bit levels of an (h, w, 3) frame."""
    return grey_of(block_sums(picture, factor), factor, 255 if picture.dtype == np.uint8 else 65535)


def _phase_peaks(prev: np.ndarray, cur: np.ndarray, count: int = 3) -> list[tuple[float, float]]:
    """The ``count`` strongest integer shifts (dx, dy) with cur(x) ~ prev(x + dx, y + dy).

    Phase correlation: one peak per layer that moves as a whole. The strongest is
    usually the background, but a big character with hard outlines can beat a flat
    painted sky, so the next peaks are returned too and the fit decides.
    """
    h, w = cur.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    fp = np.fft.rfft2((prev - prev.mean()) * win)
    fc = np.fft.rfft2((cur - cur.mean()) * win)
    cross = fp * fc.conj()
    r = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-6), s=(h, w))
    peaks = []
    for _ in range(count):
        k = int(np.argmax(r))
        dy, dx = divmod(k, w)
        ys = np.arange(dy - 2, dy + 3) % h
        xs = np.arange(dx - 2, dx + 3) % w
        r[ys[:, None], xs[None, :]] = -math.inf  # suppress this peak's neighbourhood
        peaks.append((float(dx - w if dx > w // 2 else dx), float(dy - h if dy > h // 2 else dy)))
    return peaks


def taps(coords: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation along one axis of length ``size``: (index, next index, weight of next).

    A zero weight repeats the index, so a whole-pixel coordinate depends on that pixel alone.
    """
    c0 = np.minimum(np.maximum(np.floor(coords), 0), size - 1)
    frac = np.minimum(np.maximum(coords - c0, 0), 1).astype(np.float32)
    i0 = c0.astype(np.intp)
    i1 = np.minimum(i0 + (frac > 0), size - 1)
    return i0, i1, frac


def _consecutive(idx: np.ndarray) -> bool:
    """Whether sorted indices are i, i+1, i+2, ...

    Floors of increasing affine coordinates step by floor(a) or ceil(a), so spanning
    exactly len - 1 means every step is 1.
    """
    return int(idx[-1]) - int(idx[0]) == idx.size - 1


def _take(image: np.ndarray, idx: np.ndarray, axis: int = 1) -> np.ndarray:
    """``image`` at indices ``idx`` along ``axis`` (0 rows, 1 columns); a slice (no gather)
    when the indices are consecutive, as in any pure shift."""
    if _consecutive(idx):
        a, b = int(idx[0]), int(idx[-1]) + 1
        return image[a:b] if axis == 0 else image[:, a:b]
    return np.take(image, idx, axis=axis)  # several times faster than image[:, idx] on (h, w, C)


def _cubic_axis(image: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Catmull-Rom interpolation of ``image`` (float32) along ``axis`` (0 rows, 1 columns)
    at increasing ``coords``, clamped to the range of the two nearest samples.

    The clamp keeps the cubic's sharpness without its ringing: a dark outline next to
    flat paint gets no bright halo.
    """
    size = image.shape[axis]
    i0, i1, f = taps(coords, size)
    near = [np.maximum(i0 - 1, 0), i0, i1, np.minimum(i0 + 2, size - 1)]
    f2, f3 = f * f, f * f * f
    weights = (-0.5 * f3 + f2 - 0.5 * f, 1.5 * f3 - 2.5 * f2 + 1, -1.5 * f3 + 2 * f2 + 0.5 * f, 0.5 * f3 - 0.5 * f2)
    shape = [1, 1, 1]
    shape[axis] = -1

    taken = [_take(image, k, axis) for k in near]
    out = taken[0] * weights[0].reshape(shape)
    for t, wk in zip(taken[1:], weights[1:], strict=True):
        out += t * wk.reshape(shape)
    bound = np.minimum(taken[1], taken[2])
    np.maximum(out, bound, out=out)
    np.maximum(taken[1], taken[2], out=bound)  # (reused: now the upper bound)
    return np.minimum(out, bound, out=out)


def whole(c: np.ndarray) -> bool:
    """Whether every coordinate falls on a pixel centre (no interpolation needed)."""
    return bool((c == np.floor(c)).all())


def sample_grid(image: np.ndarray, x: np.ndarray, y: np.ndarray, cubic: bool = False) -> np.ndarray:
    """(len(y), len(x), C) float32 samples of an (h, w, C) image on the grid y x x:
    bilinear, or with ``cubic`` Catmull-Rom clamped to the nearest samples' range.

    Zoom and shift keep rows and columns apart (x' depends on x alone, y' on y), so a
    warped rectangle is two 1-D interpolations: columns first, then rows. ``x`` and
    ``y`` increase; coordinates outside the image are clamped to its border. Bilinear
    at half a pixel halves the finest detail; sides copied from other frames (and
    copied again through the shot memory) came out softer than the picture.
    """
    h, w = image.shape[:2]
    if cubic:
        lo, hi = max(int(np.floor(y[0])) - 1, 0), min(int(np.floor(y[-1])) + 3, h)
        cols = _cubic_axis(image[lo:hi].astype(np.float32, copy=False), x, 1)
        rows = np.asarray(y, np.float64) - lo
        if whole(rows) and rows[0] >= 0 and rows[-1] <= hi - lo - 1:
            # Whole rows (a level pan): the cubic's weights there are 0, 1, 0, 0, so the
            # rows themselves are its values, bit for bit, without the pass.
            return _take(cols, rows.astype(np.intp), axis=0)
        return _cubic_axis(cols, rows, 0)
    x0, x1, fx = taps(x, w)
    y0, y1, fy = taps(y, h)
    lo, hi = int(y0[0]), int(y1[-1]) + 1
    band = image[lo:hi]
    cols = _take(band, x0).astype(np.float32)
    if fx.any():
        cols += (_take(band, x1) - cols) * fx[None, :, None]
    if not fy.any():
        if _consecutive(y0) and hi - lo == y0.size:
            return cols  # exactly the rows lo..hi-1
        return cols[y0 - lo]
    top = cols[y0 - lo]
    return top + (cols[y1 - lo] - top) * fy[:, None, None]


def span(flags: np.ndarray) -> tuple[int, int] | None:
    """[first, last + 1) of the set entries of a 1-D bool array (None when none is set).

    Used on monotone coordinates, where the set entries are one run.
    """
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return None
    return int(idx[0]), int(idx[-1]) + 1


def _smooth(img: np.ndarray) -> np.ndarray:
    """A 5-tap binomial blur with replicated borders."""
    k = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
    h, w = img.shape
    x = np.pad(img, 2, mode="edge")
    x = sum(k[i] * x[:, i : i + w] for i in range(5))
    return sum(k[i] * x[i : i + h] for i in range(5)).astype(np.float32)


def _gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = np.zeros_like(img)
    gy = np.zeros_like(img)
    gx[:, 1:-1] = (img[:, 2:] - img[:, :-2]) / 2
    gy[1:-1] = (img[2:] - img[:-2]) / 2
    return gx, gy


def median(a: np.ndarray) -> float:
    """``np.median`` of an array, by one partition (np.median's own overhead is ten times this)."""
    flat = a.reshape(-1)
    n = flat.size
    k = n // 2
    if n % 2:
        return float(np.partition(flat, k)[k])
    part = np.partition(flat, (k - 1, k))
    return (float(part[k - 1]) + float(part[k])) / 2


def nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=1)`` of a (k, m, c) array, the same values (NaN where a row
    holds none) by one sort: numpy's own goes through masked arrays or a Python call per
    row and channel below 600 values a row, which made it most of a panning shot's
    propagation (``temporal.propagate``: 24 s of 27 s on 10 s of a synthetic pan)."""
    if a.shape[1] == 0:
        return np.full((a.shape[0], a.shape[2]), np.nan, a.dtype)
    s = np.sort(a, axis=1)  # NaN sorts last
    n = np.count_nonzero(~np.isnan(a), axis=1)  # (k, c)
    lo = np.maximum(n - 1, 0) // 2
    hi = np.minimum(n // 2, a.shape[1] - 1)
    low = np.take_along_axis(s, lo[:, None, :], axis=1)[:, 0]
    high = np.take_along_axis(s, hi[:, None, :], axis=1)[:, 0]
    # As np.median: the middle value, or the mean of the two middle values.
    med = np.where(lo == hi, low, (low + high) / np.asarray(2, a.dtype))
    return np.where(n > 0, med, np.asarray(np.nan, a.dtype))


# Residual (8-bit levels, on the lightly blurred thumbnails) within which a pixel counts
# as explained when a motion has to beat standing still: near codec noise, so a still
# background explains itself fully while a real pan of a tenth of a pixel still tells.
# (Against 6, the tolerance that picks the start: a character's pull wins there.)
STILL_TOLERANCE = 2.0


class _Prepared:
    """What the fit needs of one thumbnail, whichever side of a pair it is on."""

    def __init__(self, thumb: np.ndarray) -> None:
        self.thumb = weakref.ref(thumb)
        # Flat colours and hard outlines linearise badly: a light blur widens the basin.
        self.smooth = _smooth(thumb)
        self.gx, self.gy = gx, gy = _gradients(self.smooth)
        self.stack = np.stack([self.smooth, gx, gy], axis=-1)  # sampled together in one pass
        # Flat paint matches any shift: only pixels with some texture tell starts apart.
        self.textured = (np.abs(gx) + np.abs(gy)) > 2.0
        self.texture = max(1, int(self.textured.sum()))


# Each frame is matched against the next one, and some against frames further back:
# its preparation is kept while the thumbnail lives (a weak reference tells).
# A conversion matches on two threads (consecutive frames while decoding, drift in
# the engine), hence the lock.
_PREPARED: dict[int, _Prepared] = {}
_KEEP = 32
_LOCK = threading.Lock()


def _prepared(thumb: np.ndarray) -> _Prepared:
    with _LOCK:
        p = _PREPARED.get(id(thumb))
    if p is not None and p.thumb() is thumb:
        return p
    p = _Prepared(thumb)
    with _LOCK:
        _PREPARED.pop(id(thumb), None)
        while len(_PREPARED) >= _KEEP:
            del _PREPARED[next(iter(_PREPARED))]
        _PREPARED[id(thumb)] = p
    return p


Params = tuple[float, float, float, float, float]  # zoom, x shift, y shift, gain, offset
Box = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1


class _Fit:
    """Robust Gauss-Newton for prev(s * (x - c) + c + t) = cur(x) on one pair of thumbnails.

    Without rotation the warp is separable and the part of cur that lands inside prev
    is a rectangle, so everything here is dense slices of small numpy arrays (whose
    calls cost a fraction of torch's at this size).
    """

    margin = 1.0

    def __init__(self, prev: np.ndarray, cur: np.ndarray) -> None:
        self.h, self.w = h, w = cur.shape
        self.cx, self.cy = (w - 1) / 2, (h - 1) / 2
        self.rx = np.arange(w, dtype=np.float32) - self.cx
        self.ry = np.arange(h, dtype=np.float32) - self.cy
        self.raw = prev[..., None]
        p, c = _prepared(prev), _prepared(cur)
        self.prev, self.stack = p.smooth, p.stack
        self.cur, self.cgx, self.cgy = c.smooth, c.gx, c.gy
        self.textured, self.texture = c.textured, c.texture

    def coords(self, p: Params) -> tuple[np.ndarray, np.ndarray, Box | None]:
        """Where each column and row of cur lands in prev, and the box of cur that lands inside."""
        s, tx, ty = p[:3]
        px = s * self.rx + (self.cx + tx)
        py = s * self.ry + (self.cy + ty)
        m = self.margin
        cols = span((px >= m) & (px <= self.w - 1 - m))
        rows = span((py >= m) & (py <= self.h - 1 - m))
        if cols is None or rows is None:
            return px, py, None
        return px, py, (rows[0], rows[1], cols[0], cols[1])

    def inliers(self, p: Params, tolerance: float = 6.0) -> float:
        """Share of the frame's texture that ``p`` explains to within ``tolerance`` levels."""
        px, py, box = self.coords(p)
        if box is None:
            return 0.0
        r0, r1, c0, c1 = box
        warped = sample_grid(self.stack[..., :1], px[c0:c1], py[r0:r1])[..., 0]
        r = np.abs(p[3] * warped + p[4] - self.cur[r0:r1, c0:c1])
        return int(((r < tolerance) & self.textured[r0:r1, c0:c1]).sum()) / self.texture

    def refine(self, p: Params, iterations: int, zoom: bool = True) -> Params:
        """Robust Gauss-Newton on (zoom, translation) and brightness (gain, offset) together.

        Brightness is part of the fit so that fades are not explained as zooms.
        """
        s, tx, ty, g, o = p
        for it in range(iterations):
            px, py, box = self.coords((s, tx, ty, g, o))
            if box is None or (box[1] - box[0]) * (box[3] - box[2]) < 0.2 * self.h * self.w:
                break
            r0, r1, c0, c1 = box
            warped = sample_grid(self.stack, px[c0:c1], py[r0:r1])  # image and gradients, one pass
            wv, wgx, wgy = warped[..., 0], warped[..., 1], warped[..., 2]
            r = g * wv + o - self.cur[r0:r1, c0:c1]
            # Efficient second-order minimisation: the mean of both images' gradients.
            ix = (g * wgx + self.cgx[r0:r1, c0:c1]) / 2
            iy = (g * wgy + self.cgy[r0:r1, c0:c1]) / 2
            a = np.abs(r)
            sigma = 1.4826 * median(a) + 0.5
            if it < 3:  # Huber to settle, then Tukey so outliers stop counting at all
                k = 1.345 * sigma
                wgt = np.minimum(1.0, k / np.maximum(a, 1e-12))
            else:
                c = 4.685 * sigma
                wgt = np.where(a < c, (1 - (a / c) ** 2) ** 2, 0.0)
            zcol = ix * self.rx[None, c0:c1] + iy * self.ry[r0:r1, None]
            jac = np.stack([ix, iy, zcol, wv / 128, np.ones_like(wv)]).reshape(5, -1).astype(np.float64)
            jw = jac * wgt.reshape(1, -1)
            hess = jw @ jac.T + 1e-3 * np.eye(5)
            grad = jw @ r.reshape(-1).astype(np.float64)
            if not zoom:  # translation only: the zoom row and column say nothing
                hess[2, :], hess[:, 2], hess[2, 2] = 0, 0, 1
                grad[2] = 0
            step = np.linalg.solve(hess, -grad)
            tx, ty, s = tx + float(step[0]), ty + float(step[1]), s + float(step[2])
            g, o = g + float(step[3]) / 128, o + float(step[4])
            if not all(math.isfinite(v) for v in (s, tx, ty, g, o)) or not (0.8 < s < 1.25 and 0.3 < g < 3):
                return p  # a runaway fit: keep the start, the caller judges it
            if max(abs(step[0]), abs(step[1])) < 0.02 and abs(float(step[2])) * max(self.h, self.w) < 0.02:
                break
        return s, tx, ty, g, o


def _beats_still(fit: _Fit, p: Params) -> bool:
    """Whether motion ``p`` explains more of the picture's texture than standing still
    does (at the same brightness), counting at ``STILL_TOLERANCE``."""
    if p[:3] == (1.0, 0.0, 0.0):
        return False
    still = (1.0, 0.0, 0.0, p[3], p[4])
    return fit.inliers(p, STILL_TOLERANCE) > fit.inliers(still, STILL_TOLERANCE)


def match(
    prev: np.ndarray,
    cur: np.ndarray,
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
    change = float(np.abs(cur - prev).mean())
    if change < still:  # the same picture up to codec noise: nothing moved
        return Match(Similarity(), 0.0, change, 1.0, 1.0)
    sp, sc = float(prev.std(ddof=1)), float(cur.std(ddof=1))
    if min(sp, sc) < 1.0:  # (nearly) flat: no motion to see; compare brightness only
        return Match(Similarity(), 0.0 if abs(sp - sc) < 1.0 and change < 4 else 2.0, change, 1.0, 1.0)
    fit = _Fit(prev, cur)

    def centred(m: Similarity) -> Params:  # about the origin -> about the centre
        return m.a, m.bx - fit.cx * (1 - m.a), m.by - fit.cy * (1 - m.a), 1.0, 0.0

    if exact is not None:  # a good estimate is known: refine its shift (and brightness) only
        s, tx, ty, g, o = fit.refine(centred(exact), 6, zoom=False)
        # A camera still since then stays still unless the refined shift beats that (see
        # below); a moving one takes the refinement.
        if exact.is_identity and not _beats_still(fit, (s, tx, ty, g, o)):
            s, tx, ty = 1.0, 0.0, 0.0
    else:
        # A still camera and the last motion come first, and starts within half a pixel
        # of one another are one start. (A 1 px duplicate rule once dropped "still" for
        # a character's phase peak a pixel away: the camera followed the character.)
        starts: list[Params] = [(1.0, 0.0, 0.0, 1.0, 0.0)]
        if hint is not None:
            starts.append(centred(hint))
        starts += [(1.0, dx, dy, 1.0, 0.0) for dx, dy in _phase_peaks(prev, cur, 2)]
        unique: list[Params] = []
        for p in starts:
            if all(abs(p[1] - q[1]) + abs(p[2] - q[2]) > 0.5 or abs(p[0] - q[0]) > 0.01 for q in unique):
                unique.append(p)
        # Under a fade no start explains the texture at the old brightness, and a
        # character's displacement could win by chance: each start is also tried at
        # the brightness the two frames' statistics suggest.
        g0 = sc / sp
        o0 = float(cur.mean()) - g0 * float(prev.mean())
        if abs(g0 - 1) > 0.03 or abs(o0) > 2.0:
            unique += [(q[0], q[1], q[2], g0, o0) for q in unique]
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
    # Standing still must be beaten too: a big character moving over a still background
    # pulls the fit a fraction of a pixel its way, and the sides would wander with it
    # (on a real clip, by up to 7 px within a second).
    if exact is None and abs(tx) + abs(ty) < 1.0 and abs(s - 1) < 0.01 and not _beats_still(fit, (s, tx, ty, g, o)):
        s, tx, ty = 1.0, 0.0, 0.0
    motion = Similarity(s, fit.cx + tx - s * fit.cx, fit.cy + ty - s * fit.cy)
    px, py, box = fit.coords((s, tx, ty, g, o))
    overlap = 0.0 if box is None else (box[1] - box[0]) * (box[3] - box[2]) / (fit.h * fit.w)
    if box is None or overlap < 0.2:
        return Match(motion, 2.0, change, 1.0, overlap)
    r0, r1, c0, c1 = box
    warped = sample_grid(fit.raw, px[c0:c1], py[r0:r1])[..., 0]
    now = cur[r0:r1, c0:c1]
    zw = (warped - warped.mean()) / (warped.std(ddof=1) + 1e-6)
    zc = (now - now.mean()) / (now.std(ddof=1) + 1e-6)
    difference = float(np.abs(zw - zc).mean())
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
