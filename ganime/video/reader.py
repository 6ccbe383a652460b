"""Decoding: ``Reader`` demuxes a file once, yielding timed RGB ``Frame``s and the packets of copied streams."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .fields import FieldFilter, FieldPlan
from .probe import (
    FINE,
    KEY_PATIENCE,
    ColorSpec,
    DamagedSource,
    as_fraction,
    error_reason,
    open_input,
    programme_stream,
    rotation_of,
    to_rgb,
    yuv_planes,
)


@dataclass
class Frame:
    """A decoded picture: HWC RGB (uint8, or uint16 for >8-bit sources) with its own timestamp.

    ``planes`` optionally keeps the source's own YUV samples (format ``pix_fmt``), so
    the writer can put the original picture back untouched instead of converting it
    from RGB a second time.
    """

    image: np.ndarray
    pts: int
    time_base: Fraction
    planes: tuple[np.ndarray, ...] | None = None
    pix_fmt: str | None = None

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


_PAST_END = object()


class Reader:
    """Demuxes a file once: yields decoded video ``Frame``s and the packets of copied streams.

    Packets of streams in ``copy`` are yielded as ``av.Packet`` in file order, so the
    caller can pass them to a ``Writer``. Decoding errors inside the file are counted
    in ``decode_errors`` and skipped; it is an error only when no frame decodes.
    With ``start``/``duration`` (seconds) only that excerpt is read, and every
    timestamp is moved so the excerpt starts where the file started.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        copy: tuple[int, ...] = (),
        start: float | None = None,
        duration: float | None = None,
        color: ColorSpec | None = None,
        threads: int = 0,
        keep_planes: bool = False,
        fields: FieldPlan | None = None,
    ) -> None:
        self.path = Path(path)
        self.keep_planes = keep_planes
        self.fields = fields  # inverse telecine or deinterlacing on the way out of the decoder
        self.container = open_input(self.path)
        self.stream = programme_stream(self.path, self.container)
        self.stream.thread_type = "AUTO"  # slice + frame threads: several times faster
        self.stream.thread_count = threads
        self.copy = tuple(copy)
        self.start = start or 0.0
        self.end = self.start + duration if duration is not None else None
        self.color = color
        self.decode_errors = 0
        self.frames_decoded = 0
        # Seconds from the first decoded frame to the last: what of the stream's length
        # was read (a frame count says less: variable frame rate drops held frames).
        self.span = 0.0
        self._first_pts: int | None = None
        self._step = 1  # ticks of one frame at the stream's average rate (set when reading starts)
        self.reached = 0.0  # seconds into the file the demuxer got, in any stream
        self._last_pts: int | None = None  # of the last frame given out
        self.retimed = 0  # frames whose timestamp did not increase, moved just after the last
        self.first_error: str | None = None
        # The display rotation of the first picture, applied to every one (as ``probe``
        # describes the stream): frames come out upright, all of one size.
        self.rotation: int | None = None

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _offset(self, tb: Fraction) -> int:
        """The excerpt start in ticks of ``tb`` (0 for a whole file).

        The start is first put on a tick of the video's time base, where the video's
        own shift must lie; every stream then moves by that same time (to the nearest
        tick of its own base), so a coarse video time base (1/24 s in AVI) does not
        put the sound out of step with the picture.
        """
        if not self.start:
            return 0
        origin = Fraction(self.container.start_time or 0, av.time_base)
        return round((self._start() + origin) / tb)

    def _start(self) -> Fraction:
        """The excerpt start (seconds from the file's start) on a tick of the video time base."""
        origin = Fraction(self.container.start_time or 0, av.time_base)
        vtb = as_fraction(self.stream.time_base) or Fraction(1, 1000)
        return round((Fraction(self.start) + origin) / vtb) * vtb - origin

    def _seek(self, voff: int) -> None:
        """Seek so that the first picture decoded is at or before the excerpt start.

        A seek lands on a key frame at or before the time asked only where the file
        has an index; in a DVD's VOB or a transport stream the demuxer guesses from
        byte positions and may land a GOP late, which would cut the excerpt's first
        half second. So the landing is checked and the seek moved earlier until it holds.
        """
        c = self.container
        origin = c.start_time or 0
        target = origin + int(self._start() * av.time_base)
        for back in (0, 1, 3, 10, 30, None):  # seconds before the start
            pos = origin if back is None else max(origin, target - back * av.time_base)
            c.seek(pos, backward=True, any_frame=False)
            if pos == origin or self._landing_pts() <= voff:
                break
        c.seek(pos, backward=True, any_frame=False)

    def _landing_pts(self) -> float:
        """Timestamp of the first whole picture (a key frame) that decodes from here (inf if none soon)."""
        try:
            for i, packet in enumerate(self.container.demux(self.stream)):
                for f in packet.decode():
                    ts = f.pts if f.pts is not None else f.dts
                    if ts is not None and f.key_frame:
                        return ts
                if i > 500:
                    break
        except av.FFmpegError:
            pass
        return float("inf")

    def __iter__(self) -> Iterator[Frame | av.Packet]:
        c = self.container
        vs = self.stream
        vtb = as_fraction(vs.time_base) or Fraction(1, 1000)
        voff = self._offset(vtb)
        streams = [vs] + [c.streams[i] for i in self.copy]
        unkeyed: int | None = None  # frames skipped while waiting for a key frame after a seek
        if self.start:
            self._seek(voff)
            unkeyed = 0
        last_pts: int | None = None
        preroll: dict[int, av.Packet] = {}
        step = round(1 / (float(vs.average_rate or 25) * vtb)) or 1
        self._step = step
        past_end = False
        fields = FieldFilter(vs, self.fields) if self.fields is not None else None
        try:
            packets = c.demux(streams)
            for packet in packets:
                self._reach(packet)
                if packet.stream is not vs:
                    if not packet.size:
                        continue
                    # A packet the demuxer marks discard lies before the start of the
                    # source's edit list (an MP4 cut without re-encoding, or the audio
                    # encoder's priming): players never present it, and Matroska, having
                    # no edit lists, would play it. Only the last one before the start is
                    # kept, as the decoder's pre-roll.
                    if packet.is_discard:
                        preroll[packet.stream.index] = packet
                        continue
                    held = preroll.pop(packet.stream.index, None)
                    for p in (held, packet):
                        if p is not None and self._keep_packet(p):
                            yield p
                    continue
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    self._count_error(e)
                    continue
                for f in decoded:
                    if unkeyed is not None:
                        # After a seek, pictures before the first key frame lack their
                        # references (grey or smeared); a transport stream can land on
                        # one. Skipped, unless the codec never marks key frames.
                        if not f.key_frame and unkeyed < KEY_PATIENCE:
                            unkeyed += 1
                            continue
                        unkeyed = None
                    pts = f.pts if f.pts is not None else f.dts
                    if pts is None:  # no timestamp at all: continue from the last one
                        pts = 0 if last_pts is None else last_pts + step
                    last_pts = pts
                    f.pts = pts
                    if self.rotation is None:  # before the field filters, which may drop it
                        self.rotation = rotation_of(f)
                    for g in fields.push(f) if fields is not None else (f,):
                        frame = self._frame(g, vtb, voff)
                        if frame is _PAST_END:
                            past_end = True
                            break
                        if frame is not None:
                            yield frame  # type: ignore[misc]
                    if past_end:
                        break
                if past_end:
                    break
            if fields is not None and not past_end:
                for g in fields.push(None):  # what the field filters still hold
                    frame = self._frame(g, vtb, voff)
                    if frame is _PAST_END:
                        break
                    if frame is not None:
                        yield frame  # type: ignore[misc]
        except av.FFmpegError as e:
            # A damaged container stops demuxing; keep what decoded so far.
            self._count_error(e)
        if self.frames_decoded == 0:
            why = f" ({self.first_error})" if self.first_error else ""
            raise DamagedSource(f"{self.path}: no video frame could be decoded{why}")

    def _frame(self, f: av.VideoFrame, vtb: Fraction, voff: int) -> Frame | object | None:
        """The Frame for a decoded (and perhaps field-filtered) picture, on the stream's clock;
        None before the excerpt's start, ``_PAST_END`` after its end."""
        pts = f.pts
        if f.time_base and Fraction(f.time_base) != vtb:  # the field filters have clocks of their own
            pts = round(Fraction(f.pts) * Fraction(f.time_base) / vtb)
        if self.end is not None and (pts - voff) * vtb >= self.end - self.start:
            return _PAST_END
        if pts < voff:
            return None
        if self._last_pts is not None and pts <= self._last_pts:
            # A damaged file can repeat or step back a timestamp; the encoder and muxer need
            # them increasing, so the frame is moved to just after the one before it.
            pts = self._last_pts + 1
            self.retimed += 1
        self._last_pts = pts
        self.frames_decoded += 1
        if self._first_pts is None:
            self._first_pts = pts
        # To the end of this frame: a clip of a few long frames (a slide show) is whole
        # when its last frame ends where the file does, not when it starts.
        shown = f.duration if f.duration and (not f.time_base or Fraction(f.time_base) == vtb) else self._step
        self.span = max(self.span, float((pts + shown - self._first_pts) * vtb))
        turn = self.rotation or 0
        planes = yuv_planes(f, turn) if self.keep_planes else None
        return Frame(to_rgb(f, self.color, turn), pts - voff, vtb, planes, f.format.name)

    def _reach(self, packet: av.Packet) -> None:
        """How far into the file (seconds from its start) any stream's packets went."""
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or not packet.time_base:
            return
        end = Fraction(ts + (packet.duration or 0)) * Fraction(packet.time_base)
        self.reached = max(self.reached, float(end - Fraction(self.container.start_time or 0, av.time_base)))

    def _count_error(self, e: Exception) -> None:
        self.decode_errors += 1
        if self.first_error is None:
            self.first_error = error_reason(e)

    def sidecar_packets(self, c: av.container.InputContainer) -> tuple[list[av.Packet], int]:
        """A sidecar subtitle file's cues on this file's clock (or the excerpt's), and how many it has.

        A subtitle file counts from the start of the video, which a player takes as
        the file's first timestamp (a transport stream's is seconds in).
        """
        origin = Fraction(self.container.start_time or 0, av.time_base)
        out = []
        cues = 0
        try:
            packets = list(c.demux())
        except av.FFmpegError:
            packets = []  # unreadable: no cues
        for p in packets:
            tb = as_fraction(p.time_base)
            if not p.size or tb is None or p.pts is None:
                continue
            cues += 1
            p.pts = p.dts = round((p.pts * tb + origin) / FINE)
            p.duration = round((p.duration or 0) * tb / FINE)
            p.time_base = FINE
            if self._keep_packet(p, "subtitle"):
                out.append(p)
        return out, cues

    def _keep_packet(self, p: av.Packet, kind: str | None = None) -> bool:
        """Shift a copied packet into excerpt time; drop it when outside the excerpt."""
        if not self.start and self.end is None:
            return True
        kind = kind or p.stream.type
        tb = as_fraction(p.time_base) or Fraction(1, 1000)
        ts = p.pts if p.pts is not None else p.dts
        if ts is None:
            return True
        shift = self._start() + Fraction(self.container.start_time or 0, av.time_base)
        rel = ts * tb - shift
        length = (p.duration or 0) * tb
        if (rel + length <= 0) if length else (rel < 0):  # ends before the excerpt starts
            return False
        if self.end is not None and rel >= self.end - self.start:
            return False
        if length and kind == "subtitle":
            # A cue on screen when the excerpt starts (or still when it ends) shows for
            # the part inside it only, not its whole length from the excerpt's start.
            until = rel + length if self.end is None else min(rel + length, self.end - self.start)
            length = until - max(rel, 0)
        # Shifted on a fine clock: a container's coarse one (a whole audio packet, 24 ms,
        # in AVI) cannot hold the excerpt start, and rounding to it moves the sound
        # against the picture. Audio straddling the start keeps its place (a little
        # before zero; the muxer moves every stream alike if the container needs it).
        low = None if kind == "audio" else Fraction(0)

        def moved(t: int | None) -> int | None:
            if t is None:
                return None
            r = t * tb - shift
            return round((r if low is None else max(low, r)) / FINE)

        p.pts, p.dts = moved(p.pts), moved(p.dts)
        if p.duration:
            p.duration = max(1, round(length / FINE))
        p.time_base = FINE
        return True

    def excerpt_chapters(self) -> list[dict]:
        """The source chapters, clipped and shifted to the excerpt."""
        out = []
        for ch in self.container.chapters():
            tb = ch["time_base"]
            s, e = ch["start"] * tb, ch["end"] * tb
            lo = self._start()
            hi = lo + Fraction(self.end - self.start) if self.end is not None else None
            if e <= lo or (hi is not None and s >= hi):
                continue
            s, e = max(s, lo) - lo, (min(e, hi) if hi is not None else e) - lo
            out.append({**ch, "start": round(s / tb), "end": round(e / tb)})
        return out


