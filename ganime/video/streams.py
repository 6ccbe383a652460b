"""The copied streams: how each reaches the output container.

Every stream the source has besides its picture takes one route, chosen by ``route``
from the container it goes to: copied as it is (``Copy``; subtitles placed on the
frame move with the picture: ``MovedAss``, ``MovedBitmap``), converted to the form the
container holds (``MovTextToSrt``, ``TextToTimedText``, ``TextToWebVTT``), re-encoded
(``Reencode``: audio the container refuses), kept another way (``Cover``: cover art as
a Matroska attachment) or dropped with the reason (``Drop``). A route adds its output
stream, turns the source's packets into the output's, flushes what it holds at the
end, and describes itself for ``--dry-run``; the ``Writer`` only interleaves.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .. import subtitles
from .probe import STALE_TAG, as_fraction, error_reason, open_input, stream_info


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
        return f"{fmt} cannot hold it ({error_reason(e)})"
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


def copy_metadata(src: av.stream.Stream, dst: av.stream.Stream, drop_stale: bool) -> None:
    """Language, title, other tags and disposition (default/forced flags), which a template copy loses."""
    for k, v in src.metadata.items():
        if drop_stale and STALE_TAG.match(k):
            continue
        if src.type == "attachment" and k in ("filename", "mimetype"):
            continue  # the template copy already set them
        dst.metadata[k] = v
    dst.disposition = src.disposition


@dataclass(frozen=True)
class PictureMove:
    """Where the source picture went on the canvas, for subtitles placed in its pixels."""

    source_size: tuple[int, int]  # coded width and height of the source
    canvas_size: tuple[int, int]
    picture: tuple[int, int]  # x, y of the kept picture in the source
    left: int  # its x on the canvas

    @property
    def dx(self) -> int:
        return self.left - self.picture[0]

    @property
    def dy(self) -> int:
        return -self.picture[1]

    @property
    def grow(self) -> tuple[int, int]:
        """How much wider and taller the canvas is than the source."""
        return self.canvas_size[0] - self.source_size[0], self.canvas_size[1] - self.source_size[1]


@dataclass
class Output:
    """What a route adds its stream to."""

    container: av.container.OutputContainer
    source: av.container.InputContainer | None = None  # the source file (cover art is read again from it)
    excerpt: bool = False  # an excerpt: per-stream statistics tags are stale
    move: PictureMove | None = None  # None: subtitles placed on the frame stay where they are


class Route:
    """One copied stream on its way to the output (this base: dropped)."""

    opens_encoder = False  # its stream is encoded here: the container must start before its packets

    def __init__(self, src: av.stream.Stream, what: str, why: str | None = None) -> None:
        self.src = src
        self.what = what  # how warnings name it
        self.why = why  # why it cannot go as it is
        self.codec = src.codec_context.name if src.codec_context is not None else ""
        self.stream: av.stream.Stream | None = None
        self.warnings: list[str] = []

    def add(self, out: Output) -> av.stream.Stream | None:
        """Add the output stream (None: nothing of it goes out as a stream)."""
        self.warnings.append(f"stream {self.what} dropped: {self.why}")
        return None

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        """The output's packets for one of the source's (timestamps on any clock, stream unset)."""
        return [packet]

    def started(self) -> None:
        """Called once the container's header is written (encoders are open)."""

    def flush(self) -> list[av.Packet]:
        """What the route still holds at the end."""
        return []

    def describe(self) -> str | None:
        """What ``--dry-run`` says of it (None: copied as it is)."""
        return f"{self.what} dropped: {self.why}"


Drop = Route


class Copy(Route):
    """Copied packet for packet."""

    def add(self, out: Output) -> av.stream.Stream | None:
        try:
            o = out.container.add_stream_from_template(self.src)
        except (av.FFmpegError, ValueError) as e:
            self.warnings.append(
                f"stream #{self.src.index} {self.src.type} dropped: the output container cannot hold it ({e})"
            )
            return None
        cc = o.codec_context
        fmt = out.container.format.name
        if self.src.type == "audio" and fmt in ("mp4", "mov") and cc.layout.name.endswith("channels"):
            # An AVI's PCM says only how many channels: MP4 must name them, else the
            # file fails as it is finished. The usual order for the count is what
            # players assume anyway.
            if cc.channels in _DEFAULT_LAYOUT:
                cc.layout = _DEFAULT_LAYOUT[cc.channels]
        copy_metadata(self.src, o, drop_stale=out.excerpt)
        self.stream = o
        return o

    def describe(self) -> str | None:
        return None


class MovedAss(Copy):
    """ASS/SSA whose typeset signs and margins are placed on the frame: they move with the picture."""

    def __init__(self, src: av.stream.Stream, what: str, move: PictureMove) -> None:
        super().__init__(src, what)
        self.canvas = subtitles.AssCanvas.for_script(
            src.codec_context.extradata, move.source_size, move.canvas_size, (*move.picture, move.left)
        )

    def add(self, out: Output) -> av.stream.Stream | None:
        o = super().add(out)
        if o is not None:
            o.codec_context.extradata = self.canvas.header(self.src.codec_context.extradata)
        return o

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        return [_repacked(packet, self.canvas.event(bytes(packet)))]


