"""How far the shot's sides still hold for a frame: camera fit, light, a picture edge gone stale."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from ..motion import median
from .records import (
    RELIGHT,
    Entry,
    Shown,
)


class SideTrust:
    """Methods of ``TemporalFiller``: how far the shot's sides still hold for a frame: camera fit, light, a picture
    edge gone stale."""

    def _memory_trust(self, t: Entry) -> float:
        """How far what the shot memory holds can be trusted at frame t's brightness.

        Content made in a dark frame (early in a fade-in) keeps little of the picture:
        brought up to full brightness it is coarse and noisy. From a quarter brighter or
        darker than the frame that started the memory, t leans on its own fill, all of
        it at twice; the caller then starts the memory afresh from the next firm frame.
        """
        mem = self._memory
        if mem is None:
            return 1.0
        change = abs(math.log(max(t.gain, 1e-6) / max(mem.gain, 1e-6)))
        lo, hi = math.log(1.25), math.log(2.0)
        return min(1.0, max(0.0, (hi - change) / (hi - lo)))

    @staticmethod
    def _same_light(t: Entry, last: Shown) -> bool:
        """Whether t's picture is as bright as the one ``last``'s sides were made for
        (within ``RELIGHT`` levels of mean brightness)."""
        return abs(float(t.thumb.mean()) - last.brightness) < RELIGHT

    @staticmethod
    def _seam_still(t: Entry, last: Shown) -> bool:
        """Whether the picture's outer columns are as they were when ``last``'s seam was
        blended (within codec noise), so the seam needs no redoing."""
        ref = last.seam_thumb
        if ref.shape != t.thumb.shape:
            return False
        edges = (slice(None), [0, -1])
        return float(np.abs(t.thumb[edges] - ref[edges]).max()) < 1.0

    def _edge_trust(self, t: Entry) -> torch.Tensor:
        """(S,) trust per side column: low where the light of the picture next to that side
        has changed since the key frame that generated it (a fade slow enough that the
        brightness fit under-reads it, so the relit memory would lag the picture).

        Only for a camera that has not moved since that key frame: when it moves,
        propagation brings the real content and the memory moves with the background.
        """
        ones = torch.ones(self.side_cols.numel())
        key = self._key
        if key is None or key[0] != t.shot or key[1] != t.to_ref:
            return ones
        thumb = t.thumb
        band = max(1, thumb.shape[1] // 10)  # the outer tenth of the picture on each side
        # Counted only as far as the whole picture's brightness moved too: the memory's
        # sides are the shot's background, and a character stepping into the edge is no
        # reason to trade them for a per-frame fill that smears it across the side.
        light = abs(float(thumb.mean()) - float(key[2].mean()))
        left = min(light, float(np.abs(thumb[:, :band] - key[2][:, :band]).mean()))
        right = min(light, float(np.abs(thumb[:, -band:] - key[2][:, -band:]).mean()))
        lo, hi = self.options.edge_change, 2 * self.options.edge_change

        def level(change: float) -> float:
            return float(min(1.0, max(0.0, (hi - change) / (hi - lo))))

        ones[: self.left] = level(left)
        ones[self.left :] = level(right)
        return ones

    def _stale_trust(self, t: Entry, scale: float, camera_holds: bool) -> tuple[torch.Tensor | None, list[bool] | None]:
        """((1, S) trust per side column from how stale the memory's sides are, or None;
        the (left, right) sides to make again this frame, or None).

        A side is made again when its memory is past ``stale`` and the frame is otherwise
        on firm ground (so it is trusted); below that, from ``stale_lean`` up, it leans
        toward the frame's own fill.
        """
        mem = self._memory
        if mem is None or self.options.stale <= 0 or (self._key is not None and self._key[1] == t.to_ref):
            return None, None
        readings, seen = self._stale(t, scale)
        past = [r > self.options.stale for r in readings]
        sides_to_redo = past if camera_holds and any(past) else None
        if self.options.stale_lean <= 0 or self.options.stale_lean >= self.options.stale:
            return None, sides_to_redo
        out = torch.ones(1, self.side_cols.numel())
        # Only against what frames showed: a pan always finds generated memory that differs
        # from what it now shows by a few levels, and that is for the refresh to judge.
        strips = (np.s_[: self.left], np.s_[self.left :])
        for cols, r, made_again in zip(strips, seen, sides_to_redo or (False, False), strict=True):
            if not made_again:
                out[:, cols] = min(
                    1.0, max(0.0, (self.options.stale - r) / (self.options.stale - self.options.stale_lean))
                )
        return out, sides_to_redo

    def _refresh(self, t: Entry, scale: float, changed: list[bool]) -> None:
        """Regenerate the memory's generated content beside a picture that has moved on.

        The memory keeps the picture as the frame that first showed each place saw it.
        Where the picture's outer tenth no longer looks like that (parallax in a 3D
        scene, light changing, a character staying at the edge), what was generated
        beside it no longer continues it. That side's generated pixels and the memory
        under the picture are forgotten, so this frame's picture and a new key frame
        take their place; what frames showed of the sides is kept. The sides cross-fade
        from the last ones shown. A still camera is judged by ``_edge_trust`` instead.
        """
        mem = self._memory
        assert mem is not None
        self.stats.refreshed += 1
        x0, y0, x1, y1 = mem.box
        px0, py0, px1, py1 = t.to_ref.box(self.left, 0, self.left + self.pic_w - 1, self.h - 1)
        mid = (px0 + px1) / 2 - x0
        cols = np.arange(x1 - x0)
        side = (cols < mid) if changed[0] else np.zeros(cols.size, bool)
        if changed[1]:
            side |= cols >= mid
        forget = mem.made & side[None, :]
        # Under the picture: the memory pixels whose centres it covers, which this frame
        # writes again (a pixel it only grazes would be left a hole).
        eps = 1e-4
        r0, r1 = max(0, math.ceil(py0 - eps) - y0), max(0, min(y1, math.floor(py1 + eps) + 1) - y0)
        c0, c1 = max(0, math.ceil(px0 - eps) - x0), max(0, min(x1, math.floor(px1 + eps) + 1) - x0)
        forget[r0:r1, c0:c1] = True
        mem.valid &= ~forget
        mem.made &= ~forget
        self._key = None
        self._hand_over(self._last, t)

    def _stale(self, t: Entry, scale: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """(left, right) median change (8-bit levels) of the picture's outer tenth against
        what the shot memory holds there, through the camera motion (nearest memory
        pixel, on a sparse grid: the median of a few thousand pixels is plenty, and a
        character covering part of the band does not move it); then the same against
        only the memory that frames showed (not generated)."""
        mem = self._memory
        assert mem is not None
        band = max(2, self.pic_w // 10)
        a, bx, by = t.to_ref.a, t.to_ref.bx, t.to_ref.by
        rows = np.arange(1, self.h, 6)
        ys = np.rint(a * rows + by).astype(np.intp) - mem.y0
        inside = (ys >= 0) & (ys < mem.valid.shape[0])
        rows, ys = rows[inside], ys[inside][:, None]
        # Both bands in one gather: every other column of each.
        cols = np.concatenate([np.arange(0, band, 2), np.arange(self.pic_w - band, self.pic_w, 2)])
        xs = np.rint(a * (cols + self.left) + bx).astype(np.intp) - mem.x0
        inside = (xs >= 0) & (xs < mem.valid.shape[1])
        xs = np.where(inside, xs, 0)[None, :]
        ok = mem.valid[ys, xs] & inside[None, :]
        kept = self._at_brightness(mem.values[ys, xs], t)
        diff = np.abs(t.picture.numpy()[rows][:, cols] * np.float32(1 / scale) - kept)
        change = (diff[..., 0] + diff[..., 1] + diff[..., 2]) * (255 / 3)
        seen = ok & ~mem.made[ys, xs]
        half = cols.size // 2
        out: list[float] = []
        for where in (ok, seen):
            for part in (np.s_[:, :half], np.s_[:, half:]):
                good = where[part]
                # Too little of the memory there yet to say.
                out.append(median(change[part][good]) if good.sum() >= 0.25 * good.size else 0.0)
        return (out[0], out[1]), (out[2], out[3])

    def _trust(self, t: Entry, buf: deque[Entry]) -> float:
        """How far the shot's camera model can be trusted around t (1 = fully, 0 = not at all).

        From the motion fits of the frames around t, averaged so that it changes
        gradually: sides move from the shot's memory to filling each frame alone (and
        back) over several frames instead of switching. Held drawings do not count, so
        on animation drawn on threes the caller also bounds the fall (``loosen``).
        """
        near = [
            e.fit
            for e in buf
            if e.shot == t.shot and e.decided and not (e.single or e.held) and abs(e.index - t.index) <= 4
        ]
        fit = sum(near) / len(near) if near else 0.0
        lo, hi = self.options.rigid - 0.1, self.options.rigid + 0.1
        return float(min(1.0, max(0.0, (hi - fit) / (hi - lo))))