def _first_whole_frame(c: av.container.InputContainer, vs: av.video.stream.VideoStream) -> av.VideoFrame | None:
    """The first key frame decoded from here: a seek may land on frames that need earlier ones."""
    first = None
    for i, f in enumerate(c.decode(vs)):
        if f.key_frame:
            return f
        first = first or f
        if i >= KEY_PATIENCE:
            return first  # a codec that marks no key frame
    return None  # landed after the last key frame: nothing whole from here


def sample_frames(path: str | os.PathLike[str], count: int = 12, color: ColorSpec | None = None) -> list[np.ndarray]:
    """Up to ``count`` different frames spread over the file, for bar detection.

    Seeks where the file allows it; where seeking lands on the same frame again (GIFs,
    some AVIs) or fails, decodes from the start and takes every n-th frame instead.
    """
    path = Path(path)
    found: dict[int | None, np.ndarray] = {}
    with open_input(path) as c:
        vs = programme_stream(path, c)
        vs.thread_type = "AUTO"
        duration = (c.duration or 0) / av.time_base
        origin = c.start_time or 0
        targets = [duration * (i + 0.5) / count for i in range(count)] if duration > 2 else []
        for t in targets:
            try:
                c.seek(origin + int(t * av.time_base), backward=True, any_frame=False)
                f = _first_whole_frame(c, vs)
            except av.FFmpegError:
                continue
            if f is not None and f.pts not in found:
                found[f.pts] = to_rgb(f, color, rotation_of(f))
        if len(found) >= min(count, 3):
            return list(found.values())
        rate = float(vs.average_rate or 25)
        step = max(1, round(duration * rate / count)) if duration else 5
        out: list[np.ndarray] = []
        try:
            c.seek(origin, backward=True, any_frame=False)
        except av.FFmpegError:
            pass
        try:
            for i, f in enumerate(c.decode(vs)):
                if i % step == 0:
                    out.append(to_rgb(f, color, rotation_of(f)))
                    if len(out) >= count:
                        break
        except av.FFmpegError:
            pass
        return out or list(found.values())
