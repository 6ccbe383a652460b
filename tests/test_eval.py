"""ganime eval and preview on tiny ground truth made in code."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import cartoon_frames
from PIL import Image
from typer.testing import CliRunner

from ganime import evaluate, synthetic
from ganime.cli import app

runner = CliRunner()


def gradient(n: int, h: int = 48, w: int = 86) -> list[np.ndarray]:
    """Rows of constant colour, 5 levels apart: mirroring across a vertical seam is exact.

    A ground truth whose sides a correct harness must score near-perfectly for ``edge``;
    an output one line off would cost 5 levels everywhere.
    """
    col = np.stack([np.arange(h) * 5, 255 - np.arange(h) * 5, np.full(h, 128)], axis=1).astype(np.uint8)
    return [np.repeat(col[:, None], w, axis=1) for _ in range(n)]


def test_fit_lines_the_canvas_up_with_real_pixels() -> None:
    h, lay = evaluate.fit(852, 480, Fraction(4, 3))
    assert lay.canvas_width <= 852 and lay.canvas_height == h
    assert h >= 470
    assert lay.canvas_width - 2 * lay.left == lay.content.width


def test_eval_scores_and_files(tmp_path: Path) -> None:
    gt = synthetic.write_clip(tmp_path / "rows.mkv", gradient(6), crf=0, pix_fmt="yuv444p")
    pan = synthetic.write_clip(tmp_path / "pan.mkv", cartoon_frames(6, 86, 48), crf=0, pix_fmt="yuv444p")
    options = evaluate.EvalOptions(models=("edge", "blur"), frames=6, device="cpu", sheet_frames=2)
    report = evaluate.evaluate([gt, pan], options, tmp_path / "out")
    labels = ("edge", "edge per-frame", "blur", "blur per-frame")  # temporal engine on and off
    assert {(s.clip, s.model) for s in report.scores} == {(c, m) for c in ("rows.mkv", "pan.mkv") for m in labels}
    by = {(s.clip, s.model): s for s in report.scores}
    # Rows are constant: the mirror reproduces the true sides; the blur, scaled up, shifts them.
    for mode in ("edge", "edge per-frame"):
        assert by["rows.mkv", mode].psnr > 36  # one line off would be 34.2 dB (5 levels everywhere)
        assert by["rows.mkv", mode].temporal < 1
    assert by["rows.mkv", "edge"].psnr > by["rows.mkv", "blur"].psnr + 3
    for s in report.scores:
        assert s.frames == 6 and 0 < s.ssim <= 1 and s.temporal >= 0 and s.seam >= 0
        assert s.fill_fps > 0 and s.total_fps > 0
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert set(data["mean"]) == set(labels) and len(data["clips"]) == 8
    md = (tmp_path / "out" / "eval.md").read_text()
    assert "| edge |" in md and "pan.mkv" in md
    sheet = Image.open(tmp_path / "out" / "contact.png")
    assert sheet.size[0] > 4 * 60 and sheet.size[1] > 2 * 40
    assert (tmp_path / "out" / "sheet_pan.png").exists()


def test_frames_with_flat_black_true_sides_are_left_out(tmp_path: Path) -> None:
    pictures = cartoon_frames(8, 86, 48, pan=1.0)
    black = [np.zeros_like(pictures[0]) for _ in range(4)]  # a fade from black, as clips begin
    faded = synthetic.write_clip(tmp_path / "faded.mkv", black + pictures, crf=0, pix_fmt="yuv444p")
    plain = synthetic.write_clip(tmp_path / "plain.mkv", pictures, crf=0, pix_fmt="yuv444p")
    options = evaluate.EvalOptions(models=("edge",), frames=12, device="cpu", sheet_frames=2, temporal=(False,))
    report = evaluate.evaluate([faded, plain], options, tmp_path / "out")
    by = {s.clip: s for s in report.scores}
    assert by["faded.mkv"].frames == 8 and by["plain.mkv"].frames == 8
    # Scored like the same frames without the black ones (a black side would score ~50 dB).
    assert abs(by["faded.mkv"].psnr - by["plain.mkv"].psnr) < 0.5
    assert any("faded.mkv: 4 of 12 frames left out" in n for n in report.notes)
    all_black = synthetic.write_clip(tmp_path / "black.mkv", black, crf=0, pix_fmt="yuv444p")
    report = evaluate.evaluate([all_black, plain], options, tmp_path / "out2")
    assert "flat black" in report.skipped["black.mkv"] and {s.clip for s in report.scores} == {"plain.mkv"}


def test_still_image_is_a_one_frame_clip(tmp_path: Path) -> None:
    img = tmp_path / "still.png"
    Image.fromarray(cartoon_frames(1, 86, 48)[0]).save(img)
    report = evaluate.evaluate(
        [tmp_path], evaluate.EvalOptions(models=("edge",), device="cpu", temporal=(True,)), tmp_path / "o"
    )
    (s,) = report.scores
    assert s.clip == "still.png" and s.frames == 1 and math.isfinite(s.psnr) and s.temporal == 0.0


def test_narrow_ground_truth_is_refused(tmp_path: Path) -> None:
    clip = synthetic.write_clip(tmp_path / "narrow.mkv", cartoon_frames(2, 64, 48))
    with pytest.raises(ValueError, match=r"narrow\.mkv: 64x48 shows 1\.33:1, narrower than 16:9"):
        evaluate.evaluate(
            [clip], evaluate.EvalOptions(models=("edge",), device="cpu", temporal=(True,)), tmp_path / "o"
        )


def test_refused_ground_truth_is_named_by_the_file_s_size() -> None:
    """A 4:3 clip with black bars: the file's size first, then the picture inside its bars."""
    rng = np.random.default_rng(0)
    frames = [np.zeros((48, 64, 3), np.uint8) for _ in range(4)]
    for f in frames:
        f[4:44] = rng.integers(100, 200, (40, 64, 3))
    with pytest.raises(ValueError, match=r"^64x48 with its picture 64x40 inside black bars shows 1\.60:1, narrower"):
        evaluate.prepare_truth(frames, Fraction(1), evaluate.EvalOptions(models=("edge",)))


