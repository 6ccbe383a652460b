"""``TemporalFiller``: the engine that ties the shot analysis, propagation, shot memory and seams together."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from .. import video
from ..compositor import SideSeam
from ..engine import Filler
from ..models.classical import EdgeFill
from ..motion import Similarity
from .characters import CharacterMasks, closed_over
from .memory import ShotMemory
from .options import TemporalOptions, TemporalStats
from .propagate import Propagation
from .provenance import Provenance
from .records import (
    Entry,
    Panorama,
    Prepared,
    Shown,
    bbox,
    memory_grid,
)
from .seams import SeamBlend
from .shots import ShotAnalysis
from .trust import SideTrust


class TemporalFiller(ShotAnalysis, SideTrust, Propagation, ShotMemory, SeamBlend, Provenance):
    """Streams frames through analysis, propagation, shot memory and key-frame generation."""

    def __init__(self, filler: Filler, options: TemporalOptions | None = None) -> None:
        self.filler = filler
        self.options = options or TemporalOptions()
        # What frames that lean on their own fill are filled with (see loose_model).
        start = getattr(filler.model, "prefill", None)
        while getattr(start, "prefill", None) is not None:  # a fill over a fill (a network over
            start = start.prefill  # `patch`): the cheapest at the bottom of the chain, as `patch` uses
        self._own_fill = filler
        if start is not None:
            self._own_fill = Filler(start, filler.layout, filler.device, 1, compositor=filler.compositor)
        # Set by a consumer that puts the picture back from the source's own YUV planes
        # (the conversion writer): frames carrying planes of this format get only their
        # sides, the picture area of their image left unset.
        self.centre_from_planes: str | None = None
        lay = filler.layout
        self.layout = lay
        self.h, self.w = lay.canvas_height, lay.canvas_width
        self.pic_w = lay.content.width
        self.left = lay.left
        self.factor = max(1, round(self.h / self.options.thumb_height))
        # The sides as one (H, S) grid: left strip columns, then right strip columns.
        self.side_cols = torch.cat([torch.arange(0, lay.left), torch.arange(lay.left + self.pic_w, self.w)]).float()
        # Side-grid column ranges of the two strips (each maps to a contiguous picture span).
        self._strips = [r for r in ((0, lay.left), (lay.left, self.side_cols.numel())) if r[1] > r[0]]
        self._side_cols, self._rows = self.side_cols.double().numpy(), np.arange(self.h, dtype=np.float64)
        self._side_index = self.side_cols.long().numpy()
        self.n_side = self.h * self.side_cols.numel()
        self._seam = SideSeam.of(filler.compositor, lay)
        self._mirror = self._mirror_map()
        # Frames consulted for propagation: every near one, then sparser (content far
        # from the picture only shows up in frames far away, and it moves with the camera).
        d, self._distances = 1, set()
        while d <= self.options.window:
            self._distances.add(d)
            d = d + 1 if d < 4 else d + max(1, d // 3)
        self._distances.add(self.options.window)
        self.stats = TemporalStats()
        self._shot = -1
        self._next = 0
        self._memory: Panorama | None = None
        self._memory_shot = -1
        self._loose = False  # the last frame leaned on its own fill
        self._trusted: torch.Tensor | None = None  # (1, S) trust of the last frame rendered anew
        self._key: tuple[int, Similarity, np.ndarray] | None = None  # (shot, camera, thumbnail) of the last key frame
        self._last: Shown | None = None  # the sides of the last frame rendered
        self._handover: tuple[torch.Tensor, int] | None = None  # (sides faded out of, frames left)
        self._prepared: Prepared | None = None  # the last frame prepare() saw
        # Characters of key frames (ganime.segment), and those of the shot's last key frame.
        self._characters = CharacterMasks(self.options, filler.device) if self.options.characters else None
        self._key_chars: torch.Tensor | None = None
        self._key_masked = False  # the shot's characters were found (``_key_chars``, None: none)
        self._chars_at: tuple[int, Similarity, np.ndarray] | None = None  # (index, camera, thumbnail) of their frame
        # The same for each half of the picture the segmenter looks at: the frame each half's mask was found in.
        self._half_at: list[tuple[int, Similarity, np.ndarray] | None] = [None, None]
        # Shot starts are usually key frames: their masks are found ahead, on a worker
        # thread, for models that take sources (for the others only frames that lean on
        # their own fill need one, and few do).
        takes_source = getattr(filler.model, "takes_source", False)
        self._mask_ahead = self.options.masks_ahead and self._characters is not None and takes_source
        self._scanned = 0  # frames up to here were looked at for masks to find ahead
        self._ahead_shot = -1  # the last shot whose first frame's mask was started ahead
        self._ahead_frames: deque[int] = deque()  # frames whose masks were started ahead
        self._start_trace()
        self._handover_trace: torch.Tensor | None = None

    @property
    def seconds(self) -> float:
        """Time spent filling (the engine's own work and its model runs)."""
        return self.stats.seconds

    def stream(
        self, frames: Iterable[video.Frame | Prepared], on_frames: Callable[[int], None] | None = None
    ) -> Iterator[video.Frame]:
        """Source frames (or prepared ones) in, filled canvases out, in the same order with the same timestamps."""
        if self.n_side == 0:
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
                buf.append(self._analyse(frame, index, buf))
                self._find_ahead(buf)
                self.stats.seconds += time.perf_counter() - started
                yield from self._drain(buf, final=False, on_frames=on_frames)
            for e in buf:  # the stream has ended: every verdict is final
                if not e.decided:
                    self._decide(e, None, buf)
            yield from self._drain(buf, final=True, on_frames=on_frames)
        finally:
            if self._characters is not None:
                self._characters.close()
                self.stats.masks_ahead = self._characters.taken_ahead

    def _find_ahead(self, buf: deque[Entry]) -> None:
        """Start finding the characters of the decided shot starts not yet looked at.

        A shot's first frame is nearly always a key frame. Later drawings are not tried:
        animated on threes, the 640x480 benchmark clip has 45 new drawings for 8 key
        frames in 362 frames, more than the spare core can find."""
        if not self._mask_ahead:
            return
        assert self._characters is not None
        for e in buf:
            if e.index < max(self._scanned, self._next):
                continue
            if not e.decided:
                return
            if not e.single and e.shot != self._ahead_shot:
                scale = 65535.0 if e.picture.dtype == torch.int32 else 255.0
                if not self._characters.ahead(e.index, e.picture, scale):
                    return  # enough kept: this one again after the next frame
                self._ahead_shot = e.shot
                self._ahead_frames.append(e.index)
            self._scanned = e.index + 1

    def _forget_ahead(self) -> None:
        """Drop the masks found ahead for frames already rendered."""
        assert self._characters is not None
        while self._ahead_frames and self._ahead_frames[0] < self._next:
            self._characters.drop(self._ahead_frames.popleft())

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
            if self._characters is not None:
                self._forget_ahead()
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
        if t.single:
            self.stats.single += 1
            if self._tracer is None and self._characters is None:
                (out,) = self._plain([t.frame])
                return out
            # A flash or a blank frame is filled on its own: characters closed over, as
            # for any frame's own fill.
            started = time.perf_counter()
            given, left_in = self._loose_image(t)
            if self._tracer is not None:
                image, made = self.filler.fill_traced(given, left_in)
                self._count_trace(made[:, self.side_cols.long()])
            else:
                (image,) = self.filler.fill([given])
            self.stats.model_seconds += time.perf_counter() - started
            if given is not t.frame.image and (t.frame.planes is None or t.frame.pix_fmt != self.centre_from_planes):
                c = self.layout.content  # the picture as it was, not closed over
                image[:, self.left : self.left + self.pic_w] = t.frame.image[c.y : c.bottom, c.x : c.right]
            return video.Frame(image, t.frame.pts, t.frame.time_base, t.frame.planes, t.frame.pix_fmt)
        if t.shot != self._memory_shot:
            self._memory = None
            self._memory_shot = t.shot
            last, self._last = self._last, None
            self._loose = False
            self._trusted = None
            self._handover = None
            self._key_chars = None
            self._key_masked = False
            self._chars_at = None
            self._half_at = [None, None]
            if t.continues:
                self._hand_over(last, t)
        scale = 65535.0 if t.picture.dtype == torch.int32 else 255.0
        last = self._last
        # A held drawing repeats the last sides, unless a slow fade (each frame changing
        # by less than ``hold``) has moved the picture's brightness since they were made.
        if t.held and last is not None and last.index == t.index - 1 and self._same_light(t, last):
            # The same drawing: the same sides as last frame; only the seam follows the picture.
            self.stats.held += 1
            last.index = t.index
            self._count_trace(last.trace)
            if not self._seam_still(t, last):
                last.sides = self._composite(t, last.values, scale, base=last.sides)
                last.seam_thumb = t.thumb
            return self._canvas_out(t, last.sides)
        else:
            # Per side column: how far the shot's sides still hold for this frame.
            trust = torch.minimum(torch.full((self.side_cols.numel(),), self._trust(t, buf)), self._edge_trust(t))
            trust = trust[None, :]
            # Firm: the camera model holds and the memory was made at this brightness.
            camera_holds = bool((trust >= 1).all()) and self._memory_trust(t) >= 1
            stale, sides_to_redo = self._stale_trust(t, scale, camera_holds)
            if stale is not None:
                trust = torch.minimum(trust, stale)
            if self._trusted is not None:
                # Trust falls by at most ``loosen`` per new drawing, so the sides slide from
                # the memory to the frame's own fill even when held drawings leave few
                # decisions in the fits' averaging window (animation on twos and threes).
                trust = torch.maximum(trust, self._trusted - self.options.loosen)
            self._trusted = trust
            if self._loose and bool((trust >= 1).all()):
                # Back on firm ground after frames that leaned on their own fill: what the
                # memory holds is from before the disturbance (a bad fit, a fade, a side
                # gone stale: on the eval and training clips a fresh start of both sides
                # scores better than keeping the side that held); start it afresh from
                # here, cross-fading from the last sides shown so nothing pops.
                self._memory = None
                self._key = None
                sides_to_redo = None
                self._hand_over(self._last, t)
            trust = trust * self._memory_trust(t)
            self._loose = bool((trust < 1).any())
            if sides_to_redo is not None:
                self._refresh(t, scale, sides_to_redo)
            values, real = self._sides(t, buf, scale)
            if self._loose:  # lean on the frame itself where the sides do not hold
                self.stats.loose += 1
                started = time.perf_counter()
                fill = self.filler if float(trust.min()) < self.options.loose_model else self._own_fill
                self.stats.loose_model += fill is self.filler
                # A mirror shows only the picture beside its seams: changes elsewhere do
                # not call for a new mask (on the 640x480 benchmark clip 10 masks -> 9).
                band = self.layout.side_width * 5 // 4 if isinstance(fill.model, EdgeFill) else None
                image, chars = self._loose_image(t, band)
                if self.trace is not None:
                    own, made = fill.fill_traced(image, chars)
                else:
                    (own,) = fill.fill([image])
                self.stats.model_seconds += time.perf_counter() - started
                own_sides = torch.from_numpy(own[:, self.side_cols.long()].astype(np.float32)) / scale
                values = trust[..., None] * values + (1 - trust[..., None]) * own_sides
                if self.trace is not None:
                    self.trace = trust[0] * self.trace + (1 - trust[0]) * made[:, self.side_cols.long()]
                real = real * trust
            values = self._live_mirror(t, values, real, scale)
            if self._handover is not None:
                before, left = self._handover
                values = values + (before - values) * (left / (self.options.handover + 1))
                if self.trace is not None and self._handover_trace is not None:
                    self.trace = self.trace + (self._handover_trace - self.trace) * (left / (self.options.handover + 1))
                self._handover = (before, left - 1) if left > 1 else None
        self._last = Shown(
            t.index, values, self._composite(t, values, scale), t.thumb, float(t.thumb.mean()), self.trace
        )
        self._count_trace(self.trace)
        return self._canvas_out(t, self._last.sides)

    def _loose_image(self, t: Entry, band: int | None = None) -> tuple[np.ndarray, torch.Tensor | None]:
        """What a frame's own fill is given, and its characters left in it (for the trace).

        With ``characters`` the shot's characters (``_shot_characters``: its mask moved
        with the camera, or found here) are closed over first:
        the own fill is a mirror (or ``patch`` with no sources given), and would otherwise
        mirror a character by the seam into the side. A new mask only where the drawing
        changed outside the shot's (near the edges, ``band``, for a mirror): a mask per
        such frame doubled the masks' cost on the 640x480 benchmark clip. With provenance
        (``ganime eval``) the fill is the same, and what of the frame's own characters
        that mask missed is traced.
        """
        if self._characters is None:
            return t.frame.image, self._frame_chars(t) if self._tracer is not None else None
        chars = self._shot_characters(t, exact=False, band=band)
        left_in = None  # what of the frame's own characters the shot's mask missed (the trace)
        if self._tracer is not None:
            left_in = self._frame_chars(t)
            if left_in is not None and chars is not None:
                left_in = left_in & ~chars
        if chars is None:
            return t.frame.image, left_in
        return closed_over(t.frame.image, self.layout.content, chars), left_in

    def _sides(self, t: Entry, buf: deque[Entry], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, S, 3) side values in [0, 1] (S = side columns, left then right) and (H, S) realness.

        Realness is 1 where the value was taken from a real frame, 0 where generated.
        """
        # Reference coordinates of the side columns and of the rows (float64: exact enough
        # that a level pan samples whole rows).
        X = t.to_ref.a * self._side_cols + t.to_ref.bx
        Y = t.to_ref.a * self._rows + t.to_ref.by
        # 1. Which frame shows each side pixel: the nearest in time (painter's order).
        candidates = [
            e
            for e in sorted(self._rigid_reach(t, buf), key=lambda e: (abs(e.index - t.index), e.index > t.index))
            if abs(e.index - t.index) in self._distances
        ]
        values_np, unfilled, dist = self._propagate(t, candidates, X, Y, scale, buf)
        # Provenance: propagated pixels show what the true side shows (see provenance.py).
        self.trace = torch.zeros(values_np.shape[:2]) if self._tracer is not None else None
        filled_np = ~unfilled
        real_np = filled_np.astype(np.float32)
        self.stats.propagated += float(real_np.mean())
        # 2. The shot memory: for what no frame in reach shows, and to fade real content in.
        w = np.clip((self.options.window - dist) / max(1, self.options.ramp), 0, 1)
        want = unfilled | (w < 1)
        box = bbox(want) if self._memory is not None else None
        if box is not None:
            assert self._memory is not None
            r0, r1, c0, c1 = box
            mv, ok = memory_grid(self._memory, X[c0:c1], Y[r0:r1])
            mv = self._at_brightness(mv, t)
            ok &= want[r0:r1, c0:c1]
            fresh = filled_np[r0:r1, c0:c1] & ok
            wk = w[r0:r1, c0:c1]
            old = values_np[r0:r1, c0:c1]
            if self.trace is not None and self._memory.trace is not None:
                marked = memory_grid(self._memory, X[c0:c1], Y[r0:r1], self._memory.trace)[0][..., 0]
                marked = np.where(fresh, marked * (1 - wk), marked)  # real content counts 0
                part = self.trace[r0:r1, c0:c1]
                part.copy_(torch.from_numpy(np.where(ok, marked, part.numpy())))
            if fresh.any():  # real content fading in over the memory
                mixed = np.where(fresh[..., None], mv + (old - mv) * wk[..., None], mv)
                real_np[r0:r1, c0:c1] = np.where(ok, np.where(fresh, wk, 0.0), real_np[r0:r1, c0:c1])
            else:  # the memory alone (a still shot): where it is valid, nothing real was there
                mixed = mv
            if ok.all():
                old[...] = mixed
            else:
                np.copyto(old, mixed, where=ok[..., None])
            filled_np[r0:r1, c0:c1] |= ok
        self._moving(t, buf)  # what of t's picture stays out of the memory and of a key frame's sources
        # Shared memory: later steps work on torch views of the same arrays.
        values, real, filled = torch.from_numpy(values_np), torch.from_numpy(real_np), torch.from_numpy(filled_np)
        # 3. Generate what nothing shows: a key frame, or a smooth patch for a sliver.
        missing = int((~filled).sum())
        # A sliver (a row or column at the memory's edge after sub-pixel motion) is
        # smoothed over; only a real gap calls the model.
        if missing > max(self.options.key_share * filled.numel(), 3 * max(filled.shape)):
            self._key_frame(t, buf, self._canvas(t, values, filled, scale), values, filled)
        elif missing:
            made = np.zeros((self.h, self.w), bool)
            made[:, self._side_index] = ~filled_np
            self._smooth_over(t, values, filled_np, scale)
            self._remember(t, lambda c0, c1: self._canvas(t, values, None, scale, c0, c1), made=made)
        else:
            self._remember(t, lambda c0, c1: self._canvas(t, values, filled, scale, c0, c1))
        return values, real
