"""Encoding: ``Writer`` writes the filled frames and the copied streams into ``NAME.partial.EXT``."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np

from .. import subtitles
from ..sidecars import Sidecar
from .encoder import EncoderSettings
from .probe import _STALE_TAG, ColorSpec, VideoError, _fraction, _reason, _stream_info
from .reader import Frame
from .streams import _AUDIO_FALLBACK, _DEFAULT_LAYOUT, AudioTranscoder, _repacked, copy_route


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
