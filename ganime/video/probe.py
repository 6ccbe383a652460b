"""What a video file holds: streams, picture geometry, colour, timing (``probe``), and RGB conversion."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VIDEO_EXTENSIONS = frozenset(
    ".mkv .mp4 .m4v .mov .avi .webm .ts .m2ts .mts .mpg .mpeg .vob .wmv .asf .flv .f4v .ogv .gif .3gp .divx .rm"
    " .rmvb .dv .y4m".split()
)
# Tags that describe the old video bitstream (written by mkvmerge/ffmpeg); they
# would be wrong after re-encoding, and the muxer writes fresh ones.
STALE_TAG = re.compile(r"^(DURATION|BPS|NUMBER_OF_FRAMES|NUMBER_OF_BYTES|ENCODER|_STATISTICS_.*)(-\w+)?$", re.I)
COPY_TYPES = ("audio", "subtitle", "attachment", "data")
KEY_PATIENCE = 600  # frames: a codec that marks no key frame is decoded from where the seek landed
FINE = Fraction(1, 1_000_000)  # the clock copied packets are moved on in an excerpt


class VideoError(Exception):
    """A video file that cannot be read or written; the message names the problem."""


class DamagedSource(VideoError):
    """A source that fails on its own content after decoding (cut short, no picture decodes):
    it would fail the same way every time it is decoded again."""


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
    """What ``probe`` learns about a file and its main video stream.

    ``width``, ``height`` and ``sar`` are those of the picture as players show it: a
    stream stored sideways with a display rotation (a phone's, or a ``rotate=90``
    tag) is described, decoded (``upright``) and converted turned upright, and
    ``rotation`` says by how much it is turned on decoding.
    """

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
    rotation: int  # degrees counter-clockwise the stored picture is turned to be shown: 0, 90, 180, 270
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


def as_fraction(value: object) -> Fraction | None:
    """PyAV gives Fraction, None, or (v19) a falsy AVRational for unset rationals."""
    if not value:
        return None
    f = Fraction(value.numerator, value.denominator)  # type: ignore[attr-defined]
    return f if f > 0 else None


def open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    try:
        # A damaged file's tags can be bytes that are not UTF-8: read them, not fail on them.
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.FFmpegError as e:
        raise VideoError(f"{path}: not a readable video ({error_reason(e)})") from e


def error_reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).rstrip(".")


def programme_stream(path: Path, c: av.container.InputContainer) -> av.video.stream.VideoStream:
    # An attached picture (cover art) is a video stream too; the programme is the first real one.
    for s in c.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    raise VideoError(f"{path}: has no video stream")


def stream_info(s: av.stream.Stream) -> StreamInfo:
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
    with open_input(path) as c:
        vs = programme_stream(path, c)
        cc = vs.codec_context
        try:
            first = next(iter(c.decode(vs)), None)
        except av.FFmpegError as e:
            raise VideoError(f"{path}: the video does not decode ({error_reason(e)})") from e
        if first is None:
            raise VideoError(f"{path}: the video stream has no decodable frame")
        interlaced = _mostly_interlaced(c, vs, first)
        fmt = first.format
        depth = max(comp.bits for comp in fmt.components) if fmt.components else 8
        tb = as_fraction(vs.time_base) or Fraction(1, 1000)
        duration = None
        if vs.duration:
            duration = float(vs.duration * tb)
        elif c.duration:
            duration = c.duration / av.time_base
        start = float(vs.start_time * tb) if vs.start_time is not None else 0.0
        sar = as_fraction(vs.sample_aspect_ratio) or as_fraction(cc.sample_aspect_ratio) or Fraction(1)
        rotation = rotation_of(first)
        width, height = first.width, first.height
        if rotation in (90, 270):  # ganime works on the picture as it is shown, turned upright
            width, height, sar = height, width, 1 / sar
        return VideoInfo(
            path=path,
            container=c.format.name,
            width=width,
            height=height,
            sar=sar,
            frame_rate=as_fraction(vs.average_rate) or as_fraction(vs.guessed_rate),
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
            rotation=rotation,
            colorspace=int(first.colorspace),
            color_range=int(first.color_range),
            color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc),
            video_index=vs.index,
            streams=tuple(stream_info(s) for s in c.streams),
            chapters=len(c.chapters()),
        )


OWN_TAG = "GANIME"  # a container tag (Matroska, WebM) every output of ganime carries
OWN_HANDLER = "ganime"  # how the video track's handler name starts in MP4 and MOV, which keep no free tags


def written_by_ganime(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file ganime wrote (reads the container header only)."""
    try:
        with av.open(str(path), mode="r", metadata_errors="replace") as c:
            if any(k.upper() == OWN_TAG for k in c.metadata):
                return True
            return any(str(s.metadata.get("handler_name", "")).startswith(OWN_HANDLER) for s in c.streams.video)
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return False  # not a readable video: not one of ours


