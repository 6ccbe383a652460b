"""Video I/O with PyAV: probe, decode to RGB arrays, encode with the source timestamps.

Imports nothing from ganime. Rules this module keeps (each one a bug class in the
tools users run today):

- every frame carries the ``pts`` and ``time_base`` it was decoded with, and the
  encoder gets exactly those back; nothing is renumbered from a frame counter, so
  variable frame rate and start offsets survive;
- audio, subtitle, attachment and data streams are copied packet for packet, with
  their language, title and disposition, plus chapters and container tags; what
  Matroska has no form for is converted, not lost (MP4 timed text to SRT, cover art
  to an attachment), and packets an MP4 edit list trims stay trimmed;
- the output is written to ``NAME.partial.EXT`` and renamed only when complete; the
  input is only ever opened for reading.
"""

from __future__ import annotations

import errno
import io
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np

from . import subtitles

VIDEO_EXTENSIONS = frozenset(
    ".mkv .mp4 .m4v .mov .avi .webm .ts .m2ts .mts .mpg .mpeg .vob .wmv .asf .flv .f4v .ogv .gif .3gp .divx .rm"
    " .rmvb .dv .y4m".split()
)
# Tags that describe the old video bitstream (written by mkvmerge/ffmpeg); they
# would be wrong after re-encoding, and the muxer writes fresh ones.
_STALE_TAG = re.compile(r"^(DURATION|BPS|NUMBER_OF_FRAMES|NUMBER_OF_BYTES|ENCODER|_STATISTICS_.*)(-\w+)?$", re.I)
COPY_TYPES = ("audio", "subtitle", "attachment", "data")
_KEY_PATIENCE = 600  # frames: a codec that marks no key frame is decoded from where the seek landed
_FINE = Fraction(1, 1_000_000)  # the clock copied packets are moved on in an excerpt


class VideoError(Exception):
    """A video file that cannot be read or written; the message names the problem."""


# --------------------------------------------------------------------------- probe


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a container, as a user would want it listed."""

    index: int
    type: str
    codec: str
    language: str | None = None
    title: str | None = None
    default: bool = False
    forced: bool = False
    cover: bool = False  # an attached picture (cover art): a video stream of one image

    def describe(self) -> str:
        bits = [f"#{self.index} {'cover' if self.cover else self.type} {self.codec}"]
        if self.language:
            bits.append(f"[{self.language}]")
        if self.title:
            bits.append(repr(self.title))
        if self.default:
            bits.append("default")
        if self.forced:
            bits.append("forced")
        return " ".join(bits)


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a file and its main video stream."""

    path: Path
    container: str
    width: int
    height: int
    sar: Fraction
    frame_rate: Fraction | None
    time_base: Fraction
    pix_fmt: str
    bit_depth: int
    codec: str
    duration: float | None
    start_time: float
    frame_count: int | None
    interlaced: bool
    top_field_first: bool  # of an interlaced source (as the decoder reports; top when it does not say)
    rotation: int
    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    video_index: int
    streams: tuple[StreamInfo, ...]
    chapters: int

    @property
    def display_aspect(self) -> float:
        return float(self.width * self.sar / self.height)

    @property
    def estimated_frames(self) -> int | None:
        """Frame count from the container, else from duration x rate (progress bars only)."""
        if self.frame_count:
            return self.frame_count
        if self.duration and self.frame_rate:
            return max(1, round(self.duration * float(self.frame_rate)))
        return None

    @property
    def copied_streams(self) -> tuple[StreamInfo, ...]:
        """The streams that are carried over untouched (cover art included)."""
        return tuple(s for s in self.streams if s.type in COPY_TYPES or s.cover)


def _fraction(value: object) -> Fraction | None:
    """PyAV gives Fraction, None, or (v19) a falsy AVRational for unset rationals."""
    if not value:
        return None
    f = Fraction(value.numerator, value.denominator)  # type: ignore[attr-defined]
    return f if f > 0 else None


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({_reason(e)})") from e


def _reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).rstrip(".")


def _video_stream(path: Path, c: av.container.InputContainer) -> av.video.stream.VideoStream:
    # An attached picture (cover art) is a video stream too; the programme is the first real one.
    for s in c.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    raise VideoError(f"{path}: has no video stream")


def _stream_info(s: av.stream.Stream) -> StreamInfo:
    cc = getattr(s, "codec_context", None)
    if s.type == "attachment":
        codec = f"{s.metadata.get('filename', '?')} ({s.metadata.get('mimetype', 'unknown type')})"
    else:
        codec = (cc.name if cc is not None else None) or s.type
    disp = s.disposition
    return StreamInfo(
        index=s.index,
        type=s.type,
        codec=str(codec),
        language=s.metadata.get("language") or None,
        title=s.metadata.get("title") or None,
        default=bool(disp & av.stream.Disposition.default),
        forced=bool(disp & av.stream.Disposition.forced),
        cover=s.type == "video" and bool(disp & av.stream.Disposition.attached_pic),
    )


def _mostly_interlaced(c: av.container.InputContainer, vs: av.video.stream.VideoStream, first: av.VideoFrame) -> bool:
    """Whether most of the opening frames are coded interlaced.

    One frame is not enough: an opening card can be flagged otherwise than the
    episode. The first second or so is read (the file is opened for probing anyway).
    """
    flags = [bool(first.interlaced_frame)]
    try:
        for f in c.decode(vs):
            flags.append(bool(f.interlaced_frame))
            if len(flags) >= 24:
                break
    except av.FFmpegError:
        pass  # a damaged file: judge by what decoded
    return sum(flags) * 2 > len(flags)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a file's geometry, timing, colour and streams (decodes one frame)."""
    path = Path(path)
    with _open_input(path) as c:
        vs = _video_stream(path, c)
        cc = vs.codec_context
        try:
            first = next(iter(c.decode(vs)), None)
        except av.FFmpegError as e:
            raise VideoError(f"{path}: the video does not decode ({_reason(e)})") from e
        if first is None:
            raise VideoError(f"{path}: the video stream has no decodable frame")
        interlaced = _mostly_interlaced(c, vs, first)
        fmt = first.format
        depth = max(comp.bits for comp in fmt.components) if fmt.components else 8
        tb = _fraction(vs.time_base) or Fraction(1, 1000)
        duration = None
        if vs.duration:
            duration = float(vs.duration * tb)
        elif c.duration:
            duration = c.duration / av.time_base
        start = float(vs.start_time * tb) if vs.start_time is not None else 0.0
        return VideoInfo(
            path=path,
            container=c.format.name,
            width=first.width,
            height=first.height,
            sar=_fraction(vs.sample_aspect_ratio) or _fraction(cc.sample_aspect_ratio) or Fraction(1),
            frame_rate=_fraction(vs.average_rate) or _fraction(vs.guessed_rate),
            time_base=tb,
            pix_fmt=fmt.name,
            bit_depth=depth,
            codec=cc.name,
            duration=duration,
            start_time=start,
            frame_count=vs.frames or None,
            interlaced=interlaced,
            # AVFieldOrder: 3 (BB) and 5 (BT) show the bottom field first.
            top_field_first=int(cc.field_order or 0) not in (3, 5),
            rotation=int(first.rotation or 0),
            colorspace=int(first.colorspace),
            color_range=int(first.color_range),
            color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc),
            video_index=vs.index,
            streams=tuple(_stream_info(s) for s in c.streams),
            chapters=len(c.chapters()),
        )