def test_a_folder_skips_clips_that_are_not_16x9_truth(tmp_path: Path) -> None:
    footage = tmp_path / "footage"
    (footage / "old").mkdir(parents=True)
    synthetic.write_clip(footage / "wide.mkv", gradient(3), crf=0, pix_fmt="yuv444p")
    synthetic.write_clip(footage / "old" / "narrow.mkv", cartoon_frames(3, 64, 48))
    options = evaluate.EvalOptions(models=("edge",), device="cpu", temporal=(True,), frames=3)
    report = evaluate.evaluate([footage], options, footage / "results")
    assert [s.clip for s in report.scores] == ["wide.mkv"]
    again = evaluate.evaluate([footage], options, footage / "results")  # its sheets are not clips
    assert [s.clip for s in again.scores] == ["wide.mkv"] and again.skipped == report.skipped
    assert list(report.skipped) == [str(Path("old") / "narrow.mkv")]
    assert "narrower than 16:9" in report.skipped[str(Path("old") / "narrow.mkv")]
    assert json.loads((footage / "results" / "eval.json").read_text())["skipped"] == report.skipped
    assert "narrow.mkv: 64x48 shows 1.33:1, narrower than 16:9" in (footage / "results" / "eval.md").read_text()
    # Nothing usable: an error, and no results written.
    with pytest.raises(ValueError, match=r"no clip is usable as 16:9 ground truth .*narrow\.mkv"):
        evaluate.evaluate([footage / "old"], options, tmp_path / "none")
    assert not (tmp_path / "none" / "eval.json").exists()


