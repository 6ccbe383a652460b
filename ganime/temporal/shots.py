"""Cuts, flashes, held drawings, blank frames and the camera motion chained through a shot."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

from .. import video
from ..motion import IDENTITY, Match, Similarity, block_sums, grey_of, match, to_frame, to_thumb
from .options import TemporalOptions, TemporalStats
from .records import Entry, Geometry, Prepared, colour_of, colour_thumbnail


class ShotAnalysis:
    """Frames in, ``Entry`` records out: each frame's thumbnails, its shot, its camera
    motion chained to the shot's reference frame (``to_ref``), its brightness against it,
    how well the motion fits, and whether it is held, single (a flash, a blank) or
    continues a zoom's scene.

    Owns the shot counter and the last frame prepared; reads only the frames given.
    An entry whose verdict needs the next frame (it looks like a cut) stays undecided
    until ``decide`` is called with that frame (or None at the end of the stream).
    Counts shots and motions measured ahead in ``stats``.
    """

    def __init__(self, geometry: Geometry, options: TemporalOptions, stats: TemporalStats) -> None:
        self.layout = geometry.layout
        self.h, self.pic_w, self.left, self.factor = geometry.h, geometry.pic_w, geometry.left, geometry.factor
        self.options = options
        self.stats = stats
        self._shot = -1  # the last shot started
        self._prepared: Prepared | None = None  # the last frame prepare() saw

    def prepare(self, frame: video.Frame) -> Prepared:
        """The part of analysis that needs only this frame and the one before: its
        thumbnail, and the camera motion from the last frame prepared.

        Frames must come in stream order. Safe to call from another thread: a
        conversion calls it on the decoding thread, while the frame is still in that
        core's cache, beside the engine's own work.
        """
        c = self.layout.content
        pic = frame.image[c.y : c.bottom, c.x : c.right]
        picture = torch.from_numpy(np.ascontiguousarray(pic))
        if picture.dtype == torch.uint16:
            picture = picture.to(torch.int32)
        # The grey thumbnail and the colour one from the same block sums: the frame is read once.
        sums = block_sums(pic, self.factor)
        thumb = grey_of(sums, self.factor, 255 if pic.dtype == np.uint8 else 65535)
        contrast = float(thumb.std(ddof=1))
        prev, m, hint = self._prepared, None, None
        if prev is not None and min(prev.contrast, contrast) >= self.options.blank and prev.thumb.shape == thumb.shape:
            # What _decide_if_plain measures when the previous frame anchors this one.
            hint = prev.match.motion if prev.match is not None else None
            m = match(prev.thumb, thumb, hint)
        colour = None
        if self.options.moving > 0 and pic.dtype == np.uint8:
            colour = colour_of(sums, self.factor)
        elif self.options.moving > 0:
            colour = colour_thumbnail(picture, thumb.shape, self.factor)
        p = Prepared(frame, picture, thumb, contrast, m, hint, colour)
        self._prepared = p
        return p

    def analyse(self, frame: video.Frame | Prepared, index: int, buf: deque[Entry]) -> Entry:
        """The entry of frame ``index`` (prepared or not), deciding the frames in ``buf``
        (the engine's frames under way, oldest first) that waited for it."""
        p = frame if isinstance(frame, Prepared) else self.prepare(frame)
        entry = Entry(index, p.frame, p.picture, p.thumb, p.contrast)
        entry.colour = p.colour
        for e in buf:  # a frame waits for the next one only to tell a flash from a cut
            if not e.decided:
                self.decide(e, entry, buf)
        self._decide_if_plain(entry, buf, p)
        return entry

    def _anchor(self, buf: deque[Entry], before: int) -> Entry | None:
        """The latest decided frame before ``before`` that carries the shot (not single)."""
        for e in reversed(buf):
            if e.index < before and e.decided and not e.single:
                return e
        return None

    def _is_blank(self, entry: Entry) -> bool:
        return entry.contrast < self.options.blank

    def _decide_if_plain(self, entry: Entry, buf: deque[Entry], ahead: Prepared) -> None:
        """Decide ``entry`` now when no look-ahead is needed (same shot, held, blank, first).

        ``ahead`` is the frame as prepared, with the motion measured there if any.
        """
        anchor = self._anchor(buf, entry.index)
        if self._is_blank(entry):
            self._set_single(entry, anchor)
            return
        if anchor is None:
            self._new_shot(entry)
            return
        hint = anchor.match.motion if anchor.match is not None and anchor.index == entry.index - 1 else None
        if anchor.index == entry.index - 1 and ahead.match is not None and ahead.hint == hint:
            m = ahead.match  # measured on the decoding thread: the same pair, the same hint
            self.stats.measured_ahead += 1
        else:
            m = match(anchor.thumb, entry.thumb, hint)
        entry.match = m
        if m.difference <= self.options.cut and abs(m.motion.a - 1) < 0.12:
            self._continue(entry, anchor, m, buf)

    def decide(self, entry: Entry, nxt: Entry | None, buf: deque[Entry]) -> None:
        """Decide a frame that looked like a cut, now that the next frame is known (None: the stream ended)."""
        anchor = self._anchor(buf, entry.index)
        if anchor is None or entry.match is None:
            self._new_shot(entry)
            return
        if nxt is not None and not self._is_blank(nxt):
            back = match(anchor.thumb, nxt.thumb)
            if back.difference <= self.options.cut and entry.index - anchor.index <= 2:
                self._set_single(entry, anchor)  # a flash: the shot goes on after it
                return
        self._new_shot(entry)

    def _set_single(self, entry: Entry, anchor: Entry | None) -> None:
        entry.single = True
        entry.decided = True
        entry.shot = anchor.shot if anchor is not None else self._shot

    def _new_shot(self, entry: Entry) -> None:
        self._shot += 1
        self.stats.shots += 1
        entry.shot = self._shot
        entry.to_ref = IDENTITY
        entry.gain, entry.offset = 1.0, 0.0
        entry.decided = True

    def _continue(self, entry: Entry, anchor: Entry, m: Match, buf: deque[Entry]) -> None:
        motion = self._snap(to_frame(m.motion, self.factor, self.left))
        to_ref = anchor.to_ref.then(motion)
        if not 0.5 < to_ref.a < 2.0:  # zoomed far from the reference: start afresh (bounded memory)
            self._new_shot(entry)
            entry.continues = True  # the same scene: the sides cross-fade instead of jumping
            return
        entry.shot = anchor.shot
        entry.to_ref = to_ref
        # A fade changes what every pixel looks like from frame to frame: count a few
        # percent of brightness change per frame as a poor fit, so the sides follow the
        # frame instead of a memory whose brightness has to be guessed.
        entry.fit = max(m.difference, 10 * abs(math.log(max(m.gain, 1e-3))) + 10 * abs(m.offset))
        self._correct_drift(entry, buf)
        entry.gain = anchor.gain * m.gain
        entry.offset = anchor.offset * m.gain + m.offset
        entry.held = motion.is_identity and m.change < self.options.hold and anchor.index == entry.index - 1
        entry.decided = True

    def _snap(self, motion: Similarity) -> Similarity:
        """Motion under 0.05 px anywhere in the picture is noise: a still camera stays exactly still."""
        reach = max(self.h, self.pic_w) / 2
        if abs(motion.a - 1) * reach >= 0.2:
            return motion
        # No real zoom (under 0.2 px at the picture's edge): keep how the centre moved,
        # then each direction on its own, so a pan stays exactly level.
        cx, cy = self.left + (self.pic_w - 1) / 2, (self.h - 1) / 2
        dx, dy = (motion.a - 1) * cx + motion.bx, (motion.a - 1) * cy + motion.by
        return Similarity(1.0, dx if abs(dx) >= 0.05 else 0.0, dy if abs(dy) >= 0.05 else 0.0)

    def _correct_drift(self, entry: Entry, buf: deque[Entry]) -> None:
        """Re-measure the chained motion against a frame further back.

        Chaining frame-to-frame motions adds their small errors up; matching directly
        against a frame ``drift_span`` back, starting from the chained estimate, keeps
        the error of one link instead of a sum of many.
        """
        span = self.options.drift_span
        if span < 2 or entry.index % 3:  # every third frame is plenty
            return
        ref = next(
            (
                e
                for e in buf
                if e.shot == entry.shot
                and e.decided
                and not e.single
                and entry.index - span <= e.index < entry.index - 1
            ),
            None,
        )
        if ref is None or (ref.to_ref == entry.to_ref and self._still_since(ref, entry, buf)):
            return
        guess = ref.to_ref.inverse().then(entry.to_ref)  # entry canvas -> ref canvas
        thumb = to_thumb(guess, self.factor, self.left)
        m = match(ref.thumb, entry.thumb, exact=thumb)
        if m.difference <= self.options.cut and m.overlap > 0.5:
            entry.to_ref = ref.to_ref.then(self._snap(to_frame(m.motion, self.factor, self.left)))

    def _still_since(self, ref: Entry, entry: Entry, buf: deque[Entry]) -> bool:
        """Whether the measured (unsnapped) motions from ``ref`` to ``entry`` add up to
        under 0.1 px: the camera stood still, so there is no drift to re-measure (a
        slow pan snapped to zero link by link still adds up past that)."""
        moved = 0.0
        for e in buf:
            if ref.index < e.index <= entry.index:
                if e.match is None or e.single:
                    return False
                m = to_frame(e.match.motion, self.factor, self.left)
                moved += abs(m.bx) + abs(m.by) + abs(m.a - 1) * max(self.h, self.pic_w)
        return moved < 0.1
