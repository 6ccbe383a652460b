"""Copying what other frames of the shot show, and keeping what moves against the camera out of it."""

from __future__ import annotations

import math
from collections import deque
from functools import partial

import numpy as np
import torch

from .. import threads
from ..motion import nanmedian_rows, sample_grid, span, to_thumb
from .options import TemporalOptions
from .records import Entry, Geometry, bbox, colour_thumbnail, relight, relit_levels, widen

STRIP_THREAD = "ganime-bands"  # the thread the right strip is painted on (shared with ``patch``'s bands)


class Propagation:
    """What other frames of the shot show of a frame's sides, and what moves against the camera.

    Stateless apart from its settings: it reads the entries given (``Entry.to_ref``,
    thumbnails, pictures) and caches on each entry only what is that entry's own
    (``Entry.moving``, ``Entry.colour``). ``propagate`` gives the side grid's values
    copied from the nearest frame showing each pixel, with where nothing did and how
    far away the frame that did is; ``moving`` what of a frame's picture moves
    against the camera (never copied, remembered or offered to a fill as a source).
    """

    def __init__(self, geometry: Geometry, options: TemporalOptions) -> None:
        self.layout, self.options = geometry.layout, options
        self.h, self.w, self.pic_w, self.left = geometry.h, geometry.w, geometry.pic_w, geometry.left
        self.factor, self.strips = geometry.factor, geometry.strips

    def moving(self, u: Entry, buf: deque[Entry]) -> np.ndarray:
        """(th, tw) bool: thumbnail pixels of u's picture that move against the camera.

        u is compared, in colour, the camera motion and light change undone, with frames
        up to ``moving_span`` before and after it; a pixel any of them disagrees with (by
        more than ``moving``, at the best of the pixels within ``moving_reach`` of the aligned one) is
        moving (see ``moving_unseen`` for what no other frame shows). That is cautious: the background a
        character covers in another frame counts as moving too, and is generated or taken
        from frames that show it, never pasted from one that may hold the character.
        """
        if u.moving is not None:
            return u.moving
        th, tw = u.thumb.shape
        moving = np.zeros((th, tw), bool)
        if self.options.moving <= 0:
            u.moving = moving
            return moving
        reach = {e.index: e for e in self.rigid_reach(u, buf)}
        # Frames 2, 4, 8 ... up to ``moving_span`` away each way: the far ones catch the
        # inside of a flat-coloured character (a near one still shows it there), the near
        # ones see the picture's edges, which the far ones on one side no longer show.
        residuals = []
        d = 2
        while d <= self.options.moving_span:
            for v in (reach.get(u.index - d), reach.get(u.index + d)):
                if v is not None and v.thumb.shape == u.thumb.shape:
                    residuals.append(self._residual(u, v))
            d *= 2
        if residuals:
            with np.errstate(invalid="ignore"):
                worst = np.fmax.reduce(residuals) if len(residuals) > 1 else residuals[0]
            unseen = np.isnan(worst)
            moving = np.nan_to_num(worst, nan=0.0) > self.options.moving
            g = self.options.moving_grow
            if moving.any():
                # What no other frame shows (the edge of a pan's first frames) cannot be told
                # from a character: beside something seen moving it counts as moving too,
                # as far as 4 times the widening; elsewhere it is taken for background.
                if self.options.moving_unseen and unseen.any():
                    moving |= unseen & widen(moving, 4 * max(1, g))
                moving = widen(moving, g)
        u.moving = moving
        return moving

    def _residual(self, u: Entry, v: Entry) -> np.ndarray:
        """(th, tw) colour difference (max over channels, 8-bit levels) of u's thumbnail from
        v's, the camera motion and light change undone; NaN where v does not show u's pixel."""
        th, tw = u.thumb.shape
        # Thumbnail coordinates of u -> v, through the shot's reference frame.
        m = to_thumb(v.to_ref.inverse().then(u.to_ref), self.factor, self.left)
        xs = m.a * np.arange(tw, dtype=np.float64) + m.bx
        ys = m.a * np.arange(th, dtype=np.float64) + m.by
        seen = np.logical_and.outer((ys >= 0) & (ys <= th - 1), (xs >= 0) & (xs <= tw - 1))
        other = sample_grid(self._colour(v), xs, ys)
        other = relit_levels(other, (v.gain, v.offset), (u.gain, u.offset))
        # In colour: a character as bright as the wall behind it still differs in hue. The
        # best of the pixels within ``moving_reach`` of the aligned one: a sharp outline a
        # little off (the camera estimate, resampling, and parallax: the steps of a stair
        # nearer the camera than the wall it is fitted to) is not motion.
        r = self.options.moving_reach
        pad = np.pad(other, ((r, r), (r, r), (0, 0)), mode="edge")
        mine = self._colour(u)
        best = None
        for dy in range(2 * r + 1):  # shift by shift, channels by hand: 20x faster than numpy
            for dx in range(2 * r + 1):  # reducing a strided (th, tw, 3, k, k) window view
                e = np.abs(pad[dy : dy + th, dx : dx + tw] - mine)
                d = np.maximum(np.maximum(e[..., 0], e[..., 1]), e[..., 2])
                best = d if best is None else np.minimum(best, d, out=best)
        return np.where(seen, best, np.nan)

    def _colour(self, u: Entry) -> np.ndarray:
        """u's picture as a colour thumbnail (the grey one's blocks), 8-bit levels; a
        conversion has made it on the decoding thread (``prepare``)."""
        if u.colour is None:
            u.colour = colour_thumbnail(u.picture, u.thumb.shape, self.factor)
        return u.colour

    def moving_at(self, mov: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(len(y), len(x)) bool: ``mov`` (a frame's ``moving``) at picture coordinates y x x
        (nearest thumbnail pixel; coordinates past the picture take its border)."""
        if not mov.any():
            return np.zeros((y.size, x.size), bool)
        c = (self.factor - 1) / 2
        th, tw = mov.shape
        ix = np.clip(np.rint((x - c) / self.factor), 0, tw - 1).astype(np.intp)
        iy = np.clip(np.rint((y - c) / self.factor), 0, th - 1).astype(np.intp)
        return mov[iy][:, ix]

    def rigid_reach(self, t: Entry, buf: deque[Entry]) -> list[Entry]:
        """Frames of t's shot that the camera motion links to t reliably.

        Walking out from t, a frame whose motion fit is poor (a character filling the
        frame, smoke, a morph) ends the reach in that direction: content beyond it
        would land in the wrong place.
        """
        same = {e.index: e for e in buf if e.shot == t.shot and e.decided}
        out = []
        for step in (-1, 1):
            i = t.index
            while abs(i + step - t.index) <= self.options.window:
                link = same.get(i + step if step > 0 else i)  # the frame whose fit joins i and i + step
                u = same.get(i + step)
                if u is None or link is None or link.fit > self.options.rigid:
                    break
                i += step
                if not u.single:
                    out.append(u)
        return out

    def propagate(
        self, t: Entry, candidates: list[Entry], X: np.ndarray, Y: np.ndarray, scale: float, buf: deque[Entry]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, unfilled, frame distance) of the side grid from the nearest frame showing each pixel.

        Zoom and shift map rows to rows and columns to columns, so what a frame u shows
        of a side strip is a rectangle, and sampling it is two 1-D interpolations: the
        frames are painted nearest first, each into the still unfilled part of its
        rectangle, and sampled only over that part's bounding box. Small arrays and many
        steps: numpy, whose calls cost a fraction of torch's here.

        The two strips share nothing (their columns, their frames' bands), so on the CPU
        the right one is painted on the band thread meanwhile (``STRIP_THREAD``): a pan
        consults some twenty frames a strip every frame, most of its engine time, while
        the encoder leaves part of the other core idle. The same bits either way.
        """
        h, n_cols = self.h, X.size
        values = np.zeros((h, n_cols, 3), np.float32)
        dist = np.full((h, n_cols), np.inf, np.float32)
        unfilled = np.ones((h, n_cols), bool)
        jobs = [
            partial(self._strip, t, candidates, X, Y, scale, buf, strip, values, dist, unfilled)
            for strip in self.strips
            if strip[1] > strip[0]
        ]
        if len(jobs) == 2 and len(candidates) > 1:
            other = threads.thread(STRIP_THREAD).submit(jobs[1])
            jobs[0]()
            other.result()
        else:
            for job in jobs:
                job()
        return values, unfilled, dist

    def _strip(
        self,
        t: Entry,
        candidates: list[Entry],
        X: np.ndarray,
        Y: np.ndarray,
        scale: float,
        buf: deque[Entry],
        strip: tuple[int, int],
        values: np.ndarray,
        dist: np.ndarray,
        unfilled: np.ndarray,
    ) -> None:
        """``propagate`` for the side-grid columns [s0, s1) of one strip, in place."""
        h = self.h
        m = 1.0  # a pixel inside the picture's side edges: they are often dark or ringing
        s0, s1 = strip
        for u in candidates:
            ux = (X[s0:s1] - u.to_ref.bx) / u.to_ref.a - self.left
            uy = (Y - u.to_ref.by) / u.to_ref.a
            # The picture's top and bottom are the canvas's: rows only need to fall inside.
            rows = span((uy >= -0.01) & (uy <= h - 1 + 0.01))
            if rows is None:
                continue
            cols = span((ux >= m) & (ux <= self.pic_w - 1 - m))
            if cols is None:
                continue
            r0, r1 = rows
            c0, c1 = s0 + cols[0], s0 + cols[1]
            box = bbox(unfilled[r0:r1, c0:c1])
            if box is None:
                continue
            r0, r1, c0, c1 = r0 + box[0], r0 + box[1], c0 + box[2], c0 + box[3]
            # Sampled a few columns wider where u shows them and nearer frames filled
            # them: u must agree with those there (``_agreement``).
            k = self.options.agree_cols if self.options.agree > 0 else 0
            e0, e1 = max(s0 + cols[0], c0 - k), min(s0 + cols[1], c1 + k)
            need = unfilled[r0:r1, e0:e1].copy()
            moving = self.moving_at(self.moving(u, buf), ux[e0 - s0 : e1 - s0], uy[r0:r1])
            if moving.any():  # what moves in u is not where u shows it in t: left to others
                need &= ~moving
                if not need[:, c0 - e0 : c1 - e0].any():
                    continue
            sample = sample_grid(u.picture.numpy(), ux[e0 - s0 : e1 - s0], uy[r0:r1], cubic=True)
            sample *= np.float32(1 / scale)
            sample = relight(sample, u, t)
            if k:
                shift, apart = self._agreement(sample, values[r0:r1, e0:e1], ~unfilled[r0:r1, e0:e1] & ~moving)
                sample += shift
                if apart is not None:
                    need[apart] = False
                    if not need[:, c0 - e0 : c1 - e0].any():
                        continue
            sample, need = sample[:, c0 - e0 : c1 - e0], need[:, c0 - e0 : c1 - e0]
            if need.all():  # the usual case: a band no nearer frame showed any of
                values[r0:r1, c0:c1] = sample
                dist[r0:r1, c0:c1] = abs(u.index - t.index)
            else:
                np.copyto(values[r0:r1, c0:c1], sample, where=need[..., None])
                dist[r0:r1, c0:c1][need] = abs(u.index - t.index)
            unfilled[r0:r1, c0:c1] &= ~need
            if not unfilled[:, s0:s1].any():
                break

    def _agreement(
        self, sample: np.ndarray, shown: np.ndarray, overlap: np.ndarray
    ) -> tuple[np.ndarray | float, np.ndarray | None]:
        """How to shift a frame's ``sample`` (per channel and row: ``_shade_by_rows``) to
        meet what nearer frames put in the side (``shown``) where both show it
        (``overlap``), and the rows of the sample that, so shifted by the band's median,
        still differ there by more than ``agree`` 8-bit levels (the mean over each run of
        ``agree_rows`` rows; None: none do).

        Painted band by band, frames that show the same background differently (clouds
        drifting against the camera, a limb swinging, a zoom the fit does not follow)
        make the side a set of vertical streaks, each frame's few new columns a shade or
        a shape off the next: a shade is evened out, a shape left to the fill, only where
        it is off (an arm across a band of sky)."""
        count = overlap.sum(axis=1)
        if int(count.sum()) < 2 * max(1, int((count > 0).sum())):  # less than two columns to compare
            return 0.0, None
        d = shown - sample
        shift = np.median(d[overlap], axis=0).astype(np.float32)  # the sky's shade, not the arm's
        e = np.abs(d - shift)
        # The channels by hand: numpy reduces a trailing axis of 3 ten times slower.
        err = (np.maximum(np.maximum(e[..., 0], e[..., 1]), e[..., 2]) * overlap).sum(axis=1)
        b = max(1, self.options.agree_rows)
        n = -(-len(err) // b) * b

        def per_run(a: np.ndarray) -> np.ndarray:  # sums over each run of b rows
            return np.pad(a, (0, n - len(a))).reshape(-1, b).sum(axis=1)

        seen = per_run(count)
        off = per_run(err) * 255 > self.options.agree * np.maximum(seen, 1)
        off &= seen > 0
        rows = self._shade_by_rows(d, overlap, shift, seen, off, b, n)
        if not off.any():
            return rows, None
        return rows, np.repeat(off, b)[: len(err)]

    def _shade_by_rows(
        self,
        d: np.ndarray,
        overlap: np.ndarray,
        shift: np.ndarray,
        seen: np.ndarray,
        off: np.ndarray,
        b: int,
        n: int,
    ) -> np.ndarray:
        """(rows, 1, 3): the shift to apply per row, the median difference of each run of
        ``b`` rows that agrees (``off`` False) and saw enough, interpolated between the
        runs' middles, kept within ``agree`` levels of the band's ``shift``.

        One shift for a whole band leaves the sky's shade off by a few levels where it
        changes from top to bottom differently in the two frames (light, clouds): each
        band of a zoom's side then shows as a vertical streak. Per run, the band meets
        its neighbour row by row."""
        h = d.shape[0]
        flat = np.full((n, d.shape[1], 3), np.nan, np.float32)
        flat[:h] = np.where(overlap[..., None], d, np.nan)
        runs = flat.reshape(-1, b * d.shape[1], 3)
        use = (seen >= b // 2) & ~off
        if not use.any():
            return np.broadcast_to(shift, (h, 1, 3)).astype(np.float32)
        med = nanmedian_rows(runs[use])  # (k, 3)
        limit = self.options.agree / 255.0
        med = np.clip(med, shift - limit, shift + limit)
        middles = np.flatnonzero(use) * b + (b - 1) / 2
        at = np.arange(h, dtype=np.float64)
        out = np.stack([np.interp(at, middles, med[:, c]) for c in range(3)], axis=1)
        return out[:, None, :].astype(np.float32)

    def canvas(
        self,
        t: Entry,
        values: torch.Tensor,
        filled: torch.Tensor | None,
        scale: float,
        c0: int = 0,
        c1: int | None = None,
    ) -> torch.Tensor:
        """(3, H, c1 - c0) float canvas columns: the picture, and the side values where ``filled``."""
        c1 = self.w if c1 is None else c1
        out = torch.zeros(3, self.h, c1 - c0)
        lo, hi = self.left, self.left + self.pic_w
        a, b = max(lo, c0), min(hi, c1)
        if a < b:
            out[:, :, a - c0 : b - c0] = t.picture[:, a - lo : b - lo].permute(2, 0, 1).float() / scale
        # The strips: canvas column x is side-grid column x (left) or x - picture width (right).
        for a, b, shift in ((0, lo, 0), (hi, self.w, self.pic_w)):
            a, b = max(a, c0), min(b, c1)
            if a >= b:
                continue
            part = values[:, a - shift : b - shift]
            if filled is not None:
                part = part * filled[:, a - shift : b - shift, None]
            out[:, :, a - c0 : b - c0] = part.permute(2, 0, 1)
        return out

    def reach(self, t: Entry, buf: deque[Entry]) -> tuple[int, int, int, int]:
        """Margins (left, top, right, bottom) around t's canvas that frames ahead will show."""
        base = max(2, round(self.options.margin * self.layout.side_width))
        x0, y0, x1, y1 = -base, 0, self.w - 1 + base, self.h - 1
        to_t = t.to_ref.inverse()
        for u in buf:
            if u.shot != t.shot or u.single or not u.decided or not t.index < u.index <= t.index + self.options.window:
                continue
            bx0, by0, bx1, by1 = to_t.then(u.to_ref).box(0, 0, self.w - 1, self.h - 1)
            x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
        # Bounded: at most half a canvas more on each side.
        cap_x, cap_y = self.w // 2, self.h // 2
        left = min(cap_x, math.ceil(-x0))
        right = min(cap_x, math.ceil(x1 - (self.w - 1)))
        top = min(cap_y, max(0, math.ceil(-y0)))
        bottom = min(cap_y, max(0, math.ceil(y1 - (self.h - 1))))
        return left // 2 * 2, top // 2 * 2, right // 2 * 2, bottom // 2 * 2
