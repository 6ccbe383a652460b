"""Encoding: ``Writer`` writes the filled frames and the copied streams into ``NAME.partial.EXT``."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np

from ..geometry import Layout
from ..subtitles.sidecars import Sidecar
from .encoder import EncoderSettings
from .probe import OWN_HANDLER, OWN_TAG, STALE_TAG, ColorSpec, VideoError, as_fraction, error_reason
from .reader import Frame
from .streams import Output, PictureMove, Route, copy_metadata, route


def output_format(path: Path) -> str:
    """Container for an output path (by extension); Matroska unless told otherwise."""
    ext = path.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm"}.get(ext, "matroska")


def partial_path(final: Path) -> Path:
    """Where an output is written until it is complete."""
    return final.with_name(f"{final.stem}.partial{final.suffix}")


@dataclass(frozen=True)
class Picture:
    """The output picture: its canvas, where the source picture sits on it, and its format."""

    layout: Layout  # canvas size, sample aspect ratio, the kept picture (content) and its x (left)
    bit_depth: int
    pix_fmt: str  # the source's pixel format (the output keeps its chroma layout and depth where it can)
    color: ColorSpec
    rotation: int = 0  # degrees the source was turned on decoding; the output is stored upright, untagged
    fields: str | None = None  # "tff" / "bff": encoded interlaced with that field order
    rate: Fraction | None = None  # frame rate out where it is not the source's (inverse telecine)


@dataclass(frozen=True)
class Carried:
    """What goes into the output besides the picture."""

    copy: tuple[int, ...] = ()  # source streams to carry over (each takes its ``route``)
    chapters: list[dict] | None = None  # None: the source's own
    excerpt: bool = False  # only part of the source is converted
    sidecars: Sequence[tuple[av.stream.Stream, Sidecar]] = ()  # subtitle files beside the source


def _own_mark(pic: Picture) -> str:
    """The tag every output carries: which tool made it and to what canvas."""
    from .. import __version__

    lay = pic.layout
    return f"ganime {__version__}: sides generated, {lay.canvas_width}x{lay.canvas_height}"


class Writer:
    """Encodes frames into a new file next to the source's other streams.

    Frames are given with the pts/time_base they were decoded with. Copied packets
    may arrive ahead of the video (the model delays frames); they are held back and
    muxed once the video has caught up, so the file is interleaved no matter how
    long the processing pipeline is. Each copied stream takes its route
    (``streams.route``). ``close()`` renames the partial file to the final name;
    ``abort()`` removes it.
    """

    def __init__(
        self,
        final: str | os.PathLike[str],
        source: av.container.InputContainer,
        video_stream: av.video.stream.VideoStream,
        picture: Picture,
        encoder: EncoderSettings,
        carried: Carried = Carried(),
    ) -> None:
        self.final = Path(final)
        self.picture = picture
        self.color = picture.color
        # Per strip: the last RGB strip converted and its YUV planes. Held drawings and
        # still shots repeat their sides exactly; their conversion is done once.
        self._strips: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}
        self.partial = partial_path(self.final)
        self.frames_written = 0
        self._warnings: list[str] = []
        self._pending: list[tuple[float, int, av.Packet]] = []
        self._last_dts: dict[int, int] = {}  # per output stream, of the copied packets
        self._seq = 0
        self._video_time = float("-inf")
        self._routes: dict[int, Route] = {}  # by source index; sidecars by -1, -2, ...
        fmt = output_format(self.final)
        self._nonstrict = fmt in ("matroska", "webm")  # equal decode times allowed
        # bitexact: no random segment and track IDs, no muxing date, no library version:
        # the same input and options give the same file, byte for byte (archivists
        # compare checksums). Only the container's bookkeeping changes, not what it holds.
        options = {"fflags": "+bitexact"}
        if fmt in ("mp4", "mov"):
            options["movflags"] = "+faststart"
        try:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.partial.touch()  # the muxer opens the file only at the first packet: fail here
            self.out = av.open(str(self.partial), mode="w", format=fmt, options=options)
        except BaseException as e:
            try:
                self.partial.unlink(missing_ok=True)  # nothing is left behind, whatever stopped it
            except OSError:
                pass  # never created (a read-only folder): the first error stands
            if not isinstance(e, (av.FFmpegError, OSError)):
                raise
            why = e.strerror if isinstance(e, OSError) and e.strerror else error_reason(e)
            hint = ""
            if isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                hint = "; write it elsewhere with -o FOLDER"
            raise VideoError(f"{self.final}: cannot create the output ({why}){hint}") from e
        try:
            lay = picture.layout
            self.video = self._add_video(video_stream, encoder)
            self.pix_fmt = self.video.pix_fmt
            self._fields = (
                self._interlace(picture.fields, lay.canvas_width, lay.canvas_height) if picture.fields else None
            )
            self._add_routes(source, video_stream, carried)
            self.out.metadata.update({k: v for k, v in source.metadata.items() if not STALE_TAG.match(k)})
            # How a folder scan knows this file for one of ours, whatever its name says.
            self.out.metadata[OWN_TAG] = _own_mark(picture)
            chapters = source.chapters() if carried.chapters is None else carried.chapters
            if chapters:
                self.out.set_chapters(chapters)
            if any(r.opens_encoder for r in self._routes.values()):
                # Opens the encoders: the audio ones' frame size is needed, and the timed
                # text encoder writes the sample description (its packets are built here).
                self.out.start_encoding()
                for r in self._routes.values():
                    r.started()
        except BaseException:
            self.abort()
            raise

    def _add_routes(
        self, source: av.container.InputContainer, vs: av.video.stream.VideoStream, carried: Carried
    ) -> None:
        """Each copied stream and sidecar on its route; what the container refuses is dropped with a warning."""
        fmt = self.out.format.name
        lay = self.picture.layout
        src_w, src_h = vs.codec_context.width, vs.codec_context.height
        if self.picture.rotation in (90, 270):  # subtitles are placed on the picture as shown
            src_w, src_h = src_h, src_w
        move = None
        if src_w and src_h:  # subtitles placed on the frame move with the picture
            pic = (lay.content.x, lay.content.y)
            move = PictureMove((src_w, src_h), (lay.canvas_width, lay.canvas_height), pic, lay.left)
        out = Output(self.out, source, carried.excerpt, move)
        for idx in carried.copy:
            r = route(fmt, source.streams[idx], move)
            if r.add(out) is not None:
                self._routes[idx] = r
            self._warnings.extend(r.warnings)
            r.warnings.clear()
        for n, (s, sidecar) in enumerate(carried.sidecars):
            r = route(fmt, s, move, what=f"{sidecar.path.name} ({s.codec_context.name})")
            o = r.add(dataclasses.replace(out, source=None, excerpt=True))
            self._warnings.extend(r.warnings)
            r.warnings.clear()
            if o is None:
                continue
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
            self._routes[-1 - n] = r

    @property
    def warnings(self) -> list[str]:
        """What did not go over as it was (streams dropped, converted, re-encoded)."""
        return self._warnings + [w for r in self._routes.values() for w in r.warnings]

    def _add_video(self, vs: av.video.stream.VideoStream, encoder: EncoderSettings) -> av.video.stream.VideoStream:
        """The encoded video stream, timed and tagged like the source's."""
        pic = self.picture
        bit_depth = pic.bit_depth
        name = encoder.encoder_name(bit_depth)
        rate = pic.rate or as_fraction(vs.average_rate) or as_fraction(vs.guessed_rate) or Fraction(24000, 1001)
        try:
            ov = self.out.add_stream(name, rate=rate, options=encoder.options())
        except (av.FFmpegError, ValueError) as e:
            raise VideoError(f"{self.final}: encoder {name} is not available ({error_reason(e)})") from e
        ov.width, ov.height = pic.layout.canvas_width, pic.layout.canvas_height
        ov.pix_fmt = encoder.pix_fmt(pic.pix_fmt, bit_depth)
        cc = ov.codec_context
        # The source's ticks, not 1/fps: every frame keeps its own timestamp (VFR-safe).
        cc.time_base = as_fraction(vs.time_base) or Fraction(1, 1000)
        cc.sample_aspect_ratio = pic.layout.output_sar
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
        copy_metadata(vs, ov, drop_stale=True)
        ov.metadata.pop("rotate", None)  # an old-style rotation tag: the output is stored upright
        if self.out.format.name in ("mp4", "mov"):  # they keep no free container tags
            ov.metadata["handler_name"] = f"{OWN_HANDLER}: {_own_mark(pic)}"
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

    def write(self, frame_in: Frame) -> None:
        """Encode one RGB frame at exactly its own timestamp.

        When the frame carries the source's YUV planes in the output format, the
        picture area is copied from them sample for sample (the centre of the output
        is the source's own picture, not a YUV -> RGB -> YUV round trip) and only the
        generated strips are converted from RGB.
        """
        if frame_in.planes is not None and frame_in.pix_fmt == self.pix_fmt:
            frame = self._compose(frame_in.image, frame_in.planes)
        else:
            frame = self._to_yuv(frame_in.image)
        _fill_padding(frame)
        frame.pts = frame_in.pts
        frame.time_base = frame_in.time_base
        if self._fields is not None:  # flag the frame interlaced, with the source's field order
            self._fields.push(frame)
            frame = self._fields.pull()
        with steady_heap():
            packets = self.video.encode(frame)
        self._mux_video(packets)
        self.frames_written += 1

    def _to_yuv(self, image: np.ndarray) -> av.VideoFrame:
        """The RGB image in the output's YUV format (swscale, one thread)."""
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
        lay = self.picture.layout
        x, y, w, h, left = lay.content.x, lay.content.y, lay.content.width, lay.content.height, lay.left
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
        """Queue a packet of a copied stream, through its route; it is muxed once the video reaches its time.

        ``key`` names the route where it is not the packet's own stream index (sidecars).
        """
        r = self._routes.get(packet.stream.index if key is None else key)
        if r is None or r.stream is None:
            return
        for p in r.packets(packet):
            self._queue(p, r.stream)

    def copy_sidecar(self, key: int, packets: list[av.Packet]) -> None:
        """Queue a sidecar's cues (placed by ``Reader.sidecar_packets``)."""
        for p in packets:
            self.copy_packet(p, key)

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
        stb, ptb = as_fraction(st.time_base), as_fraction(p.time_base)
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
            with steady_heap():
                packets = self.video.encode(None)
            self._mux_video(packets)
            for r in self._routes.values():
                for p in r.flush():
                    self._queue(p, r.stream)  # type: ignore[arg-type]
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