# ------------------------------------------------------------------------- colour


@dataclass(frozen=True)
class ColorSpec:
    """How YUV maps to RGB for one file; used both ways so the centre round-trips."""

    matrix: int  # av Colorspace value (ITU709=1, ITU601=5, ...)
    full_range: bool

    @classmethod
    def for_video(cls, info: VideoInfo) -> ColorSpec:
        # Unspecified matrix: HD is BT.709 and SD is BT.601, the guess players make too.
        supported = {1, 4, 5, 6, 7, 9}
        m = info.colorspace if info.colorspace in supported else (1 if info.height > 576 else 5)
        if m == 6:  # SMPTE170M is BT.601 for swscale
            m = 5
        return cls(matrix=m, full_range=info.color_range == 2 or info.pix_fmt.startswith("yuvj"))

    @property
    def range_name(self) -> str:
        return "JPEG" if self.full_range else "MPEG"


def rgb_format(bit_depth: int) -> str:
    """RGB array format for a source: 16-bit samples for anything above 8 bits."""
    return "rgb48le" if bit_depth > 8 else "rgb24"


def to_rgb(f: av.VideoFrame, color: ColorSpec | None) -> np.ndarray:
    """Convert a decoded frame to an HWC RGB array with the file's own matrix and range."""
    fmt = rgb_format(max(c.bits for c in f.format.components))
    if color is None:
        return f.to_ndarray(format=fmt)
    rgb = f.reformat(
        format=fmt,
        src_colorspace=color.matrix,
        src_color_range=color.range_name,
        dst_color_range="JPEG",
        threads=1,  # frame threading already keeps the cores busy
    )
    return rgb.to_ndarray()


# ------------------------------------------------------------------------- decode


