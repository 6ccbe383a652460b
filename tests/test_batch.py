"""A batch as a user runs it: which files a folder scan takes, options checked once up front,
damaged sources remembered, display rotation (signals that stop it: test_cli)."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import cartoon_frames, decoded_frames, psnr
from typer.testing import CliRunner

import ganime
from ganime import synthetic
from ganime.cli import app
from ganime.models import find_weights, model_for_weights

FAST = ["--preset", "ultrafast", "--device", "cpu", "--no-progress"]


def invoke(*args: object, width: int | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=width)


def flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ folder scans


def test_season_x_episode_names_are_episodes_not_outputs(tmp_path: Path, plain_source: Path) -> None:
    """``1x01`` in a name is how rips number episodes; only files ganime wrote are left out."""
    root = tmp_path / "Tom and Jerry"
    root.mkdir()
    names = [
        "Tom.and.Jerry.1x01.The.Bowling.Alley-Cat.mp4",
        "Show - 2x05 - Title.mp4",
        "Show.1x02.mp4",  # ends the way an output of ganime does, and is not one
        "normal.mp4",
    ]
    for n in names:
        shutil.copy(plain_source, root / n)
    r = invoke("convert", root, "--dry-run")
    assert r.exit_code == 0, r.output
    for n in names:
        assert f"{root / n} ->" in flat(r.output), n

    # Converted once: the outputs are left out of the next scan, each named with why.
    assert invoke("convert", root, "-m", "edge", *FAST).exit_code == 0
    (root / "old.16x9.partial.mkv").write_bytes(b"")  # what a killed conversion leaves
    results = ganime.convert(root, options=ganime.ConvertOptions(model="edge", device="cpu"))
    status = {r.input.name: (r.status, r.message) for r in results}
    assert len(status) == 2 * len(names) + 1
    for n in names:
        assert status[n] == ("skipped", "output exists (use --overwrite to replace it)")
        own = f"{Path(n).stem}.16x9.mkv"
        assert status[own][0] == "skipped" and "written by ganime" in status[own][1]
    assert "unfinished output of ganime" in status["old.16x9.partial.mkv"][1]
    r = invoke("convert", root, "-m", "edge", *FAST)
    assert r.exit_code == 0
    assert f"skipped: {root / 'Show.1x02.16x9.mkv'}: written by ganime" in flat(r.output)


def test_an_mp4_output_is_known_by_its_track_not_its_name(tmp_path: Path, plain_source: Path) -> None:
    dst = tmp_path / "ep.16x9.mp4"
    assert invoke("convert", plain_source, "-o", dst, "-m", "edge", *FAST).exit_code == 0
    assert ganime.video.written_by_ganime(dst)
    assert not ganime.video.written_by_ganime(plain_source)
    shutil.copy(plain_source, tmp_path / "other.16x9.mp4")  # named like one, made elsewhere
    scan = ganime.pipeline.scan_inputs([tmp_path])
    assert [p.name for p, _ in scan.found] == ["other.16x9.mp4"]
    assert [p.name for p, _ in scan.skipped] == ["ep.16x9.mp4"]
    r = invoke("convert", tmp_path / "ep.16x9.mp4", "--dry-run")  # named on its own: the user means it
    assert r.exit_code == 0 and "ep.16x9.mp4 ->" in flat(r.output)


def test_a_folder_of_nothing_but_outputs_says_so(tmp_path: Path, plain_source: Path) -> None:
    assert invoke("convert", plain_source, "-o", tmp_path / "out" / "a.16x9.mkv", "-m", "edge", *FAST).exit_code == 0
    r = invoke("convert", tmp_path / "out")
    assert r.exit_code == 2 and "its 1 video file(s) were written by ganime" in flat(r.output)


# --------------------------------------------------------------- options, once


@pytest.fixture
def two_episodes(tmp_path: Path, plain_source: Path) -> Path:
    root = tmp_path / "season"
    root.mkdir()
    for n in ("ep01.mp4", "ep02.mp4"):
        shutil.copy(plain_source, root / n)
    return root


@pytest.mark.parametrize(
    ("args", "flag", "says"),
    [
        (["--device", "tpu"], "--device", "use auto, cpu, cuda or cuda:N"),
        (["-m", "context-encoder"], "--model", "model 'context-encoder' needs weights and none are installed"),
        (["-o", "{out}/x.webm"], "--codec", "WebM holds only AV1 of the codecs ganime writes; use --codec av1"),
    ],
)
def test_option_errors_are_one_usage_error_before_any_file(
    two_episodes: Path, args: list[str], flag: str, says: str
) -> None:
    (two_episodes / "ep03.mkv").write_bytes(b"not a video" * 100)  # would fail if it were opened
    args = [a.replace("{out}", str(two_episodes)) for a in args]
    r = invoke("convert", two_episodes, "--no-progress", *args)
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag}: ") and says in lines[0], r.output
    assert "ep03" not in r.output and "failed" not in r.output
    assert sorted(p.name for p in two_episodes.iterdir()) == ["ep01.mp4", "ep02.mp4", "ep03.mkv"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="NVENC may work where there is a GPU")
def test_nvenc_without_nvidia_is_a_usage_error(two_episodes: Path) -> None:
    r = invoke("convert", two_episodes, "--codec", "nvenc", "--no-progress")
    assert r.exit_code == 2
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "nvenc needs an NVIDIA GPU and driver" in lines[0] and "use x264" in lines[0]
    assert sorted(p.name for p in two_episodes.iterdir()) == ["ep01.mp4", "ep02.mp4"]


def test_weights_choose_their_model(tmp_path: Path, plain_source: Path) -> None:
    glcic = find_weights("glcic")
    assert glcic is not None  # shipped in weights/
    assert model_for_weights(glcic) == "glcic"
    r = invoke("convert", plain_source, "--weights", glcic, "--dry-run")
    assert r.exit_code == 0 and "fill glcic" in flat(r.output)
    r = invoke("convert", plain_source, "--weights", glcic, "-m", "lama", "--no-progress")
    assert r.exit_code == 2
    assert f"{glcic}: holds a glcic model, not a lama one; use -m glcic, or leave -m out" in flat(r.output)
    r = invoke("convert", plain_source, "--weights", glcic, "-m", "patch", "--no-progress")
    assert "not a patch one" in flat(r.output) and "patch (patch)" not in r.output
    notweights = tmp_path / "x.safetensors"
    notweights.write_bytes(b"nothing")
    r = invoke("convert", plain_source, "--weights", notweights, "--no-progress")
    assert r.exit_code == 2 and "error: --weights: " in r.output and "not a safetensors file" in r.output


def test_usage_lines_name_arguments_plainly() -> None:
    for command, usage in (
        (["convert"], "ganime convert [OPTIONS] INPUTS..."),
        (["probe"], "ganime probe [OPTIONS] FILE"),
        (["eval"], "ganime eval [OPTIONS] CLIPS..."),
        (["models", "import-lama"], "ganime models import-lama [OPTIONS] CHECKPOINT [OUTPUT]"),
    ):
        r = invoke(*command, "--help", width=100)
        assert usage in r.output and "{" not in r.output, r.output


def test_eval_and_preview_refuse_a_device_up_front(tmp_path: Path, plain_source: Path) -> None:
    for command in (["eval", plain_source, "-m", "edge", "-o", tmp_path / "e"], ["preview", plain_source]):
        r = invoke(*command, "--device", "tpu")
        assert r.exit_code == 2 and r.output.startswith("error: --device: ") and "tpu" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_train_help_says_what_a_checkpoint_holds() -> None:
    text = flat(invoke("train", "--help").output.replace("│", " "))
    assert "both networks and both Adam states" in text and "discriminator" in text


def test_probe_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    for command in ("probe", "convert"):
        r = invoke(command, tmp_path / "missing.mkv")
        assert r.exit_code == 2 and "missing.mkv" in r.output


# ------------------------------------------------------- damaged sources, once


def test_a_damaged_source_is_not_decoded_again_until_it_changes(tmp_path: Path) -> None:
    good = synthetic.write_clip(tmp_path / "good.mkv", cartoon_frames(48, 64, 48, pan=2.0), crf=30)
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    first = invoke("convert", damaged, "-o", tmp_path / "out.mkv", *FAST)
    assert first.exit_code == 1 and "could be read" in first.output

    again = invoke("convert", damaged, "-o", tmp_path / "out.mkv", *FAST)
    assert again.exit_code == 1
    text = flat(again.output)
    assert f"{damaged}: failed before (" in text and "has not changed since" in text
    assert "could be read" in text and "--retry tries anyway" in text
    assert "frames at" not in text and not (tmp_path / "out.mkv").exists()

    # Asked again with --retry, or differently (--keep-incomplete), it is decoded again.
    retried = invoke("convert", damaged, "-o", tmp_path / "out.mkv", "--retry", *FAST)
    assert retried.exit_code == 1 and "failed before" not in retried.output and "could be read" in retried.output
    kept = invoke("convert", damaged, "-o", tmp_path / "out.mkv", "--keep-incomplete", *FAST)
    assert kept.exit_code == 0 and (tmp_path / "out.mkv").exists()
    # A new copy of the file (a repaired download) is tried again on its own.
    (tmp_path / "out.mkv").unlink()
    invoke("convert", damaged, "-o", tmp_path / "out.mkv", *FAST)
    shutil.copy(good, damaged)
    r = invoke("convert", damaged, "-o", tmp_path / "out.mkv", *FAST)
    assert r.exit_code == 0 and (tmp_path / "out.mkv").exists(), r.output


# -------------------------------------------------------------------- rotation


def test_a_rotated_source_is_converted_as_it_is_shown(tmp_path: Path) -> None:
    """Stored sideways and tagged to be shown turned: decided and converted upright, stored upright."""
    shown = cartoon_frames(6, 96, 72)
    stored = [np.ascontiguousarray(np.rot90(f, -1)) for f in shown]  # 72x96, turned back on display
    src = synthetic.write_clip(tmp_path / "phone.mp4", stored, rotation=90)
    info = ganime.video.probe(src)
    assert (info.width, info.height, info.rotation) == (96, 72, 90)
    r = invoke("probe", src)
    assert "96x72 as shown (stored 72x96)" in flat(r.output) and "turned 90°" in r.output
    assert invoke("convert", src, "-o", tmp_path / "out.mkv", "-m", "edge", *FAST).exit_code == 0
    with av.open(str(tmp_path / "out.mkv")) as c:
        vs = c.streams.video[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (128, 72)
        first = next(c.decode(vs))
        assert not first.rotation  # stored upright: no player turns it again
    frames = [f for _, f in decoded_frames(tmp_path / "out.mkv")]
    centre = np.stack([f[:, 16:112] for f in frames])
    upright = psnr(centre, np.stack(shown))
    assert upright > 25 and upright > psnr(centre, np.stack(shown)[:, ::-1, ::-1]) + 8  # the right way up

    # Stored landscape but shown portrait: skipped as a portrait file is, and why.
    tall = synthetic.write_clip(tmp_path / "tall.mp4", cartoon_frames(4, 96, 72), rotation=270)
    r = invoke("convert", tall, *FAST)
    assert r.exit_code == 0 and "portrait as shown (turned 270° by its display rotation)" in flat(r.output)
    assert not (tmp_path / "tall.16x9.mkv").exists()


# ------------------------------------------------------------------- characters


def test_characters_switch_reaches_the_engine(tmp_path: Path) -> None:
    """``--characters``: a held character at the seam is not smeared into the side."""
    world = synthetic.paint_background(171, 96, seed=1)
    synthetic._draw_character(world, 31, 96 * 0.86, 48, 0)
    src = synthetic.write_clip(tmp_path / "ep.mkv", [np.ascontiguousarray(world[:, 21:149])] * 6, crf=0)
    body = np.array([236, 96, 80])
    counts = {}
    for flag in ("--characters", "--no-characters"):
        out = tmp_path / f"out{flag}.mkv"
        assert invoke("convert", src, "-o", out, "--crf", "0", *FAST, flag).exit_code == 0
        side = np.stack([f for _, f in decoded_frames(out)])[:, :, :18].astype(int)
        counts[flag] = int((np.abs(side - body).max(-1) < 40).sum())
    assert counts["--characters"] == 0 and counts["--no-characters"] > 500
    # Filled frame by frame, the same: each frame's characters are found and never copied.
    for flag in ("--characters", "--no-characters"):
        out = tmp_path / f"alone{flag}.mkv"
        assert invoke("convert", src, "-o", out, "--crf", "0", "--no-temporal", *FAST, flag).exit_code == 0
        side = np.stack([f for _, f in decoded_frames(out)])[:, :, :18].astype(int)
        counts[f"alone{flag}"] = int((np.abs(side - body).max(-1) < 40).sum())
    assert counts["alone--characters"] == 0 and counts["alone--no-characters"] > 500