_PERTURB: Callable[[int], int] | bool | None = False  # glibc's mallopt(M_PERTURB, byte); None: not here


@contextmanager
def steady_heap() -> Iterator[bool]:
    """While inside, the C library fills each heap block it hands out (or takes back)
    with one fixed byte; True where it can (glibc).

    libx264 (as PyAV bundles it) reads some memory it allocated and never wrote: given
    the same frames, its output changed with what the process had in that memory
    before (a file converted after others in a batch, and now and then a file
    converted alone, came out different; filling the heap with varying bytes first
    changed the encode of the same frames each time, and with this, never). Only the
    encoder's calls run inside: for the whole conversion the memsets cost about 9 %
    on the 640x480 benchmark clip. Blocks above the mmap threshold come zeroed anyway.
    Other threads allocating meanwhile get filled blocks too, which changes nothing.
    """
    global _PERTURB
    if _PERTURB is False:
        _PERTURB = None
        if sys.platform.startswith("linux"):
            try:
                mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
                mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                # M_PERTURB is -6 in glibc's malloc.h; musl's mallopt is a stub returning 0.
                if mallopt(-6, 0) == 1:
                    _PERTURB = lambda byte: mallopt(-6, byte)  # noqa: E731
            except (OSError, AttributeError):
                pass
    perturb = _PERTURB if callable(_PERTURB) else None
    if perturb is not None:
        perturb(0x5A)
    try:
        yield perturb is not None
    finally:
        if perturb is not None:
            perturb(0)


def _fill_padding(frame: av.VideoFrame) -> None:
    """Give each plane's row padding (line size beyond the width) the row's last sample.

    The buffers come uninitialised (their padding differed from run to run), and
    libx264's plane copy reads whole vector widths past a picture whose width is not a
    multiple of 16 (856 for a 640x480 source). Whether the encode ever depends on it was
    not shown (the differing encodes came from libx264's own heap: ``steady_heap``);
    set, the frames handed to the encoder are the same bytes every run.
    """
    dtype = np.uint16 if frame.format.components[0].bits > 8 else np.uint8
    for p in frame.planes:
        stride = p.line_size // np.dtype(dtype).itemsize
        if stride <= p.width:
            continue
        rows = np.frombuffer(p, dtype)[: p.height * stride].reshape(p.height, stride)
        rows[:, p.width :] = rows[:, p.width - 1 : p.width]
