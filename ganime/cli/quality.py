"""``ganime eval`` and ``ganime preview``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import geometry, pipeline, video
from ..models import resolve_weights
from ..weights import WeightsError
from .app import Command, app, check_device, err, model_list, on_off, out, parse_time, usage_error
from .convert import check_start


@app.command("eval", cls=Command)
def eval_cmd(
    clips: Annotated[list[Path], typer.Argument(help="16:9 (or wider) clips, images or folders: the ground truth.")],
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", "-m", help="Comma-separated models to score. Default: all that can run here."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for eval.json, eval.md, sheets.")] = Path(
        "ganime-eval"
    ),
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip.")] = 48,
    stride: Annotated[int, typer.Option(min=1, help="Take every N-th frame.")] = 1,
    start: Annotated[str, typer.Option(help="Where to start in each clip (seconds or HH:MM:SS).")] = "0",
    height: Annotated[int, typer.Option(min=0, help="Shrink taller ground truth to this height; 0 keeps it.")] = 480,
    source_aspect: Annotated[str, typer.Option(help="Aspect of the kept centre.")] = "4:3",
    sheet_frames: Annotated[int, typer.Option(min=1, help="Frames per clip on the contact sheets.")] = 3,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="GANIME_DEVICE")] = "auto",
    batch_size: Annotated[int, typer.Option(min=0, help="Frames per model call; 0 picks one.")] = 0,
    weights: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A ganime weight file for the (single) model evaluated."),
    ] = None,
    temporal: Annotated[
        str, typer.Option(help="Score the temporal engine (on), per-frame filling (off), or both.")
    ] = "both",
    perceptual: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Folder of LPIPS weights (AlexNet features, v0.1 linear layers). Default: $GANIME_PERCEPTUAL, "
            "else downloaded by torchvision.",
            envvar="GANIME_PERCEPTUAL",
        ),
    ] = None,
    report: Annotated[
        str,
        typer.Option(help="Comma-separated clip names or patterns of the report split; the rest is the tuning split."),
    ] = "",
    characters: Annotated[
        bool, typer.Option(help="As convert --characters: no side is made of the characters (on, as convert).")
    ] = True,
    copied: Annotated[
        bool,
        typer.Option(
            "--copied/--no-copied",
            help="Measure the % of side pixels copied from characters (the temporal engine traces where each comes"
            " from; finds the characters of every frame, ~0.4 s each on CPU).",
        ),
    ] = True,
    show_masks: Annotated[
        bool, typer.Option("--show-masks", help="Contact sheets show the characters found in each picture, tinted.")
    ] = False,
    seeds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Runs per clip of a model with a random search (patch), seeds 0..N-1, averaged: one run is one"
            " draw, which moves a clip's LPIPS by up to ~0.015. Deterministic models run once.",
        ),
    ] = 1,
) -> None:
    """Score models on native 16:9 footage: LPIPS, sharpness, patch distance, PSNR, SSIM, flicker of the sides."""
    from .. import evaluate

    try:
        aspect = geometry.parse_aspect(source_aspect)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--source-aspect") from None
    options = evaluate.EvalOptions(
        models=model_list(model),
        source_aspect=aspect,
        frames=frames,
        stride=stride,
        start=parse_time(start, "--start") or 0.0,
        height=height or None,
        device=device,
        batch_size=batch_size,
        sheet_frames=sheet_frames,
        weights=weights,
        temporal=(True, False) if temporal.strip().lower() == "both" else (on_off(temporal, "--temporal"),),
        perceptual=perceptual,
        report=tuple(n.strip() for n in report.split(",") if n.strip()),
        characters=characters,
        provenance=copied,
        show_masks=show_masks,
        seeds=seeds,
    )
    check_device(device)
    for name in options.models:  # missing weights are a usage error, as for convert
        try:
            resolve_weights(name, weights if len(options.models) == 1 else None)
        except WeightsError as e:
            usage_error("--weights" if weights is not None else "--model", str(e))
    try:
        with err.status("evaluating") as status:
            report = evaluate.evaluate(clips, options, output, progress=lambda m: status.update(escape(m)))
    except FileNotFoundError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    except (ValueError, video.VideoError, pipeline.ConvertError, WeightsError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    # No borders and one space between columns: the longest row ("context-encoder
    # per-frame" and eight figures) fits 80 columns whole; nothing folds or is cut.
    table = Table(
        title=f"ganime eval ({len(report.clips())} clips, {report.seconds:.0f} s)",
        title_justify="left",
        box=None,
        header_style="bold underline",
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    # The terminal shows the figures users decide by; eval.md has every one (temporal error too).
    cols = ("model", "LPIPS", "chars%", "sharp", "patch", "pops", "PSNR", "flick", "fps")
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)

    def fmt(v: float, spec: str) -> str:
        return "n/a" if math.isnan(v) else format(v, spec)

    for m in report.models():
        r = report.mean(m)
        table.add_row(
            m,
            fmt(r["lpips"], ".4f"),
            fmt(r["copied"], ".2f"),
            fmt(r["sharpness"], ".2f"),
            fmt(r["patch"], ".1f"),
            f"{r['pops']:.0f}",
            f"{r['psnr']:.2f}",
            fmt(r["flicker"], ".2f"),
            f"{r['total_fps']:.1f}",
        )
    out.print(table)
    for note in report.notes:
        out.print(f"note      {escape(note)}")
    for clip, why in report.skipped.items():
        out.print(f"skipped   {escape(clip)}: {escape(why)}")
    for kind, path in report.files.items():
        out.print(f"{kind:<9} {escape(str(path))}")


@app.command(cls=Command)
def preview(
    file: Annotated[Path, typer.Argument(help="A video file (or image).")],
    at: Annotated[str, typer.Option(help="Time of the frame (seconds or HH:MM:SS).")] = "0",
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", "-m", help="Comma-separated models. Default: all that can run here."),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("-o", "--output", help="PNG to write. Default: NAME.preview.png beside the input."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="GANIME_DEVICE")] = "auto",
    weights: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A ganime weight file for the (single) model shown."),
    ] = None,
) -> None:
    """One frame converted by each model, side by side, to choose before a long encode."""
    from .. import evaluate

    models = model_list(model)
    check_device(device)
    dst = output or file.with_name(f"{file.stem}.preview.png")
    when = parse_time(at, "--at") or 0.0
    if when and file.is_file():
        check_start(file, when, "--at")
    try:
        path = evaluate.preview(file, when, models, dst, device, weights=weights)
    except (ValueError, video.VideoError, pipeline.ConvertError, WeightsError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    out.print(f"wrote {escape(str(path))}")
