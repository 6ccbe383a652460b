"""Telecined and interlaced sources, made in code: detected, made progressive, timed exactly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import cartoon_frames, decoded_frames

from ganime import EncoderSettings, synthetic
from ganime.pipeline import ConvertOptions, convert_file, plan_file

NTSC = Fraction(30000, 1001)
FAST = {"model": "edge", "device": "cpu", "encoder": EncoderSettings(preset="ultrafast")}


def telecined(path: Path, pictures: int = 48) -> Path:
    """2:3 pulldown of a fast 24p pan, at 29.97 frames a second, with a tune."""
    film = cartoon_frames(pictures, 128, 96, pan=3.0)
    frames = synthetic.telecine(film)
    return synthetic.write_clip(path, frames, NTSC, synthetic.melody(len(frames) / float(NTSC)), crf=10)


def test_a_telecined_source_is_inverse_telecined(tmp_path: Path) -> None:
    src = telecined(tmp_path / "tc.mkv")
    plan = plan_file(src, tmp_path / "out.mkv", ConvertOptions(**FAST))
    assert plan.deinterlace is not None and plan.deinterlace.kind == "ivtc"
    result = convert_file(src, tmp_path / "out.mkv", ConvertOptions(**FAST), plan=plan)
    assert result.frames == 48  # 60 video frames -> the 48 film pictures
    frames = decoded_frames(tmp_path / "out.mkv")
    assert len(frames) == 48
    film = cartoon_frames(48, 128, 96, pan=3.0)
    left = plan.layout.left
    for i, (_, f) in enumerate(frames):  # every film picture back, whole, in order
        centre = f[:, left : left + 128].astype(int)
        assert int(np.argmin([np.abs(centre - g).mean() for g in film])) == i
    woven = max(synthetic.combing(f) for f in film)  # the pictures' own line-to-line detail
    assert max(synthetic.combing(f[:, left : left + 128]) for _, f in frames) < woven + 2.5
    assert max(synthetic.combing(f) for _, f in decoded_frames(src)) > woven + 4  # two in five were woven
    with av.open(str(src)) as a, av.open(str(tmp_path / "out.mkv")) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        assert vb.average_rate == Fraction(24000, 1001)
        times = [float(f.pts * f.time_base) for f in b.decode(vb)]
        steps = np.diff(times)
        assert np.abs(steps - 1001 / 24000).max() < 0.0015  # even 23.976 steps (1 ms container clock)
        # Sync: the picture starts and ends where the source's did; the sound is the source's.
        first_a = next(a.decode(va))
        assert abs(times[0] - float(first_a.pts * first_a.time_base)) < 0.002
        assert abs(times[-1] + 1001 / 24000 - 60 / float(NTSC)) < 0.01
        audio_a = [(p.pts, bytes(p)) for p in a.demux(a.streams.audio[0]) if p.size]
        b.seek(0)
        # Packet for packet at the same times (the output may carry the encoder's pre-roll before 0).
        audio_b = [(p.pts, bytes(p)) for p in b.demux(b.streams.audio[0]) if p.size and p.pts >= 0]
        assert audio_a == audio_b


def test_a_truly_interlaced_source_is_deinterlaced_at_its_rate(tmp_path: Path) -> None:
    fields = cartoon_frames(120, 128, 96, pan=1.5)  # 59.94 moments a second
    src = synthetic.write_clip(tmp_path / "il.mkv", synthetic.interlace(fields), NTSC, crf=10)
    plan = plan_file(src, tmp_path / "out.mkv", ConvertOptions(**FAST))
    assert plan.deinterlace is not None and plan.deinterlace.kind == "bwdif"
    result = convert_file(src, tmp_path / "out.mkv", ConvertOptions(**FAST), plan=plan)
    assert result.frames == 60
    before = np.mean([synthetic.combing(f) for _, f in decoded_frames(src)])
    after = np.mean([synthetic.combing(f) for _, f in decoded_frames(tmp_path / "out.mkv")])
    assert after < before - 3


def test_progressive_film_is_left_alone_and_off_means_off(tmp_path: Path) -> None:
    film = synthetic.write_clip(tmp_path / "film.mkv", cartoon_frames(24, 128, 96, pan=3.0), Fraction(24000, 1001))
    assert plan_file(film, None, ConvertOptions(**FAST)).deinterlace is None  # not even looked at
    src = telecined(tmp_path / "tc.mkv", 16)
    plan = plan_file(src, tmp_path / "out.mkv", ConvertOptions(**FAST, deinterlace="off"))
    assert plan.deinterlace is None
    assert convert_file(src, tmp_path / "out.mkv", ConvertOptions(**FAST, deinterlace="off")).frames == 20


@pytest.mark.parametrize("kind", ["ivtc", "bwdif"])
def test_a_forced_filter_runs_on_any_source(tmp_path: Path, kind: str) -> None:
    film = synthetic.write_clip(tmp_path / "film.mkv", cartoon_frames(20, 128, 96, pan=3.0), NTSC)
    options = ConvertOptions(**FAST, deinterlace=kind)
    plan = plan_file(film, tmp_path / "out.mkv", options)
    assert plan.deinterlace is not None and plan.deinterlace.kind == kind
    frames = convert_file(film, tmp_path / "out.mkv", options, plan=plan).frames
    assert frames == (16 if kind == "ivtc" else 20)
