"""The copied streams: how each reaches the output container (copy, convert, re-encode, drop)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import av

from .. import subtitles
from .probe import _open_input, _reason, _stream_info


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
