"""The ``ganime`` command line: maps flags to library calls and owns the terminal.

Exit codes: 0 every file converted (or skipped as already done), 1 some file failed,
2 usage error (bad flag, missing input).
"""

from __future__ import annotations

import json
import math
import os
import re
import traceback
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import __version__, geometry, pipeline, video
from .models import PREFERENCE, REGISTRY, build_model, default_model, find_weights, import_lama
from .models import pull as pull_model
from .weights import WeightsError
from .weights import store_dir as weights_store

app = typer.Typer(
    name="ganime",
    help="Convert 4:3 animation to 16:9 by generating the missing sides.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one error, one line, however long its path
out = Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        out.print(f"ganime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer reads the annotation
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """ganime: 4:3 animation to 16:9, sides generated, everything else kept."""


def parse_time(text: str | None, flag: str) -> float | None:
    """Seconds from ``90``, ``1:30`` or ``00:01:30.5``."""
    if text is None:
        return None
    if not re.fullmatch(r"\d+(\.\d+)?|(\d+:){1,2}\d+(\.\d+)?", text.strip()):
        raise typer.BadParameter(f"not a time: {text!r} (use seconds or [HH:]MM:SS[.ms])", param_hint=flag)
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


class _Bars:
    """Rich progress: one bar for the batch, one for the file being converted."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not enabled,
            transient=True,
        )
        self.overall: TaskID | None = None
        self.file_task: TaskID | None = None
        self.file: Path | None = None

    def start(self, files: int) -> None:
        self.progress.start()
        if files > 1:
            self.overall = self.progress.add_task("all files", total=files, fps="")

    def update(self, p: pipeline.Progress) -> None:
        if self.file != p.path:
            if self.file_task is not None:
                self.progress.remove_task(self.file_task)
            self.file = p.path
            self.file_task = self.progress.add_task(escape(p.path.name), total=p.total, fps="")
        fps = p.frames / p.elapsed if p.elapsed > 0 else 0.0
        total = max(p.total or 0, p.frames) or None  # estimated totals can fall short
        self.progress.update(self.file_task, completed=p.frames, total=total, fps=f"{fps:.1f} fps")

    def file_done(self) -> None:
        if self.overall is not None:
            self.progress.advance(self.overall)
        if self.file_task is not None:
            self.progress.remove_task(self.file_task)
            self.file_task, self.file = None, None

    def stop(self) -> None:
        self.progress.stop()


def _convert_on_ray(
    inputs: list[Path],
    output: Path | None,
    options: pipeline.ConvertOptions,
    address: str | None,
    show: bool,
    on_result: Callable[[pipeline.Result], None],
) -> list[pipeline.Result]:
    """The batch on Ray, with one bar for the whole library (episodes, fps, ETA)."""
    from . import cluster

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
        transient=True,
    )
    task = bar.add_task("on Ray", total=None, info="starting")

    def update(o: cluster.Overall) -> None:
        eta = f", ETA {o.eta:.0f} s" if o.eta is not None else ""
        info = f"{o.done}/{o.episodes} episodes, {len(o.running)} running, {o.fps:.1f} fps{eta}"
        bar.update(task, completed=o.frames, total=o.total, info=info)

    try:
        with bar:
            return cluster.convert_on_ray(inputs, output, options, address, progress=update, on_result=on_result)
    except cluster.RayUnavailable as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None


def _print_plan(plan: pipeline.Plan) -> None:
    info, lay = plan.info, plan.layout
    out.print(f"[bold]{escape(str(plan.input))}[/] -> {escape(str(plan.output))}")
    rate = f"{float(info.frame_rate):.3f} fps" if info.frame_rate else "unknown rate"
    dur = f"{info.duration:.1f} s" if info.duration else "unknown length"
    interlace = ", interlaced" if info.interlaced else ""
    out.print(f"  source   {info.codec} {info.pix_fmt} ({info.bit_depth}-bit), {rate}, {dur}{interlace}")
    out.print(f"  geometry {escape(lay.describe())}")
    if plan.skip_reason:
        out.print(f"  skipped  {escape(plan.skip_reason)}")
        return
    out.print(f"  fill     {plan.model}")
    fields = {"tff": ", interlaced (top field first)", "bff": ", interlaced (bottom field first)"}
    out.print(f"  encoder  {plan.encoder} -> {plan.pix_fmt}{fields.get(plan.fields or '', '')}")
    kept = [s.describe() for s in plan.kept_streams] or ["none"]
    out.print(f"  copied   {escape(', '.join(kept))}; {info.chapters} chapter(s), container tags")
    for sc in plan.sidecars:
        out.print(f"  added    {escape(sc.describe())} (subtitle file beside it)")
    for note in plan.changes:
        out.print(f"  changed  {escape(note)}")
    for s in plan.dropped_streams:
        out.print(f"  dropped  {escape(s.describe())} (only the main video stream is converted)")


def _summary(results: list[pipeline.Result]) -> None:
    table = Table(title="ganime convert", title_justify="left")
    table.add_column("file")
    table.add_column("status")
    table.add_column("frames", justify="right")
    table.add_column("fps", justify="right")
    table.add_column("note")
    colours = {"converted": "green", "skipped": "yellow", "failed": "red", "planned": "cyan"}
    for r in results:
        table.add_row(
            escape(r.input.name),
            f"[{colours.get(r.status, 'white')}]{r.status}[/]",
            str(r.frames) if r.frames else "",
            f"{r.fps:.1f}" if r.frames else "",
            escape(r.message if r.status != "failed" else r.message.split(": ", 1)[-1]),
        )
    err.print(table)


def _on_off(text: str, hint: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise typer.BadParameter(f"expected on or off, got {text!r}", param_hint=hint)
    return value == "on"


@app.command()
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Video files and/or folders (searched recursively).")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("-o", "--output", help="Output file (one input) or folder (mirrors the input tree)."),
    ] = None,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", "-m", help=f"Fill model: {', '.join(REGISTRY)}. Default: the best available."),
    ] = None,
    weights: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="A ganime weight file for the model (default: its installed weights)."),
    ] = None,
    aspect: Annotated[str, typer.Option(help="Target display aspect ratio.")] = "16:9",
    codec: Annotated[
        str, typer.Option(help="Video encoder: x264, x265, av1 or nvenc.", rich_help_panel="Encoding")
    ] = "x264",
    crf: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(help="Quality (lower is better). Default: 18 x264, 20 x265, 28 av1.", rich_help_panel="Encoding"),
    ] = None,
    preset: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Encoder preset (x264 names are translated for av1/nvenc).", rich_help_panel="Encoding"),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="GANIME_DEVICE", rich_help_panel="Performance")
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option(min=0, help="Frames per model call; 0 picks one.", rich_help_panel="Performance")
    ] = 0,
    start: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Convert an excerpt starting here (seconds or HH:MM:SS)."),
    ] = None,
    duration: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Length of the excerpt (seconds or HH:MM:SS)."),
    ] = None,
    temporal: Annotated[
        bool,
        typer.Option(
            help="Follow shots and camera motion, reuse what the camera saw, run the model per shot"
            " (--no-temporal: fill every frame on its own).",
            rich_help_panel="Performance",
        ),
    ] = True,
    temporal_window: Annotated[
        int,
        typer.Option(min=1, help="Frames the temporal engine looks ahead and back.", rich_help_panel="Performance"),
    ] = 48,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs instead of skipping them.")] = False,
    force: Annotated[bool, typer.Option(help="Convert even sources already at the target aspect.")] = False,
    bars: Annotated[bool, typer.Option(help="Detect black bars burnt into the picture and fill them.")] = True,
    sidecars: Annotated[
        bool, typer.Option(help="Add the subtitle files beside each episode (ep01.eng.srt, ep01.ass) as streams.")
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan for each file; write nothing.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show tracebacks for failures.")] = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="One Ray task per episode, on a local Ray or the cluster at --ray-address (needs ganime[ray]).",
            rich_help_panel="Performance",
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="The Ray cluster for --ray: auto, ray://HOST:10001 or HOST:6379 (default: a local Ray).",
            envvar="RAY_ADDRESS",
            rich_help_panel="Performance",
        ),
    ] = None,
) -> None:
    """Convert 4:3 episodes to 16:9: [bold]ganime convert episode.mkv[/] writes episode.16x9.mkv."""
    try:
        target = geometry.parse_aspect(aspect)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--aspect") from None
    if model is not None and model not in REGISTRY:
        raise typer.BadParameter(f"unknown model {model!r} (choose from {', '.join(REGISTRY)})", param_hint="--model")
    try:
        encoder = video.EncoderSettings(codec=codec, crf=crf, preset=preset)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--codec") from None
    options = pipeline.ConvertOptions(
        model=model,
        aspect=Fraction(target),
        encoder=encoder,
        device=device,
        batch_size=batch_size,
        start=parse_time(start, "--start"),
        duration=parse_time(duration, "--duration"),
        overwrite=overwrite,
        force=force,
        detect_bars=bars,
        sidecars=sidecars,
        weights=weights,
        temporal=temporal,
        temporal_window=temporal_window,
    )
    try:
        found = pipeline.find_inputs(inputs)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    if not found:
        err.print(f"[red]error:[/] no video files in {escape(', '.join(map(str, inputs)))}")
        raise typer.Exit(2)
    if output is not None and len(found) > 1 and output.suffix and not output.is_dir():
        err.print(f"[red]error:[/] {escape(str(output))}: several inputs need an output folder, not a file")
        raise typer.Exit(2)
    if not dry_run:
        try:
            where = pipeline.describe_device(device)
        except ValueError as e:
            where = f"{device} [red]({escape(str(e))})[/]"
        name = options.model_name
        err.print(f"ganime {__version__}: model [bold]{name}[/] on {where}, encoder {encoder.encoder_name(8)}")

    bars_ui = _Bars(progress and not dry_run)

    def on_result(r: pipeline.Result) -> None:
        bars_ui.file_done()
        if r.status == "planned" or (dry_run and r.plan is not None):
            _print_plan(r.plan)  # type: ignore[arg-type]
        elif r.status == "failed":
            err.print(f"[red]failed:[/] {escape(r.message)}")
            if verbose and r.error is not None:
                err.print(escape("".join(traceback.format_exception(r.error))))
        elif r.status == "skipped":
            err.print(f"[yellow]skipped:[/] {escape(str(r.input))}: {escape(r.message)}")
        else:
            note = f" ({escape(r.message)})" if r.message else ""
            err.print(f"[green]done:[/] {escape(str(r.output))}: {r.frames} frames at {r.fps:.1f} fps{note}")
            for w in r.warnings:
                err.print(f"[yellow]warning:[/] {escape(str(r.input))}: {escape(w)}")

    if ray and not dry_run:
        results = _convert_on_ray(inputs, output, options, ray_address, progress, on_result)
        _summary(results)
        raise typer.Exit(1 if any(r.status == "failed" for r in results) else 0)
    bars_ui.start(len(found))
    try:
        results = pipeline.convert_many(
            inputs,
            output,
            options,
            progress=bars_ui.update,
            on_result=on_result,
            dry_run=dry_run,
        )
    finally:
        bars_ui.stop()
    if not dry_run:
        _summary(results)
    raise typer.Exit(1 if any(r.status == "failed" for r in results) else 0)


@app.command()
def probe(
    file: Annotated[Path, typer.Argument(help="A video file.")],
) -> None:
    """Show what ganime sees in a file: geometry, timing, colour, streams, bars."""
    try:
        info = video.probe(file)
        color = video.ColorSpec.for_video(info)
        content = geometry.detect_bars(video.sample_frames(file, 12, color))
    except video.VideoError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    lay = geometry.compute_layout(info.width, info.height, info.sar, Fraction(16, 9), content)
    rate = f"{float(info.frame_rate):.3f}" if info.frame_rate else "unknown"
    out.print(f"[bold]{escape(str(file))}[/] ({info.container})")
    size = f"{info.width}x{info.height}"
    out.print(f"  video      #{info.video_index} {info.codec} {size} {info.pix_fmt} ({info.bit_depth}-bit)")
    out.print(f"  aspect     SAR {info.sar.numerator}:{info.sar.denominator}, display {info.display_aspect:.3f}:1")
    out.print(
        f"  timing     {rate} fps, time base {info.time_base}, start {info.start_time:.3f} s, "
        f"duration {info.duration or 0:.3f} s, frames {info.frame_count or 'unknown'}"
    )
    out.print(f"  scan       {'interlaced' if info.interlaced else 'progressive'}, rotation {info.rotation}")
    bars_text = f"picture {content.width}x{content.height} at {content.x},{content.y}" if content else "none"
    out.print(f"  bars       {bars_text}")
    out.print(f"  16:9 plan  {escape(lay.describe())}{' (already at target)' if lay.at_target else ''}")
    for s in info.streams:
        out.print(f"  stream     {escape(s.describe())}")
    for sc in video.find_sidecars(file):
        out.print(f"  sidecar    {escape(sc.describe())}")
    out.print(f"  chapters   {info.chapters}")


def _model_list(text: str | None) -> tuple[str, ...]:
    """Names from ``--model a,b``; by default every model that can run here."""
    runnable = [n for n, s in REGISTRY.items() if not s.needs_weights or find_weights(n) is not None]
    names = tuple(n.strip() for n in (text or ",".join(runnable)).split(",") if n.strip())
    for n in names:
        if n not in REGISTRY:
            raise typer.BadParameter(f"unknown model {n!r} (choose from {', '.join(REGISTRY)})", param_hint="--model")
    return names


@app.command("eval")
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
) -> None:
    """Score models on native 16:9 footage: LPIPS, sharpness, patch distance, PSNR, SSIM, flicker of the sides."""
    from . import evaluate

    try:
        aspect = geometry.parse_aspect(source_aspect)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--source-aspect") from None
    options = evaluate.EvalOptions(
        models=_model_list(model),
        source_aspect=aspect,
        frames=frames,
        stride=stride,
        start=parse_time(start, "--start") or 0.0,
        height=height or None,
        device=device,
        batch_size=batch_size,
        sheet_frames=sheet_frames,
        weights=weights,
        temporal=(True, False) if temporal.strip().lower() == "both" else (_on_off(temporal, "--temporal"),),
        perceptual=perceptual,
        report=tuple(n.strip() for n in report.split(",") if n.strip()),
    )
    try:
        with err.status("evaluating") as status:
            report = evaluate.evaluate(clips, options, output, progress=lambda m: status.update(escape(m)))
    except FileNotFoundError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    except (ValueError, video.VideoError, pipeline.ConvertError, WeightsError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    table = Table(title=f"ganime eval ({len(report.clips())} clips, {report.seconds:.0f} s)", title_justify="left")
    cols = ("model", "LPIPS", "sharp", "patch", "PSNR", "SSIM", "temporal", "flicker", "fps")
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=col == "model")

    def fmt(v: float, spec: str) -> str:
        return "n/a" if math.isnan(v) else format(v, spec)

    for m in report.models():
        r = report.mean(m)
        table.add_row(
            m,
            fmt(r["lpips"], ".4f"),
            fmt(r["sharpness"], ".2f"),
            fmt(r["patch"], ".1f"),
            f"{r['psnr']:.2f}",
            f"{r['ssim']:.4f}",
            f"{r['temporal']:.2f}",
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


@app.command()
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
    from . import evaluate

    models = _model_list(model)
    dst = output or file.with_name(f"{file.stem}.preview.png")
    try:
        path = evaluate.preview(file, parse_time(at, "--at") or 0.0, models, dst, device, weights=weights)
    except (ValueError, video.VideoError, pipeline.ConvertError, WeightsError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    out.print(f"wrote {escape(str(path))}")


def _config_overrides(items: list[str] | None) -> dict:
    """``--set n_blocks=3 --set ngf=32`` -> {"n_blocks": 3, "ngf": 32} (numbers parsed)."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _other_rank() -> bool:
    """Under torchrun, ranks other than 0 train quietly (rank 0 reports for the run)."""
    return int(os.environ.get("RANK", "0") or 0) > 0


@app.command()
def train(
    data: Annotated[
        list[Path], typer.Option("--data", "-d", help="Videos, images or folders of them (16:9 or wider).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The weight file to write (.safetensors).")],
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", "-m", help="Model to train (its architecture). Default: the best neural model."),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per step.")] = 8,
    lr: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(min=0.0, help="Generator learning rate (Adam). Default: LaMa 1e-3, others 2e-4."),
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="Model config override, e.g. --set n_blocks=3 (repeatable)."),
    ] = None,
    init: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Start from these weights: a model name or a .safetensors file (fine-tuning)."),
    ] = None,
    resume: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Continue an interrupted run exactly from its checkpoint."),
    ] = None,
    val_every: Annotated[int, typer.Option(min=1, help="Validate (and keep the best weights) every N steps.")] = 200,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Write a checkpoint every N steps.")] = 200,
    height: Annotated[int, typer.Option(min=16, help="Training height (the width is 16:9 of it).")] = 144,
    ssim_weight: Annotated[
        float, typer.Option(min=0.0, help="Add this weight of 1 - SSIM to the family's losses (0: the papers').")
    ] = 0.0,
    val_frames: Annotated[int, typer.Option(min=1, help="Held-out frames scored at each validation.")] = 128,
    perceptual: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Folder of perceptual weights (VGG16 for the loss, LPIPS for validation).",
            envvar="GANIME_PERCEPTUAL",
        ),
    ] = None,
    perceptual_weight: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(min=0.0, help="Weight of the VGG16 perceptual loss. Default: LaMa 30, others 0."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.", envvar="GANIME_DEVICE")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for initialisation and data order.")] = 0,
) -> None:
    """Fine-tune or train a model on your own shows (16:9 footage is its own ground truth)."""
    from .train import StepReport, Stopped, Trainer, TrainOptions

    name = model or next((n for n in PREFERENCE if REGISTRY[n].needs_weights), "glcic")
    if name not in REGISTRY:
        raise typer.BadParameter(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})", param_hint="--model")
    width = round(height * 16 / 9 / 8) * 8
    options = TrainOptions(
        data=data, output=output, model=name, steps=steps, batch_size=batch_size, lr=lr,
        config=_config_overrides(set_), init=init, resume=resume, val_every=val_every,
        checkpoint_every=checkpoint_every, device=device, seed=seed, height=height // 8 * 8, width=width,
        ssim_weight=ssim_weight, val_frames=val_frames, perceptual=perceptual, perceptual_weight=perceptual_weight,
    )  # fmt: skip
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=_other_rank(),
    )
    task = progress.add_task(f"train {name}", total=steps, info="")

    def show(r: StepReport) -> None:
        text = " ".join(f"{k} {v:.4f}" for k, v in r.losses.items())
        if r.val:
            text += f" | val PSNR {r.val['psnr']:.2f} SSIM {r.val['ssim']:.3f}"
            if "lpips" in r.val:
                text += f" LPIPS {r.val['lpips']:.4f}"
        progress.update(task, completed=r.step, info=escape(text))

    try:
        with progress:
            trainer = Trainer(options, progress=show)
            progress.update(task, completed=trainer.step)
            path = trainer.run()
    except (ValueError, FileNotFoundError, WeightsError, video.VideoError, FloatingPointError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    except Stopped as e:
        err.print(f"[yellow]{escape(str(e))}[/] (best weights so far in {escape(str(output))})")
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: the last checkpoint written, if any, resumes the run (--resume)")
        raise typer.Exit(130) from None
    if _other_rank():
        return
    best = f"LPIPS {trainer.best:.4f}" if trainer.score == "lpips" else f"PSNR {trainer.best:.2f} dB"
    out.print(f"wrote {escape(str(path))} (best validation {best}, {trainer.step} steps)")


models_app = typer.Typer(help="List, download and import models.", no_args_is_help=False)
app.add_typer(models_app, name="models")


def _count_parameters(name: str) -> int:
    return sum(p.numel() for p in build_model(name).parameters())


@models_app.callback(invoke_without_command=True)
def models_list(ctx: typer.Context) -> None:
    """List every model: size, where its weights come from, whether they are here."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table(title="ganime models", title_justify="left")
    for col in ("name", "parameters", "weights", "source", "what it does"):
        table.add_column(col)
    best = default_model()
    for name, spec in REGISTRY.items():
        label = f"{name} (default)" if name == best else name
        params = _count_parameters(name)
        size = f"{params / 1e6:.1f} M" if params else "-"
        if not spec.needs_weights:
            state, source = "none needed", "-"
        else:
            path = find_weights(name)
            state = f"[green]present[/] {escape(str(path))}" if path else "[yellow]missing[/]"
            if spec.source is not None:
                src = spec.source
                source = f"hf://{src.repo}/{src.filename}@{src.revision[:12]} ({src.license or spec.license})"
            else:
                source = "import (see `ganime models import-lama`)"
        table.add_row(label, size, state, escape(source), escape(spec.summary))
    out.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A model with a download (see `ganime models`).")]) -> None:
    """Download a model's weights from the Hugging Face Hub and install them."""
    if name not in REGISTRY:
        raise typer.BadParameter(f"unknown model {name!r} (choose from {', '.join(REGISTRY)})", param_hint="NAME")
    try:
        with err.status(f"downloading {name}"):
            path = pull_model(name)
    except WeightsError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    out.print(f"installed {name}: {escape(str(path))}")


@models_app.command("import-lama")
def models_import_lama(
    checkpoint: Annotated[Path, typer.Argument(help="Official LaMa best.ckpt, its zip, or a safetensors conversion.")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(help="The ganime weight file to write (default: install under --name)."),
    ] = None,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Install as this registered model (big-lama, lama-fourier, anime-lama)."),
    ] = None,
    half: Annotated[bool, typer.Option(help="Store half-precision tensors (half the size).")] = False,
) -> None:
    """Convert a LaMa checkpoint into a ganime weight file (tensors only; nothing else is unpickled)."""
    if output is None and name is None:
        raise typer.BadParameter("give an OUTPUT file or --name to install it as", param_hint="OUTPUT")
    if name is not None and (name not in REGISTRY or REGISTRY[name].arch != "lama"):
        lamas = ", ".join(n for n, s in REGISTRY.items() if s.arch == "lama")
        raise typer.BadParameter(f"{name!r} is not a LaMa model ({lamas})", param_hint="--name")
    dest = output or weights_store() / f"{name}.safetensors"
    try:
        path = import_lama(checkpoint, dest, half=half)
    except WeightsError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    out.print(f"wrote {escape(str(path))}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        # The file being written was removed by its writer; finished files stay.
        err.print("[yellow]interrupted[/]: finished outputs are kept, the unfinished one was removed")
        raise SystemExit(130) from None