def yuv_planes(f: av.VideoFrame) -> tuple[np.ndarray, ...] | None:
    """Copies of a planar YUV frame's sample planes (None for RGB, packed or paletted formats)."""
    fmt = f.format
    if fmt.is_rgb or not fmt.is_planar or fmt.has_palette or not fmt.name.startswith(("yuv", "gray")):
        return None
    dtype = np.uint16 if max(c.bits for c in fmt.components) > 8 else np.uint8
    size = np.dtype(dtype).itemsize
    return tuple(np.frombuffer(p, dtype).reshape(p.height, p.line_size // size)[:, : p.width].copy() for p in f.planes)


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
    ) -> None:
        self.path = Path(path)
        self.keep_planes = keep_planes
        self.container = _open_input(self.path)
        self.stream = _video_stream(self.path, self.container)
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
        self.first_error: str | None = None

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
        vtb = _fraction(self.stream.time_base) or Fraction(1, 1000)
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
        vtb = _fraction(vs.time_base) or Fraction(1, 1000)
        voff = self._offset(vtb)
        streams = [vs] + [c.streams[i] for i in self.copy]
        unkeyed: int | None = None  # frames skipped while waiting for a key frame after a seek
        if self.start:
            self._seek(voff)
            unkeyed = 0
        last_pts: int | None = None
        preroll: dict[int, av.Packet] = {}
        step = round(1 / (float(vs.average_rate or 25) * vtb)) or 1
        past_end = False
        try:
            packets = c.demux(streams)
            for packet in packets:
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
                        if not f.key_frame and unkeyed < _KEY_PATIENCE:
                            unkeyed += 1
                            continue
                        unkeyed = None
                    pts = f.pts if f.pts is not None else f.dts
                    if pts is None:  # no timestamp at all: continue from the last one
                        pts = 0 if last_pts is None else last_pts + step
                    last_pts = pts
                    if self.end is not None and (pts - voff) * vtb >= self.end - self.start:
                        past_end = True
                        break
                    if pts < voff:
                        continue
                    self.frames_decoded += 1
                    if self._first_pts is None:
                        self._first_pts = pts
                    self.span = max(self.span, float((pts - self._first_pts) * vtb))
                    planes = yuv_planes(f) if self.keep_planes else None
                    yield Frame(to_rgb(f, self.color), pts - voff, vtb, planes, f.format.name)
                if past_end:
                    break
        except av.FFmpegError as e:
            # A damaged container stops demuxing; keep what decoded so far.
            self._count_error(e)
        if self.frames_decoded == 0:
            why = f" ({self.first_error})" if self.first_error else ""
            raise VideoError(f"{self.path}: no video frame could be decoded{why}")

    def _count_error(self, e: Exception) -> None:
        self.decode_errors += 1
        if self.first_error is None:
            self.first_error = _reason(e)

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
            tb = _fraction(p.time_base)
            if not p.size or tb is None or p.pts is None:
                continue
            cues += 1
            p.pts = p.dts = round((p.pts * tb + origin) / _FINE)
            p.duration = round((p.duration or 0) * tb / _FINE)
            p.time_base = _FINE
            if self._keep_packet(p, "subtitle"):
                out.append(p)
        return out, cues

    def _keep_packet(self, p: av.Packet, kind: str | None = None) -> bool:
        """Shift a copied packet into excerpt time; drop it when outside the excerpt."""
        if not self.start and self.end is None:
            return True
        kind = kind or p.stream.type
        tb = _fraction(p.time_base) or Fraction(1, 1000)
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
            return round((r if low is None else max(low, r)) / _FINE)

        p.pts, p.dts = moved(p.pts), moved(p.dts)
        if p.duration:
            p.duration = max(1, round(length / _FINE))
        p.time_base = _FINE
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
        if i >= _KEY_PATIENCE:
            return first  # a codec that marks no key frame
    return None  # landed after the last key frame: nothing whole from here


# ----------------------------------------------------------------------- sidecars

SIDECAR_EXTENSIONS = frozenset({".srt", ".ass", ".ssa", ".vtt"})
_SIDECAR_FLAGS = {"forced": "forced", "sdh": "hearing_impaired", "cc": "hearing_impaired", "hi": "hearing_impaired"}
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$", re.I)
# Matroska names languages by ISO 639-2; file names mostly use the two-letter codes.
_ISO639_2 = {
    "en": "eng", "ja": "jpn", "fr": "fre", "de": "ger", "es": "spa", "it": "ita", "pt": "por", "ru": "rus",
    "zh": "chi", "ko": "kor", "ar": "ara", "nl": "dut", "pl": "pol", "sv": "swe", "fi": "fin", "no": "nor",
    "nb": "nob", "da": "dan", "tr": "tur", "cs": "cze", "hu": "hun", "el": "gre", "he": "heb", "id": "ind",
    "th": "tha", "vi": "vie", "uk": "ukr", "ro": "rum", "hr": "hrv", "sr": "srp", "bg": "bul", "ca": "cat",
    "ms": "may", "hi": "hin", "fa": "per", "tl": "tgl",
}  # fmt: skip


@dataclass(frozen=True)
class Sidecar:
    """A subtitle file beside a video that belongs to it (``ep01.srt``, ``ep01.en.forced.ass``)."""

    path: Path
    language: str | None = None
    forced: bool = False
    hearing_impaired: bool = False

    def describe(self) -> str:
        bits = [self.path.name]
        if self.language:
            bits.append(f"[{self.language}]")
        bits += [flag for flag, on in (("forced", self.forced), ("SDH", self.hearing_impaired)) if on]
        return " ".join(bits)


# Single-byte Western encodings a detector cannot tell apart on a few lines of
# dialogue; subtitle files in any of them are nearly always Windows-1252.
_WESTERN = {"latin_1", "iso8859_1", "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13",
            "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman", "mac_iceland", "cp850", "cp1252"}  # fmt: skip
_SUBTITLE_FORMAT = {".srt": "srt", ".ass": "ass", ".ssa": "ass", ".vtt": "webvtt"}


# The legacy Windows code page of a language's subtitle files (ISO 639-2).
_CODE_PAGE = {
    **dict.fromkeys("eng fre fra ger deu spa ita por dut nld swe fin nor nob dan cat may ind tgl".split(), "cp1252"),
    **dict.fromkeys("pol cze ces hun hrv slo slk slv rum ron".split(), "cp1250"),
    **dict.fromkeys("rus ukr bul srp".split(), "cp1251"),
    "gre": "cp1253", "ell": "cp1253", "tur": "cp1254", "heb": "cp1255", "ara": "cp1256", "per": "cp1256",
    "jpn": "cp932", "kor": "cp949", "tha": "cp874", "vie": "cp1258",
}  # fmt: skip


def subtitle_as_utf8(data: bytes, language: str | None = None) -> tuple[bytes, str | None]:
    """A subtitle file's bytes as UTF-8, and the encoding they were read from (None: UTF-8 already).

    Matroska stores text subtitles as UTF-8; old fansubs are often Windows-1252,
    Shift-JIS, Big5 or Windows-1251, which would show as garbage if copied as they are.
    The language the file name gives picks the code page; without one, it is detected.
    """
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(enc, errors="replace").encode("utf-8"), None if enc == "utf-8-sig" else enc
    try:
        data.decode("utf-8")
        return data, None
    except UnicodeDecodeError:
        pass
    page = _CODE_PAGE.get(language or "")
    if page is not None:
        try:
            return data.decode(page).encode("utf-8"), page
        except UnicodeDecodeError:
            pass  # not that code page after all: detect
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    best = from_bytes(data).best()
    enc = best.encoding if best is not None else "cp1252"
    if enc in _WESTERN:
        enc = "cp1252"
    return data.decode(enc, errors="replace").encode("utf-8"), enc


def open_sidecar(sidecar: Sidecar) -> tuple[av.container.InputContainer, str | None]:
    """A sidecar opened for demuxing (its text as UTF-8), and the encoding it was read from."""
    data, enc = subtitle_as_utf8(sidecar.path.read_bytes(), sidecar.language)
    return av.open(io.BytesIO(data), format=_SUBTITLE_FORMAT[sidecar.path.suffix.lower()]), enc


def find_sidecars(video_path: str | os.PathLike[str]) -> list[Sidecar]:
    """The subtitle files named after ``video_path``: its stem, then language and flag tags.

    Only short tags count (``eng``, ``pt-BR``, ``forced``, ``sdh``), so ``ep01.5.srt``
    belongs to ``ep01.5.mkv``, not to ``ep01.mkv``.
    """
    video_path = Path(video_path)
    stem = video_path.stem
    found = []
    try:
        entries = sorted(video_path.parent.iterdir())
    except OSError:
        return []
    for f in entries:
        if f.suffix.lower() not in SIDECAR_EXTENSIONS or not f.is_file():
            continue
        if f.stem != stem and not f.stem.startswith(stem + "."):
            continue
        tags = f.stem[len(stem) :].split(".")[1:]
        language, flags = None, set()
        for tag in tags:
            if tag.lower() in _SIDECAR_FLAGS:
                flags.add(_SIDECAR_FLAGS[tag.lower()])
            elif language is None and _LANGUAGE_TAG.match(tag):
                language = _ISO639_2.get(tag.lower(), tag.lower())
            else:
                break  # not a tag: the file belongs to another video
        else:
            found.append(Sidecar(f, language, "forced" in flags, "hearing_impaired" in flags))
    return found


def sample_frames(path: str | os.PathLike[str], count: int = 12, color: ColorSpec | None = None) -> list[np.ndarray]:
    """Up to ``count`` different frames spread over the file, for bar detection.

    Seeks where the file allows it; where seeking lands on the same frame again (GIFs,
    some AVIs) or fails, decodes from the start and takes every n-th frame instead.
    """
    path = Path(path)
    found: dict[int | None, np.ndarray] = {}
    with _open_input(path) as c:
        vs = _video_stream(path, c)
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
                found[f.pts] = to_rgb(f, color)
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
                    out.append(to_rgb(f, color))
                    if len(out) >= count:
                        break
        except av.FFmpegError:
            pass
        return out or list(found.values())


# ------------------------------------------------------------------------- encode

# name -> (8-bit encoder, high bit depth encoder)
ENCODERS: dict[str, tuple[str, str]] = {
    "x264": ("libx264", "libx264"),
    "x265": ("libx265", "libx265"),
    "av1": ("libsvtav1", "libsvtav1"),
    "nvenc": ("h264_nvenc", "hevc_nvenc"),
}
DEFAULT_CRF = {"x264": 18, "x265": 20, "av1": 28, "nvenc": 20}
DEFAULT_PRESET = {"x264": "medium", "x265": "medium", "av1": "8", "nvenc": "p5"}
# x264-style preset names translated for encoders that number their presets.
_NAMED = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
_SVT = ["12", "11", "10", "9", "8", "7", "5", "4", "3"]
_NVENC = ["p1", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p7"]


@dataclass(frozen=True)
class EncoderSettings:
    """Which encoder and how hard it works. ``crf``/``preset`` None means the codec default."""

    codec: str = "x264"
    crf: float | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ValueError(f"unknown codec {self.codec!r} (choose from {', '.join(ENCODERS)})")

    @property
    def keeps_interlacing(self) -> bool:
        """Whether this encoder can code an interlaced source as interlaced (x264's MBAFF)."""
        return self.codec == "x264"

    def encoder_name(self, bit_depth: int) -> str:
        return ENCODERS[self.codec][1 if bit_depth > 8 else 0]

    def options(self) -> dict[str, str]:
        """FFmpeg encoder options for this codec."""
        crf = self.crf if self.crf is not None else DEFAULT_CRF[self.codec]
        preset = self.preset or DEFAULT_PRESET[self.codec]
        crf_text = f"{crf:g}"
        if self.codec in ("x264", "x265"):
            return {"crf": crf_text, "preset": preset, "tune": "animation"}
        if self.codec == "av1":
            preset = _SVT[_NAMED.index(preset)] if preset in _NAMED else preset
            return {"crf": crf_text, "preset": preset}
        preset = _NVENC[_NAMED.index(preset)] if preset in _NAMED else preset
        return {"rc": "vbr", "cq": crf_text, "preset": preset, "b": "0"}

    def pix_fmt(self, source_fmt: str, bit_depth: int) -> str:
        """Keep the source's chroma layout and bit depth where the encoder can."""
        name = self.encoder_name(bit_depth)
        supported = [f.name for f in av.codec.Codec(name, "w").video_formats or ()]
        if self.codec == "nvenc":
            return "p010le" if bit_depth > 8 else "yuv420p"
        src = source_fmt.replace("yuvj", "yuv")
        if src in supported and src.startswith("yuv"):
            return src
        if bit_depth > 8:
            for cand in ("yuv420p10le",):
                if cand in supported:
                    return cand
        return "yuv420p"


def refusal(fmt: str, stream: av.stream.Stream) -> str | None:
    """Why container ``fmt`` cannot hold a copy of ``stream`` (None when it can).

    Asked by writing a header with that one stream into memory: the muxer itself
    decides, so a stream it would reject (mov_text in Matroska, fonts in MP4, an MP4
    timecode track) is dropped with a warning instead of failing the whole file.
    """
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (av.FFmpegError, ValueError) as e:
        return f"{fmt} cannot hold it ({_reason(e)})"
    return None


# What an audio stream gets when the output container refuses its codec (WMA, MS and
# IMA ADPCM, Nellymoser, mu-law in Matroska): the decoded sound re-encoded losslessly
# where the container holds a lossless codec, else Opus (all WebM holds).
_AUDIO_FALLBACK = {"matroska": "flac", "mp4": "alac", "mov": "alac", "webm": "libopus"}
_DEFAULT_LAYOUT = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_FALLBACK_LABEL = {"flac": "FLAC (lossless)", "alac": "ALAC (lossless)", "libopus": "Opus"}


class AudioTranscoder:
    """Decodes one copied audio stream and encodes it again for a container that refuses its codec.

    Timestamps follow the decoded audio (the decoder's own delay included), so sync
    with the picture is what the source had.
    """

    def __init__(self, out: av.container.OutputContainer, src: av.stream.Stream, codec: str) -> None:
        cc = src.codec_context
        fmt = cc.format
        # 16-bit unless the source decodes to 32-bit integers: lossy decoders give
        # floats of 16-bit originals, and 24-bit FLAC of those only wastes space.
        deep = fmt is not None and fmt.packed.name in ("s32", "s64")
        planar = {"flac": False, "alac": True, "libopus": False}[codec]
        sample = "flt" if codec == "libopus" else ("s32" if deep else "s16") + ("p" if planar else "")
        rate = 48000 if codec == "libopus" else cc.sample_rate
        layout = cc.layout
        if layout.name.endswith("channels"):
            # Decoders that do not say which channel is which (WMA does not): the
            # usual order for the count, which ALAC and Opus need to be told.
            layout = av.AudioLayout(_DEFAULT_LAYOUT.get(cc.channels, "stereo"))
        # Tried in memory first: an encoder that will not open (an odd layout, say) must
        # cost this stream only, not fail the whole file when the output starts.
        with av.open(io.BytesIO(), "w", format=out.format.name) as trial:
            t = trial.add_stream(codec, rate=rate)
            t.layout, t.format = layout, sample
            trial.start_encoding()
        self.stream = out.add_stream(codec, rate=rate)
        self.stream.layout = layout
        self.stream.format = sample
        if codec == "libopus":
            self.stream.bit_rate = min(510_000, 64_000 * cc.channels)
        self.label = _FALLBACK_LABEL[codec]
        self._sample, self._layout, self._rate = sample, layout, rate
        self._decoder = cc
        self._resampler: av.AudioResampler | None = None
        self._next: int | None = None  # pts of the sample after the last one encoded
        self.decode_errors = 0

    def packets(self, packet: av.Packet | None) -> list[av.Packet]:
        """Encoded packets for one source packet; None flushes decoder, resampler and encoder."""
        if self._resampler is None:
            # The encoder is open now (the container has started): its frame size is known.
            size = self.stream.codec_context.frame_size or None
            self._resampler = av.AudioResampler(self._sample, self._layout, self._rate, frame_size=size)
        try:
            # None drains what the decoder still holds (codecs with a delay).
            frames = packet.decode() if packet is not None else self._decoder.decode(None)
        except av.FFmpegError:
            self.decode_errors += 1
            frames = []
        out: list[av.Packet] = []
        for f in frames:
            for g in self._resampler.resample(f):
                out.extend(self._encode(g))
        if packet is None:
            for g in self._resampler.resample(None):
                out.extend(self._encode(g))
            out.extend(self._encode(None))
        return out

    def _encode(self, frame: av.AudioFrame | None) -> list[av.Packet]:
        if frame is not None:
            if frame.pts is None:  # the resampler's last, flushed frame
                frame.pts = self._next or 0
            self._next = frame.pts + frame.samples
        return [p for p in self.stream.encode(frame) if p.size or p.pts is not None]


def _repacked(packet: av.Packet, data: bytes) -> av.Packet:
    """A new packet of ``data`` at ``packet``'s time (a copied stream rewritten on the way)."""
    out = av.Packet(data)
    out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
    out.time_base = packet.time_base
    return out


def copy_route(fmt: str, s: av.stream.Stream) -> tuple[str, str | None]:
    """How a copied stream reaches container ``fmt``, and why when it cannot go as it is.

    One of ``copy``, ``cover`` (cover art as a Matroska attachment), ``srt`` (MP4 timed
    text into Matroska), ``timed-text`` (text subtitles into MP4), ``webvtt`` (text
    subtitles into WebM), ``reencode`` (audio the container refuses) or ``drop``. The
    ``Writer`` acts on it; ``--dry-run`` tells it (``stream_changes``).
    """
    name = s.codec_context.name if s.codec_context is not None else ""
    if fmt == "matroska" and s.type == "video":
        return "cover", None
    if s.type == "subtitle":
        if fmt == "matroska" and name == "mov_text":
            return "srt", "Matroska has no MP4 timed text"
        if fmt in ("mp4", "mov") and name in subtitles.TEXT_CODECS:
            return "timed-text", "MP4 holds text subtitles only as timed text"
        if fmt == "webm" and name in subtitles.TEXT_CODECS and name != "webvtt":
            return "webvtt", "WebM holds text subtitles only as WebVTT"
    why = refusal(fmt, s)
    if why is None:
        return "copy", None
    if s.type == "audio" and fmt in _AUDIO_FALLBACK:
        return "reencode", why
    return "drop", why


def stream_changes(path: str | os.PathLike[str], copy: tuple[int, ...], fmt: str) -> list[str]:
    """What becomes of the copied streams that container ``fmt`` cannot hold as they are (``--dry-run``)."""
    notes = []
    with _open_input(Path(path)) as c:
        for idx in copy:
            s = c.streams[idx]
            route, why = copy_route(fmt, s)
            what = _stream_info(s).describe()
            ass = s.codec_context is not None and s.codec_context.name in ("ass", "ssa")
            lost = "; ASS positions, fonts and colours are lost" if ass else ""
            if route == "srt":
                notes.append(f"{what} written as SRT: {why}")
            elif route == "timed-text":
                notes.append(f"{what} written as MP4 timed text{lost}")
            elif route == "webvtt":
                notes.append(f"{what} written as WebVTT{lost}")
            elif route == "reencode":
                notes.append(f"{what} re-encoded as {_FALLBACK_LABEL[_AUDIO_FALLBACK[fmt]]}: {why}")
            elif route == "drop":
                notes.append(f"{what} dropped: {why}")
    return notes


def output_format(path: Path) -> str:
    """Container for an output path (by extension); Matroska unless told otherwise."""
    ext = path.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm"}.get(ext, "matroska")


def partial_path(final: Path) -> Path:
    """Where an output is written until it is complete."""
    return final.with_name(f"{final.stem}.partial{final.suffix}")


class Writer:
    """Encodes frames into a new file next to copies of the source's other streams.

    Frames are given with the pts/time_base they were decoded with. Copied packets
    may arrive ahead of the video (the model delays frames); they are held back and
    muxed once the video has caught up, so the file is interleaved no matter how
    long the processing pipeline is. ``close()`` renames the partial file to the
    final name; ``abort()`` removes it.
    """

    def __init__(
        self,
        final: str | os.PathLike[str],
        *,
        source: av.container.InputContainer,
        video_stream: av.video.stream.VideoStream,
        width: int,
        height: int,
        sar: Fraction,
        encoder: EncoderSettings,
        bit_depth: int,
        source_pix_fmt: str,
        color: ColorSpec,
        copy: tuple[int, ...],
        chapters: list[dict] | None = None,
        excerpt: bool = False,
        rotation: int = 0,
        centre: tuple[int, int, int, int, int] | None = None,
        interlaced: str | None = None,
        sidecars: Sequence[tuple[av.stream.Stream, Sidecar]] = (),
    ) -> None:
        self.final = Path(final)
        # (x, y, width, height) of the picture in the source and its x on the canvas.
        self.centre = centre
        # Per strip: the last RGB strip converted and its YUV planes. Held drawings and
        # still shots repeat their sides exactly; their conversion is done once.
        self._strips: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}
        self.partial = partial_path(self.final)
        self.color = color
        self.frames_written = 0
        self.warnings: list[str] = []
        self._pending: list[tuple[float, int, av.Packet]] = []
        self._last_dts: dict[int, int] = {}  # per output stream, of the copied packets
        self._seq = 0
        self._video_time = float("-inf")
        fmt = output_format(self.final)
        self._nonstrict = fmt in ("matroska", "webm")  # equal decode times allowed
        options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        try:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.partial.touch()  # the muxer opens the file only at the first packet: fail here
            self.out = av.open(str(self.partial), mode="w", format=fmt, options=options)
        except (av.FFmpegError, OSError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else _reason(e)
            hint = ""
            if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                hint = "; write it elsewhere with -o FOLDER"
            raise VideoError(f"{self.final}: cannot create the output ({why}){hint}") from e
        try:
            self.video = self._add_video(video_stream, width, height, sar, encoder, bit_depth, source_pix_fmt, rotation)
            self.pix_fmt = self.video.pix_fmt
            self._fields = self._interlace(interlaced, width, height) if interlaced else None
            self._movtext: set[int] = set()  # copied mov_text streams, written as SRT
            # Subtitles placed on the frame move with the picture: (dx, dy, canvas growth in x, in y).
            self._source_size = (video_stream.codec_context.width, video_stream.codec_context.height)
            self._canvas_move = self._picture_move(width, height)
            self._bitmap_subs: dict[int, str] = {}  # copied DVD/PGS subtitle streams, by kind
            self._ass_canvas: dict[int, subtitles.AssCanvas] = {}  # copied ASS streams, remapped
            self._transcode: dict[int, AudioTranscoder] = {}  # audio the container refuses as it is
            self._to_webvtt: dict[int, tuple[str, dict[str, int]]] = {}  # text subtitles into WebM
            # Text subtitles into MP4: codec, cue timeline, ASS style faces.
            self._timed_text: dict[int, tuple[str, subtitles.TimedTextTrack, dict[str, int]]] = {}
            self._out_streams = self._add_copies(source, copy, excerpt)
            for n, (stream, sidecar) in enumerate(sidecars):
                self._add_sidecar(-1 - n, stream, sidecar)
            self.out.metadata.update({k: v for k, v in source.metadata.items() if not _STALE_TAG.match(k)})
            chapters = source.chapters() if chapters is None else chapters
            if chapters:
                self.out.set_chapters(chapters)
            if self._transcode or self._timed_text:
                # Opens the encoders: the audio ones' frame size is needed, and the timed
                # text encoder writes the sample description (its packets are built here).
                self.out.start_encoding()
                for idx, (_, track, _) in self._timed_text.items():
                    track.size, track.color = subtitles.default_style(self._out_streams[idx].codec_context.extradata)
        except BaseException:
            self.abort()
            raise

    def _add_video(
        self,
        vs: av.video.stream.VideoStream,
        width: int,
        height: int,
        sar: Fraction,
        encoder: EncoderSettings,
        bit_depth: int,
        source_pix_fmt: str,
        rotation: int,
    ) -> av.video.stream.VideoStream:
        """The encoded video stream, timed and tagged like the source's."""
        name = encoder.encoder_name(bit_depth)
        rate = _fraction(vs.average_rate) or _fraction(vs.guessed_rate) or Fraction(24000, 1001)
        try:
            ov = self.out.add_stream(name, rate=rate, options=encoder.options())
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(f"{self.final}: encoder {name} is not available ({_reason(e)})") from e
        ov.width, ov.height = width, height
        ov.pix_fmt = encoder.pix_fmt(source_pix_fmt, bit_depth)
        cc = ov.codec_context
        # The source's ticks, not 1/fps: every frame keeps its own timestamp (VFR-safe).
        cc.time_base = _fraction(vs.time_base) or Fraction(1, 1000)
        cc.sample_aspect_ratio = sar
        cc.colorspace = self.color.matrix
        cc.color_range = 2 if self.color.full_range else 1
        src_cc = vs.codec_context
        if src_cc.color_primaries not in (0, 2):
            cc.color_primaries = src_cc.color_primaries
        if src_cc.color_trc not in (0, 2):
            cc.color_trc = src_cc.color_trc
        cc.thread_count = 0
        # What the ffmpeg CLI does: frame and slice threading allowed. PyAV's default
        # (slice only) makes libx264 use sliced threads: slower, and ~4 % larger files
        # at the same CRF.
        cc.thread_type = "AUTO"
        if rotation:
            ov.set_display_rotation(rotation)  # shown as the source was; pixels stay as stored
        self._copy_metadata(vs, ov, drop_stale=True)
        return ov

    def _interlace(self, order: str, width: int, height: int) -> av.filter.Graph:
        """Encode as interlaced, fields in ``order`` ('tff' or 'bff'), as the source was.

        The picture's fields were never touched (the sides are generated beside them), so
        an interlaced source stays interlaced and players deinterlace it as before;
        flagged progressive, its combing would show. libx264 takes the field order from
        each frame's flags, which PyAV cannot set, hence a one-filter graph (setfield).
        """
        cc = self.video.codec_context
        cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        cc.field_order = 2 if order == "tff" else 3  # AV_FIELD_TT / AV_FIELD_BB, for the container
        graph = av.filter.Graph()
        src = graph.add_buffer(width=width, height=height, format=self.pix_fmt, time_base=cc.time_base)
        setfield = graph.add("setfield", order)
        sink = graph.add("buffersink")
        src.link_to(setfield)
        setfield.link_to(sink)
        graph.configure()
        return graph

    def _add_copies(
        self, source: av.container.InputContainer, copy: tuple[int, ...], excerpt: bool
    ) -> dict[int, av.stream.Stream]:
        """Output streams for the copied ones, by source index; what the container refuses is dropped."""
        streams: dict[int, av.stream.Stream] = {}
        for idx in copy:
            o = self._add_copy(source.streams[idx], idx, excerpt, source)
            if o is not None:
                streams[idx] = o
        return streams

    def _add_copy(
        self,
        s: av.stream.Stream,
        idx: int,
        excerpt: bool,
        source: av.container.InputContainer | None = None,
        label: str | None = None,
    ) -> av.stream.Stream | None:
        """The output stream for one copied stream, under key ``idx`` (None: dropped, or kept otherwise).

        ``label`` names it in warnings (default: its index, type and codec in the source).
        """
        fmt = self.out.format.name
        what = label or _stream_info(s).describe()
        route, refused = copy_route(fmt, s)
        name = s.codec_context.name if s.codec_context is not None else ""
        if route == "cover" and source is not None:
            # Cover art: Matroska keeps it as an attachment (a video track of one
            # frame is what a plain stream copy would make of it, and players then
            # see a second programme).
            self._attach_cover(source, s)
            return None
        if route == "srt":
            # MP4 timed text has no Matroska form; its text (and bold, italic and
            # underline) is carried as SRT, as the ffmpeg CLI would convert it.
            o = self.out.add_mux_stream("subrip")
            o.time_base = s.time_base
            self._copy_metadata(s, o, drop_stale=excerpt)
            self._movtext.add(idx)
            return o
        if route == "timed-text":
            # MP4 holds text subtitles only as timed text: each cue's text (and its
            # bold, italic and underline) goes over; as the ffmpeg CLI does, the
            # sample description takes the source's default ASS style.
            o = self.out.add_stream("mov_text")
            header = s.codec_context.extradata if name in ("ass", "ssa") else None
            o.codec_context.subtitle_header = header or subtitles.DEFAULT_ASS_HEADER.encode()
            o.time_base = Fraction(1, 1000)
            self._copy_metadata(s, o, drop_stale=True)
            styles = subtitles.ass_styles(header)
            self._timed_text[idx] = (name, subtitles.TimedTextTrack(), styles)
            if name in ("ass", "ssa"):
                self.warnings.append(
                    f"stream {what}: MP4 holds only plain timed text; written as that "
                    "(bold, italic and underline kept; positions, fonts, colours and karaoke are not)"
                )
            return o
        if route == "webvtt":
            # WebM holds text subtitles only as WebVTT: each cue's text and faces.
            o = self.out.add_mux_stream("webvtt")
            o.time_base = s.time_base
            self._copy_metadata(s, o, drop_stale=True)
            header = s.codec_context.extradata if name in ("ass", "ssa") else None
            self._to_webvtt[idx] = (name, subtitles.ass_styles(header))
            return o
        if route == "reencode":
            try:
                tc = AudioTranscoder(self.out, s, _AUDIO_FALLBACK[fmt])
            except (av.FFmpegError, ValueError, TypeError) as e:
                why = f"{refused}; re-encoding failed ({e})"
                self.warnings.append(f"stream {what} dropped: {why}")
                return None
            self.warnings.append(f"stream {what}: {refused}; re-encoded as {tc.label}")
            self._copy_metadata(s, tc.stream, drop_stale=True)
            self._transcode[idx] = tc
            return tc.stream
        if route == "drop":
            self.warnings.append(f"stream {what} dropped: {refused}")
            return None
        try:
            o = self.out.add_stream_from_template(s)
        except (av.FFmpegError, ValueError) as e:
            self.warnings.append(f"stream #{idx} {s.type} dropped: the output container cannot hold it ({e})")
            return None
        cc = o.codec_context
        if name in ("ass", "ssa") and self._canvas_move is not None and s.codec_context.extradata:
            # Typeset signs and margins are placed on the frame: they move with the picture.
            x, y, _, _, left = self.centre  # type: ignore[misc]
            _, _, grow_x, grow_y = self._canvas_move
            src = self._source_size
            canvas = (src[0] + grow_x, src[1] + grow_y)
            plan = subtitles.AssCanvas.for_script(s.codec_context.extradata, src, canvas, (x, y, left))
            cc.extradata = plan.header(s.codec_context.extradata)
            self._ass_canvas[idx] = plan
        kind = {"dvdsub": "spu", "dvd_subtitle": "spu", "hdmv_pgs_subtitle": "pgs", "pgssub": "pgs"}.get(name)
        if kind is not None and self._canvas_move is not None:
            # Placed in source pixels: they move with the picture onto the wider canvas.
            self._bitmap_subs[idx] = kind
            if kind == "spu" and s.codec_context.extradata:
                _, _, grow_x, grow_y = self._canvas_move
                cc.extradata = subtitles.vobsub_header(s.codec_context.extradata, grow_x, grow_y)
        if s.type == "audio" and fmt in ("mp4", "mov") and cc.layout.name.endswith("channels"):
            # An AVI's PCM says only how many channels: MP4 must name them, else the
            # file fails as it is finished. The usual order for the count is what
            # players assume anyway.
            if cc.channels in _DEFAULT_LAYOUT:
                cc.layout = _DEFAULT_LAYOUT[cc.channels]
        self._copy_metadata(s, o, drop_stale=excerpt)
        return o

    def _picture_move(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """How far the source picture moves on the canvas, and how much wider and taller the canvas is."""
        src_w, src_h = self._source_size
        if self.centre is None or not src_w or not src_h:
            return None
        x, y, _, _, left = self.centre
        return left - x, -y, width - src_w, height - src_h

    def _add_sidecar(self, key: int, s: av.stream.Stream, sidecar: Sidecar) -> None:
        """A subtitle file beside the source becomes a subtitle stream, under key ``key``."""
        o = self._add_copy(s, key, excerpt=True, label=f"{sidecar.path.name} ({s.codec_context.name})")
        if o is None:
            return
        o.metadata.pop("language", None)
        if sidecar.language:
            o.metadata["language"] = sidecar.language
        o.metadata["title"] = sidecar.path.name
        flags = av.stream.Disposition(0)
        if sidecar.forced:
            flags |= av.stream.Disposition.forced
        if sidecar.hearing_impaired:
            flags |= av.stream.Disposition.hearing_impaired
        o.disposition = flags
        self._out_streams[key] = o

    def copy_sidecar(self, key: int, packets: list[av.Packet]) -> None:
        """Queue a sidecar's cues (placed by ``Reader.sidecar_packets``)."""
        for p in packets:
            self.copy_packet(p, key)

    def _attach_cover(self, source: av.container.InputContainer, s: av.stream.Stream) -> None:
        """Embed an attached picture as a Matroska attachment named as players expect."""
        # Its one packet is read from a second handle: the source's own is the reader's.
        with av.open(source.name) as c:
            data = next((bytes(p) for p in c.demux(c.streams[s.index]) if p.size), None)
        if data is None:
            self.warnings.append(f"stream #{s.index} cover dropped: its picture could not be read")
            return
        codec = s.codec_context.name
        ext, mime = {"png": ("png", "image/png"), "webp": ("webp", "image/webp")}.get(codec, ("jpg", "image/jpeg"))
        name = s.metadata.get("filename") or f"cover.{ext}"
        self.out.add_attachment(name, s.metadata.get("mimetype") or mime, data)

    @staticmethod
    def _copy_metadata(src: av.stream.Stream, dst: av.stream.Stream, drop_stale: bool) -> None:
        # add_stream_from_template copies codec parameters only: language, title and
        # disposition (default/forced flags) would be lost without this.
        for k, v in src.metadata.items():
            if drop_stale and _STALE_TAG.match(k):
                continue
            if src.type == "attachment" and k in ("filename", "mimetype"):
                continue  # the template copy already set them
            dst.metadata[k] = v
        dst.disposition = src.disposition

    @property
    def copied_streams(self) -> tuple[int, ...]:
        return tuple(self._out_streams)

    def write(self, frame_in: Frame) -> None:
        """Encode one RGB frame at exactly its own timestamp.

        When the frame carries the source's YUV planes in the output format, the
        picture area is copied from them sample for sample (the centre of the output
        is the source's own picture, not a YUV -> RGB -> YUV round trip) and only the
        generated strips are converted from RGB.
        """
        if self.centre is not None and frame_in.planes is not None and frame_in.pix_fmt == self.pix_fmt:
            frame = self._compose(frame_in.image, frame_in.planes)
        else:
            frame = self._to_yuv(frame_in.image)
        frame.pts = frame_in.pts
        frame.time_base = frame_in.time_base
        if self._fields is not None:  # flag the frame interlaced, with the source's field order
            self._fields.push(frame)
            frame = self._fields.pull()
        self._mux_video(self.video.encode(frame))
        self.frames_written += 1

    def _to_yuv(self, image: np.ndarray) -> av.VideoFrame:
        fmt = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt).reformat(
            format=self.pix_fmt,
            src_color_range="JPEG",
            dst_colorspace=self.color.matrix,
            dst_color_range=self.color.range_name,
            threads=1,
        )

    def _compose(self, image: np.ndarray, planes: tuple[np.ndarray, ...]) -> av.VideoFrame:
        """Output frame = converted strips + the source's own samples in the picture area."""
        x, y, w, h, left = self.centre  # type: ignore[misc]
        height, width = image.shape[:2]
        frame = av.VideoFrame(width, height, self.pix_fmt)
        dtype = planes[0].dtype
        size = dtype.itemsize
        outs = [np.frombuffer(p, dtype).reshape(p.height, p.line_size // size) for p in frame.planes]
        subsampling = [(width // p.width, height // p.height) for p in frame.planes]
        # Chroma planes are subsampled; the geometry keeps every offset even, so the
        # picture and the strips each start on a chroma sample.
        for x0, x1 in ((0, left), (left + w, width)):
            if x1 <= x0:
                continue
            rgb = image[:, x0:x1]
            last = self._strips.get(x0)
            if last is not None and np.array_equal(last[0], rgb):
                converted = last[1]
            else:
                strip = self._to_yuv(rgb)
                converted = [
                    np.frombuffer(p, dtype).reshape(p.height, p.line_size // size)[:, : (x1 - x0) // sx].copy()
                    for p, (sx, _) in zip(strip.planes, subsampling, strict=True)
                ]
                self._strips[x0] = (rgb.copy(), converted)
            for out, (sx, sy), src in zip(outs, subsampling, converted, strict=True):
                out[: height // sy, x0 // sx : x1 // sx] = src
        for out, (sx, sy), src in zip(outs, subsampling, planes, strict=True):
            out[: h // sy, left // sx : (left + w) // sx] = src[y // sy : (y + h) // sy, x // sx : (x + w) // sx]
        return frame

    def copy_packet(self, packet: av.Packet, key: int | None = None) -> None:
        """Queue a packet of a copied stream; it is muxed once the video reaches its time.

        ``key`` names the output stream where it is not the packet's own index (sidecars).
        """
        idx = packet.stream.index if key is None else key
        out = self._out_streams.get(idx)
        if out is None:
            return
        tc = self._transcode.get(idx)
        if tc is not None:
            for p in tc.packets(packet):
                self._queue(p, out)
            return
        timed = self._timed_text.get(idx)
        if timed is not None:
            self._timed_samples(packet, out, *timed)
            return
        vtt = self._to_webvtt.get(idx)
        if vtt is not None:
            text = subtitles.webvtt_cue(*subtitles.cue_text(vtt[0], bytes(packet), vtt[1]))
            if not text:
                return  # a drawing only
            packet = _repacked(packet, text.encode("utf-8"))
        elif idx in self._ass_canvas:
            packet = _repacked(packet, self._ass_canvas[idx].event(bytes(packet)))
        elif idx in self._bitmap_subs and self._canvas_move is not None:
            packet = _repacked(packet, self._moved_bitmap(bytes(packet), out, self._bitmap_subs[idx]))
        elif idx in self._movtext:
            text = subtitles.movtext_to_srt(bytes(packet))
            if not text:
                return  # a clearing sample: an SRT cue ends by its duration
            packet = _repacked(packet, text.encode("utf-8"))
        self._queue(packet, out)

    def _moved_bitmap(self, data: bytes, out: av.stream.Stream, kind: str) -> bytes:
        """A DVD or PGS subtitle packet's bytes with its picture moved as the video's picture moved."""
        dx, dy, grow_x, grow_y = self._canvas_move  # type: ignore[misc]
        if kind == "spu":
            # Kept inside the canvas the header now names.
            size = re.search(rb"size:\s*(\d+)\s*x\s*(\d+)", out.codec_context.extradata or b"")
            w, h = (int(size[1]), int(size[2])) if size else (4096, 4096)
            return subtitles.move_spu(data, dx, dy, w, h)
        return subtitles.move_pgs(data, dx, dy, grow_x, grow_y)

    def _timed_samples(
        self,
        packet: av.Packet,
        out: av.stream.Stream,
        codec: str,
        track: subtitles.TimedTextTrack,
        styles: dict[str, int],
    ) -> None:
        """Queue the timed-text samples one text subtitle packet settles."""
        tb = _fraction(packet.time_base) or Fraction(1, 1000)
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            return
        start = round(ts * tb * 1000)
        end = start + round(packet.duration * tb * 1000) if packet.duration else None
        self._queue_samples(track.add(start, end, *subtitles.cue_text(codec, bytes(packet), styles)), out)

    def _queue_samples(self, samples: list[tuple[int, int, bytes]], out: av.stream.Stream) -> None:
        for start, end, payload in samples:
            p = av.Packet(payload)
            p.pts = p.dts = start
            p.duration = end - start
            p.time_base = Fraction(1, 1000)
            self._queue(p, out)

    def _queue(self, packet: av.Packet, out: av.stream.Stream) -> None:
        tb = packet.time_base
        ts = packet.dts if packet.dts is not None else packet.pts
        t = float(ts * tb) if ts is not None and tb else float("-inf")
        packet.stream = out
        self._seq += 1
        self._pending.append((t, self._seq, packet))
        self._flush_pending(self._video_time)

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for p in packets:
            self.out.mux(p)
            ts = p.dts if p.dts is not None else p.pts
            if ts is not None and p.time_base:
                self._video_time = max(self._video_time, float(ts * p.time_base))
        if packets:
            self._flush_pending(self._video_time)

    def _flush_pending(self, until: float) -> None:
        if not self._pending:
            return
        ready = [x for x in self._pending if x[0] <= until]
        if not ready:
            return
        self._pending = [x for x in self._pending if x[0] > until]
        for _, _, p in sorted(ready, key=lambda x: (x[0], x[1])):
            self._mux_copy(p)

    def _mux_copy(self, p: av.Packet) -> None:
        """Mux a copied packet, its decode time made to increase as the muxer requires.

        Sources repeat or step back a timestamp now and then (the last AC3 packets of a
        DVD's VOB share one); MP4 refuses that and the whole file would fail. Like the
        ffmpeg CLI, such a packet is moved to just after the one before it.
        """
        st = p.stream
        stb, ptb = _fraction(st.time_base), _fraction(p.time_base)
        if stb and ptb and p.dts is not None:
            if ptb != stb:  # on the stream's own clock, where the muxer compares
                dur = p.duration
                p.pts = None if p.pts is None else round(p.pts * ptb / stb)
                p.dts = round(p.dts * ptb / stb)
                p.duration = round(dur * ptb / stb) if dur else dur
                p.time_base = st.time_base
            last = self._last_dts.get(st.index)
            least = None if last is None else last + (0 if self._nonstrict else 1)
            if least is not None and p.dts < least:
                if p.pts is not None:
                    p.pts = max(p.pts, least)
                p.dts = least
            self._last_dts[st.index] = p.dts
        self.out.mux(p)

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it to its final name."""
        try:
            self._mux_video(self.video.encode(None))
            for idx, (_, track, _) in self._timed_text.items():
                self._queue_samples(track.flush(), self._out_streams[idx])
            for idx, tc in self._transcode.items():
                for p in tc.packets(None):
                    self._queue(p, self._out_streams[idx])
                if tc.decode_errors:
                    self.warnings.append(f"stream #{idx}: {tc.decode_errors} audio packet(s) could not be decoded")
            self._flush_pending(float("inf"))
            self.out.close()
        except BaseException:
            self.abort()
            raise
        os.replace(self.partial, self.final)
        return self.final

    def abort(self) -> None:
        """Stop writing and remove the partial file."""
        try:
            self.out.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        try:
            self.partial.unlink(missing_ok=True)
        except OSError:
            pass  # never created (a read-only folder): nothing to remove, and the first error stands
