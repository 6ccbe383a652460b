"""``ganime convert`` and ``ganime probe``: progress bars, plans, summaries."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import typer
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

from .. import __version__, geometry, pipeline, video
from ..entry import exit_code
from ..models import REGISTRY, resolve_weights
from ..weights import WeightsError
from .app import Command, app, err, out, parse_time, stop_word, usage_error


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
    from .. import cluster

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
    if plan.deinterlace is not None:
        out.print(f"  fields   {escape(plan.deinterlace.describe())}")
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


def _check_setup(options: pipeline.ConvertOptions, output: Path | None, ray: bool) -> str:
    """Check what every file of a batch shares: model and weights, encoder, device, container.

    Exits with a usage error (2) naming the option, what is wrong and what would work;
    returns where the model runs, for the first line.
    """
    try:
        name = options.model_name
    except WeightsError as e:
        usage_error("--weights", str(e))
    try:
        resolve_weights(name, options.weights)
    except WeightsError as e:
        usage_error("--weights" if options.weights is not None else "--model", str(e))
    try:
        options.encoder.check_available()
    except video.EncoderSettingsError as e:
        usage_error(e.flag, str(e))
    if output is not None and video.output_format(output) == "webm" and options.encoder.codec != "av1":
        usage_error(
            "--codec",
            f"{output}: WebM holds only AV1 of the codecs ganime writes; use --codec av1 or an .mkv output",
        )
    if ray:
        return f"the Ray workers' {options.device}"  # their devices, not this machine's
    try:
        return pipeline.describe_device(options.device)
    except ValueError as e:
        usage_error("--device", str(e))


def check_start(path: Path, start: float, flag: str) -> None:
    """A usage error when ``start`` is past the end of ``path`` (a file ganime cannot read fails later, alone)."""
    try:
        length = video.probe(path).duration
    except video.VideoError:
        return
    if length and start >= length:
        raise typer.BadParameter(f"{start:g} s is past the end of {path} ({length:.1f} s long)", param_hint=flag)


@app.command(cls=Command)
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
        typer.Option(
            help="A ganime weight file (ganime train, models import-lama); without -m, the model it holds runs."
        ),
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
    force: Annotated[
        bool, typer.Option(help="Convert sources already at the target aspect, portrait or near-square.")
    ] = False,
    deinterlace: Annotated[
        str,
        typer.Option(
            help="auto: inverse telecine for telecined sources (NTSC DVDs of film), bwdif for interlaced"
            " ones, found with idet; ivtc or bwdif: always; off: leave the fields as they are.",
        ),
    ] = "auto",
    keep_incomplete: Annotated[
        bool,
        typer.Option(help="Keep the output of a source that decodes short of its length (damaged, truncated)."),
    ] = False,
    retry: Annotated[
        bool,
        typer.Option(
            "--retry",
            help="Decode again sources that failed on their content before (damaged, cut short); they are"
            " otherwise failed at once while the file and the options that failed stay the same.",
        ),
    ] = False,
    characters: Annotated[
        bool,
        typer.Option(
            help="Find the characters by the seams (U²-Net-p) where a side is made: the sides never copy them,"
            " nor mirror them (about 0.7 s more per key frame on CPU; see docs/temporal.md).",
        ),
    ] = True,
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
    except video.EncoderSettingsError as e:
        raise typer.BadParameter(str(e), param_hint=e.flag) from None
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
        keep_incomplete=keep_incomplete,
        deinterlace=deinterlace,
        detect_bars=bars,
        sidecars=sidecars,
        weights=weights,
        temporal=temporal,
        temporal_window=temporal_window,
        retry=retry,
        characters=characters,
    )
    if options.deinterlace not in video.FIELD_CHOICES:
        raise typer.BadParameter(
            f"{options.deinterlace!r} is not one of {', '.join(video.FIELD_CHOICES)}", param_hint="--deinterlace"
        )
    if options.duration is not None and options.duration <= 0:
        raise typer.BadParameter("must be more than 0 seconds", param_hint="--duration")
    where = _check_setup(options, output, ray)  # before any file is opened: a batch fails once, not per file
    try:
        scan = pipeline.scan_inputs(inputs)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    found = scan.found
    if not found:
        places = escape(", ".join(map(str, inputs)))
        if scan.skipped:
            err.print(
                f"[red]error:[/] nothing to convert in {places}:"
                f" its {len(scan.skipped)} video file(s) were written by ganime"
            )
        else:
            err.print(f"[red]error:[/] no video files in {places}")
        raise typer.Exit(2)
    if options.start and len(found) == 1:
        check_start(found[0][0], options.start, "--start")
    if output is not None and len(found) > 1 and output.suffix and not output.is_dir():
        err.print(f"[red]error:[/] {escape(str(output))}: several inputs need an output folder, not a file")
        raise typer.Exit(2)
    if not dry_run:
        name = options.model_name
        err.print(f"ganime {__version__}: model [bold]{name}[/] on {where}, encoder {encoder.encoder_name(8)}")

    bars_ui = _Bars(progress and not dry_run)
    finished: list[pipeline.Result] = []

    def on_result(r: pipeline.Result) -> None:
        finished.append(r)
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
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP
        bars_ui.stop()
        _interrupted(finished, len(found) + len(scan.skipped), stop_word(e))
        raise typer.Exit(exit_code(e)) from None
    finally:
        bars_ui.stop()
    if not dry_run:
        _summary(results)
    raise typer.Exit(1 if any(r.status == "failed" for r in results) else 0)


def _interrupted(finished: list[pipeline.Result], files: int, what: str = "interrupted") -> None:
    """One line on Ctrl-C or SIGTERM: what was kept and what was not."""
    done = [r for r in finished if r.status == "converted"]
    kept = f"{len(done)} converted output(s) kept" if done else "no output was finished"
    rest = files - len(finished) - 1  # after the one being converted
    err.print(
        f"[yellow]{what}:[/] {kept}; the file being converted was removed (nothing of it under its name)"
        + (f"; {rest} file(s) not converted (run the same command again to go on)" if rest else "")
    )


@app.command(cls=Command)
def probe(
    file: Annotated[Path, typer.Argument(help="A video file.")],
) -> None:
    """Show what ganime sees in a file: geometry, timing, colour, streams, bars."""
    if not file.exists():  # as convert says it: a path that is not there is a usage error
        err.print(f"[red]error:[/] {escape(str(file))}: no such file or folder")
        raise typer.Exit(2)
    try:
        info = video.probe(file)
        color = video.ColorSpec.for_video(info)
        content = geometry.detect_bars(video.sample_frames(file, 12, color))
    except video.VideoError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    lay = geometry.compute_layout(*video.even_size(info.width, info.height), info.sar, Fraction(16, 9), content)
    rate = f"{float(info.frame_rate):.3f}" if info.frame_rate else "unknown"
    out.print(f"[bold]{escape(str(file))}[/] ({info.container})")
    size = f"{info.width}x{info.height}"
    if info.rotation in (90, 270):
        size += f" as shown (stored {info.height}x{info.width})"
    out.print(f"  video      #{info.video_index} {info.codec} {size} {info.pix_fmt} ({info.bit_depth}-bit)")
    out.print(f"  aspect     SAR {info.sar.numerator}:{info.sar.denominator}, display {info.display_aspect:.3f}:1")
    out.print(
        f"  timing     {rate} fps, time base {info.time_base}, start {info.start_time:.3f} s, "
        f"duration {info.duration or 0:.3f} s, frames {info.frame_count or 'unknown'}"
    )
    turn = f", turned {info.rotation}° upright (display rotation)" if info.rotation else ""
    out.print(f"  scan       {'interlaced' if info.interlaced else 'progressive'}{turn}")
    bars_text = f"picture {content.width}x{content.height} at {content.x},{content.y}" if content else "none"
    out.print(f"  bars       {bars_text}")
    out.print(f"  16:9 plan  {escape(lay.describe())}{' (already at target)' if lay.at_target else ''}")
    for s in info.streams:
        out.print(f"  stream     {escape(s.describe())}")
    for sc in video.find_sidecars(file):
        out.print(f"  sidecar    {escape(sc.describe())}")
    out.print(f"  chapters   {info.chapters}")