def test_eval_cli(tmp_path: Path) -> None:
    gt = synthetic.write_clip(tmp_path / "gt.mkv", cartoon_frames(4, 86, 48), crf=0)
    r = runner.invoke(
        app,
        ["eval", str(gt), "-m", "edge,context-encoder", "-o", str(tmp_path / "e"), "--frames", "4"],
        terminal_width=80,
    )
    assert r.exit_code == 2 and "context-encoder" in r.output  # no weights: said before any work
    r = runner.invoke(
        app, ["eval", str(gt), "-m", "edge", "-o", str(tmp_path / "e"), "--frames", "4"], terminal_width=80
    )
    assert r.exit_code == 0, r.output
    assert "edge" in r.output and (tmp_path / "e" / "eval.md").exists()
    # At 80 columns every figure is whole, on its model's line (none folded across two).
    rows = {line.split()[0] + (" per-frame" if "per-frame" in line else ""): line for line in r.output.splitlines()
            if line.startswith("edge")}  # fmt: skip
    scores = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert set(rows) == {"edge", "edge per-frame"} and max(len(x) for x in r.output.splitlines()[:4]) <= 80
    for name, mean in scores["mean"].items():
        assert f"{mean['psnr']:.2f}" in rows[name] and f"{mean['pops']:.0f}" in rows[name]
    # The engine traced where its sides came from; a per-frame run did not.
    assert f"{scores['mean']['edge']['copied']:.2f}" in rows["edge"] and "n/a" in rows["edge per-frame"]
    assert runner.invoke(app, ["eval", str(gt), "-m", "nope"]).exit_code == 2
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    synthetic.write_clip(mixed / "gt.mkv", cartoon_frames(2, 86, 48), crf=0)
    narrow = synthetic.write_clip(mixed / "narrow.mkv", cartoon_frames(2, 64, 48))
    r = runner.invoke(app, ["eval", str(mixed), "-m", "edge", "-o", str(tmp_path / "f"), "--frames", "2"])
    assert r.exit_code == 0 and "skipped   narrow.mkv: 64x48 shows 1.33:1, narrower than 16:9" in r.output, r.output
    r = runner.invoke(app, ["eval", str(narrow), "-m", "edge", "-o", str(tmp_path / "g")])
    assert r.exit_code == 1 and str(narrow) in r.output and len(r.output.strip().splitlines()) == 1