class MovedBitmap(Copy):
    """DVD (VobSub) or Blu-ray (PGS) subtitles, placed in source pixels: moved with the picture."""

    def __init__(self, src: av.stream.Stream, what: str, move: PictureMove, kind: str) -> None:
        super().__init__(src, what)
        self.move, self.kind = move, kind

    def add(self, out: Output) -> av.stream.Stream | None:
        o = super().add(out)
        if o is not None and self.kind == "spu" and self.src.codec_context.extradata:
            o.codec_context.extradata = subtitles.vobsub_header(self.src.codec_context.extradata, *self.move.grow)
        return o

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        m = self.move
        if self.kind == "spu":
            # Kept inside the canvas the header now names.
            assert self.stream is not None
            size = re.search(rb"size:\s*(\d+)\s*x\s*(\d+)", self.stream.codec_context.extradata or b"")
            w, h = (int(size[1]), int(size[2])) if size else (4096, 4096)
            data = subtitles.move_spu(bytes(packet), m.dx, m.dy, w, h)
        else:
            data = subtitles.move_pgs(bytes(packet), m.dx, m.dy, *m.grow)
        return [_repacked(packet, data)]


class Cover(Route):
    """Cover art: Matroska keeps it as an attachment (a plain stream copy would make a
    one-frame video track of it, and players would see a second programme)."""

    def add(self, out: Output) -> av.stream.Stream | None:
        if out.source is None:
            return None
        # Its one packet is read from a second handle: the source's own is the reader's.
        with av.open(out.source.name, metadata_errors="replace") as c:
            data = next((bytes(p) for p in c.demux(c.streams[self.src.index]) if p.size), None)
        if data is None:
            self.warnings.append(f"stream #{self.src.index} cover dropped: its picture could not be read")
            return None
        ext, mime = {"png": ("png", "image/png"), "webp": ("webp", "image/webp")}.get(self.codec, ("jpg", "image/jpeg"))
        name = self.src.metadata.get("filename") or f"cover.{ext}"
        out.container.add_attachment(name, self.src.metadata.get("mimetype") or mime, data)
        return None

    def describe(self) -> str | None:
        return None


class MovTextToSrt(Route):
    """MP4 timed text into Matroska, which has no form for it: its text (bold, italic and
    underline too) carried as SRT, as the ffmpeg CLI converts it."""

    def add(self, out: Output) -> av.stream.Stream | None:
        o = out.container.add_mux_stream("subrip")
        o.time_base = self.src.time_base
        copy_metadata(self.src, o, drop_stale=out.excerpt)
        self.stream = o
        return o

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        text = subtitles.movtext_to_srt(bytes(packet))
        # An empty one is a clearing sample: an SRT cue ends by its duration.
        return [_repacked(packet, text.encode("utf-8"))] if text else []

    def describe(self) -> str | None:
        return f"{self.what} written as SRT: {self.why}"


class _TextSubtitles(Route):
    """Text subtitles (SRT, ASS, WebVTT, timed text) rewritten cue by cue."""

    @property
    def _ass_header(self) -> bytes | None:
        return self.src.codec_context.extradata if self.codec in ("ass", "ssa") else None

    def _lost(self) -> str:
        return "; ASS positions, fonts and colours are lost" if self.codec in ("ass", "ssa") else ""


class TextToTimedText(_TextSubtitles):
    """Text subtitles into MP4, which holds them only as timed text: each cue's text (bold,
    italic and underline kept); the sample description takes the source's default ASS
    style, as the ffmpeg CLI does."""

    opens_encoder = True  # the encoder writes the sample description its cues are styled by

    def add(self, out: Output) -> av.stream.Stream | None:
        o = out.container.add_stream("mov_text")
        o.codec_context.subtitle_header = self._ass_header or subtitles.DEFAULT_ASS_HEADER.encode()
        o.time_base = Fraction(1, 1000)
        copy_metadata(self.src, o, drop_stale=True)
        self.styles = subtitles.ass_styles(self._ass_header)
        self.track = subtitles.TimedTextTrack()
        if self.codec in ("ass", "ssa"):
            self.warnings.append(
                f"stream {self.what}: MP4 holds only plain timed text; written as that "
                "(bold, italic and underline kept; positions, fonts, colours and karaoke are not)"
            )
        self.stream = o
        return o

    def started(self) -> None:
        assert self.stream is not None  # the encoder wrote the sample description
        self.track.size, self.track.color = subtitles.default_style(self.stream.codec_context.extradata)

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        """The timed-text samples one cue settles (cues that overlap are split at every change)."""
        tb = as_fraction(packet.time_base) or Fraction(1, 1000)
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            return []
        start = round(ts * tb * 1000)
        end = start + round(packet.duration * tb * 1000) if packet.duration else None
        return self._samples(self.track.add(start, end, *subtitles.cue_text(self.codec, bytes(packet), self.styles)))

    def flush(self) -> list[av.Packet]:
        return self._samples(self.track.flush())

    @staticmethod
    def _samples(samples: list[tuple[int, int, bytes]]) -> list[av.Packet]:
        out = []
        for start, end, payload in samples:
            p = av.Packet(payload)
            p.pts = p.dts = start
            p.duration = end - start
            p.time_base = Fraction(1, 1000)
            out.append(p)
        return out

    def describe(self) -> str | None:
        return f"{self.what} written as MP4 timed text{self._lost()}"


