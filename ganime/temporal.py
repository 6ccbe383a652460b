"""The temporal engine: sides that stay still and reuse what the camera already saw.

Filled frame by frame, generated sides flicker and the model runs on every frame.
Animation is kinder than that: hard cuts separate shots, drawings are held for two
or three frames, and backgrounds are paintings the camera slides over. So, per shot:

- **Analysis** (``motion``): each frame gets a grey thumbnail, its camera motion
  against the previous frame (translation + zoom, robust to characters), and a
  verdict: same shot, a *cut* (z-scored difference after motion is undone; a single
  odd frame followed by the old picture is a *flash*, filled on its own, and does not
  end the shot), a *held* drawing (nothing moved), or *blank* (a black or white
  frame of a fade, filled on its own). Motions are chained into a map from each
  frame to the shot's reference frame.
- **Propagation**: a side pixel of frame t that some other frame u of the same shot
  shows inside its picture, within ``window`` frames before or after and linked to t
  by motion that fits (``rigid``), is copied from the nearest such u (aligned by the
  camera motion, corrected for fades). Only background is copied: a pixel of u that a
  frame a few before or after it (aligned by the camera) disagrees with moves against
  the camera (a character, an effect) and is never propagated, written to the shot
  memory or offered to a model that copies patches (``moving``), so a character is
  not pasted where it no longer is.
- **Shot memory**: everything a frame ends up showing (picture and sides) is written
  once into a panorama in reference coordinates. Sides that no frame in reach shows
  come from there, so they move with the camera and stay put on the background.
- **Key frames**: only what neither source has is generated: the model runs on that
  frame's canvas (widened to what the frames ahead will show, so a pan does not need
  it again next frame) with everything known filled in, and the result goes into the
  shot memory. A static shot runs the model once; a pan every so often.
- **No popping**: real content that propagation brings in is faded in over ``ramp``
  frames as it comes within reach, replacing what the memory held; the seam is
  feathered against the current frame's edge, and generated pixels within a fifth of
  the side from it lean (``live_mirror``) toward the current frame's mirror image, so
  something moving along the picture's edge shows next to the seam, as in a per-frame
  fill, while the memory and the rest of the sides stay still.
- **Where the model of the shot fails**: frames the camera motion explains poorly
  (parallax, smoke), or a still shot whose light changed since its key frame (a slow
  fade), lean gradually toward their own per-frame fill: the
  trust in the shot's sides falls by at most ``loosen`` per new drawing, and only
  frames leaning far on their own fill (``loose_model``) pay for the model's. A moving
  camera's side whose picture edge has drifted from what the memory holds there leans
  the same way (``stale_lean``), and past ``stale`` that side is generated again. Back on
  firm ground (say, the end of a fade) the memory starts afresh and the sides
  cross-fade from the last ones shown over ``handover`` frames instead of popping.

Memory is bounded: frames are held for ``window`` frames each way at most, and the
panorama is capped at ``max_extent`` canvases (a zoom past 2x either way starts a new
shot, whose sides cross-fade from the old ones like the end of a fade); frames leave
in the order they came, with their own timestamps.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from . import video
from .engine import Filler
from .models.classical import push_pull
from .motion import IDENTITY, Match, Similarity, _median, match, sample_grid, span, taps, thumbnail, to_frame
from .motion import to_thumb as _to_thumb

# Levels of mean brightness a held drawing's picture may drift from the frame its sides
# were made for (a slow fade) before the sides are made again. At ``hold`` (0.6) a clip
# drawn on threes with a moving camera renders more frames anew and flickers more
# (anime_cuts 1.98 -> 2.15); at 1 no eval clip changes.
RELIGHT = 1.0


@dataclass(frozen=True)
class TemporalOptions:
    """Settings of the temporal engine.

    Args:
        window: frames of look-ahead and look-behind for propagation.
        thumb_height: analysis thumbnails are about this tall.
        cut: z-scored difference (after motion) above which a new shot starts.
        hold: mean change (8-bit levels on the thumbnail) under which a still frame repeats the last.
        blank: thumbnails with less contrast than this (levels) are blank (fades).
        key_share: share of side pixels left unknown that calls the model (less is smoothed over).
        margin: a key frame is generated this much wider on every side (fraction of the side
            width) than what the frames ahead will show. 0 (2 px): a still shot's key frame
            is the fill of that frame as a per-frame run makes it; a wider canvas changes
            what a fill makes (the edge fill's fade grows with the generated width, a
            network sees other proportions than it was trained on), which the training
            clips and the eval clips both score lower (0.5 before).
        ramp: frames over which real content fades in over the shot memory.
        max_extent: the shot memory covers at most this many canvases across and down.
        drift_span: chained motion is re-measured against a frame this far back.
        rigid: frames whose motion fit is worse than this stop propagation across them.
        edge_change: mean change (8-bit levels) of the picture's outer tenth since the key
            frame above which a still camera's sides start leaning on the frame's own fill;
            counted only up to how far the whole picture's mean brightness moved, so light
            changes count and a character stepping into the edge does not. With ``glcic``,
            this and the still-camera check of ``motion.match`` together, against neither:
            eval clips +0.031 dB (a character walking in from the side of a still shot
            +0.13, a still shot the camera estimate wandered in +0.14), -0.0001 SSIM,
            temporal error -1.2 %, flicker -6.5 %; the 39 training clips -0.011 dB,
            -0.0004 SSIM, flicker -1.6 %. The check alone, counting the edge's change as
            before: eval -0.04 dB (the side beside the walking character leaned on a fill
            that smeared it).
        live_mirror: strength (0-1) with which generated side pixels next to the seam
            take the current frame's mirror image; it fades out over ``mirror_reach``.
        mirror_reach: that zone, as a fraction of the widest side.
        handover: frames over which the sides cross-fade from the last ones shown when
            the engine leaves frames that leaned on their own fill (0: switch at once).
        stale: median change (8-bit levels) of the picture's outer tenth against what the
            shot memory holds there above which a moving camera's generated sides are made
            again (0: never). With ``loosen`` and ``loose_model`` as they are, 5 against 8
            on the training clips: +0.007 dB, +0.0002 SSIM, flicker -0.7 %; on the eval
            clips -0.03 dB (a fast 14-frame pan loses 0.55 dB, a long 3D zoom gains 0.26),
            +0.0011 SSIM, flicker -7 %; no more refreshes on a real 640x480 clip. 4 cuts
            flicker further but costs PSNR on both sets of clips (eval -0.06 dB) and
            refreshes on the real clip; 6 scores between 5 and 8; 10 and up lower.
        loose_model: frames that lean on their own fill get it from the model itself once
            the trust in the shot's sides has fallen below this in some column (above 1:
            every such frame; 0: none). Frames above it are blended in lightly, where the
            model's small correction does not show: a model that starts from a weight-free
            fill (``prefill``) gives them that fill, which skips most of the network's
            runs for such frames (on a real 640x480 clip, 5 of its 9 runs per 181 frames).
            Long stretches the camera model cannot explain (a fade, heavy animation) fall
            below it and are filled as a per-frame run would. With ``glcic``, 0.5 against 0:
            eval clips +0.009 dB, training clips +0.005 dB, +0.0002 SSIM, flicker -0.5 %.
        loosen: the most the trust in the camera model (and in a still camera's sides) may
            fall from one new drawing to the next (1: no limit). The fits are averaged
            over a few frames, but on animation drawn on threes only one frame in three is
            a new drawing, and the sides would swing from the memory to the frame's own
            fill in one step. With ``glcic``, 0.1 against no limit: eval clips +0.036 dB,
            -0.0002 SSIM, flicker -6 %; training clips -0.001 dB, -0.0001 SSIM, flicker
            -1.5 %. 0.05 lowers flicker further but loses SSIM on both.
        stale_lean: from this staleness (``stale``'s measure, in levels) up to ``stale``, a
            moving camera's side leans toward the frame's own fill, all of it at ``stale``
            (0: only the refresh at ``stale``). A picture edge drifting from the memory
            (parallax, light) does not always pass ``stale`` before the memory is made
            again, and the sides beside it no longer continue it. With ``glcic``, 2.5
            against 0: eval clips +0.033 dB, +0.0032 SSIM, flicker -6 %, and the strip
            PSNR is no lower than per frame on every clip (a tilt with parallax, 27.63
            against 27.87 dB, becomes 27.88); training clips +0.031 dB, +0.0019 SSIM,
            flicker +3 %. 2.0, 3.0 and 3.5 score lower PSNR on the training clips.
        moving: 8-bit levels (the largest of R, G and B, on the analysis thumbnail, the
            camera motion and the light change undone) by which a pixel must differ from a
            frame before or after it to count as moving against the camera (0: off). At 12
            (compared pixel for pixel) the textured sky of a fast pan, resampled on the
            thumbnail, counted as moving: 85 % of a tuning clip's picture, against 54 % at
            24 and 35 % at 24 against the best neighbour (the characters and their trails),
            while a drawn character still differs by far more.
        moving_grow: what moves is widened by this many thumbnail pixels every way (a
            flat-coloured character differs from its neighbours mostly at its outline).
        moving_span: frames compared for ``moving`` are 2, 4, ... up to this many frames
            before and after (in the same shot, where the camera motion reaches).
        moving_unseen: count what no other frame shows (the trailing edge of a pan's first
            frames) as moving where it lies beside what is seen moving. Off: it is taken for
            background, so a character standing at that edge in the first frames of a
            shot can still be copied into the sides of the frames that follow (for about
            ``moving_span`` frames). On, it kept every ghost out of the synthetic test, but
            held real background out of the memory wherever a character was near the
            picture's edge: the shipped example's houses came out broken, and the tuning
            split lost 0.005 LPIPS with ``patch``.
    """

    window: int = 48
    thumb_height: int = 80
    cut: float = 0.5
    hold: float = 0.6
    blank: float = 4.0
    key_share: float = 0.003
    margin: float = 0.0
    ramp: int = 8
    max_extent: float = 3.0
    drift_span: int = 12
    rigid: float = 0.3
    edge_change: float = 8.0
    live_mirror: float = 0.5
    mirror_reach: float = 0.2
    handover: int = 8
    stale: float = 5.0
    loose_model: float = 0.5
    loosen: float = 0.1
    stale_lean: float = 2.5
    moving: float = 24.0
    moving_grow: int = 2
    moving_span: int = 8
    moving_unseen: bool = False


@dataclass
class TemporalStats:
    """What the engine did, for the user and for benchmarks."""

    frames: int = 0
    shots: int = 0
    held: int = 0
    single: int = 0  # frames filled on their own (flashes, blank frames)
    key_frames: int = 0
    loose: int = 0  # frames the camera model explained poorly, blended with their own fill
    loose_model: int = 0  # of those, the frames whose own fill the model made (see TemporalOptions)
    propagated: float = 0.0  # side pixels taken from other frames (sum of shares)
    seconds: float = 0.0
    model_seconds: float = 0.0
    peak_buffer: int = 0  # most frames held at once
    peak_memory_pixels: int = 0  # largest shot memory, in pixels
    refreshed: int = 0  # times generated sides were made again beside a picture that moved on
    measured_ahead: int = 0  # frames whose camera motion prepare() had measured (on the decoding thread)


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


@dataclass
class _Entry:
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
class _Shown:
    """The sides of the last frame rendered, for held drawings and cross-fades."""

    index: int
    values: torch.Tensor  # (H, S, 3) in [0, 1], before the seam blend
    sides: np.ndarray  # (H, S, 3) output samples, seam blended
    seam_thumb: np.ndarray  # thumbnail of the frame whose picture edge the seam blends
    brightness: float  # mean of the thumbnail of the frame the sides were made for


@dataclass
class _Memory:
    """The shot memory: a panorama in reference coordinates, first value written wins."""

    x0: int
    y0: int
    values: np.ndarray  # (h, w, 3) float32 in [0, 1]: sides are read from it as (rows, columns, colour)
    valid: np.ndarray  # (h, w) bool
    made: np.ndarray  # (h, w) bool: generated by the model (or smoothed over), not seen in a frame
    gain: float = 1.0  # brightness gain of the frame that started it (see TemporalFiller._memory_trust)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.values.shape[1], self.y0 + self.values.shape[0]


class TemporalFiller:
    """Streams frames through analysis, propagation, shot memory and key-frame generation."""

    def __init__(self, filler: Filler, options: TemporalOptions | None = None) -> None:
        self.filler = filler
        self.o = options or TemporalOptions()
        # What frames that lean on their own fill are filled with (see loose_model).
        start = getattr(filler.model, "prefill", None)
        while getattr(start, "prefill", None) is not None:  # a fill over a fill (a network over
            start = start.prefill  # `patch`): the cheapest at the bottom of the chain, as `patch` uses
        self._own = filler
        if start is not None:
            self._own = Filler(start, filler.layout, filler.device, 1, compositor=filler.compositor)
        # Set by a consumer that puts the picture back from the source's own YUV planes
        # (the conversion writer): frames carrying planes of this format get only their
        # sides, the picture area of their image left unset.
        self.centre_from_planes: str | None = None
        lay = filler.layout
        self.layout = lay
        self.h, self.w = lay.canvas_height, lay.canvas_width
        self.pic_w = lay.content.width
        self.left = lay.left
        self.factor = max(1, round(self.h / self.o.thumb_height))
        # The sides as one (H, S) grid: left strip columns, then right strip columns.
        self.side_cols = torch.cat([torch.arange(0, lay.left), torch.arange(lay.left + self.pic_w, self.w)]).float()
        # Side-grid column ranges of the two strips (each maps to a contiguous picture span).
        self._strips = [r for r in ((0, lay.left), (lay.left, self.side_cols.numel())) if r[1] > r[0]]
        self._side_cols, self._rows = self.side_cols.double().numpy(), np.arange(self.h, dtype=np.float64)
        self._side_index = self.side_cols.long().numpy()
        self.n_side = self.h * self.side_cols.numel()
        self._feather = self._feather_map()
        self._feather_at = (self._feather[0].numpy(), self._feather[1].numpy())
        self._seam_bands = self._bands_of(self._feather)
        self._mirror = self._mirror_map()
        # Frames consulted for propagation: every near one, then sparser (content far
        # from the picture only shows up in frames far away, and it moves with the camera).
        d, self._distances = 1, set()
        while d <= self.o.window:
            self._distances.add(d)
            d = d + 1 if d < 4 else d + max(1, d // 3)
        self._distances.add(self.o.window)
        self.stats = TemporalStats()
        self._shot = -1
        self._next = 0
        self._memory: _Memory | None = None
        self._memory_shot = -1
        self._loose = False  # the last frame leaned on its own fill
        self._trusted: torch.Tensor | None = None  # (1, S) trust of the last frame rendered anew
        self._key: tuple[int, Similarity, np.ndarray] | None = None  # (shot, camera, thumbnail) of the last key frame
        self._last: _Shown | None = None  # the sides of the last frame rendered
        self._handover: tuple[torch.Tensor, int] | None = None  # (sides faded out of, frames left)
        self._prepared: Prepared | None = None  # the last frame prepare() saw

    # ------------------------------------------------------------ streaming

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
        thumb = thumbnail(pic, self.factor)
        contrast = float(thumb.std(ddof=1))
        prev, m, hint = self._prepared, None, None
        if prev is not None and min(prev.contrast, contrast) >= self.o.blank and prev.thumb.shape == thumb.shape:
            # What _decide_if_plain measures when the previous frame anchors this one.
            hint = prev.match.motion if prev.match is not None else None
            m = match(prev.thumb, thumb, hint)
        p = Prepared(frame, picture, thumb, contrast, m, hint)
        self._prepared = p
        return p

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
            return
        buf: deque[_Entry] = deque()
        self._next = 0
        for index, frame in enumerate(frames):
            started = time.perf_counter()
            buf.append(self._analyse(frame, index, buf))
            self.stats.seconds += time.perf_counter() - started
            yield from self._drain(buf, final=False, on_frames=on_frames)
        for e in buf:  # the stream has ended: every verdict is final
            if not e.decided:
                self._decide(e, None, buf)
        yield from self._drain(buf, final=True, on_frames=on_frames)

    def _plain(self, frames: list[video.Frame]) -> Iterator[video.Frame]:
        started = time.perf_counter()
        canvases = self.filler.fill([f.image for f in frames])
        self.stats.model_seconds += time.perf_counter() - started
        for f, c in zip(frames, canvases, strict=True):
            yield video.Frame(c, f.pts, f.time_base, f.planes, f.pix_fmt)

    def _drain(self, buf: deque[_Entry], final: bool, on_frames: Callable[[int], None] | None) -> Iterator[video.Frame]:
        """Emit, in order, every frame whose look-ahead is complete (or whose shot has ended)."""
        while buf:
            target = next((e for e in buf if e.index == self._next), None)
            if target is None or not target.decided:
                return
            ready = final or buf[-1].index >= target.index + self.o.window
            if not ready:  # a later frame of another shot: nothing ahead can help
                ready = any(e.decided and e.shot != target.shot for e in buf if e.index > target.index)
            if not ready:
                return
            started = time.perf_counter()
            out = self._render(target, buf)
            self._next += 1
            self.stats.frames += 1
            # Forget frames no later frame can reach: too far back, or of an earlier shot.
            while (
                buf
                and buf[0].index < self._next
                and (buf[0].index < self._next - self.o.window or buf[0].shot != target.shot)
            ):
                buf.popleft()
            self.stats.seconds += time.perf_counter() - started
            self.stats.peak_buffer = max(self.stats.peak_buffer, len(buf))
            if on_frames:
                on_frames(1)
            yield out

    # ------------------------------------------------------------- analysis

    def _analyse(self, frame: video.Frame | Prepared, index: int, buf: deque[_Entry]) -> _Entry:
        p = frame if isinstance(frame, Prepared) else self.prepare(frame)
        entry = _Entry(index, p.frame, p.picture, p.thumb, p.contrast)
        for e in buf:  # a frame waits for the next one only to tell a flash from a cut
            if not e.decided:
                self._decide(e, entry, buf)
        self._decide_if_plain(entry, buf, p)
        return entry

    def _anchor(self, buf: deque[_Entry], before: int) -> _Entry | None:
        """The latest decided frame before ``before`` that carries the shot (not single)."""
        for e in reversed(buf):
            if e.index < before and e.decided and not e.single:
                return e
        return None

    def _is_blank(self, entry: _Entry) -> bool:
        return entry.contrast < self.o.blank

    def _decide_if_plain(self, entry: _Entry, buf: deque[_Entry], ahead: Prepared) -> None:
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
        if m.difference <= self.o.cut and abs(m.motion.a - 1) < 0.12:
            self._continue(entry, anchor, m, buf)
        # else: a cut or a flash; wait for the next frame

    def _decide(self, entry: _Entry, nxt: _Entry | None, buf: deque[_Entry]) -> None:
        """Decide a frame that looked like a cut, now that the next frame is known."""
        anchor = self._anchor(buf, entry.index)
        if anchor is None or entry.match is None:
            self._new_shot(entry)
            return
        if nxt is not None and not self._is_blank(nxt):
            back = match(anchor.thumb, nxt.thumb)
            if back.difference <= self.o.cut and entry.index - anchor.index <= 2:
                self._set_single(entry, anchor)  # a flash: the shot goes on after it
                return
        self._new_shot(entry)

    def _set_single(self, entry: _Entry, anchor: _Entry | None) -> None:
        entry.single = True
        entry.decided = True
        entry.shot = anchor.shot if anchor is not None else self._shot

    def _new_shot(self, entry: _Entry) -> None:
        self._shot += 1
        self.stats.shots += 1
        entry.shot = self._shot
        entry.to_ref = IDENTITY
        entry.gain, entry.offset = 1.0, 0.0
        entry.decided = True

    def _continue(self, entry: _Entry, anchor: _Entry, m: Match, buf: deque[_Entry]) -> None:
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
        entry.held = motion.is_identity and m.change < self.o.hold and anchor.index == entry.index - 1
        entry.decided = True

    @staticmethod
    def _lit(values: np.ndarray, t: _Entry) -> np.ndarray:
        """Memory values (reference brightness) at frame t's brightness."""
        if t.gain == 1.0 and t.offset == 0.0:
            return values
        return np.clip(values * t.gain + t.offset, 0, 1)

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

    def _correct_drift(self, entry: _Entry, buf: deque[_Entry]) -> None:
        """Re-measure the chained motion against a frame further back.

        Chaining frame-to-frame motions adds their small errors up; matching directly
        against a frame ``drift_span`` back, starting from the chained estimate, keeps
        the error of one link instead of a sum of many.
        """
        span = self.o.drift_span
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
        thumb = _to_thumb(guess, self.factor, self.left)
        m = match(ref.thumb, entry.thumb, exact=thumb)
        if m.difference <= self.o.cut and m.overlap > 0.5:
            entry.to_ref = ref.to_ref.then(self._snap(to_frame(m.motion, self.factor, self.left)))

    def _still_since(self, ref: _Entry, entry: _Entry, buf: deque[_Entry]) -> bool:
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

    # ------------------------------------------------------------ rendering

    def _render(self, t: _Entry, buf: deque[_Entry]) -> video.Frame:
        if t.single:
            self.stats.single += 1
            (out,) = self._plain([t.frame])
            return out
        if t.shot != self._memory_shot:
            self._memory = None
            self._memory_shot = t.shot
            last, self._last = self._last, None
            self._loose = False
            self._trusted = None
            self._handover = None
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
            if not self._seam_still(t, last):
                last.sides = self._composite(t, last.values, scale, base=last.sides)
                last.seam_thumb = t.thumb
            return self._canvas_out(t, last.sides)
        else:
            # Per side column: how far the shot's sides still hold for this frame.
            trust = torch.minimum(torch.full((self.side_cols.numel(),), self._trust(t, buf)), self._edge_trust(t))
            trust = trust[None, :]
            # Firm: the camera model holds and the memory was made at this brightness.
            firm = bool((trust >= 1).all()) and self._memory_trust(t) >= 1
            stale, due = self._stale_trust(t, scale, firm)
            if stale is not None:
                trust = torch.minimum(trust, stale)
            if self._trusted is not None:
                # Trust falls by at most ``loosen`` per new drawing, so the sides slide from
                # the memory to the frame's own fill even when held drawings leave few
                # decisions in the fits' averaging window (animation on twos and threes).
                trust = torch.maximum(trust, self._trusted - self.o.loosen)
            self._trusted = trust
            if self._loose and bool((trust >= 1).all()):
                # Back on firm ground after frames that leaned on their own fill: what the
                # memory holds is from before the disturbance (a bad fit, a fade, a side
                # gone stale: on the eval and training clips a fresh start of both sides
                # scores better than keeping the side that held); start it afresh from
                # here, cross-fading from the last sides shown so nothing pops.
                self._memory = None
                self._key = None
                due = None
                self._hand_over(self._last, t)
            trust = trust * self._memory_trust(t)
            self._loose = bool((trust < 1).any())
            if due is not None:
                self._refresh(t, scale, due)
            values, real = self._sides(t, buf, scale)
            if self._loose:  # lean on the frame itself where the sides do not hold
                self.stats.loose += 1
                started = time.perf_counter()
                fill = self.filler if float(trust.min()) < self.o.loose_model else self._own
                self.stats.loose_model += fill is self.filler
                (own,) = fill.fill([t.frame.image])
                self.stats.model_seconds += time.perf_counter() - started
                own_sides = torch.from_numpy(own[:, self.side_cols.long()].astype(np.float32)) / scale
                values = trust[..., None] * values + (1 - trust[..., None]) * own_sides
                real = real * trust
            values = self._live_mirror(t, values, real, scale)
            if self._handover is not None:
                before, left = self._handover
                values = values + (before - values) * (left / (self.o.handover + 1))
                self._handover = (before, left - 1) if left > 1 else None
        self._last = _Shown(t.index, values, self._composite(t, values, scale), t.thumb, float(t.thumb.mean()))
        return self._canvas_out(t, self._last.sides)

    def _memory_trust(self, t: _Entry) -> float:
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
    def _same_light(t: _Entry, last: _Shown) -> bool:
        """Whether t's picture is as bright as the one ``last``'s sides were made for
        (within ``RELIGHT`` levels of mean brightness)."""
        return abs(float(t.thumb.mean()) - last.brightness) < RELIGHT

    @staticmethod
    def _seam_still(t: _Entry, last: _Shown) -> bool:
        """Whether the picture's outer columns are as they were when ``last``'s seam was
        blended (within codec noise), so the seam needs no redoing."""
        ref = last.seam_thumb
        if ref.shape != t.thumb.shape:
            return False
        edges = (slice(None), [0, -1])
        return float(np.abs(t.thumb[edges] - ref[edges]).max()) < 1.0

    def _hand_over(self, last: _Shown | None, t: _Entry) -> None:
        """Cross-fade from ``last``'s sides over the next ``handover`` frames, if t follows it."""
        if last is not None and last.index == t.index - 1 and self.o.handover > 0:
            self._handover = (last.values, self.o.handover)

    def _mirror_map(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(side columns, their mirror columns in the picture, weights) of the live-mirror zone."""
        reach = max(self.left, self.w - self.left - self.pic_w, 1) * self.o.mirror_reach
        s = torch.arange(self.side_cols.numel())
        c = self.side_cols.long()
        right = c >= self.left
        # Distance from the seam (1 = the first generated column) and the picture column
        # that mirrors onto it about the picture's edge.
        dist = torch.where(right, c - (self.left + self.pic_w) + 1, self.left - c)
        src = torch.where(right, self.pic_w - dist, dist - 1).clamp(0, self.pic_w - 1)
        weight = (1 - (dist.float() - 1) / max(reach, 1e-6)).clamp(0, 1) * self.o.live_mirror
        keep = weight > 0
        cols = s[keep]
        assert cols.numel() == 0 or int(cols[-1]) - int(cols[0]) + 1 == cols.numel()  # one run
        return cols, src[keep], weight[keep]

    def _live_mirror(self, t: _Entry, values: torch.Tensor, real: torch.Tensor, scale: float) -> torch.Tensor:
        """Generated side pixels next to the seam take this frame's mirror image.

        What the memory generated next to the seam is the mirror of the frame it was
        made from; when a character moves along the picture's edge, that copy goes stale
        while a fill of each frame follows it. Real content (seen in some frame) is kept;
        the shot memory itself is never changed, so nothing drifts.
        """
        cols, src, weight = self._mirror
        if cols.numel() == 0:
            return values
        # The zone is one run of side-grid columns (the inner ends of both strips): a view.
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        live = t.picture.index_select(1, src).float().div_(scale)  # (H, k, 3)
        w = (1 - real[:, c0:c1]) * weight  # (H, k)
        values[:, c0:c1].lerp_(live, w[..., None])  # values are this frame's own
        return values

    def _edge_trust(self, t: _Entry) -> torch.Tensor:
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
        lo, hi = self.o.edge_change, 2 * self.o.edge_change

        def level(change: float) -> float:
            return float(min(1.0, max(0.0, (hi - change) / (hi - lo))))

        ones[: self.left] = level(left)
        ones[self.left :] = level(right)
        return ones

    def _stale_trust(self, t: _Entry, scale: float, firm: bool) -> tuple[torch.Tensor | None, list[bool] | None]:
        """((1, S) trust per side column from how stale the memory's sides are, or None;
        the (left, right) sides to make again this frame, or None).

        A side is made again when its memory is past ``stale`` and the frame is otherwise
        on firm ground (so it is trusted); below that, from ``stale_lean`` up, it leans
        toward the frame's own fill.
        """
        mem = self._memory
        if mem is None or self.o.stale <= 0 or (self._key is not None and self._key[1] == t.to_ref):
            return None, None
        readings, seen = self._stale(t, scale)
        past = [r > self.o.stale for r in readings]
        due = past if firm and any(past) else None
        if self.o.stale_lean <= 0 or self.o.stale_lean >= self.o.stale:
            return None, due
        out = torch.ones(1, self.side_cols.numel())
        # Only against what frames showed: a pan always finds generated memory that differs
        # from what it now shows by a few levels, and that is for the refresh to judge.
        strips = (np.s_[: self.left], np.s_[self.left :])
        for cols, r, made_again in zip(strips, seen, due or (False, False), strict=True):
            if not made_again:
                out[:, cols] = min(1.0, max(0.0, (self.o.stale - r) / (self.o.stale - self.o.stale_lean)))
        return out, due

    def _refresh(self, t: _Entry, scale: float, changed: list[bool]) -> None:
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

    def _stale(self, t: _Entry, scale: float) -> tuple[tuple[float, float], tuple[float, float]]:
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
        kept = self._lit(mem.values[ys, xs], t)
        diff = np.abs(t.picture.numpy()[rows][:, cols] * np.float32(1 / scale) - kept)
        change = (diff[..., 0] + diff[..., 1] + diff[..., 2]) * (255 / 3)
        seen = ok & ~mem.made[ys, xs]
        half = cols.size // 2
        out: list[float] = []
        for where in (ok, seen):
            for part in (np.s_[:, :half], np.s_[:, half:]):
                good = where[part]
                # Too little of the memory there yet to say.
                out.append(_median(change[part][good]) if good.sum() >= 0.25 * good.size else 0.0)
        return (out[0], out[1]), (out[2], out[3])

    def _trust(self, t: _Entry, buf: deque[_Entry]) -> float:
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
        lo, hi = self.o.rigid - 0.1, self.o.rigid + 0.1
        return float(min(1.0, max(0.0, (hi - fit) / (hi - lo))))

    def _sides(self, t: _Entry, buf: deque[_Entry], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
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
        filled_np = ~unfilled
        real_np = filled_np.astype(np.float32)
        self.stats.propagated += float(real_np.mean())
        # 2. The shot memory: for what no frame in reach shows, and to fade real content in.
        w = np.clip((self.o.window - dist) / max(1, self.o.ramp), 0, 1)
        want = unfilled | (w < 1)
        box = _bbox(want) if self._memory is not None else None
        if box is not None:
            assert self._memory is not None
            r0, r1, c0, c1 = box
            mv, ok = _memory_grid(self._memory, X[c0:c1], Y[r0:r1])
            mv = self._lit(mv, t)
            ok &= want[r0:r1, c0:c1]
            fresh = filled_np[r0:r1, c0:c1] & ok
            wk = w[r0:r1, c0:c1]
            old = values_np[r0:r1, c0:c1]
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
        if missing > max(self.o.key_share * filled.numel(), 3 * max(filled.shape)):
            self._key_frame(t, buf, self._canvas(t, values, filled, scale), values, filled)
        elif missing:
            made = np.zeros((self.h, self.w), bool)
            made[:, self._side_index] = ~filled_np
            self._smooth_over(t, values, filled_np, scale)
            self._remember(t, lambda c0, c1: self._canvas(t, values, None, scale, c0, c1), made=made)
        else:
            self._remember(t, lambda c0, c1: self._canvas(t, values, filled, scale, c0, c1))
        return values, real

    def _smooth_over(self, t: _Entry, values: torch.Tensor, filled: np.ndarray, scale: float) -> None:
        """Fill a few unfilled side pixels smoothly from what surrounds them, in place.

        Slivers are thin, so the pyramid fill runs on a crop around each strip's gap
        (with ``pad`` pixels of context) instead of the whole canvas.
        """
        pad = 16
        for s0, s1 in self._strips:
            box = _bbox(~filled[:, s0:s1])
            if box is None:
                continue
            r0, r1, c0, c1 = box
            shift = 0 if s0 == 0 else self.pic_w  # side-grid column -> canvas column
            y0, y1 = max(0, r0 - pad), min(self.h, r1 + pad)
            x0, x1 = max(0, s0 + c0 + shift - pad), min(self.w, s0 + c1 + shift + pad)
            known = np.ones((y1 - y0, x1 - x0), np.float32)  # the picture is known
            for a, b, sh in ((0, self.left, 0), (self.left + self.pic_w, self.w, self.pic_w)):
                a, b = max(a, x0), min(b, x1)
                if a < b:
                    known[:, a - x0 : b - x0] = filled[y0:y1, a - sh : b - sh]
            crop = self._canvas(t, values, torch.from_numpy(filled), scale, x0, x1)[:, y0:y1]
            smooth = push_pull(crop[None], torch.from_numpy(known)[None, None])[0].permute(1, 2, 0)
            g0, g1 = s0 + c0, s0 + c1
            gap = torch.from_numpy(~filled[r0:r1, g0:g1])
            patch = smooth[r0 - y0 : r1 - y0, g0 + shift - x0 : g1 + shift - x0]
            values[r0:r1, g0:g1] = torch.where(gap[..., None], patch, values[r0:r1, g0:g1])

    def _moving(self, u: _Entry, buf: deque[_Entry]) -> np.ndarray:
        """(th, tw) bool: thumbnail pixels of u's picture that move against the camera.

        u is compared, in colour, the camera motion and light change undone, with frames
        up to ``moving_span`` before and after it; a pixel any of them disagrees with (by
        more than ``moving``, at the best of the aligned pixel and its 8 neighbours) is
        moving (see ``moving_unseen`` for what no other frame shows). That is cautious: the background a
        character covers in another frame counts as moving too, and is generated or taken
        from frames that show it, never pasted from one that may hold the character.
        """
        if u.moving is not None:
            return u.moving
        th, tw = u.thumb.shape
        moving = np.zeros((th, tw), bool)
        if self.o.moving <= 0:
            u.moving = moving
            return moving
        reach = {e.index: e for e in self._rigid_reach(u, buf)}
        # Frames 2, 4, 8 ... up to ``moving_span`` away each way: the far ones catch the
        # inside of a flat-coloured character (a near one still shows it there), the near
        # ones see the picture's edges, which the far ones on one side no longer show.
        residuals = []
        d = 2
        while d <= self.o.moving_span:
            for v in (reach.get(u.index - d), reach.get(u.index + d)):
                if v is not None and v.thumb.shape == u.thumb.shape:
                    residuals.append(self._residual(u, v))
            d *= 2
        if residuals:
            with np.errstate(invalid="ignore"):
                worst = np.fmax.reduce(residuals) if len(residuals) > 1 else residuals[0]
            unseen = np.isnan(worst)
            moving = np.nan_to_num(worst, nan=0.0) > self.o.moving
            g = self.o.moving_grow
            if moving.any():
                # What no other frame shows (the edge of a pan's first frames) cannot be told
                # from a character: beside something seen moving it counts as moving too,
                # as far as 4 times the widening; elsewhere it is taken for background.
                if self.o.moving_unseen and unseen.any():
                    moving |= unseen & _dilate(moving, 4 * max(1, g))
                moving = _dilate(moving, g)
        u.moving = moving
        return moving

    def _residual(self, u: _Entry, v: _Entry) -> np.ndarray:
        """(th, tw) colour difference (max over channels, 8-bit levels) of u's thumbnail from
        v's, the camera motion and light change undone; NaN where v does not show u's pixel."""
        th, tw = u.thumb.shape
        # Thumbnail coordinates of u -> v, through the shot's reference frame.
        m = _to_thumb(v.to_ref.inverse().then(u.to_ref), self.factor, self.left)
        xs = m.a * np.arange(tw, dtype=np.float64) + m.bx
        ys = m.a * np.arange(th, dtype=np.float64) + m.by
        seen = np.logical_and.outer((ys >= 0) & (ys <= th - 1), (xs >= 0) & (xs <= tw - 1))
        other = sample_grid(self._colour(v), xs, ys)
        other = (other - v.offset * 255) / v.gain * u.gain + u.offset * 255  # at u's light
        # In colour: a character as bright as the wall behind it still differs in hue. The
        # best of the aligned pixel and its 8 neighbours: a sharp outline a fraction of a
        # thumbnail pixel off (the camera estimate, resampling) is not motion.
        pad = np.pad(other, ((1, 1), (1, 1), (0, 0)), mode="edge")
        near = np.lib.stride_tricks.sliding_window_view(pad, (3, 3), axis=(0, 1))  # (th, tw, 3, 3, 3)
        diff = np.abs(near - self._colour(u)[..., None, None]).max(axis=2)  # over colour: (th, tw, 3, 3)
        return np.where(seen, diff.min(axis=(2, 3)), np.nan)

    def _colour(self, u: _Entry) -> np.ndarray:
        """u's picture as a colour thumbnail (the grey one's blocks), 8-bit levels."""
        if u.colour is None:
            th, tw = u.thumb.shape
            f = self.factor
            pic = u.picture[: th * f, : tw * f].float()
            if u.picture.dtype == torch.int32:  # 16-bit samples
                pic = pic / 257.0
            u.colour = pic.view(th, f, tw, f, 3).mean(dim=(1, 3)).numpy()
        return u.colour

    def _moving_at(self, mov: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(len(y), len(x)) bool: ``mov`` (a frame's ``moving``) at picture coordinates y x x
        (nearest thumbnail pixel; coordinates past the picture take its border)."""
        if not mov.any():
            return np.zeros((y.size, x.size), bool)
        c = (self.factor - 1) / 2
        th, tw = mov.shape
        ix = np.clip(np.rint((x - c) / self.factor), 0, tw - 1).astype(np.intp)
        iy = np.clip(np.rint((y - c) / self.factor), 0, th - 1).astype(np.intp)
        return mov[iy][:, ix]

    def _rigid_reach(self, t: _Entry, buf: deque[_Entry]) -> list[_Entry]:
        """Frames of t's shot that the camera motion links to t reliably.

        Walking out from t, a frame whose motion fit is poor (a character filling the
        frame, smoke, a morph) ends the reach in that direction: content beyond it
        would land in the wrong place.
        """
        same = {e.index: e for e in buf if e.shot == t.shot and e.decided}
        out = []
        for step in (-1, 1):
            i = t.index
            while abs(i + step - t.index) <= self.o.window:
                link = same.get(i + step if step > 0 else i)  # the frame whose fit joins i and i + step
                u = same.get(i + step)
                if u is None or link is None or link.fit > self.o.rigid:
                    break
                i += step
                if not u.single:
                    out.append(u)
        return out

    def _propagate(
        self, t: _Entry, candidates: list[_Entry], X: np.ndarray, Y: np.ndarray, scale: float, buf: deque[_Entry]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, unfilled, frame distance) of the side grid from the nearest frame showing each pixel.

        Zoom and shift map rows to rows and columns to columns, so what a frame u shows
        of a side strip is a rectangle, and sampling it is two 1-D interpolations: the
        frames are painted nearest first, each into the still unfilled part of its
        rectangle, and sampled only over that part's bounding box. Small arrays and many
        steps: numpy, whose calls cost a fraction of torch's here.
        """
        h, n_cols = self.h, X.size
        m = 1.0  # a pixel inside the picture's side edges: they are often dark or ringing
        values = np.zeros((h, n_cols, 3), np.float32)
        dist = np.full((h, n_cols), np.inf, np.float32)
        unfilled = np.ones((h, n_cols), bool)
        for u in candidates:
            ux = (X - u.to_ref.bx) / u.to_ref.a - self.left
            uy = (Y - u.to_ref.by) / u.to_ref.a
            # The picture's top and bottom are the canvas's: rows only need to fall inside.
            rows = span((uy >= -0.01) & (uy <= h - 1 + 0.01))
            if rows is None:
                continue
            wrote = False
            for s0, s1 in self._strips:
                cols = span((ux[s0:s1] >= m) & (ux[s0:s1] <= self.pic_w - 1 - m))
                if cols is None:
                    continue
                r0, r1 = rows
                c0, c1 = s0 + cols[0], s0 + cols[1]
                box = _bbox(unfilled[r0:r1, c0:c1])
                if box is None:
                    continue
                r0, r1, c0, c1 = r0 + box[0], r0 + box[1], c0 + box[2], c0 + box[3]
                need = unfilled[r0:r1, c0:c1]
                moving = self._moving_at(self._moving(u, buf), ux[c0:c1], uy[r0:r1])
                if moving.any():  # what moves in u is not where u shows it in t: left to others
                    need = need & ~moving
                    if not need.any():
                        continue
                sample = sample_grid(u.picture.numpy(), ux[c0:c1], uy[r0:r1])
                sample *= np.float32(1 / scale)
                sample = _relight(sample, u, t)
                if need.all():  # the usual case: a band no nearer frame showed any of
                    values[r0:r1, c0:c1] = sample
                    dist[r0:r1, c0:c1] = abs(u.index - t.index)
                else:
                    np.copyto(values[r0:r1, c0:c1], sample, where=need[..., None])
                    dist[r0:r1, c0:c1][need] = abs(u.index - t.index)
                unfilled[r0:r1, c0:c1] &= ~need
                wrote = True
            if wrote and not unfilled.any():
                break
        return values, unfilled, dist

    def _canvas(
        self,
        t: _Entry,
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

    def _reach(self, t: _Entry, buf: deque[_Entry]) -> tuple[int, int, int, int]:
        """Margins (left, top, right, bottom) around t's canvas that frames ahead will show."""
        base = max(2, round(self.o.margin * self.layout.side_width))
        x0, y0, x1, y1 = -base, 0, self.w - 1 + base, self.h - 1
        to_t = t.to_ref.inverse()
        for u in buf:
            if u.shot != t.shot or u.single or not u.decided or not t.index < u.index <= t.index + self.o.window:
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

    def _key_frame(
        self, t: _Entry, buf: deque[_Entry], canvas: torch.Tensor, values: torch.Tensor, filled: torch.Tensor
    ) -> None:
        """Run the model once on t's canvas widened to what the frames ahead will need.

        Everything known goes in: the picture, propagated sides, and the shot memory in
        the margins; what the model makes is written into the memory for later frames.
        """
        started = time.perf_counter()
        self.stats.key_frames += 1
        self._key = (t.shot, t.to_ref, t.thumb)
        ml, mt, mr, mb = self._reach(t, buf)
        bh, bw = self.h + mt + mb, self.w + ml + mr
        big = torch.zeros(3, bh, bw)
        known = torch.zeros(1, bh, bw)
        big[:, mt : mt + self.h, ml : ml + self.w] = canvas
        inner = torch.zeros(self.h, self.w)
        inner[:, self.left : self.left + self.pic_w] = 1
        inner[:, self.side_cols.long()] = filled.float()
        known[0, mt : mt + self.h, ml : ml + self.w] = inner
        if self._memory is not None:  # the margins take what the shot memory has there
            a, bx, by = t.to_ref.a, t.to_ref.bx, t.to_ref.by
            xs = a * (np.arange(bw, dtype=np.float64) - ml) + bx
            ys = a * (np.arange(bh, dtype=np.float64) - mt) + by
            mv, ok = _memory_grid(self._memory, xs, ys)
            mv = torch.from_numpy(self._lit(mv, t)).permute(2, 0, 1)
            take = torch.from_numpy(ok) & (known[0] < 0.5)
            big = torch.where(take, mv, big)
            known[0] = torch.where(take, 1.0, known[0])
        mask = 1 - known
        device = self.filler.device
        source = None
        if t.moving is not None and t.moving.any():  # a patch-copying model copies background only
            rows, cols = np.arange(self.h, dtype=np.float64), np.arange(self.pic_w, dtype=np.float64)
            still = torch.from_numpy(~self._moving_at(t.moving, cols, rows)).float()
            source = known.clone()
            source[0, mt : mt + self.h, ml + self.left : ml + self.left + self.pic_w] *= still
            source = source[None].to(device)
        with torch.inference_mode():
            pred = self.filler._run((big * known)[None].to(device), mask[None].to(device), source)[0].float().cpu()
        full = torch.where(known > 0.5, big, pred.clamp(0, 1))
        crop = full[:, mt : mt + self.h, ml : ml + self.w][:, :, self.side_cols.long()].permute(1, 2, 0)
        values[~filled] = crop[~filled]
        self._remember(t, full, offset=(ml, mt), made=(known[0] < 0.5).numpy())
        self.stats.model_seconds += time.perf_counter() - started

    def _remember(
        self,
        t: _Entry,
        canvas: torch.Tensor | Callable[[int, int], torch.Tensor],
        offset: tuple[int, int] = (0, 0),
        made: np.ndarray | None = None,
    ) -> None:
        """Write ``canvas`` (frame t's coordinates, shifted by ``offset``) where the memory is empty.

        ``canvas`` may be a function that makes columns [c0, c1) of it: most frames of a
        shot add only a narrow band to the memory (or nothing), and only that is built.
        ``made`` marks the canvas pixels that were generated (None: everything was seen).
        """
        ox, oy = offset
        if callable(canvas):
            ch, cw = self.h, self.w
        else:
            _, ch, cw = canvas.shape
        to_ref = t.to_ref
        eps = 1e-4
        started = self._memory is None
        # Where the canvas's first and last pixel centres land in the reference frame.
        bx0, by0, bx1, by1 = to_ref.box(-ox, -oy, cw - 1 - ox, ch - 1 - oy)
        self._grow((math.floor(bx0 + eps), math.floor(by0 + eps), math.ceil(bx1 - eps) + 1, math.ceil(by1 - eps) + 1))
        mem = self._memory
        assert mem is not None
        if started:
            mem.gain = t.gain
        x0, y0, x1, y1 = mem.box
        # The memory pixels this canvas covers (their centres inside its span).
        gx0, gy0 = max(x0, math.ceil(bx0 - eps)), max(y0, math.ceil(by0 - eps))
        gx1, gy1 = min(x1, math.floor(bx1 + eps) + 1), min(y1, math.floor(by1 + eps) + 1)
        if gx0 >= gx1 or gy0 >= gy1:
            return
        valid = mem.valid
        region = valid[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        box = _bbox(~region)
        if box is None:
            return
        r0, r1, c0, c1 = box
        ys, xs = slice(gy0 - y0 + r0, gy0 - y0 + r1), slice(gx0 - x0 + c0, gx0 - x0 + c1)
        empty = ~valid[ys, xs]
        inv = to_ref.inverse()
        # Frame coordinates of those memory pixels (rounding only past the span: it was checked).
        fx = np.clip(inv.a * np.arange(gx0 + c0, gx0 + c1) + inv.bx + ox, 0, cw - 1)
        fy = np.clip(inv.a * np.arange(gy0 + r0, gy0 + r1) + inv.by + oy, 0, ch - 1)
        k0, k1 = int(fx.min()), min(cw, int(fx.max()) + 2)  # the canvas columns they mix
        part = canvas(k0, k1) if callable(canvas) else canvas[:, :, k0:k1]
        if _whole_run(fx) and _whole_run(fy):
            # A whole-pixel shift (a still camera, a key frame): the pixels themselves, no resampling.
            fx0, fy0 = int(fx[0]) - k0, int(fy[0])
            sample = part.numpy()[:, fy0 : fy0 + fy.size, fx0 : fx0 + fx.size].transpose(1, 2, 0)
        else:
            sample = sample_grid(part.permute(1, 2, 0).numpy(), fx - k0, fy)
        if t.gain != 1.0 or t.offset != 0.0:  # the memory holds reference-frame brightness
            sample = (sample - t.offset) / t.gain
        gen = False if made is None else made[np.rint(fy).astype(np.intp)][:, np.rint(fx).astype(np.intp)]
        if t.moving is not None and t.moving.any():
            # What moves against the camera is not background: it stays out of the memory
            # (left for later frames to show, or a key frame to generate).
            px, py = fx - ox - self.left, fy - oy
            inside = np.logical_and.outer((py >= 0) & (py <= self.h - 1), (px >= 0) & (px <= self.pic_w - 1))
            empty = empty & ~(inside & self._moving_at(t.moving, px, py))
        if empty.all():  # a fresh region (a shot's first key frame): no mask to respect
            mem.values[ys, xs] = sample
            valid[ys, xs] = True
            mem.made[ys, xs] = gen
        else:
            np.copyto(mem.values[ys, xs], sample, where=empty[..., None])
            valid[ys, xs] |= empty
            np.copyto(mem.made[ys, xs], gen, where=empty)

    def _grow(self, need: tuple[int, int, int, int]) -> None:
        """Make the memory cover ``need`` (reference box), within ``max_extent`` canvases."""
        nx0, ny0, nx1, ny1 = need
        pad_x, pad_y = self.w // 4, self.h // 4  # grow in steps, not a column per frame
        limit_w, limit_h = int(self.o.max_extent * self.w), int(self.o.max_extent * self.h)
        mem = self._memory
        if mem is None:
            shape = (ny1 - ny0, nx1 - nx0)
            empty = np.zeros(shape, bool)
            self._memory = _Memory(nx0, ny0, np.zeros((*shape, 3), np.float32), empty, empty.copy())
            self.stats.peak_memory_pixels = max(self.stats.peak_memory_pixels, (ny1 - ny0) * (nx1 - nx0))
            return
        x0, y0, x1, y1 = mem.box
        if nx0 >= x0 and ny0 >= y0 and nx1 <= x1 and ny1 <= y1:
            return
        ux0 = min(x0, nx0 - pad_x) if nx0 < x0 else x0
        uy0 = min(y0, ny0 - pad_y) if ny0 < y0 else y0
        ux1 = max(x1, nx1 + pad_x) if nx1 > x1 else x1
        uy1 = max(y1, ny1 + pad_y) if ny1 > y1 else y1
        # Bounded: keep the part nearest the current frame, forget the far end of a long pan.
        if ux1 - ux0 > limit_w:
            cx = (nx0 + nx1) // 2
            ux0 = min(max(ux0, cx - limit_w // 2), ux1 - limit_w)
            ux1 = ux0 + limit_w
        if uy1 - uy0 > limit_h:
            cy = (ny0 + ny1) // 2
            uy0 = min(max(uy0, cy - limit_h // 2), uy1 - limit_h)
            uy1 = uy0 + limit_h
        values = np.zeros((uy1 - uy0, ux1 - ux0, 3), np.float32)
        valid = np.zeros((uy1 - uy0, ux1 - ux0), bool)
        made = np.zeros_like(valid)
        # Copy the overlap of the old memory.
        ox0, oy0, ox1, oy1 = max(x0, ux0), max(y0, uy0), min(x1, ux1), min(y1, uy1)
        if ox0 < ox1 and oy0 < oy1:
            new = np.s_[oy0 - uy0 : oy1 - uy0, ox0 - ux0 : ox1 - ux0]
            old = np.s_[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
            values[new] = mem.values[old]
            valid[new] = mem.valid[old]
            made[new] = mem.made[old]
        self._memory = _Memory(ux0, uy0, values, valid, made, mem.gain)
        self.stats.peak_memory_pixels = max(self.stats.peak_memory_pixels, valid.size)

    def _feather_map(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The compositor's seam blend in side-grid terms: (rows, side columns, alpha, picture index)."""
        comp = self.filler.compositor
        rows, cols, alphas, sources = [], [], [], []
        for (f0, f1), (idx, alpha) in zip(comp.spans, comp.gathers, strict=True):
            if f1 <= f0:
                continue
            r, c = torch.meshgrid(torch.arange(self.h), torch.arange(f0, f1), indexing="ij")
            a = alpha.cpu().reshape(self.h, f1 - f0)
            src = idx.cpu().reshape(self.h, f1 - f0)
            side = (c < self.left) | (c >= self.left + self.pic_w)
            keep = side & (a < 1)
            sr, sc = src[keep] // self.w, src[keep] % self.w - self.left
            rows.append(r[keep])
            cols.append(torch.where(c[keep] < self.left, c[keep], c[keep] - self.pic_w))
            alphas.append(a[keep])
            sources.append(sr * self.pic_w + sc.clamp(0, self.pic_w - 1))
        if not rows:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty, torch.zeros(0), empty
        return torch.cat(rows), torch.cat(cols), torch.cat(alphas), torch.cat(sources)

    def _bands_of(
        self, feather: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> list[tuple[int, int, int, torch.Tensor]] | None:
        """The seam blend as whole-height bands, if it is that: (first and last side-grid
        column + 1, the picture column each row blends from, alpha per column).

        Side strips beside a full-height picture blend each row from its own picture
        edge with an alpha that depends on the column alone; the blend is then done on
        slices instead of gathering every pixel. None for any other shape.
        """
        rows, cols, alphas, sources = feather
        if rows.numel() == 0:
            return []
        bands = []
        for s0, s1 in self._strips:
            inside = (cols >= s0) & (cols < s1)
            if not bool(inside.any()):
                continue
            c, r, a, src = cols[inside], rows[inside], alphas[inside], sources[inside]
            c0, c1 = int(c.min()), int(c.max()) + 1
            width = c1 - c0
            if c.numel() != self.h * width:
                return None
            grid = torch.full((self.h, width), -1.0)
            grid[r, c - c0] = a
            picture_col = src % self.pic_w
            if (grid < 0).any() or not bool((grid == grid[:1]).all()):
                return None
            if not bool((picture_col == picture_col[0]).all()) or not bool((src // self.pic_w == r).all()):
                return None
            bands.append((c0, c1, int(picture_col[0]), grid[0].view(1, width, 1)))
        return bands

    def _composite(self, t: _Entry, values: torch.Tensor, scale: float, base: np.ndarray | None = None) -> np.ndarray:
        """(H, S, 3) output samples of the sides: values feathered into the seam.

        Real content is feathered too: a fraction of a pixel of motion error, or a
        character that moved since the frame it came from, would otherwise show as a step.
        With ``base`` (a held drawing's last sides), only the seam is redone.
        """
        fr, fc, fa, fs = self._feather
        dtype = t.frame.image.dtype
        if base is not None:
            out = base.copy()
        else:
            out = values.mul(scale).round_().clamp_(0, scale).numpy().astype(dtype)
        if self._seam_bands is not None:
            for c0, c1, pc, a in self._seam_bands:  # the same blend on slices
                edge = t.picture[:, pc : pc + 1].float()
                seam = (a * scale) * values[:, c0:c1] + (1 - a) * edge
                out[:, c0:c1] = seam.round_().clamp_(0, scale).numpy().astype(dtype)
        elif fr.numel():
            # The compositor's blend from this frame's picture edge, except where the side is real.
            a = fa[:, None]
            edge = t.picture.reshape(-1, 3).index_select(0, fs).float()
            seam = (a * scale) * values[fr, fc] + (1 - a) * edge
            out[self._feather_at] = seam.round_().clamp_(0, scale).numpy().astype(dtype)
        return out

    def _canvas_out(self, t: _Entry, sides: np.ndarray) -> video.Frame:
        """The output canvas: the source picture untouched, ``sides`` beside it."""
        image = t.frame.image
        c = self.layout.content
        out = np.empty((self.h, self.w, 3), image.dtype)
        out[:, : self.left] = sides[:, : self.left]
        if t.frame.planes is None or t.frame.pix_fmt != self.centre_from_planes:
            out[:, self.left : self.left + self.pic_w] = image[c.y : c.bottom, c.x : c.right]
        out[:, self.left + self.pic_w :] = sides[:, self.left :]
        return video.Frame(out, t.frame.pts, t.frame.time_base, t.frame.planes, t.frame.pix_fmt)


def _memory_grid(mem: _Memory, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(y), len(x), 3) values and validity of the memory at reference points y x x.

    Valid only where every memory pixel the sample mixes is valid.
    """
    h, w = mem.valid.shape
    gx, gy = x - mem.x0, y - mem.y0
    out = np.zeros((y.size, x.size, 3), np.float32)
    ok = np.zeros((y.size, x.size), bool)
    cs, rs = span((gx >= 0) & (gx <= w - 1)), span((gy >= 0) & (gy <= h - 1))
    if cs is None or rs is None:
        return out, ok
    (c0, c1), (r0, r1) = cs, rs
    gx, gy = gx[c0:c1], gy[r0:r1]
    if _whole(gx) and _whole(gy):  # whole-pixel positions (a still camera): the memory's own pixels
        rows = slice(int(gy[0]), int(gy[0]) + gy.size) if _whole_run(gy) else gy.astype(np.intp)
        cols = gx.astype(np.intp)
        out[r0:r1, c0:c1] = np.take(mem.values[rows], cols, axis=1)
        ok[r0:r1, c0:c1] = np.take(mem.valid[rows], cols, axis=1)
        return out, ok
    out[r0:r1, c0:c1] = sample_grid(mem.values, gx, gy)
    x0, x1, _ = taps(gx, w)
    y0, y1, _ = taps(gy, h)
    v = mem.valid[:, x0] & mem.valid[:, x1]
    ok[r0:r1, c0:c1] = v[y0] & v[y1]
    return out, ok


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` widened by ``radius`` pixels every way (a square)."""
    if radius <= 0 or not mask.any():
        return mask
    grown = torch.nn.functional.max_pool2d(
        torch.from_numpy(mask.astype(np.float32))[None, None], 2 * radius + 1, 1, radius
    )
    return grown[0, 0].numpy() > 0.5


def _whole(c: np.ndarray) -> bool:
    """Whether every coordinate falls on a pixel centre (no interpolation needed)."""
    return bool((c == np.floor(c)).all())


def _whole_run(c: np.ndarray) -> bool:
    """Whether increasing, evenly spaced coordinates are consecutive whole pixels (k, k + 1, ...)."""
    mid = c.size // 2
    return float(c[0]).is_integer() and float(c[-1] - c[0]) == c.size - 1 and float(c[mid] - c[0]) == mid


def _bbox(flags: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1): the bounding box of the set entries of a 2-D bool array, or None."""
    rows = span(flags.any(axis=1))
    if rows is None:
        return None
    cols = span(flags.any(axis=0))
    assert cols is not None
    return rows[0], rows[1], cols[0], cols[1]


def _relight(values: np.ndarray, u: _Entry, t: _Entry) -> np.ndarray:
    """Values seen in frame u, at frame t's brightness (fades)."""
    if u.gain == t.gain and u.offset == t.offset:
        return values
    return np.clip(t.gain * (values - u.offset) / u.gain + t.offset, 0, 1)
