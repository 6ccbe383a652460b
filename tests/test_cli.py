"""The command line, in-process with typer's CliRunner (and one real process, killed midway)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import cartoon_frames, decoded_frames, make_rich_source
from typer.testing import CliRunner

import ganime
from ganime import synthetic
from ganime.cli import app
from ganime.models import default_model

runner = CliRunner()
FAST = ["--preset", "ultrafast", "--device", "cpu", "--no-progress"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def season(tmp_path: Path, plain_source: Path) -> Path:
    """A folder of episodes: two good ones (one in a sub-folder) and a corrupt one."""
    root = tmp_path / "season"
    (root / "disc2").mkdir(parents=True)
    shutil.copy(plain_source, root / "ep01.mp4")
    shutil.copy(plain_source, root / "disc2" / "ep02.mp4")
    (root / "ep03.mkv").write_bytes(b"\x1a\x45\xdf\xa3 this is not really a video" * 50)
    (root / "notes.txt").write_text("not a video")
    return root


def test_version() -> None:
    r = invoke("--version")
    assert r.exit_code == 0 and ganime.__version__ in r.stdout


def test_convert_single_file_beside_input(tmp_path: Path, plain_source: Path) -> None:
    src = tmp_path / "episode.mp4"
    shutil.copy(plain_source, src)
    before = src.read_bytes()
    r = invoke("convert", src, *FAST)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "episode.16x9.mkv").exists()
    assert src.read_bytes() == before  # the input is never modified
    assert "converted" in r.output


def test_batch_with_a_corrupt_file(season: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = invoke("convert", season, "-o", out, *FAST)
    assert r.exit_code == 1, r.output
    assert (out / "ep01.16x9.mkv").exists()
    assert (out / "disc2" / "ep02.16x9.mkv").exists()  # the tree is mirrored
    assert not (out / "ep03.16x9.mkv").exists()
    assert not list(out.rglob("*.partial*"))
    assert "ep03.mkv" in r.output and "failed" in r.output
    # One clear line for the failure, no traceback without -v.
    assert "Traceback" not in r.output

    # A rerun skips what is done and still reports the broken file.
    mtime = (out / "ep01.16x9.mkv").stat().st_mtime_ns
    r2 = invoke("convert", season, "-o", out, *FAST)
    assert r2.exit_code == 1
    assert r2.output.count("skipped") >= 2
    assert (out / "ep01.16x9.mkv").stat().st_mtime_ns == mtime

    # --overwrite converts again.
    r3 = invoke("convert", season / "ep01.mp4", "-o", out / "ep01.16x9.mkv", "--overwrite", *FAST)
    assert r3.exit_code == 0
    assert (out / "ep01.16x9.mkv").stat().st_mtime_ns != mtime


def test_outputs_beside_inputs_are_not_picked_up_again(season: Path) -> None:
    (season / "ep03.mkv").unlink()
    assert invoke("convert", season, *FAST).exit_code == 0
    assert (season / "ep01.16x9.mkv").exists()
    r = invoke("convert", season, "--dry-run")
    assert r.exit_code == 0
    assert "ep01.16x9.16x9" not in r.output


def test_episodes_with_the_same_name_each_get_their_own_output(tmp_path: Path, plain_source: Path) -> None:
    root = tmp_path / "rips"
    root.mkdir()
    shutil.copy(plain_source, root / "ep01.mp4")
    shutil.copy(make_rich_source(tmp_path / "rich.mkv", cartoon_frames(6)), root / "ep01.mkv")
    # The folder and one file in it: that file is converted once.
    r = invoke("convert", root, root / "ep01.mp4", *FAST)
    assert r.exit_code == 0, r.output
    assert r.output.count("converted") == 2 and "skipped" not in r.output
    assert sorted(p.name for p in root.glob("*.16x9.*")) == ["ep01.mkv.16x9.mkv", "ep01.mp4.16x9.mkv"]
    # Each output is its own source's: the Matroska one kept its subtitles.
    with av.open(str(root / "ep01.mkv.16x9.mkv")) as a, av.open(str(root / "ep01.mp4.16x9.mkv")) as b:
        assert len(a.streams.subtitles) == 1 and len(b.streams.subtitles) == 0


def test_webm_output_needs_av1(tmp_path: Path, plain_source: Path) -> None:
    r = invoke("convert", plain_source, "-o", tmp_path / "out.webm", *FAST)
    assert r.exit_code == 2  # found before the file is opened
    assert "out.webm: WebM holds only AV1" in " ".join(r.output.split())
    assert not list(tmp_path.iterdir())


def test_an_output_that_cannot_be_created_is_one_clear_line(tmp_path: Path, plain_source: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    r = invoke("convert", plain_source, "-o", blocker / "ep.mkv", *FAST)
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert "ep.mkv: cannot create the output" in text and "Traceback" not in text
    assert blocker.read_text() == "a file where the output folder should be"


def test_probe_shows_streams_and_sidecars(tmp_path: Path, rich_source: Path) -> None:
    src = tmp_path / "ep01.mkv"
    shutil.copy(rich_source, src)
    (tmp_path / "ep01.en.forced.srt").write_text("1\n00:00:00,100 --> 00:00:00,300\nHi\n")
    r = invoke("probe", src)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "64x48" in text and "SAR 1:1" in text and "chapters 2" in text
    assert "subtitle srt [eng]" in text and "sidecar ep01.en.forced.srt [eng] forced" in text
    bad = tmp_path / "notes.mkv"
    bad.write_text("not a video")
    r = invoke("probe", bad)
    assert r.exit_code == 1 and "notes.mkv" in r.output and "Traceback" not in r.output


def test_dry_run_writes_nothing(tmp_path: Path, rich_source: Path) -> None:
    out = tmp_path / "out"
    r = invoke("convert", rich_source, "-o", out / "x.mkv", "--dry-run")
    assert r.exit_code == 0, r.output
    assert not out.exists()
    text = " ".join(r.output.split())
    assert "64x48 -> 88x48" in text
    assert "[jpn]" in text and "[eng]" in text and "subtitle srt" in text and "2 chapter(s)" in text
    assert "font.ttf" in text
    assert "libx264" in text and f"fill {default_model()}" in text


def test_usage_errors_exit_2(tmp_path: Path, plain_source: Path) -> None:
    r = invoke("convert", tmp_path / "missing.mkv")
    assert r.exit_code == 2 and "missing.mkv" in r.output
    assert invoke("convert", plain_source, "--model", "nope").exit_code == 2
    assert invoke("convert", plain_source, "--aspect", "wide").exit_code == 2
    assert invoke("convert", plain_source, "--codec", "mpeg1").exit_code == 2
    assert invoke("convert", plain_source, "--start", "soon").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("convert", empty).exit_code == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--crf", "99"], "99 is out of range for x264: 0 to 51"),
        (["--crf", "-5"], "-5 is out of range for x264: 0 to 51"),
        (["--codec", "x265", "--crf", "99"], "out of range for x265: 0 to 51"),
        (["--codec", "av1", "--crf", "64"], "out of range for av1: 0 to 63"),
        (["--preset", "quick"], "unknown x264 preset 'quick'"),
        (["--duration", "0"], "must be more than 0 seconds"),
        (["--start", "99:00"], "5940 s is past the end of"),
    ],
)
def test_option_values_are_checked_before_any_work(
    tmp_path: Path, plain_source: Path, args: list[str], says: str
) -> None:
    r = invoke("convert", plain_source, "-o", tmp_path / "out.mkv", *FAST, *args)  # the last flag wins
    assert r.exit_code == 2 and says in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output and not list(tmp_path.glob("out*"))
    r = invoke("preview", plain_source, "--at", "99:00", "-o", tmp_path / "p.png")
    assert r.exit_code == 2 and "past the end of" in " ".join(r.output.split())


def test_bad_device_is_a_usage_error(tmp_path: Path, plain_source: Path) -> None:
    r = invoke("convert", plain_source, "-o", tmp_path / "o.mkv", "--device", "tpu", "--no-progress")
    assert r.exit_code == 2
    assert "tpu" in r.output and not (tmp_path / "o.mkv").exists()


def test_already_wide_is_skipped_unless_forced(tmp_path: Path) -> None:
    wide = synthetic.write_clip(tmp_path / "wide.mkv", cartoon_frames(4, 86, 48))
    r = invoke("convert", wide, *FAST)
    assert r.exit_code == 0 and "skipped" in r.output
    assert not (tmp_path / "wide.16x9.mkv").exists()
    r = invoke("convert", wide, "--force", *FAST)
    assert r.exit_code == 0 and (tmp_path / "wide.16x9.mkv").exists()
    assert "4 frames" in r.output  # the true count, though nothing was generated


def test_portrait_and_near_square_are_skipped_unless_forced(tmp_path: Path) -> None:
    tall = synthetic.write_clip(
        tmp_path / "phone.mkv", [f.transpose(1, 0, 2).copy() for f in cartoon_frames(4, 64, 48)]
    )
    r = invoke("convert", tall, *FAST)
    assert r.exit_code == 0 and re.search(r"portrait \(0\.75:1\): 5\d% of the picture would be generated", r.output)
    assert not (tmp_path / "phone.16x9.mkv").exists()
    square = synthetic.write_clip(tmp_path / "square.mkv", cartoon_frames(4, 48, 48))
    assert "near-square (1.00:1)" in invoke("convert", square, *FAST).output
    r = invoke("convert", tall, "--force", *FAST)
    assert r.exit_code == 0 and (tmp_path / "phone.16x9.mkv").exists()


def test_python_api(tmp_path: Path, plain_source: Path) -> None:
    seen = []
    results = ganime.convert(plain_source, tmp_path / "api.mkv", model="edge", preset="ultrafast", progress=seen.append)
    assert [r.status for r in results] == ["converted"]
    assert results[0].frames == 8 and (tmp_path / "api.mkv").exists()
    assert seen and seen[-1].done and seen[-1].frames == 8


def test_temporal_switch_and_options_in_the_api(tmp_path: Path) -> None:
    # 96x72 -> 128x72: libx264 is bit-reproducible only at widths of 16n (see test_ray).
    src = synthetic.write_clip(tmp_path / "pan.mkv", cartoon_frames(12, 96, 72, pan=1.5))
    assert invoke("convert", src, "-o", tmp_path / "cli_off.mkv", "-m", "edge", "--no-temporal", *FAST).exit_code == 0
    assert invoke("convert", src, "-o", tmp_path / "cli_on.mkv", "-m", "edge", "--temporal", *FAST).exit_code == 0
    off = ganime.ConvertOptions(model="edge", temporal=False, device="cpu")
    (r,) = ganime.convert(src, tmp_path / "api_off.mkv", options=off, preset="ultrafast")
    assert r.status == "converted" and r.frames == 12
    frames = {name: decoded_frames(tmp_path / f"{name}.mkv") for name in ("cli_off", "cli_on", "api_off")}
    pictures = {k: np.stack([f for _, f in v]) for k, v in frames.items()}
    assert np.array_equal(pictures["cli_off"], pictures["api_off"])  # the same options, either way
    assert not np.array_equal(pictures["cli_off"], pictures["cli_on"])  # the engine changes the sides
    with pytest.raises(TypeError):
        ganime.convert(src, tmp_path / "x.mkv", feather=4)  # no such option (any more)


def test_interrupted_run_leaves_no_output(tmp_path: Path, plain_source: Path) -> None:
    class Stop(Exception):
        pass

    def stop(p: ganime.Progress) -> None:
        raise Stop

    dst = tmp_path / "stopped.mkv"
    with pytest.raises(Stop):
        ganime.convert_file(plain_source, dst, ganime.ConvertOptions(batch_size=2, device="cpu"), progress=stop)
    assert not dst.exists()
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.parametrize(
    ("sig", "said"),
    [
        (signal.SIGKILL, None),
        (signal.SIGINT, "interrupted"),
        # A killed job or a stopped container, a closed terminal: as Ctrl-C, exit 128 + N.
        (signal.SIGTERM, "stopped by SIGTERM"),
        (signal.SIGHUP, "stopped by SIGHUP"),
    ],
)
def test_a_stopped_conversion_leaves_nothing_under_the_final_name(
    tmp_path: Path, sig: signal.Signals, said: str | None
) -> None:
    """Killed, Ctrl-C or SIGTERM (one line) the moment the output file appears."""
    src = synthetic.write_clip(tmp_path / "long.mkv", cartoon_frames(240, 160, 120), Fraction(24))
    partial = tmp_path / "long.16x9.partial.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganime", "convert", str(src), "--no-progress", "--batch-size", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    try:
        deadline = time.monotonic() + 60
        while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert partial.exists(), "the conversion never started writing"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert not (tmp_path / "long.16x9.mkv").exists()
    if said is not None:
        assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig)
        assert "Traceback" not in err and f"{said}: no output was finished" in " ".join(err.split())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv"]  # a kill cannot clean up; these do


def test_a_truncated_file_fails_unless_kept_incomplete(tmp_path: Path) -> None:
    good = synthetic.write_clip(tmp_path / "good.mkv", cartoon_frames(48, 64, 48, pan=2.0), crf=30)
    data = good.read_bytes()
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(data[: len(data) // 2])  # a download that stopped halfway
    r = invoke("convert", damaged, "-o", tmp_path / "out.mkv", *FAST)
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if "could be read" in x)
    assert str(damaged) in line and re.search(r"only \d+\.\d s of its 2\.0 s of video", line)
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob("*.partial*"))
    assert damaged.read_bytes() == data[: len(data) // 2]  # the input untouched
    (r,) = ganime.convert(damaged, tmp_path / "out.mkv", preset="ultrafast", device="cpu", keep_incomplete=True)
    assert r.status == "converted" and 0 < r.frames < 48
    assert any("damaged or truncated" in w and "--keep-incomplete" in w for w in r.warnings)
    assert (tmp_path / "out.mkv").exists()


def test_a_slide_show_of_long_frames_is_whole(tmp_path: Path) -> None:
    """Found by the fuzzing campaign: 6 frames at 1/7 fps read 35 of 42 s, from the first
    frame's start to the last one's, and were called truncated."""
    src = synthetic.write_clip(tmp_path / "slides.mkv", cartoon_frames(6, 64, 48), Fraction(1, 7))
    (r,) = ganime.convert(src, tmp_path / "out.mkv", preset="ultrafast", device="cpu", model="edge")
    assert r.status == "converted" and r.frames == 6 and not r.warnings


def test_video_that_ends_before_its_sound_is_not_called_damaged(tmp_path: Path) -> None:
    """Also found by the fuzzing campaign: a whole file whose picture stops early."""
    src = synthetic.write_clip(tmp_path / "short.mkv", cartoon_frames(3, 64, 48), Fraction(24), synthetic.melody(2.0))
    (r,) = ganime.convert(src, tmp_path / "out.mkv", preset="ultrafast", device="cpu", model="edge")
    assert r.status == "converted" and r.frames == 3
    assert any("the video ends at 0.1 s" in w for w in r.warnings)


def test_variable_frame_rate_is_not_called_damaged(tmp_path: Path) -> None:
    # Held drawings left out, as a variable-rate encode does: 13 frames over 2 s.
    pts = [round(i * 1000 / 24) for i in range(12)] + [1958]
    src = make_rich_source(tmp_path / "vfr.mkv", cartoon_frames(len(pts)), pts=pts)
    r = ganime.convert(src, tmp_path / "out.mkv", preset="ultrafast", device="cpu")[0]
    assert r.status == "converted" and r.frames == 13
    assert not any("damaged" in w for w in r.warnings), r.warnings


def test_folder_scan_skips_own_outputs_only(tmp_path: Path, plain_source: Path) -> None:
    from ganime.pipeline import is_own_output

    assert is_own_output(Path("ep01.16x9.partial.mkv"))  # an unfinished output: known by its exact name
    assert not is_own_output(Path("show.1920x1080.mkv"))
    assert not is_own_output(Path("partial.mkv"))
    assert not is_own_output(Path("ep01.mkv"))
    named = tmp_path / "ep01.16x9.mkv"  # named as ganime names its outputs, but not written by it
    shutil.copy(plain_source, named)
    assert not is_own_output(named)
    assert invoke("convert", plain_source, "-o", tmp_path / "mine.16x9.mkv", "-m", "edge", *FAST).exit_code == 0
    assert is_own_output(tmp_path / "mine.16x9.mkv")


def test_a_dead_writer_never_blocks_the_pipeline() -> None:
    import queue
    import threading

    from ganime.pipeline import _put, _Stage

    def die() -> None:
        raise OSError("disk full")

    writer = _Stage(die, "writer")
    writer.start()
    writer.join()
    full: queue.Queue = queue.Queue(maxsize=1)
    full.put("frame")
    started = time.monotonic()
    with pytest.raises(OSError, match="disk full"):
        _put(full, "next frame", threading.Event(), writer)
    assert time.monotonic() - started < 5


def test_models_table_fits_80_columns_and_names_every_model() -> None:
    from ganime.models import REGISTRY

    r = CliRunner().invoke(app, ["models"], terminal_width=80)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    table = lines[: lines.index("* the default model")]
    assert max(len(line) for line in table) <= 80
    names = {line.split()[0] for line in table if line.strip() and line.split()[0] in REGISTRY}
    assert names == set(REGISTRY)  # whole names, none cut, so `ganime models | grep NAME` finds each
    assert any(line.startswith("big-lama: hf://") for line in lines)


def test_tags_that_are_not_utf8_do_not_stop_a_conversion(tmp_path: Path) -> None:
    """Found by the fuzzing campaign: damaged tag bytes made PyAV raise UnicodeDecodeError on opening."""
    src = synthetic.write_clip(tmp_path / "tags.mkv", cartoon_frames(6, 64, 48), Fraction(24), synthetic.melody(0.25))
    data = src.read_bytes()
    language = b"\x22\xb5\x9c\x83eng"  # the audio track's Matroska Language element, "eng"
    assert data.count(language) == 1
    (tmp_path / "bad.mkv").write_bytes(data.replace(language, language[:4] + b"\xff\xfe\xff"))
    with pytest.raises(UnicodeDecodeError):  # what PyAV does with such tags by default
        av.open(str(tmp_path / "bad.mkv")).close()
    r = invoke("convert", tmp_path / "bad.mkv", "-m", "edge", *FAST)
    assert r.exit_code == 0 and "Traceback" not in r.output and (tmp_path / "bad.16x9.mkv").exists()


def test_timestamps_that_do_not_increase_are_moved_after_the_last(tmp_path: Path) -> None:
    """Also from the campaign: a damaged file repeated a frame's timestamp and the muxer refused it."""
    src = synthetic.write_clip(tmp_path / "ok.mkv", cartoon_frames(3, 64, 48))
    with ganime.video.Reader(src) as reader:
        vtb = Fraction(reader.stream.time_base)
        picture = np.zeros((48, 64, 3), np.uint8)
        times = []
        for pts in (0, 40, 40, 30, 80):
            f = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = pts, vtb
            times.append(reader._frame(f, vtb, 0).pts)  # type: ignore[union-attr]
        assert times == [0, 40, 41, 42, 80] and reader.retimed == 2