def rotation_of(f: av.VideoFrame) -> int:
    """The display rotation of a decoded picture, counter-clockwise, to the nearest quarter turn."""
    return round(float(f.rotation or 0) / 90) % 4 * 90


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """A picture (HWC, or one sample plane HW) turned as a player shows it (``rotation_of``)."""
    turns = rotation // 90 % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


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


def to_rgb(f: av.VideoFrame, color: ColorSpec | None, rotation: int = 0) -> np.ndarray:
    """Convert a decoded frame to an HWC RGB array with the file's own matrix and range,
    turned by ``rotation`` (see ``rotation_of``)."""
    fmt = rgb_format(max(c.bits for c in f.format.components))
    if color is None:
        return upright(even(f.to_ndarray(format=fmt)), rotation)
    rgb = f.reformat(
        format=fmt,
        src_colorspace=color.matrix,
        src_color_range=color.range_name,
        dst_color_range="JPEG",
        threads=1,  # frame threading already keeps the cores busy
    )
    return upright(even(rgb.to_ndarray()), rotation)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The picture size ganime works at: odd sizes get one more column or row."""
    return width + width % 2, height + height % 2


def even(image: np.ndarray) -> np.ndarray:
    """An HWC picture of odd width or height with its last column or row repeated.

    4:2:0 video needs even sizes; rather than drop a source row or column (a 641x479
    capture would lose its last line), the edge is repeated, and every source sample
    stays in the picture.
    """
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# ------------------------------------------------------------------------- decode


def yuv_planes(f: av.VideoFrame, rotation: int = 0) -> tuple[np.ndarray, ...] | None:
    """Copies of a planar YUV frame's sample planes, turned by ``rotation``.

    None for RGB, packed or paletted formats, and for a quarter turn of a format whose
    chroma is subsampled one way only (4:2:2 turned would not be 4:2:2).
    """
    fmt = f.format
    if fmt.is_rgb or not fmt.is_planar or fmt.has_palette or not fmt.name.startswith(("yuv", "gray")):
        return None
    dtype = np.uint16 if max(c.bits for c in fmt.components) > 8 else np.uint8
    size = np.dtype(dtype).itemsize
    if rotation in (90, 270) and any(p.width * f.height != p.height * f.width for p in f.planes):
        return None
    planes = [np.frombuffer(p, dtype).reshape(p.height, p.line_size // size)[:, : p.width].copy() for p in f.planes]
    if f.width % 2 == 0 and f.height % 2 == 0:
        return tuple(upright(p, rotation) for p in planes)
    # Odd sizes: each plane padded to what the even picture (see ``even``) has.
    w, h = even_size(f.width, f.height)
    out = []
    for p in planes:
        sx, sy = max(1, round(f.width / p.shape[1])), max(1, round(f.height / p.shape[0]))
        want_h, want_w = -(-h // sy), -(-w // sx)
        out.append(upright(np.pad(p, ((0, want_h - p.shape[0]), (0, want_w - p.shape[1])), mode="edge"), rotation))
    return tuple(out)
