"""``TemporalFiller``: the engine, which orchestrates its parts frame by frame.

The parts (each its own state; docs/ARCHITECTURE.md, "The temporal engine"):
``ShotAnalysis`` (shots.py) makes each frame's record, ``Propagation`` (propagate.py)
copies what other frames show, ``ShotMemory`` (memory.py) keeps the shot's panorama
and runs key frames, ``SideTrust`` (trust.py) says how far the shot's sides hold,
``SeamBlend`` (seams.py) joins them to the picture and ``CrossFade`` fades new sides in,
``OwnFill`` (own_fill.py) blends in a frame's own fill where the shot's sides do not
hold, ``ShotCharacters`` (characters.py) keeps the shot's characters, ``Provenance``
(provenance.py) the trace for eval. What the engine itself keeps is the rendering state
between frames: the sides last shown, whether the last frame leaned on its own fill.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from .. import video
from ..engine import Filler
from .characters import CharacterMasks, ShotCharacters
from .memory import ShotMemory
from .options import TemporalOptions, TemporalStats
from .own_fill import OwnFill
from .propagate import Propagation
from .provenance import Provenance
from .records import Entry, Geometry, Prepared, Shown, scale_of
from .seams import CrossFade, SeamBlend
from .shots import ShotAnalysis
from .trust import SideTrust


class TemporalFiller:
    """Streams frames through analysis, propagation, shot memory and key-frame generation."""

    def __init__(self, filler: Filler, options: TemporalOptions | None = None) -> None:
        self.filler = filler
        self.options = options or TemporalOptions()
        # Set by a consumer that puts the picture back from the source's own YUV planes
        # (the conversion writer): frames carrying planes of this format get only their
        # sides, the picture area of their image left unset.
        self.centre_from_planes: str | None = None
        self.layout = filler.layout
        g = Geometry.of(filler.layout, self.options.thumb_height)
        self.geometry = g
        self.h, self.w, self.side_cols = g.h, g.w, g.side_cols
        self._side_x, self._rows = g.side_cols.double().numpy(), np.arange(g.h, dtype=np.float64)
        self._side_index = g.side_cols.long().numpy()
        # Frames consulted for propagation: every near one, then sparser (content far
        # from the picture only shows up in frames far away, and it moves with the camera).
        d, self._distances = 1, set()
        while d <= self.options.window:
            self._distances.add(d)
            d = d + 1 if d < 4 else d + max(1, d // 3)
        self._distances.add(self.options.window)
        self.stats = TemporalStats()
        opts, stats = self.options, self.stats
        # The parts. Characters (ganime.segment) are found for fills that take sources at
        # key frames, for every fill where a frame leans on its own; shot starts ahead, on
        # a worker thread, for models that take sources (for the others only frames that
        # lean on their own fill need one, and few do).
        masks = CharacterMasks(opts, filler.device) if opts.characters else None
        takes_source = getattr(filler.model, "takes_source", False)
        self.characters = (
            ShotCharacters(g, opts, stats, masks, ahead=opts.masks_ahead and takes_source)
            if masks is not None
            else None
        )
        self.analysis = ShotAnalysis(g, opts, stats)
        self.propagation = Propagation(g, opts)
        self.provenance = Provenance(g, opts, masks, filler, stats)
        self.memory = ShotMemory(g, opts, filler, self.propagation, self.characters, self.provenance, stats)
        self.trust = SideTrust(g, opts, self.memory)
        self.seam = SeamBlend(g, opts, filler.compositor, self.characters, self.provenance)
        self.own = OwnFill(g, opts, filler, self.characters, self.provenance, stats)
        self.fade = CrossFade(opts, self.provenance)
        # The rendering state between frames.
        self._next = 0  # the next frame to render
        self._memory_shot = -1  # the shot the memory and the rest of this state are of
        self._loose = False  # the last frame leaned on its own fill
        self._last: Shown | None = None  # the sides of the last frame rendered

    @property
    def seconds(self) -> float:
        """Time spent filling (the engine's own work and its model runs)."""
        return self.stats.seconds

    def prepare(self, frame: video.Frame) -> Prepared:
        """The part of analysis that needs only this frame and the one before
        (``ShotAnalysis.prepare``): safe to call from the decoding thread."""
        return self.analysis.prepare(frame)

    def stream(
        self, frames: Iterable[video.Frame | Prepared], on_frames: Callable[[int], None] | None = None
    ) -> Iterator[video.Frame]:
        """Source frames (or prepared ones) in, filled canvases out, in the same order with the same timestamps."""
        if self.geometry.n_side == 0:
            for f in frames:  # nothing to generate: the canvas is the picture
                yield from self._plain([f.frame if isinstance(f, Prepared) else f])
                if on_frames:
                    on_frames(1)
            return
        buf: deque[Entry] = deque()
        self._next = 0
        try:
            for index, frame in enumerate(frames):
                started = time.perf_counter()
                buf.append(self.analysis.analyse(frame, index, buf))
                if self.characters is not None:
                    self.characters.find_ahead(buf, self._next)
                self.stats.seconds += time.perf_counter() - started
                yield from self._drain(buf, final=False, on_frames=on_frames)
            for e in buf:  # the stream has ended: every verdict is final
                if not e.decided:
                    self.analysis.decide(e, None, buf)
            yield from self._drain(buf, final=True, on_frames=on_frames)
        finally:
            if self.characters is not None:
                self.characters.close()

    def _plain(self, frames: list[video.Frame]) -> Iterator[video.Frame]:
        started = time.perf_counter()
        canvases = self.filler.fill([f.image for f in frames])
        self.stats.model_seconds += time.perf_counter() - started
        for f, c in zip(frames, canvases, strict=True):
            yield video.Frame(c, f.pts, f.time_base, f.planes, f.pix_fmt)

    def _drain(self, buf: deque[Entry], final: bool, on_frames: Callable[[int], None] | None) -> Iterator[video.Frame]:
        """Emit, in order, every frame whose look-ahead is complete (or whose shot has ended)."""
        while buf:
            target = next((e for e in buf if e.index == self._next), None)
            if target is None or not target.decided:
                return
            ready = final or buf[-1].index >= target.index + self.options.window
            if not ready:  # a later frame of another shot: nothing ahead can help
                ready = any(e.decided and e.shot != target.shot for e in buf if e.index > target.index)
            if not ready:
                return
            started = time.perf_counter()
            out = self._render(target, buf)
            self._next += 1
            if self.characters is not None:
                self.characters.forget_ahead(self._next)
            self.stats.frames += 1
            # Forget frames no later frame can reach: too far back, or of an earlier shot.
            while (
                buf
                and buf[0].index < self._next
                and (buf[0].index < self._next - self.options.window or buf[0].shot != target.shot)
            ):
                buf.popleft()
            self.stats.seconds += time.perf_counter() - started
            self.stats.peak_buffer = max(self.stats.peak_buffer, len(buf))
            if on_frames:
                on_frames(1)
            yield out

    def _render(self, t: Entry, buf: deque[Entry]) -> video.Frame:
        prov = self.provenance
        if t.single:
            self.stats.single += 1
            if not prov.on and self.characters is None:
                (out,) = self._plain([t.frame])
                return out
            # A flash or a blank frame is filled on its own: characters closed over, as
            # for any frame's own fill.
            return self.own.alone(t)
        if t.shot != self._memory_shot:
            self._new_shot(t)
        scale = scale_of(t.picture)
        last = self._last
        # A held drawing repeats the last sides, unless a slow fade (each frame changing
        # by less than ``hold``) has moved the picture's brightness since they were made.
        if t.held and last is not None and last.index == t.index - 1 and self.trust.same_light(t, last):
            # The same drawing: the same sides as last frame; only the seam follows the picture.
            self.stats.held += 1
            last.index = t.index
            prov.count(last.trace)
            if not self.seam.seam_still(t, last):
                last.sides = self.seam.composite(t, last.values, scale, base=last.sides)
                last.seam_thumb = t.thumb
            return self.seam.canvas_out(t, last.sides, self.centre_from_planes)
        # Per side column: how far the shot's sides still hold for this frame.
        camera = torch.full((self.side_cols.numel(),), self.trust.camera(t, buf))
        trust = torch.minimum(camera, self.trust.edge(t))[None, :]
        # Firm: the camera model holds and the memory was made at this brightness.
        camera_holds = bool((trust >= 1).all()) and self.trust.light(t) >= 1
        stale, sides_to_redo = self.trust.stale(t, scale, camera_holds)
        if stale is not None:
            trust = torch.minimum(trust, stale)
        trust = self.trust.bounded(trust)
        if self._loose and bool((trust >= 1).all()):
            # Back on firm ground after frames that leaned on their own fill: what the
            # memory holds is from before the disturbance (a bad fit, a fade, a side
            # gone stale: on the eval and training clips a fresh start of both sides
            # scores better than keeping the side that held); start it afresh from
            # here, cross-fading from the last sides shown so nothing pops.
            self.memory.reset()
            sides_to_redo = None
            self.fade.start(self._last, t)
        trust = trust * self.trust.light(t)
        self._loose = bool((trust < 1).any())
        if sides_to_redo is not None:
            # Generated sides beside a picture that moved on are made again; the sides
            # cross-fade from the last ones shown (a still camera: ``SideTrust.edge``).
            self.memory.forget_beside(t, sides_to_redo)
            self.fade.start(self._last, t)
        values, real = self._sides(t, buf, scale)
        if self._loose:  # lean on the frame itself where the sides do not hold
            values, real = self.own.blend(t, values, real, trust, scale)
        values = self.fade.apply(self.seam.live_mirror(t, values, real, scale))
        self._last = Shown(
            t.index, values, self.seam.composite(t, values, scale), t.thumb, float(t.thumb.mean()), prov.trace
        )
        prov.count(prov.trace)
        return self.seam.canvas_out(t, self._last.sides, self.centre_from_planes)

    def _new_shot(self, t: Entry) -> None:
        """Every part starts afresh at t, the first frame rendered of its shot (the sides
        cross-fade from the last ones shown where the shot continues the scene)."""
        self.memory.new_shot()
        self._memory_shot = t.shot
        last, self._last = self._last, None
        self._loose = False
        self.trust.new_shot()
        self.fade.stop()
        if self.characters is not None:
            self.characters.new_shot()
        if t.continues:
            self.fade.start(last, t)

    def _sides(self, t: Entry, buf: deque[Entry], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, S, 3) side values in [0, 1] (S = side columns, left then right) and (H, S) realness.

        Realness is 1 where the value was taken from a real frame, 0 where generated.
        """
        # Reference coordinates of the side columns and of the rows (float64: exact enough
        # that a level pan samples whole rows).
        X = t.to_ref.a * self._side_x + t.to_ref.bx
        Y = t.to_ref.a * self._rows + t.to_ref.by
        # 1. Which frame shows each side pixel: the nearest in time (painter's order).
        candidates = [
            e
            for e in sorted(
                self.propagation.rigid_reach(t, buf), key=lambda e: (abs(e.index - t.index), e.index > t.index)
            )
            if abs(e.index - t.index) in self._distances
        ]
        values_np, unfilled, dist = self.propagation.propagate(t, candidates, X, Y, scale, buf)
        # Provenance: propagated pixels show what the true side shows (see provenance.py).
        self.provenance.trace = torch.zeros(values_np.shape[:2]) if self.provenance.on else None
        filled_np = ~unfilled
        real_np = filled_np.astype(np.float32)
        self.stats.propagated += float(real_np.mean())
        # 2. The shot memory: for what no frame in reach shows, and to fade real content in.
        self.memory.recall(t, X, Y, values_np, filled_np, real_np, dist)
        self.propagation.moving(t, buf)  # what of t's picture stays out of the memory and of a key frame's sources
        # Shared memory: later steps work on torch views of the same arrays.
        values, real, filled = torch.from_numpy(values_np), torch.from_numpy(real_np), torch.from_numpy(filled_np)
        # 3. Generate what nothing shows: a key frame, or a smooth patch for a sliver.
        missing = int((~filled).sum())
        # A sliver (a row or column at the memory's edge after sub-pixel motion) is
        # smoothed over; only a real gap calls the model.
        canvas = self.propagation.canvas
        if missing > max(self.options.key_share * filled.numel(), 3 * max(filled.shape)):
            self.memory.key_frame(t, buf, canvas(t, values, filled, scale), values, filled)
        elif missing:
            made = np.zeros((self.h, self.w), bool)
            made[:, self._side_index] = ~filled_np
            self.memory.smooth_over(t, values, filled_np, scale)
            self.memory.remember(t, lambda c0, c1: canvas(t, values, None, scale, c0, c1), made=made)
        else:
            self.memory.remember(t, lambda c0, c1: canvas(t, values, filled, scale, c0, c1))
        return values, real
