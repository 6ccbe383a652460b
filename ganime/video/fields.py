"""Telecined and interlaced sources: detection (``idet``) and the filters that make them progressive.

Most 4:3 anime on NTSC DVDs is film (24 pictures a second) in 30i video by 2:3
pulldown: two of every five frames weave fields of two different pictures. Inverse
telecine (``fieldmatch`` then ``decimate``) gives back the 24 pictures, each whole;
``bwdif`` makes a truly interlaced source (every field a new moment) progressive at
its frame rate. Either runs before the temporal engine: combing would ruin the
motion it measures and be continued into the sides.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter

KINDS = ("auto", "off", "ivtc", "bwdif")
SAMPLE_FRAMES = 240  # frames looked at to tell telecine from interlace (idet)


@dataclass(frozen=True)
class FieldPlan:
    """What is done to the fields: ``ivtc`` or ``bwdif``, with the source's field order."""

    kind: str
    order: str  # "tff" or "bff"
    why: str  # how it was decided, for --dry-run

    def rate(self, source_rate: Fraction | None) -> Fraction | None:
        """The frame rate out: four frames of every five after inverse telecine."""
        if source_rate is None:
            return None
        return source_rate * Fraction(4, 5) if self.kind == "ivtc" else source_rate

    def describe(self) -> str:
        what = "inverse telecine (fieldmatch, decimate)" if self.kind == "ivtc" else "deinterlaced (bwdif)"
        return f"{what}, {self.order}; {self.why}"


@dataclass(frozen=True)
class FieldCounts:
    """``idet``'s verdicts over the frames looked at."""

    tff: int
    bff: int
    progressive: int
    repeated: int  # frames one of whose fields repeats the previous frame's (pulldown)
    frames: int

    @property
    def interlaced_share(self) -> float:
        decided = self.tff + self.bff + self.progressive
        return (self.tff + self.bff) / decided if decided else 0.0

    @property
    def repeated_share(self) -> float:
        return self.repeated / self.frames if self.frames else 0.0


def _buffer(graph: av.filter.Graph, stream: av.video.stream.VideoStream) -> av.filter.context.FilterContext:
    """A buffer source shaped like ``stream``, frame rate included (``decimate`` needs it)."""
    cc = stream.codec_context
    tb = stream.time_base or Fraction(1, 1000)
    rate = stream.average_rate or stream.guessed_rate or Fraction(30000, 1001)
    sar = cc.sample_aspect_ratio or Fraction(1)
    args = (
        f"video_size={cc.width}x{cc.height}:pix_fmt={cc.pix_fmt}:time_base={tb.numerator}/{tb.denominator}"
        f":pixel_aspect={sar.numerator}/{sar.denominator}:frame_rate={rate.numerator}/{rate.denominator}"
    )
    return graph.add("buffer", args)


class FieldFilter:
    """A filter graph frames go through on their way out of the decoder."""

    def __init__(self, stream: av.video.stream.VideoStream, plan: FieldPlan) -> None:
        self.graph = av.filter.Graph()
        chain = [_buffer(self.graph, stream)]
        if plan.kind == "ivtc":
            chain += [self.graph.add("fieldmatch", f"order={plan.order}"), self.graph.add("decimate")]
        elif plan.kind == "bwdif":
            parity = "tff" if plan.order == "tff" else "bff"
            chain.append(self.graph.add("bwdif", f"mode=send_frame:parity={parity}"))
        else:
            raise ValueError(f"unknown field filter {plan.kind!r}")
        chain.append(self.graph.add("buffersink"))
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        self.graph.configure()

    def push(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        """Frames out for one frame in (None: the end; what the filters still hold)."""
        self.graph.push(frame)
        out = []
        while True:
            try:
                out.append(self.graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return out


def count_fields(path: Path, frames: int = SAMPLE_FRAMES) -> FieldCounts:
    """``idet``'s verdicts over up to ``frames`` frames from the middle of the file
    (openings are often still or black, where no field order shows)."""
    with av.open(str(path), metadata_errors="replace") as c:
        vs = next(s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        vs.thread_type = "AUTO"
        duration = (c.duration or 0) / av.time_base
        if duration > 60:
            try:
                c.seek(int((c.start_time or 0) + duration * 0.3 * av.time_base), backward=True)
            except av.FFmpegError:
                pass
        graph = av.filter.Graph()
        chain = [_buffer(graph, vs), graph.add("idet"), graph.add("buffersink")]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        last = None
        seen = 0
        try:
            for f in c.decode(vs):
                graph.push(f)
                while True:
                    try:
                        last = graph.pull()
                    except (av.BlockingIOError, av.EOFError):
                        break
                seen += 1
                if seen >= frames:
                    break
        except av.FFmpegError:
            pass
    if last is None:
        return FieldCounts(0, 0, 0, 0, 0)
    m = last.metadata

    def n(key: str) -> int:
        return round(float(m.get(f"lavfi.idet.{key}", 0)))

    repeated = n("repeated.top") + n("repeated.bottom")
    total = repeated + n("repeated.neither")
    return FieldCounts(n("multiple.tff"), n("multiple.bff"), n("multiple.progressive"), repeated, total)


def plan_fields(path: Path, choice: str, rate: Fraction | None, flagged: str | None) -> FieldPlan | None:
    """What to do with ``path``'s fields under ``--deinterlace choice`` (None: nothing).

    ``auto`` looks only where telecine or interlace can be: a source flagged
    interlaced, or one at a video rate (25 or 29.97 frames a second); film-rate and
    progressive web sources are left alone without decoding anything. Then ``idet``
    decides: mostly progressive frames leave the source alone; combed frames with
    repeated fields (2:3 pulldown repeats one field in two frames of five) are
    telecine; combed frames without are interlace.
    """
    if choice == "off":
        return None
    video_rate = rate is not None and (abs(float(rate) - 30000 / 1001) < 0.05 or abs(float(rate) - 25) < 0.05)
    if choice == "auto" and not flagged and not video_rate:
        return None
    counts = count_fields(path)
    order = "bff" if counts.bff > counts.tff or flagged == "bff" else "tff"
    stats = (
        f"idet on {counts.frames} frames: {counts.interlaced_share:.0%} combed,"
        f" {counts.repeated_share:.0%} with a repeated field"
    )
    if choice in ("ivtc", "bwdif"):
        return FieldPlan(choice, order, f"as asked ({stats})")
    if counts.frames == 0 or counts.interlaced_share < 0.2:
        return None
    if counts.repeated_share >= 0.1:
        return FieldPlan("ivtc", order, f"telecined: {stats}")
    return FieldPlan("bwdif", order, f"interlaced: {stats}")
