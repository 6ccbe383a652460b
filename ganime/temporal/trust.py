"""How far the shot's sides still hold for a frame: camera fit, light, a picture edge gone stale."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from ..motion import median
from .memory import ShotMemory
from .options import TemporalOptions
from .records import RELIGHT, Entry, Geometry, Shown, at_brightness


class SideTrust:
    """How far the shot's sides still hold for a frame, per side column, from 1 (the
    shot's sides as they are) to 0 (the frame's own fill): the camera model's fit
    around the frame, the light against the memory's, a still camera's picture edge
    against its key frame, a moving camera's picture edge gone stale against the memory.

    Reads the shot memory (borrowed, never changed); owns the trust of the last frame
    rendered anew (``bounded``), which a new shot forgets (``new_shot``).
    """

    def __init__(self, geometry: Geometry, options: TemporalOptions, memory: ShotMemory) -> None:
        self.h, self.pic_w, self.left = geometry.h, geometry.pic_w, geometry.left
        self.side_cols = geometry.side_cols
        self.options, self.memory = options, memory
        self.trusted: torch.Tensor | None = None  # (1, S) trust of the last frame rendered anew

    def new_shot(self) -> None:
        self.trusted = None

    def bounded(self, trust: torch.Tensor) -> torch.Tensor:
        """``trust`` (1, S), fallen by at most ``loosen`` since the last frame rendered anew;
        kept as that frame's.

        So the sides slide from the memory to the frame's own fill even when held
        drawings leave few decisions in the fits' averaging window (animation on twos
        and threes)."""
        if self.trusted is not None:
            trust = torch.maximum(trust, self.trusted - self.options.loosen)
        self.trusted = trust
        return trust

    def light(self, t: Entry) -> float:
        """How far what the shot memory holds can be trusted at frame t's brightness.

        Content made in a dark frame (early in a fade-in) keeps little of the picture:
        brought up to full brightness it is coarse and noisy. From a quarter brighter or
        darker than the frame that started the memory, t leans on its own fill, all of
        it at twice; the caller then starts the memory afresh from the next firm frame.
        """
        mem = self.memory.panorama
        if mem is None:
            return 1.0
        change = abs(math.log(max(t.gain, 1e-6) / max(mem.gain, 1e-6)))
        lo, hi = math.log(1.25), math.log(2.0)
        return min(1.0, max(0.0, (hi - change) / (hi - lo)))

    @staticmethod
    def same_light(t: Entry, last: Shown) -> bool:
        """Whether t's picture is as bright as the one ``last``'s sides were made for
        (within ``RELIGHT`` levels of mean brightness)."""
        return abs(float(t.thumb.mean()) - last.brightness) < RELIGHT

    def edge(self, t: Entry) -> torch.Tensor:
        """(S,) trust per side column: low where the light of the picture next to that side
        has changed since the key frame that generated it (a fade slow enough that the
        brightness fit under-reads it, so the relit memory would lag the picture).

        Only for a camera that has not moved since that key frame: when it moves,
        propagation brings the real content and the memory moves with the background.
        """
        ones = torch.ones(self.side_cols.numel())
        key = self.memory.key
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

    def stale(self, t: Entry, scale: float, camera_holds: bool) -> tuple[torch.Tensor | None, list[bool] | None]:
        """((1, S) trust per side column from how stale the memory's sides are, or None;
        the (left, right) sides to make again this frame, or None).

        A side is made again when its memory is past ``stale`` and the frame is otherwise
        on firm ground (so it is trusted); below that, from ``stale_lean`` up, it leans
        toward the frame's own fill.
        """
        mem, key = self.memory.panorama, self.memory.key
        if mem is None or self.options.stale <= 0 or (key is not None and key[1] == t.to_ref):
            return None, None
        readings, seen = self._staleness(t, scale)
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

    def _staleness(self, t: Entry, scale: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """(left, right) median change (8-bit levels) of the picture's outer tenth against
        what the shot memory holds there, through the camera motion (nearest memory
        pixel, on a sparse grid: the median of a few thousand pixels is plenty, and a
        character covering part of the band does not move it); then the same against
        only the memory that frames showed (not generated)."""
        mem = self.memory.panorama
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
        kept = at_brightness(mem.values[ys, xs], t)
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

    def camera(self, t: Entry, buf: deque[Entry]) -> float:
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
