"""What becomes of every stream besides the picture: subtitles, audio, sidecars, cover art, per container."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import LOSSLESS, SRT, cartoon_frames, packets, run

from ganime import EncoderSettings, synthetic
from ganime.geometry import compute_layout
from ganime.pipeline import ConvertOptions, convert_file, plan_file
from ganime.subtitles import movtext_to_srt


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