class TextToWebVTT(_TextSubtitles):
    """Text subtitles into WebM, which holds them only as WebVTT: each cue's text and faces."""

    def add(self, out: Output) -> av.stream.Stream | None:
        o = out.container.add_mux_stream("webvtt")
        o.time_base = self.src.time_base
        copy_metadata(self.src, o, drop_stale=True)
        self.styles = subtitles.ass_styles(self._ass_header)
        self.stream = o
        return o

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        text = subtitles.webvtt_cue(*subtitles.cue_text(self.codec, bytes(packet), self.styles))
        return [_repacked(packet, text.encode("utf-8"))] if text else []  # empty: a drawing only

    def describe(self) -> str | None:
        return f"{self.what} written as WebVTT{self._lost()}"


class Reencode(Route):
    """Audio the container refuses (WMA, ADPCM in Matroska, ...), decoded and encoded again."""

    opens_encoder = True  # the transcoder sizes its frames by the open encoder's frame size

    def __init__(self, src: av.stream.Stream, what: str, why: str | None, codec: str) -> None:
        super().__init__(src, what, why)
        self.target = codec
        self.transcoder: AudioTranscoder | None = None

    def add(self, out: Output) -> av.stream.Stream | None:
        try:
            self.transcoder = AudioTranscoder(out.container, self.src, self.target)
        except (av.FFmpegError, ValueError, TypeError, AttributeError) as e:  # a damaged stream
            self.warnings.append(f"stream {self.what} dropped: {self.why}; re-encoding failed ({e})")
            return None
        self.warnings.append(f"stream {self.what}: {self.why}; re-encoded as {self.transcoder.label}")
        copy_metadata(self.src, self.transcoder.stream, drop_stale=True)
        self.stream = self.transcoder.stream
        return self.stream

    def packets(self, packet: av.Packet) -> list[av.Packet]:
        assert self.transcoder is not None
        return self.transcoder.packets(packet)

    def flush(self) -> list[av.Packet]:
        assert self.transcoder is not None
        out = self.transcoder.packets(None)
        if self.transcoder.decode_errors:
            n = self.transcoder.decode_errors
            self.warnings.append(f"stream #{self.src.index}: {n} audio packet(s) could not be decoded")
        return out

    def describe(self) -> str | None:
        return f"{self.what} re-encoded as {_FALLBACK_LABEL[self.target]}: {self.why}"


_BITMAP = {"dvdsub": "spu", "dvd_subtitle": "spu", "hdmv_pgs_subtitle": "pgs", "pgssub": "pgs"}


def route(fmt: str, s: av.stream.Stream, move: PictureMove | None = None, what: str | None = None) -> Route:
    """The route copied stream ``s`` takes into container ``fmt``.

    ``move``: where the picture went on the canvas (subtitles placed on the frame follow
    it); ``what``: how warnings name the stream (default: index, type and codec).
    """
    what = what or stream_info(s).describe()
    name = s.codec_context.name if s.codec_context is not None else ""
    if fmt == "matroska" and s.type == "video":
        return Cover(s, what)
    if s.type == "subtitle":
        if fmt == "matroska" and name == "mov_text":
            return MovTextToSrt(s, what, "Matroska has no MP4 timed text")
        if fmt in ("mp4", "mov") and name in subtitles.TEXT_CODECS:
            return TextToTimedText(s, what, "MP4 holds text subtitles only as timed text")
        if fmt == "webm" and name in subtitles.TEXT_CODECS and name != "webvtt":
            return TextToWebVTT(s, what, "WebM holds text subtitles only as WebVTT")
    if s.type in ("audio", "subtitle") and s.codec_context is None:
        return Drop(s, what, "its codec is unknown (a damaged or unsupported stream)")
    why = refusal(fmt, s)
    if why is not None:
        if s.type == "audio" and fmt in _AUDIO_FALLBACK:
            return Reencode(s, what, why, _AUDIO_FALLBACK[fmt])
        return Drop(s, what, why)
    if move is not None and name in ("ass", "ssa") and s.codec_context.extradata:
        return MovedAss(s, what, move)
    if move is not None and name in _BITMAP:
        return MovedBitmap(s, what, move, _BITMAP[name])
    return Copy(s, what)


def stream_changes(path: str | os.PathLike[str], copy: tuple[int, ...], fmt: str) -> list[str]:
    """What becomes of the copied streams that container ``fmt`` cannot hold as they are (``--dry-run``)."""
    with open_input(Path(path)) as c:
        notes = [route(fmt, c.streams[idx]).describe() for idx in copy]
    return [n for n in notes if n]
