"""End-to-end conversions of tiny clips made in code: timestamps, streams, centre, geometry."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import LOSSLESS, cartoon_frames, decoded_frames, make_rich_source, packets, psnr, run

from ganime import EncoderSettings, synthetic, threads
from ganime.geometry import compute_layout
from ganime.pipeline import ENCODE_QUEUE_BYTES, ENCODER_NICE, ConvertOptions, convert_file, encode_queue_size, plan_file


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
        tags, source_tags = dict(b.metadata), dict(a.metadata)
        assert tags.pop("GANIME").startswith("ganime ")  # how a folder scan knows it for an output
        # The muxer names itself without its version (bitexact: the same bytes every run).
        mine = [tags.pop(k) for k in list(tags) if k.lower() == "encoder"]
        theirs = [source_tags.pop(k) for k in list(source_tags) if k.lower() == "encoder"]
        assert mine == ["Lavf"] and all(t.startswith("Lavf") for t in theirs)
        assert tags == source_tags and a.metadata["title"] == "Test Show"
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


def test_odd_sizes_keep_every_source_row_and_column(tmp_path: Path) -> None:
    pictures = [np.pad(f, ((0, 1), (0, 1), (0, 0)), mode="reflect") for f in cartoon_frames(4, 64, 48)]  # 65x49
    src = synthetic.write_clip(tmp_path / "odd.mkv", pictures, crf=0, pix_fmt="yuv444p")
    plan = plan_file(src, tmp_path / "out.mkv", ConvertOptions(encoder=LOSSLESS, model="edge"))
    lay = plan.layout
    assert not lay.has_bars and "bars" not in lay.describe()  # no bars: an odd size, kept whole
    assert lay.canvas_width % 2 == 0 and lay.canvas_height == 50
    dst = run(src, tmp_path / "out.mkv")
    out, inp = decoded_frames(dst), decoded_frames(src)
    for (_, o), (_, i) in zip(out, inp, strict=True):
        assert np.array_equal(o[:49, lay.left : lay.left + 65], i)  # every source sample, in place
        assert np.array_equal(o[49, lay.left : lay.left + 65], i[48])  # the last row repeated to an even size


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


@pytest.mark.parametrize("temporal", [True, False])
def test_strips_are_the_engine_output(rich_source: Path, tmp_path: Path, temporal: bool) -> None:
    """The writer converts only the strips from RGB; they must match what the fill made."""
    from fractions import Fraction

    import torch

    from ganime.pipeline import make_stage
    from ganime.video import Frame

    dst = run(rich_source, tmp_path / "out.mkv", temporal=temporal)
    options = ConvertOptions(temporal=temporal)
    plan = plan_file(rich_source, dst, options)
    source = [f for _, f in decoded_frames(rich_source)]
    stage = make_stage(plan, options, torch.device("cpu"))  # the fill convert ran, characters and all
    filled = [f.image for f in stage.stream([Frame(f, i, Fraction(1, 25)) for i, f in enumerate(source)])]
    out = [f for _, f in decoded_frames(dst)]
    assert len(filled) == len(out) == len(source)
    left = plan.layout.left
    for a, b in zip(filled, out, strict=True):
        assert psnr(a[:, :left], b[:, :left]) > 30
        assert psnr(a[:, -left:], b[:, -left:]) > 30


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


def _nice(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")
def test_the_encoder_yields_to_the_fill_and_the_caller_keeps_its_priority(tmp_path: Path) -> None:
    # The encoder's threads (libx264's own) start after the conversion began; watch every
    # thread of the process while it runs and keep the priorities seen, by thread.
    src = synthetic.write_clip(tmp_path / "in.mkv", cartoon_frames(48, 320, 240, seed=5), Fraction(24))
    before = set(os.listdir("/proc/self/task"))
    seen: dict[str, int] = {}
    names: dict[str, str] = {}
    comms: dict[str, str] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for t in threading.enumerate():
                names[str(t.native_id)] = t.name
            for tid in os.listdir("/proc/self/task"):
                if tid not in before:
                    with contextlib.suppress(OSError):
                        seen[tid] = _nice(int(tid))
                        with open(f"/proc/self/task/{tid}/comm") as f:
                            comms[tid] = f.read().strip()
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    caller = _nice(threading.get_native_id())
    try:
        convert_file(src, tmp_path / "out.mkv", ConvertOptions(model="edge", characters=False))
    finally:
        done.set()
        watcher.join()
    tid_of = {name: tid for tid, name in names.items()}
    lowered = min(19, caller + ENCODER_NICE)
    writer = tid_of["ganime-write"]
    assert seen[writer] == lowered
    assert seen[tid_of["ganime-read"]] == caller  # decoding does not yield
    # libx264's threads (not Python's, and not the decoder's "av:" ones) start from the
    # writer, after it (thread ids grow), and inherit its priority.
    encoder = [
        n
        for tid, n in seen.items()
        if tid not in names and not comms.get(tid, "").startswith("av:") and int(tid) > int(writer)
    ]
    if (os.cpu_count() or 1) > 1:
        assert encoder and all(n == lowered for n in encoder), (seen, comms, names)
    assert _nice(threading.get_native_id()) == caller


def test_lower_priority_changes_the_calling_thread_only() -> None:
    out: list[tuple[bool, int, int]] = []

    def run() -> None:
        tid = threading.get_native_id()
        start = os.getpriority(os.PRIO_PROCESS, tid) if sys.platform.startswith("linux") else 0
        lowered = threads.lower_priority(3)
        now = os.getpriority(os.PRIO_PROCESS, tid) if sys.platform.startswith("linux") else 0
        out.append((lowered, start, now))

    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if sys.platform.startswith("linux") else 0
    t = threading.Thread(target=run)
    t.start()
    t.join()
    lowered, start, now = out[0]
    if sys.platform.startswith("linux"):
        assert lowered and now == min(19, start + 3)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller
    else:  # elsewhere nothing is touched
        assert not lowered
    assert not threads.lower_priority(0)
