"""End-to-end conversions of tiny clips made in code: timestamps, streams, centre, geometry."""

from __future__ import annotations

import dataclasses
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SRT, cartoon_frames, decoded_frames, make_rich_source, packets, psnr

from ganime import EncoderSettings, synthetic
from ganime.geometry import compute_layout
from ganime.pipeline import ENCODE_QUEUE_BYTES, ConvertOptions, convert_file, encode_queue_size, plan_file
from ganime.subtitles import movtext_to_srt

LOSSLESS = EncoderSettings(codec="x264", crf=0, preset="ultrafast")


def run(src: Path, dst: Path, **kw: object) -> Path:
    opts = ConvertOptions(encoder=kw.pop("encoder", LOSSLESS), device="cpu", **kw)  # type: ignore[arg-type]
    result = convert_file(src, dst, opts)
    assert result.status == "converted", result.message
    assert dst.exists()
    assert not list(dst.parent.glob("*.partial*"))
    return dst


def test_round_trip_keeps_every_stream(rich_source: Path, tmp_path: Path) -> None:
    dst = run(rich_source, tmp_path / "out.mkv")
    with av.open(str(rich_source)) as a, av.open(str(dst)) as b:
        assert [s.type for s in b.streams] == [s.type for s in a.streams]
        # Frame count and every pts.
        va, vb = a.streams.video[0], b.streams.video[0]
        assert (vb.width, vb.height) == (88, 48)
        # Stream metadata, dispositions and container tags survive.
        for sa, sb in zip(a.streams, b.streams, strict=True):
            assert sb.metadata.get("language") == sa.metadata.get("language")
            assert sb.metadata.get("title") == sa.metadata.get("title")
            assert sb.disposition == sa.disposition
        assert dict(b.metadata) == dict(a.metadata) and a.metadata["title"] == "Test Show"
        assert a.metadata["COMMENT"] == "made by the tests"

        # Chapters, with titles and times.
        def chapters(c: av.container.InputContainer) -> list[tuple[float, float, str]]:
            return [(float(x["start"] * x["time_base"]), float(x["end"] * x["time_base"]), x["metadata"]["title"])
                    for x in c.chapters()]  # fmt: skip

        assert chapters(b) == chapters(a) and len(chapters(a)) == 2
        # The font attachment, byte for byte.
        att_a = next(s for s in a.streams if s.type == "attachment")
        att_b = next(s for s in b.streams if s.type == "attachment")
        assert (att_b.name, att_b.mimetype, bytes(att_b.data)) == (att_a.name, att_a.mimetype, bytes(att_a.data))
        duration_a = float(va.duration * va.time_base) if va.duration else a.duration / av.time_base
        duration_b = float(vb.duration * vb.time_base) if vb.duration else b.duration / av.time_base
        assert abs(duration_a - duration_b) < 0.05
    pa, pb = packets(rich_source), packets(dst)
    # Audio and subtitle packets: identical payloads and timestamps.
    for idx in (1, 2, 3):
        assert pb[idx] == pa[idx] and len(pa[idx]) > 0
    fa, fb = decoded_frames(rich_source), decoded_frames(dst)
    assert [p for p, _ in fb] == [p for p, _ in fa] and len(fa) == 12


def test_centre_is_the_original_picture(rich_source: Path, tmp_path: Path) -> None:
    dst = run(rich_source, tmp_path / "out.mkv")
    fa, fb = decoded_frames(rich_source), decoded_frames(dst)
    left = (fb[0][1].shape[1] - fa[0][1].shape[1]) // 2
    for (_, a), (_, b) in zip(fa, fb, strict=True):
        centre = b[:, left : left + a.shape[1]]
        # The writer puts the source's own samples back: lossless encode, identical centre.
        assert psnr(a, centre) > 45
        # The sides are filled with picture, not left black.
        assert b[:, :left].mean() > 20 and b[:, left + a.shape[1] :].mean() > 20


def test_variable_frame_rate_survives(tmp_path: Path) -> None:
    pts = [0, 42, 83, 125, 250, 292, 500, 542, 584, 1000]
    src = make_rich_source(tmp_path / "vfr.mkv", cartoon_frames(len(pts)), pts=pts)
    dst = run(src, tmp_path / "out.mkv")
    assert [p for p, _ in decoded_frames(dst)] == pts


def test_mp4_source_keeps_audio_and_sync(plain_source: Path, tmp_path: Path) -> None:
    dst = run(plain_source, tmp_path / "out.mkv")

    def times(path: Path) -> tuple[list[float], float]:
        with av.open(str(path)) as c:
            video = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        with av.open(str(path)) as c:
            audio = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        return video, float(audio.pts * audio.time_base)

    (va, aa), (vb, ab) = times(plain_source), times(dst)
    assert len(va) == len(vb) == 8
    # Matroska cannot store the AAC priming's negative start, so the muxer may move every
    # stream by the same amount; what must hold is each frame's time against the audio.
    shift = (vb[0] - ab) - (va[0] - aa)
    assert abs(shift) <= 0.001
    assert max(abs((x - aa) - (y - ab)) for x, y in zip(va, vb, strict=True)) <= 0.001
    with av.open(str(dst)) as b:
        assert b.streams.audio[0].metadata.get("language") == "eng"
    assert [p[2] for p in packets(plain_source)[1]] == [p[2] for p in packets(dst)[1]]