def test_preview_of_a_4x3_source(tmp_path: Path) -> None:
    src = synthetic.write_clip(tmp_path / "ep.mkv", cartoon_frames(12, 64, 48))
    r = runner.invoke(app, ["preview", str(src), "--at", "0.2", "-m", "edge,blur", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    png = tmp_path / "ep.preview.png"
    w, h = Image.open(png).size
    assert w > 2 * 88 and h > 2 * 48  # source + two models, two columns


def test_preview_of_16x9_shows_the_truth(tmp_path: Path) -> None:
    src = synthetic.write_clip(tmp_path / "wide.mkv", cartoon_frames(4, 86, 48))
    out = evaluate.preview(src, 0.0, ("edge",), tmp_path / "p.png", device="cpu")
    w, h = Image.open(out).size
    assert w > 2 * 84 and h > 2 * 46  # truth, masked input, edge: two columns, two rows


def test_eval_leads_with_lpips_and_keeps_the_splits_apart(tmp_path: Path, perceptual_dir: Path) -> None:
    a = synthetic.write_clip(tmp_path / "a.mkv", cartoon_frames(4, 172, 96), crf=0, pix_fmt="yuv444p")
    b = synthetic.write_clip(tmp_path / "b.mkv", cartoon_frames(4, 172, 96, seed=2), crf=0, pix_fmt="yuv444p")
    options = evaluate.EvalOptions(
        models=("edge", "blur"), frames=4, device="cpu", temporal=(True,), perceptual=perceptual_dir, report=("b",)
    )
    report = evaluate.evaluate([a, b], options, tmp_path / "out")
    by = {(s.clip, s.model): s for s in report.scores}
    assert {s.split for s in report.scores if s.clip == "b.mkv"} == {"report"}
    assert {s.split for s in report.scores if s.clip == "a.mkv"} == {"tune"}
    for s in report.scores:
        assert 0 < s.lpips < 1 and s.sharpness > 0 and s.patch > 0
    # The blur is softer than the mirror of a sharp cartoon, and LPIPS sees it.
    assert by["a.mkv", "blur"].sharpness < by["a.mkv", "edge"].sharpness
    md = (tmp_path / "out" / "eval.md").read_text()
    assert md.index("LPIPS") < md.index("PSNR") and "tuning split (1 clips)" in md and "report split" in md
    assert report.mean("edge", "report")["lpips"] == pytest.approx(by["b.mkv", "edge"].lpips)


def test_eval_without_perceptual_weights_says_lpips_was_not_measured(tmp_path: Path) -> None:
    gt = synthetic.write_clip(tmp_path / "gt.mkv", cartoon_frames(3, 86, 48), crf=0)
    r = runner.invoke(app, ["eval", str(gt), "-m", "edge", "-o", str(tmp_path / "e"), "--temporal", "on"])
    assert r.exit_code == 0, r.output
    assert "LPIPS not measured" in r.output and "n/a" in (tmp_path / "e" / "eval.md").read_text()
    data = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert data["clips"][0]["lpips"] is None or math.isnan(data["clips"][0]["lpips"])


def test_show_masks_adds_the_characters_to_the_sheets(tmp_path: Path) -> None:
    """``--show-masks``: a column of each sheet shows the picture with the characters tinted red."""
    world = synthetic.paint_background(172, 96, seed=4)
    plain = np.zeros_like(world)
    plain[:] = np.linspace([110, 170, 230], [90, 170, 80], 96)[:, None].astype(np.uint8)
    synthetic._draw_character(plain, 40, 96 * 0.86, 48, 0)  # a character by the left seam
    clip = synthetic.write_clip(tmp_path / "c.mkv", [plain] * 3, crf=0, pix_fmt="yuv444p")
    sizes = {}
    for show in (False, True):
        options = evaluate.EvalOptions(models=("edge",), frames=3, device="cpu", temporal=(False,), show_masks=show)
        evaluate.evaluate([clip], options, tmp_path / str(show))
        sizes[show] = Image.open(tmp_path / str(show) / "sheet_c.png").size
    assert sizes[True][0] > sizes[False][0] and sizes[True][1] == sizes[False][1]  # one column more
    lay = evaluate.fit(172, 96, evaluate.EvalOptions().source_aspect)[1]
    view = evaluate.CharacterViews(np.stack([plain[: lay.canvas_height, : lay.canvas_width]]), lay)[0]
    red = (view[..., 0].astype(int) - view[..., 1] > 80) & (view[..., 0] > 150)
    assert red[:, lay.left : lay.left + lay.content.width].sum() > 300  # the character, tinted
    assert not red[:, lay.left + 80 :].any()  # and not the sky and grass beside it


def test_a_seed_reaches_the_random_search_and_none_keeps_the_models_own(tmp_path: Path) -> None:
    from ganime.pipeline import ConvertOptions, convert_file

    src = synthetic.write_clip(tmp_path / "in.mkv", cartoon_frames(3, 128, 96, seed=4), crf=0, pix_fmt="yuv444p")
    sides = {}
    for seed in (None, 0, 1):
        dst = tmp_path / f"out{seed}.mkv"
        opts = ConvertOptions(
            model="patch", encoder=evaluate.LOSSLESS, temporal=False, characters=False, detect_bars=False, seed=seed
        )
        convert_file(src, dst, opts)
        out = np.stack(evaluate.read_frames(dst, 3)[0]).astype(np.int16)
        sides[seed] = np.concatenate([out[:, :, :20], out[:, :, -20:]], axis=2)
    assert np.array_equal(sides[None], sides[0])  # patch's own seed is 0
    assert np.abs(sides[1] - sides[0]).mean() > 1  # another seed, another draw


def test_eval_averages_a_random_search_over_seeds_and_runs_a_deterministic_model_once(tmp_path: Path) -> None:
    from ganime import metrics
    from ganime.pipeline import ConvertOptions, convert_file

    clip = synthetic.write_clip(tmp_path / "c.mkv", cartoon_frames(3, 172, 96, seed=6), crf=0, pix_fmt="yuv444p")
    options = evaluate.EvalOptions(
        models=("edge", "patch"), frames=3, device="cpu", temporal=(False,), characters=False, seeds=2
    )
    report = evaluate.evaluate([clip], options, tmp_path / "out")
    by = {s.model: s for s in report.scores}
    assert by["edge per-frame"].seeds == 1 and math.isnan(by["edge per-frame"].spread)
    assert by["patch per-frame"].seeds == 2
    # The same figures by hand: each seed's conversion scored, then the mean.
    frames, info = evaluate.read_frames(clip, 3)
    truth, lay = evaluate.prepare_truth(frames, info.sar, options)
    src = synthetic.write_clip(tmp_path / "centre.mkv", list(evaluate.centre(truth, lay)), crf=0, pix_fmt="yuv444p")
    psnrs = []
    for seed in (0, 1):
        dst = tmp_path / f"p{seed}.mkv"
        opts = ConvertOptions(
            model="patch",
            encoder=evaluate.LOSSLESS,
            temporal=False,
            characters=False,
            detect_bars=False,
            deinterlace="off",
            seed=seed,
        )
        convert_file(src, dst, opts)
        out = np.stack(evaluate.read_frames(dst, len(truth))[0])
        psnrs.append(metrics.all_metrics(out, truth, lay.mask() > 0)["psnr"])
    assert psnrs[0] != psnrs[1]
    assert by["patch per-frame"].psnr == pytest.approx(np.mean(psnrs))
    assert "2 seeds" in (tmp_path / "out" / "eval.md").read_text()