def test_mp4_edit_list_trim_stays_trimmed(tmp_path: Path) -> None:
    """An MP4 cut without re-encoding keeps packets before its edit list's start, marked
    discard; copied into Matroska (no edit lists) they would play before the picture."""
    frames = cartoon_frames(16, seed=5)
    whole = synthetic.write_clip(tmp_path / "whole.mp4", frames, Fraction(24), synthetic.melody(0.7))
    cut = tmp_path / "cut.mp4"
    # What `ffmpeg -ss 0.125 -c copy` writes: every stream starts 3 frames before zero,
    # and the mov muxer records the trim in an edit list.
    with av.open(str(whole)) as src, av.open(str(cut), "w", container_options={"avoid_negative_ts": "disabled"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for p in src.demux():
            if p.size:
                shift = round(Fraction(1, 8) / p.time_base)
                p.pts, p.dts = p.pts - shift, p.dts - shift
                p.stream = streams[p.stream.index]
                out.mux(p)
    with av.open(str(cut)) as c:
        assert any(p.is_discard for p in c.demux(c.streams.audio[0]))  # the case under test

    def start(path: Path) -> tuple[int, float]:
        """Frames decoded, and the audio time that comes before the first frame."""
        with av.open(str(path)) as c:
            video = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        with av.open(str(path)) as c:
            audio = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        return len(video), video[0] - float(audio.pts * audio.time_base)

    n_in, _ = start(cut)
    n_out, lead = start(run(cut, tmp_path / "out.mkv"))
    assert n_out == n_in == 13
    # At most the decoder's pre-roll and the AAC frame that straddles the cut come
    # before the picture, not the 0.125 s the edit list trims.
    assert 0 <= lead <= 2 * 1024 / 48000 + 0.001


def test_ten_bit_stays_ten_bit(tmp_path: Path) -> None:
    frames = [(f.astype(np.uint16) * 257) for f in cartoon_frames(4)]
    src = synthetic.write_clip(tmp_path / "ten.mkv", frames, pix_fmt="yuv420p10le", crf=0)
    dst = run(src, tmp_path / "out.mkv")
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert b.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
        fa = [f.to_ndarray(format="rgb48le") for f in a.decode(video=0)]
        fb = [f.to_ndarray(format="rgb48le") for f in b.decode(video=0)]
    left = (fb[0].shape[1] - fa[0].shape[1]) // 2
    assert psnr(fa[0], fb[0][:, left : left + fa[0].shape[1]], peak=65535.0) > 45


@pytest.mark.parametrize("order", ["bff", "tff"])
def test_interlaced_source_stays_interlaced(tmp_path: Path, order: str) -> None:
    """Flagged progressive, an interlaced picture's combing would show; its fields are
    untouched, so the output is coded interlaced with the source's field order."""
    src = tmp_path / f"{order}.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        cc = stream.codec_context
        cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        cc.field_order = 2 if order == "tff" else 3
        graph = av.filter.Graph()
        buffer = graph.add_buffer(width=64, height=48, format="yuv420p", time_base=Fraction(1, 25))
        graph.link_nodes(buffer, graph.add("setfield", order), graph.add("buffersink"))
        graph.configure()
        for i, img in enumerate(cartoon_frames(6)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            graph.push(frame)
            for p in stream.encode(graph.pull()):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    assert plan_file(src, None, ConvertOptions(encoder=LOSSLESS)).fields == order
    assert plan_file(src, None, ConvertOptions(encoder=EncoderSettings(codec="av1"))).fields is None
    dst = run(src, tmp_path / "out.mkv")
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        flags = [(f.interlaced_frame, v.codec_context.field_order) for f in c.decode(v)]
    assert len(flags) == 6
    assert all(il and fo == (2 if order == "tff" else 3) for il, fo in flags)


def test_interlacing_is_judged_by_the_opening_frames_not_the_first(tmp_path: Path) -> None:
    from ganime.video import probe

    def elementary(frames: list[np.ndarray], interlaced: bool) -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpeg2video") as out:
            st = out.add_stream("mpeg2video", rate=25)
            st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
            if interlaced:
                st.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
            for i, img in enumerate(frames):
                f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
                f.pts = i
                for p in st.encode(f):
                    out.mux(p)
            for p in st.encode():
                out.mux(p)
        return buf.getvalue()

    # A progressive opening card, then the interlaced episode (one MPEG-2 stream).
    frames = cartoon_frames(12)
    src = tmp_path / "title.m2v"
    src.write_bytes(elementary(frames[:2], False) + elementary(frames[2:], True))
    with av.open(str(src)) as c:
        flags = [f.interlaced_frame for f in c.decode(video=0)]
    assert not flags[0] and all(flags[2:])
    assert probe(src).interlaced
    assert not probe(run(src, tmp_path / "p.mkv", encoder=EncoderSettings(codec="av1"))).interlaced


def test_anamorphic_source_keeps_sar(tmp_path: Path) -> None:
    src = synthetic.write_clip(tmp_path / "dvd.mkv", cartoon_frames(4, 64, 48), sar=Fraction(8, 9))
    dst = run(src, tmp_path / "out.mkv")
    with av.open(str(dst)) as b:
        v = b.streams.video[0]
        assert (v.width, v.height) == (96, 48)
        assert v.sample_aspect_ratio == Fraction(8, 9)
        assert abs(float(v.display_aspect_ratio) - 16 / 9) < 0.01


def test_square_pixels_are_tagged_to_show_exactly_16x9(tmp_path: Path) -> None:
    src = synthetic.write_clip(tmp_path / "sq.mkv", cartoon_frames(4, 64, 48))
    dst = run(src, tmp_path / "out.mkv")
    with av.open(str(dst)) as b:
        v = b.streams.video[0]
        assert (v.width, v.height) == (88, 48)  # even sides: 88 is 1.83:1 in square pixels
        assert v.sample_aspect_ratio != 1
        assert abs(float(v.width * v.sample_aspect_ratio / v.height) / (16 / 9) - 1) <= 0.001


def test_burnt_in_bars_are_filled(tmp_path: Path) -> None:
    pictures = cartoon_frames(6, 64, 48, seed=5)
    boxed = []
    for p in pictures:
        f = np.zeros((48, 88, 3), np.uint8)
        f[:, 12:76] = p
        boxed.append(f)
    src = synthetic.write_clip(tmp_path / "boxed.mkv", boxed, crf=0)
    plan = plan_file(src, tmp_path / "out.mkv", ConvertOptions())
    assert plan.layout.has_bars and plan.layout.content.width == 64
    dst = run(src, tmp_path / "out.mkv")
    fb = decoded_frames(dst)
    assert fb[0][1].shape[:2] == (48, 88)
    assert fb[0][1][:, :8].mean() > 20  # the bars were replaced by picture


def test_excerpt(rich_source: Path, tmp_path: Path) -> None:
    dst = run(rich_source, tmp_path / "cut.mkv", start=0.2, duration=0.2)
    times = [p / 1000 for p, _ in decoded_frames(dst)]
    # Frames at 0.208, 0.25, 0.292, 0.333, 0.375 s of the source, moved to start at 0.
    assert len(times) == 5
    assert times[0] == pytest.approx(0.008, abs=0.002)
    with av.open(str(dst)) as b:
        ch = b.chapters()
        assert [c["metadata"]["title"] for c in ch] == ["Part A", "B"]
        assert float(ch[0]["start"] * ch[0]["time_base"]) == 0
        audio = [p for p in b.demux(b.streams.audio[0]) if p.size]
        # Only sound of the excerpt; a packet straddling its start keeps its place.
        starts = [float(p.pts * p.time_base) for p in audio]
        packet = float(audio[1].duration * audio[1].time_base)
        assert starts and -packet < starts[0] <= 0 and all(0 <= t < 0.2 for t in starts[1:])
    with av.open(str(dst)) as b:
        # Cues at 0.1-0.3 and 0.3-0.45 s, seen through 0.2-0.4 s: clipped at both ends.
        cues = [
            (bytes(p).decode(), float(p.pts * p.time_base), float((p.pts + p.duration) * p.time_base))
            for p in b.demux(b.streams.subtitles[0])
            if p.size
        ]
        assert [c[0] for c in cues] == ["Hello", "World"]
        assert [c[1:] for c in cues] == [pytest.approx((0.0, 0.1), abs=0.002), pytest.approx((0.1, 0.2), abs=0.002)]


def test_mp4_output_keeps_subtitles_as_timed_text_and_drops_fonts(rich_source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    changes = plan_file(rich_source, dst, ConvertOptions()).changes
    assert len(changes) == 2
    assert "subtitle" in changes[0] and "timed text" in changes[0]
    assert "attachment" in changes[1] and "dropped" in changes[1]
    result = convert_file(rich_source, dst, ConvertOptions(encoder=LOSSLESS, device="cpu"))
    assert result.status == "converted" and dst.exists()
    assert any("attachment" in w for w in result.warnings)
    with av.open(str(dst)) as b:
        kinds = [s.type for s in b.streams if s.type != "data"]  # data: the chapter track
        assert kinds == ["video", "audio", "audio", "subtitle"]
        sub = b.streams.subtitles[0]
        assert sub.codec_context.name == "mov_text" and sub.metadata.get("language") == "eng"
        assert sub.disposition & av.stream.Disposition.forced
        cues = [
            (movtext_to_srt(bytes(p)), float(p.pts * p.time_base), float((p.pts + p.duration) * p.time_base))
            for p in b.demux(sub)
            if p.size > 2  # empty samples clear the screen (the muxer adds some of its own)
        ]
    assert [c[0] for c in cues] == ["Hello", "World"]
    assert [c[1:] for c in cues] == [pytest.approx((0.1, 0.3), abs=0.002), pytest.approx((0.3, 0.45), abs=0.002)]
    pa, pb = packets(rich_source), packets(dst)
    assert [x[2] for x in pb[1]] == [x[2] for x in pa[1]]


def adpcm_avi(path: Path, frames: list[np.ndarray], seconds: float) -> Path:
    """An AVI like old web and DivX rips: MPEG-4 video and MS ADPCM audio (no Matroska/MP4 form)."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=24)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = out.add_stream("adpcm_ms", rate=22050)
        a.layout = "stereo"
        sound = synthetic.melody(seconds, 22050)
        frame = av.AudioFrame.from_ndarray(np.round(sound * 32767).astype(np.int16), format="s16p", layout="stereo")
        frame.sample_rate, frame.pts = 22050, 0
        rs = av.AudioResampler("s16", "stereo", 22050, frame_size=a.codec_context.frame_size or 1024)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
        for f in [*rs.resample(frame), *rs.resample(None)]:
            out.mux(a.encode(f))
        out.mux(a.encode(None))
    return path


def decoded_audio(path: Path) -> tuple[float, np.ndarray]:
    """Start time (s) and all samples (channels, n) of a file's first audio stream, as int16."""
    with av.open(str(path)) as c:
        frames = [f for p in c.demux(c.streams.audio[0]) for f in p.decode()]
    rs = av.AudioResampler("s16p", "stereo", frames[0].sample_rate)
    samples = np.concatenate([g.to_ndarray() for f in frames for g in rs.resample(f)], axis=1)
    return float(frames[0].pts * frames[0].time_base), samples


def test_avi_pcm_without_named_channels_goes_into_mp4(tmp_path: Path) -> None:
    # AVI stores PCM as a channel count only; MP4 must be told which channels they are.
    src = tmp_path / "dv.avi"
    with av.open(str(src), "w") as out:
        v = out.add_stream("mpeg4", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("pcm_s16le", rate=48000)
        a.layout = "stereo"
        sound = av.AudioFrame.from_ndarray(synthetic.melody(0.25), format="fltp", layout="stereo")
        sound.sample_rate, sound.pts = 48000, 0
        for f in av.AudioResampler("s16", "stereo", 48000, frame_size=1024).resample(sound):
            out.mux(a.encode(f))
        for i, img in enumerate(cartoon_frames(6, seed=2)):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.layout.name == "2 channels"
    dst = run(src, tmp_path / "out.mp4")
    assert np.array_equal(decoded_audio(src)[1], decoded_audio(dst)[1])


@pytest.mark.parametrize(("suffix", "codec"), [(".mkv", "flac"), (".mp4", "alac")])
def test_audio_the_container_refuses_is_reencoded_losslessly(tmp_path: Path, suffix: str, codec: str) -> None:
    src = adpcm_avi(tmp_path / "old.avi", cartoon_frames(12, seed=5), 0.5)
    dst = tmp_path / f"out{suffix}"
    options = ConvertOptions(encoder=LOSSLESS, device="cpu")
    # --dry-run tells it before converting.
    assert [c.split(":")[0] for c in plan_file(src, dst, options).changes] == [
        f"#1 audio adpcm_ms re-encoded as {codec.upper()} (lossless)"
    ]
    result = convert_file(src, dst, options)
    assert result.status == "converted", result.message
    assert any("adpcm_ms" in w and "re-encoded" in w for w in result.warnings), result.warnings
    with av.open(str(dst)) as b:
        assert [s.codec_context.name for s in b.streams.audio] == [codec]
    (ta, a), (tb, b) = decoded_audio(src), decoded_audio(dst)
    assert a.shape == b.shape and np.array_equal(a, b)  # every sample, none lost or changed
    assert abs(ta - tb) < 1e-3  # and at the same time against the picture


@pytest.mark.parametrize("start", [0.11, 0.2])
def test_excerpt_keeps_sound_and_picture_in_step(tmp_path: Path, start: float) -> None:
    # AVI: the video time base is a whole frame (1/24 s) and MP2 packets are 24 ms,
    # so an excerpt start falls between video ticks and inside an audio packet.
    frames = cartoon_frames(16, seed=9, pan=2.0)
    src = tmp_path / "old.avi"
    with av.open(str(src), "w") as out:
        v = out.add_stream("mpeg4", rate=24, options={"qscale": "2"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("mp2", rate=48000)
        a.layout = "stereo"
        sound = av.AudioFrame.from_ndarray(synthetic.melody(16 / 24), format="fltp", layout="stereo")
        sound.sample_rate, sound.pts = 48000, 0
        for f in av.AudioResampler("s16", "stereo", 48000, frame_size=1152).resample(sound):
            out.mux(a.encode(f))
        out.mux(a.encode(None))
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode(None))
    dst = run(src, tmp_path / "out.mkv", start=start, duration=0.4)

    def timeline(path: Path) -> tuple[list[tuple[float, np.ndarray]], dict[bytes, float]]:
        with av.open(str(path)) as c:
            video = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        with av.open(str(path)) as c:
            audio = {bytes(p): float(p.pts * p.time_base) for p in c.demux(c.streams.audio[0]) if p.size}
        return video, audio

    (sv, sa), (ov, oa) = timeline(src), timeline(dst)
    # Which source frame the excerpt's first frame is (its centre is the source picture).
    t0, first = ov[0]
    lay = compute_layout(64, 48, Fraction(1))
    centre = first[:, lay.left : lay.left + 64].astype(int)
    s0 = min(sv, key=lambda f: np.abs(f[1].astype(int) - centre).mean())[0]
    assert abs(s0 - start) < 1 / 24  # the excerpt starts where asked
    common = [p for p in oa if p in sa]
    assert len(common) >= 15  # the copied packets, byte for byte
    # Every sound keeps its time against the picture (Matroska stores milliseconds).
    assert max(abs((oa[p] - t0) - (sa[p] - s0)) for p in common) <= 0.0015


def test_excerpt_of_a_vob_starts_at_its_start(tmp_path: Path) -> None:
    # An MPEG program stream (a DVD's VOB) has no index: a seek is a guess from byte
    # positions and can land after the excerpt start.
    from ganime.video import Frame, Reader

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(96)]
    src = tmp_path / "title.vob"
    with av.open(str(src), "w", format="vob") as out:
        v = out.add_stream("mpeg2video", rate=24)
        v.width, v.height, v.pix_fmt, v.bit_rate = 64, 48, "yuv420p", 2_000_000
        v.codec_context.gop_size = 12
        packets_ = []
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            packets_ += v.encode(vf)
        for p in [*packets_, *v.encode(None)]:
            out.mux(p)
    with av.open(str(src)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        origin = c.start_time / av.time_base
    for start in (1.1, 2.6):
        with Reader(src, start=start, duration=0.4) as r:
            got = [x for x in r if isinstance(x, Frame)]
        first = origin + start  # where the excerpt starts, in source time
        want = [t for t in times if first - 1e-6 <= t < first + 0.4 - 1e-6]
        assert len(got) == len(want), start
        assert float(got[0].pts * got[0].time_base) == pytest.approx(want[0] - first, abs=1e-3)


def test_excerpt_of_a_transport_stream_is_whole_pictures(tmp_path: Path) -> None:
    # A seek in MPEG-TS can land on a frame that needs earlier ones (here: all grey).
    from ganime.video import Frame, Reader

    src = tmp_path / "capture.ts"
    with av.open(str(src), "w", format="mpegts") as out:
        v = out.add_stream("mpeg4", rate=24)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.gop_size = 12
        for i, img in enumerate(cartoon_frames(96, seed=4, pan=2.0)):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            for p in v.encode(vf):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    with Reader(src) as r:
        whole = {x.pts: x.image for x in r if isinstance(x, Frame)}  # by timestamp, 1/90000 s
    for start in (1.1, 2.6):
        with Reader(src, start=start, duration=0.5) as r:
            got = [x for x in r if isinstance(x, Frame)]
            shift = r._offset(Fraction(1, 90000))  # the excerpt's start in the file's ticks
        assert len(got) == 12
        for x in got:  # each the very picture the whole file decodes at that time
            assert np.array_equal(x.image, whole[x.pts + shift])
    # The frames bar detection looks at are whole pictures too.
    from ganime.video import sample_frames

    samples = sample_frames(src, 6)
    assert len(samples) >= 3 and all(any(np.array_equal(f, w) for w in whole.values()) for f in samples)


def test_sidecars_are_the_files_named_after_the_video(tmp_path: Path) -> None:
    from ganime.video import find_sidecars

    for name in [
        "ep01.mkv", "ep01.srt", "ep01.eng.srt", "ep01.en.forced.ass", "ep01.pt-BR.sdh.vtt",
        "ep01.5.srt", "ep01 extra.srt", "ep01.commentary.srt", "ep010.srt", "ep01.txt",
    ]:  # fmt: skip
        (tmp_path / name).write_text("")
    found = {sc.path.name: (sc.language, sc.forced, sc.hearing_impaired) for sc in find_sidecars(tmp_path / "ep01.mkv")}
    assert found == {
        "ep01.srt": (None, False, False),
        "ep01.eng.srt": ("eng", False, False),
        "ep01.en.forced.ass": ("eng", True, False),
        "ep01.pt-BR.sdh.vtt": ("por", False, True),  # Matroska's ISO 639-2/B
    }


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_subtitle_file_beside_the_episode_is_added(plain_source: Path, tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "ep01.mp4"
    src.write_bytes(plain_source.read_bytes())
    (tmp_path / "ep01.en.forced.srt").write_text(SRT)  # Hello 0.1-0.3 s, World 0.3-0.45 s
    plan = plan_file(src, tmp_path / f"out{suffix}", ConvertOptions())
    assert [sc.path.name for sc in plan.sidecars] == ["ep01.en.forced.srt"]
    with av.open(str(src)) as c:
        origin = c.start_time / av.time_base  # a subtitle file counts from here
        frames = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    # Whole, then an excerpt from 0.2 s: Hello is cut to its last 0.1 s there.
    for start, want in ((None, [(0.1, 0.3), (0.3, 0.45)]), (0.2, [(0.2, 0.3), (0.3, 0.45)])):
        dst = run(src, tmp_path / f"out{suffix}", overwrite=True, start=start, duration=0.4 if start else None)
        with av.open(str(dst)) as b:
            first = next(float(f.pts * f.time_base) for f in b.decode(video=0))
        with av.open(str(dst)) as b:
            sub = b.streams.subtitles[0]
            assert sub.metadata.get("language") == "eng" and sub.disposition & av.stream.Disposition.forced
            cues = [(bytes(p), p.pts * p.time_base, p.duration * p.time_base) for p in b.demux(sub) if p.size > 2]
        texts = [movtext_to_srt(c) if suffix == ".mp4" else c.decode() for c, _, _ in cues]
        assert texts == ["Hello", "World"]
        # On the picture's clock: against the first frame, where they were in the source.
        src_first = next(t for t in frames if t >= origin + (start or 0) - 1e-6)
        got = [(float(t) - first, float(t + d) - first) for _, t, d in cues]
        assert got == [pytest.approx((a + origin - src_first, b + origin - src_first), abs=0.002) for a, b in want]
    with av.open(str(run(src, tmp_path / "none.mkv", sidecars=False))) as b:
        assert not b.streams.subtitles  # --no-sidecars


def test_a_sidecar_in_a_windows_code_page_is_stored_as_utf8(plain_source: Path, tmp_path: Path) -> None:
    src = tmp_path / "ep01.mp4"
    src.write_bytes(plain_source.read_bytes())
    (tmp_path / "ep01.fr.srt").write_bytes("1\n00:00:00,100 --> 00:00:00,300\nDéjà vu, naïve café\n".encode("cp1252"))
    result = convert_file(src, tmp_path / "out.mkv", ConvertOptions(encoder=LOSSLESS, device="cpu"))
    assert result.status == "converted"
    assert any("ep01.fr.srt: not UTF-8; read as cp1252" in w for w in result.warnings)
    with av.open(str(tmp_path / "out.mkv")) as b:
        sub = b.streams.subtitles[0]
        assert sub.metadata.get("language") == "fre"
        assert [bytes(p).decode("utf-8") for p in b.demux(sub) if p.size] == ["Déjà vu, naïve café"]


def spu_packet(x: int, y: int, w: int, h: int) -> bytes:
    """A DVD subtitle packet: a w x h box of colour 1 at (x, y)."""
    top, bottom = -(-h // 2), h // 2
    pixels = b"\x00\x01" * (top + bottom)  # each line: colour 1 to its end
    ctrl = 4 + len(pixels)
    area = bytes([x >> 4, ((x & 15) << 4) | ((x + w - 1) >> 8), (x + w - 1) & 255])
    area += bytes([y >> 4, ((y & 15) << 4) | ((y + h - 1) >> 8), (y + h - 1) & 255])
    fields = (4).to_bytes(2, "big") + (4 + 2 * top).to_bytes(2, "big")
    commands = b"\x01" + b"\x03\x01\x10" + b"\x04\xff\xff" + b"\x05" + area + b"\x06" + fields + b"\xff"
    body = pixels + b"\x00\x00" + ctrl.to_bytes(2, "big") + commands
    return (4 + len(body)).to_bytes(2, "big") + ctrl.to_bytes(2, "big") + body


def test_dvd_subtitles_move_with_the_picture(plain_source: Path, tmp_path: Path) -> None:
    # A DVD rip: picture 64x48 and a VobSub track drawn on that 64x48 frame.
    src = tmp_path / "dvd.mkv"
    with av.open(str(plain_source)) as c, av.open(str(src), "w") as out:
        streams = {st.index: out.add_stream_from_template(st) for st in c.streams}
        sub = out.add_stream("dvdsub", options={"video_size": "64x48"})
        sub.time_base = Fraction(1, 1000)
        for p in c.demux():
            if p.size:
                p.stream = streams[p.stream.index]
                out.mux(p)
        cue = av.Packet(spu_packet(22, 30, 20, 8))
        cue.pts = cue.dts = 100
        cue.duration, cue.time_base, cue.stream = 200, Fraction(1, 1000), sub
        out.mux(cue)
    lay = compute_layout(64, 48, Fraction(1))
    dst = run(src, tmp_path / "out.mkv")

    def placed(path: Path) -> tuple[bytes, list[tuple[int, int, int, int]]]:
        with av.open(str(path)) as c:
            st = c.streams.subtitles[0]
            boxes = [(b.x, b.y, b.width, b.height) for p in c.demux(st) if p.size for b in p.decode()]
            return st.codec_context.extradata.split(b"\n")[0], boxes

    assert placed(src) == (b"size: 64x48", [(22, 30, 20, 8)])
    # Centred on the 16:9 canvas as it was on the 4:3 frame, on a canvas of the new size.
    assert placed(dst) == (f"size: {lay.canvas_width}x48".encode(), [(22 + lay.left, 30, 20, 8)])


def test_ass_signs_stay_on_the_picture(plain_source: Path, tmp_path: Path) -> None:
    from ganime.subtitles import DEFAULT_ASS_HEADER  # PlayRes 384x288 on the 64x48 frame

    src = tmp_path / "fansub.mkv"
    with av.open(str(plain_source)) as c, av.open(str(src), "w") as out:
        streams = {st.index: out.add_stream_from_template(st) for st in c.streams}
        sub = out.add_stream("ass")
        sub.codec_context.subtitle_header = DEFAULT_ASS_HEADER.encode()
        sub.time_base = Fraction(1, 1000)
        for p in c.demux():
            if p.size:
                p.stream = streams[p.stream.index]
                out.mux(p)
        sign = av.Packet(b"0,0,Default,,0,0,0,,{\\pos(192,40)}Signpost")
        sign.pts = sign.dts = 100
        sign.duration, sign.time_base, sign.stream = 200, Fraction(1, 1000), sub
        out.mux(sign)
    lay = compute_layout(64, 48, Fraction(1))
    dst = run(src, tmp_path / "out.mkv")
    with av.open(str(dst)) as b:
        st = b.streams.subtitles[0]
        header = st.codec_context.extradata.decode()
        events = [bytes(p).decode() for p in b.demux(st) if p.size]
    wide = round(384 * lay.canvas_width / 64)
    assert f"PlayResX: {wide}" in header and "PlayResY: 288" in header
    # The sign at the picture's centre is at the canvas's centre.
    assert events == [f"0,0,Default,,0,0,0,,{{\\pos({wide // 2},40)}}Signpost"]


def test_a_sidecar_that_cannot_be_read_costs_itself_only(plain_source: Path, tmp_path: Path) -> None:
    src = tmp_path / "ep01.mp4"
    src.write_bytes(plain_source.read_bytes())
    (tmp_path / "ep01.srt").write_bytes(b"")
    (tmp_path / "ep01.en.ass").write_bytes(b"\x00\x01 not a script")
    result = convert_file(src, tmp_path / "out.mkv", ConvertOptions(encoder=LOSSLESS, device="cpu"))
    assert result.status == "converted", result.message
    assert sorted(w.split(":")[0] for w in result.warnings if "not added" in w) == ["ep01.en.ass", "ep01.srt"]
    with av.open(str(tmp_path / "out.mkv")) as b:
        assert not b.streams.subtitles and len(b.streams.audio) == 1


def test_a_repeated_audio_timestamp_does_not_fail_an_mp4(plain_source: Path, tmp_path: Path) -> None:
    # The last AC3 packets of a DVD's VOB can share a timestamp; Matroska takes that
    # as it is, MP4 refuses it.
    src = tmp_path / "repeat.mkv"
    with av.open(str(plain_source)) as c, av.open(str(src), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in c.streams}
        seen: list[int] = []
        for p in c.demux():
            if not p.size:
                continue
            if p.stream.type == "audio":
                if len(seen) == 5:
                    p.pts = p.dts = seen[-1]  # the sixth packet repeats the fifth's time
                seen.append(p.pts)
            p.stream = streams[p.stream.index]
            out.mux(p)
    with av.open(str(src)) as c:
        times = [p.dts for p in c.demux(c.streams.audio[0]) if p.size]
    assert len(set(times)) < len(times)
    dst = run(src, tmp_path / "out.mp4")
    with av.open(str(dst)) as c:
        out_times = [p.dts for p in c.demux(c.streams.audio[0]) if p.size]
    assert len(out_times) == len(times) and out_times == sorted(set(out_times))
    assert [x[2] for x in packets(dst)[1]] == [x[2] for x in packets(src)[1]]  # every packet, as it was


def test_webm_output_keeps_text_subtitles_as_webvtt(rich_source: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.webm"
    av1 = EncoderSettings(codec="av1", preset="ultrafast")
    changes = plan_file(rich_source, dst, ConvertOptions(encoder=av1)).changes
    assert any("subtitle" in c and "WebVTT" in c for c in changes)
    run(rich_source, dst, encoder=av1)
    with av.open(str(dst)) as b:
        sub = b.streams.subtitles[0]
        assert sub.codec_context.name == "webvtt" and sub.metadata.get("language") == "eng"
        cues = [
            (bytes(p).decode(), float(p.pts * p.time_base), float(p.duration * p.time_base))
            for p in b.demux(sub)
            if p.size
        ]
        video_start = float(b.streams.video[0].start_time * b.streams.video[0].time_base)
    assert [c[0] for c in cues] == ["Hello", "World"]
    # At their times against the picture (the muxer may move every stream alike).
    assert [(c[1] - video_start, c[2]) for c in cues] == [
        pytest.approx((0.1, 0.2), abs=0.002),
        pytest.approx((0.3, 0.15), abs=0.002),
    ]


def timed_text(text: str, runs: list[tuple[int, int, int]] = ()) -> bytes:
    """An MP4 timed-text sample: length-prefixed UTF-8, then a styl box of (start, end, face) runs."""
    body = text.encode()
    sample = len(body).to_bytes(2, "big") + body
    if runs:
        records = b"".join(
            a.to_bytes(2, "big") + b.to_bytes(2, "big") + (1).to_bytes(2, "big") + bytes([face, 18, 255, 255, 255, 255])
            for a, b, face in runs
        )
        box = len(runs).to_bytes(2, "big") + records
        sample += (8 + len(box)).to_bytes(4, "big") + b"styl" + box
    return sample


def test_timed_text_becomes_srt_with_its_styles() -> None:
    assert movtext_to_srt(timed_text("plain")) == "plain"
    assert movtext_to_srt(timed_text("")) == ""
    # Runs count characters, not bytes: "é" is two bytes.
    assert movtext_to_srt(timed_text("café noir", [(0, 4, 1), (5, 9, 2 | 4)])) == "<b>café</b> <i><u>noir</u></i>"
    # A box cut short keeps the text.
    assert movtext_to_srt(timed_text("ok", [(0, 2, 1)])[:-3]) == "ok"


def test_mp4_timed_text_is_kept_as_srt(plain_source: Path, tmp_path: Path) -> None:
    src = tmp_path / "subs.mp4"
    cues = [
        (100, 200, timed_text("Bonjour")),
        (300, 100, timed_text("")),  # a sample that clears the screen
        (400, 250, timed_text("Deux\nlignes", [(0, 4, 1)])),
    ]
    with av.open(str(plain_source)) as c, av.open(str(src), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in c.streams}
        subs = out.add_mux_stream("mov_text")
        subs.time_base = Fraction(1, 1000)
        subs.metadata["language"] = "fre"
        for p in c.demux():
            if p.size:
                p.stream = streams[p.stream.index]
                out.mux(p)
        for start, length, sample in cues:
            p = av.Packet(sample)
            p.pts, p.dts, p.duration, p.time_base, p.stream = start, start, length, Fraction(1, 1000), subs
            out.mux(p)

    def read(path: Path) -> tuple[str, str | None, list[tuple[float, float, bytes]]]:
        """Subtitle codec, language, and cues as (start after the first frame, length, payload)."""
        with av.open(str(path)) as c:
            first = next(c.decode(video=0))
            s = c.streams.subtitles[0]
            found = [
                (float(p.pts * p.time_base) - first.time, float(p.duration * p.time_base), bytes(p))
                for p in c.demux(s)
                if p.size
            ]
            return s.codec_context.name, s.metadata.get("language"), found

    codec, language, before = read(src)
    before = [x for x in before if x[2] != timed_text("")]  # the muxer adds clearing samples of its own
    assert codec == "mov_text" and len(before) == 2
    codec, language, after = read(run(src, tmp_path / "out.mkv"))
    assert codec in ("subrip", "srt") and language == "fre"  # the decoder name differs by FFmpeg version
    assert [x[2] for x in after] == [b"Bonjour", b"<b>Deux</b>\nlignes"]
    assert all(abs(a[0] - b[0]) < 0.002 and abs(a[1] - b[1]) < 0.002 for a, b in zip(before, after, strict=True))


def cover_picture(path: Path) -> tuple[int, bytes] | None:
    """The attached picture of a file: its stream index and bytes (None without one)."""
    with av.open(str(path)) as c:
        covers = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        if not covers:
            return None
        return covers[0].index, next(bytes(p) for p in c.demux(covers[0]) if p.size)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_cover_art_is_kept(plain_source: Path, tmp_path: Path, suffix: str) -> None:
    picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
    jpeg = av.CodecContext.create("mjpeg", "w")
    jpeg.width = jpeg.height = 32
    jpeg.pix_fmt = "yuvj420p"
    jpeg.time_base = Fraction(1, 25)
    data = b"".join(bytes(p) for p in [*jpeg.encode(picture.reformat(format="yuvj420p")), *jpeg.encode(None)])
    src = tmp_path / "with_cover.mkv"
    with av.open(str(plain_source)) as c, av.open(str(src), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in c.streams}
        out.add_attachment("cover.jpg", "image/jpeg", data)
        for p in c.demux():
            if p.size:
                p.stream = streams[p.stream.index]
                out.mux(p)
    assert cover_picture(src) == (2, data)  # Matroska shows an image attachment as a cover stream
    dst = run(src, tmp_path / f"out{suffix}")
    found = cover_picture(dst)
    assert found is not None and found[1] == data
    with av.open(str(dst)) as b:
        # Still one programme: the picture is not a second video track.
        assert len([s for s in b.streams.video if not s.disposition & av.stream.Disposition.attached_pic]) == 1


@pytest.mark.parametrize("temporal", [True, False])
def test_strips_are_the_engine_output(rich_source: Path, tmp_path: Path, temporal: bool) -> None:
    """The writer converts only the strips from RGB; they must match what the fill made."""
    from fractions import Fraction

    import torch

    from ganime.engine import Filler
    from ganime.models import build_model
    from ganime.temporal import TemporalFiller
    from ganime.video import Frame

    dst = run(rich_source, tmp_path / "out.mkv", temporal=temporal)
    plan = plan_file(rich_source, dst, ConvertOptions())
    source = [f for _, f in decoded_frames(rich_source)]
    filler = Filler(build_model(plan.model), plan.layout, torch.device("cpu"))
    if temporal:
        frames = [Frame(f, i, Fraction(1, 25)) for i, f in enumerate(source)]
        filled = [f.image for f in TemporalFiller(filler).stream(frames)]
    else:
        filled = filler.fill(source)
    out = [f for _, f in decoded_frames(dst)]
    assert len(filled) == len(out) == len(source)
    left = plan.layout.left
    for a, b in zip(filled, out, strict=True):
        assert psnr(a[:, :left], b[:, :left]) > 30
        assert psnr(a[:, -left:], b[:, -left:]) > 30


def test_refusal_asks_the_muxer(rich_source: Path) -> None:
    from ganime.video import refusal

    with av.open(str(rich_source)) as c:
        audio, sub, font = c.streams[1], c.streams[3], c.streams[4]
        assert refusal("matroska", audio) is None
        assert refusal("matroska", sub) is None
        assert refusal("matroska", font) is None
        assert refusal("mp4", audio) is None
        assert "mp4 cannot hold it" in (refusal("mp4", sub) or "")
        assert refusal("mp4", font) is not None


def test_empty_excerpt_is_an_error(rich_source: Path, tmp_path: Path) -> None:
    from ganime.pipeline import ConvertError

    with pytest.raises(ConvertError, match="no video frame"):
        convert_file(rich_source, tmp_path / "x.mkv", ConvertOptions(start=5.0, duration=1.0, device="cpu"))
    assert not (tmp_path / "x.mkv").exists()


def test_repeated_strips_are_converted_once_and_stay_right(plain_source: Path, tmp_path: Path) -> None:
    """The writer reuses a strip's conversion while it repeats, and only then."""
    from ganime import video

    plan = plan_file(plain_source, tmp_path / "o.mkv", ConvertOptions(encoder=LOSSLESS))
    lay, info = plan.layout, plan.info
    with video.Reader(plain_source, keep_planes=True, color=plan.color) as reader:
        frames = [f for f in reader if isinstance(f, video.Frame)][:4]
        picture = video.Picture(lay, info.bit_depth, info.pix_fmt, plan.color)
        writer = video.Writer(plan.output, reader.container, reader.stream, picture, LOSSLESS)
        a, b = (synthetic.paint_background(lay.canvas_width, lay.canvas_height, seed=s) for s in (1, 2))
        pattern = [a, a, b, a]  # repeat, change, change back
        canvases = []
        for f, side in zip(frames, pattern, strict=True):
            canvas = side.copy()
            canvas[:, lay.left : lay.left + lay.content.width] = f.image
            canvases.append(canvas)
            writer.write(video.Frame(canvas, f.pts, f.time_base, f.planes, f.pix_fmt))
        writer.close()
    out = [f for _, f in decoded_frames(plan.output)]
    left = lay.left
    assert psnr(a[:, :left], b[:, :left]) < 20 and psnr(a[:, -left:], b[:, -left:]) < 20
    for want, got in zip(canvases, out, strict=True):  # chroma subsampling of hard edges: ~29 dB
        assert psnr(want[:, :left], got[:, :left]) > 26
        assert psnr(want[:, -left:], got[:, -left:]) > 26


def test_encode_queue_is_bounded_in_bytes(plain_source: Path) -> None:
    plan = plan_file(plain_source, None, ConvertOptions(model="edge"))
    assert encode_queue_size(plan, 1) == 256  # tiny frames: the frame cap

    def at(width: int, height: int, bit_depth: int = 8) -> int:
        info = dataclasses.replace(plan.info, width=width, height=height, bit_depth=bit_depth)
        return encode_queue_size(dataclasses.replace(plan, info=info, layout=compute_layout(width, height)), 1)

    dvd, hd, hd10 = at(640, 480), at(1440, 1080), at(1440, 1080, 10)
    assert dvd > hd > hd10 >= 16  # fewer frames as they grow ...
    frame = 1920 * 1080 * 3 + 1440 * 1080 * 3 // 2  # ... so that their bytes stay within the budget
    assert hd * frame <= ENCODE_QUEUE_BYTES < (hd + 1) * frame
