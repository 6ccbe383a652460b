"""convert_file() and convert_many(): decode -> layout -> fill -> encode, streaming.

Three stages run at once, joined by bounded queues: a reader thread demuxes and
decodes, the calling thread runs the model in batches, a writer thread encodes and
muxes. Memory is bounded by the queues, never by the episode's length. Progress is
reported through a callback; this module never prints."""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from . import failures, threads, video
from .engine import Filler, FrameFiller, PerFrameFiller, configure_cpu_threads, select_device
from .models import load_model, reseed
from .plan import (
    ConvertError,
    ConvertOptions,
    Inputs,
    Plan,
    Progress,
    ProgressCallback,
    Result,
    find_inputs,
    is_own_output,
    output_for,
    output_name,
    own_output,
    plan_file,
    plan_outputs,
    scan_inputs,
)
from .temporal import TemporalFiller, TemporalOptions, TemporalStats
from .weights import WeightsError

__all__ = [
    "ENCODE_QUEUE_BYTES",
    "ConvertError",
    "ConvertOptions",
    "Inputs",
    "Plan",
    "Progress",
    "ProgressCallback",
    "Result",
    "attempt_key",
    "convert_file",
    "convert_many",
    "describe_device",
    "encode_queue_size",
    "find_inputs",
    "is_own_output",
    "make_filler",
    "make_stage",
    "output_for",
    "output_name",
    "own_output",
    "own_outputs_skipped",
    "plan_file",
    "plan_outputs",
    "read_frames",
    "remembered_failure",
    "scan_inputs",
]


# ----------------------------------------------------------------------- running

_END = object()


class _Stage(threading.Thread):
    """A worker thread whose exception is kept for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e


def _put(q: queue.Queue, item: object, stop: threading.Event, consumer: _Stage | None = None) -> None:
    """Put without blocking forever when the other side has stopped or died."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            if consumer is not None and consumer.error is not None:
                raise consumer.error from None


def _get(q: queue.Queue, stop: threading.Event, others: list[_Stage]) -> object:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            for s in others:
                if s.error is not None:
                    raise s.error from None
            if stop.is_set():
                return _END


def describe_device(spec: str) -> str:
    """What ``--device`` resolves to here, for the user to read (raises ValueError)."""
    device = select_device(spec)
    if device.type == "cuda":
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu" if spec != "auto" else "cpu (no CUDA GPU found)"


def make_filler(plan: Plan, options: ConvertOptions, device: torch.device) -> Filler:
    """The engine for one planned file: its model on its device, laid out by its plan."""
    try:
        model = load_model(plan.model, plan.weights, device)
    except WeightsError as e:
        raise ConvertError(f"{plan.input}: {e}") from e
    if options.seed is not None:
        reseed(model, options.seed)
    return Filler(model, plan.layout, device, options.batch_size)


def convert_file(
    src: str | Path,
    output: str | Path | None = None,
    options: ConvertOptions | None = None,
    progress: ProgressCallback | None = None,
    *,
    plan: Plan | None = None,
    index: int = 0,
    files: int = 1,
) -> Result:
    """Convert one file. Raises ConvertError with a one-line reason on failure.

    The output appears under its final name only when complete; an existing output
    is skipped unless ``options.overwrite``.
    """
    options = options or ConvertOptions()
    plan = plan or plan_file(src, output, options)
    if plan.skip_reason:
        return Result(plan.input, plan.output, "skipped", plan.skip_reason, plan=plan)
    if plan.output.exists() and not options.overwrite:
        return Result(plan.input, plan.output, "skipped", "output exists (use --overwrite to replace it)", plan=plan)
    try:
        device = select_device(options.device)
    except ValueError as e:
        raise ConvertError(str(e)) from e
    started = time.perf_counter()
    try:
        run = _run(plan, options, device, progress, index, files)
    except video.DamagedSource as e:
        failures.remember(plan.input, attempt_key(options), _reason_only(plan.input, str(e)))
        raise ConvertError(str(e)) from e
    except video.VideoError as e:
        raise ConvertError(str(e)) from e
    except av.FFmpegError as e:
        why = getattr(e, "strerror", None) or str(e)
        if getattr(e, "filename", None) and Path(e.filename) == video.partial_path(plan.output):
            why = f"the output could not be written ({why}); the source's streams look damaged"
            failures.remember(plan.input, attempt_key(options), why)
        raise ConvertError(f"{plan.input}: {why}") from e
    failures.forget(plan.input)
    seconds = time.perf_counter() - started
    msg = f"{run.decode_errors} damaged packet(s) skipped" if run.decode_errors else ""
    return Result(
        plan.input,
        plan.output,
        "converted",
        msg,
        run.frames,
        seconds,
        run.decode_errors,
        warnings=run.warnings,
        plan=plan,
        fill_seconds=run.fill_seconds,
        characters_copied=run.characters_copied,
    )


def attempt_key(options: ConvertOptions) -> str:
    """The options that decide whether a damaged source fails (see ``failures``)."""
    return f"start={options.start} duration={options.duration} keep_incomplete={options.keep_incomplete}"


def _reason_only(src: Path, message: str) -> str:
    return message.removeprefix(f"{src}: ")


def remembered_failure(src: Path, dst: Path | None, options: ConvertOptions) -> Result | None:
    """A ``failed`` result for a source that failed on its content before and has not changed
    since (unless ``options.retry``); None when it is to be converted."""
    if options.retry:
        return None
    prior = failures.lookup(src, attempt_key(options))
    if prior is None:
        return None
    return Result(src, dst, "failed", f"{src}: {prior.describe()}; not decoded again (--retry tries anyway)")


ENCODE_QUEUE_BYTES = 256 << 20
ENCODER_NICE = 10  # how far the writer and the encoder's threads yield to the fill (``write``)


def encode_queue_size(plan: Plan, batch: int) -> int:
    """Frames that may wait for the encoder: as many as fit in ``ENCODE_QUEUE_BYTES``.

    The temporal engine's cost per frame is uneven: a held drawing costs it next to
    nothing, a shot's key frame a network run. A long queue lets it run ahead through
    held frames, so that the encoder still has work while it spends a key frame (on
    the 2-core benchmark a 192-frame queue converts ~14 % faster than a 48-frame one).
    Bounded in bytes, not frames, so that HD episodes hold no more memory than DVDs.
    """
    lay, info = plan.layout, plan.info
    sample = 2 if info.bit_depth > 8 else 1
    frame = lay.canvas_width * lay.canvas_height * 3 * sample + info.width * info.height * 3 // 2 * sample
    return max(4 * batch, 16, min(256, ENCODE_QUEUE_BYTES // max(1, frame)))


@dataclass(frozen=True)
class _Converted:
    """What running one planned file did."""

    frames: int
    decode_errors: int
    warnings: list[str]
    fill_seconds: float
    characters_copied: float = math.nan


def _run(
    plan: Plan, options: ConvertOptions, device: torch.device, progress: ProgressCallback | None, index: int, files: int
) -> _Converted:
    """Decode -> fill -> encode one planned file: the stages built, then run side by side."""
    stage = make_stage(plan, options, device)
    excerpt = options.start is not None or options.duration is not None
    reader = video.Reader(
        plan.input,
        copy=tuple(s.index for s in plan.info.copied_streams),
        start=options.start,
        duration=options.duration,
        color=plan.color,
        keep_planes=True,
        fields=plan.deinterlace,
    )
    try:
        writer, notes = _open_writer(plan, reader, options, excerpt)
    except BaseException:
        reader.close()
        raise

    def report(done: int, seconds: float, finished: bool = False) -> None:
        if progress:
            total = done if finished else _expected_frames(plan, options, excerpt)
            progress(Progress(plan.input, index, files, done, total, seconds, done=finished))

    try:
        if isinstance(stage, TemporalFiller):
            stage.centre_from_planes = writer.pix_fmt  # the writer copies the picture from them
        done = _stream(plan, reader, stage, writer, report, excerpt, options.keep_incomplete)
    except BaseException:  # whenever it comes (Ctrl-C too), nothing half-written stays
        writer.abort()
        reader.close()
        raise
    warnings = notes + writer.warnings + _shortfall(plan, reader, excerpt, options.encoder.codec)
    stats = getattr(stage, "stats", None)
    copied = stats.copied_share if isinstance(stats, TemporalStats) else math.nan
    return _Converted(done, reader.decode_errors, warnings, stage.seconds, copied)


def make_stage(plan: Plan, options: ConvertOptions, device: torch.device) -> FrameFiller:
    """The fill stage for one planned file: the temporal engine, or every frame on its own."""
    filler = make_filler(plan, options, device)
    if filler.device.type == "cpu":
        # The encoder keeps a core busy. Only a network run on every frame gains from
        # torch having that core too; the weight-free fills and the temporal engine
        # (many small steps) lose more to threads contending with it (on 2 cores,
        # OMP_NUM_THREADS=1 converts the benchmark clip ~15 % faster than 2).
        neural = any(True for _ in filler.model.parameters())
        configure_cpu_threads(reserve=0 if neural and not options.temporal else 1)
    if options.temporal:
        return TemporalFiller(
            filler,
            TemporalOptions(
                window=options.temporal_window, characters=options.characters, provenance=options.provenance
            ),
        )
    if options.characters:
        from .temporal.characters import frame_characters

        return PerFrameFiller(filler, frame_characters(plan.layout.content, filler.device))
    return PerFrameFiller(filler)


def _expected_frames(plan: Plan, options: ConvertOptions, excerpt: bool) -> int | None:
    """Frames the conversion should produce (for the progress bar), where known."""
    info = plan.info
    rate = plan.deinterlace.rate(info.frame_rate) if plan.deinterlace else info.frame_rate
    if (excerpt or plan.deinterlace) and rate:
        span = options.duration if options.duration is not None else (info.duration or 0) - (options.start or 0)
        return max(1, round(max(0.0, span) * float(rate)))
    return info.estimated_frames


def _open_writer(
    plan: Plan, reader: video.Reader, options: ConvertOptions, excerpt: bool
) -> tuple[video.Writer, list[str]]:
    """The output, with the sidecars that can be read; notes say what became of the others."""
    sidecars: list[tuple[av.container.InputContainer, video.Sidecar, list[av.Packet]]] = []
    notes: list[str] = []
    try:
        for sc in plan.sidecars:
            # A sidecar that cannot be read costs itself only, not the episode.
            try:
                c, enc = video.open_sidecar(sc)
            except (av.FFmpegError, OSError) as e:
                notes.append(f"{sc.path.name}: not added, not a subtitle file that can be read ({e})")
                continue
            packets, cues = reader.sidecar_packets(c)
            if not cues:
                notes.append(f"{sc.path.name}: not added, no subtitles could be read from it")
                c.close()
                continue
            sidecars.append((c, sc, packets))
            if enc is not None:
                notes.append(f"{sc.path.name}: not UTF-8; read as {enc} and stored as UTF-8")
        info = plan.info
        writer = video.Writer(
            plan.output,
            reader.container,
            reader.stream,
            video.Picture(
                plan.layout,
                info.bit_depth,
                info.pix_fmt,
                plan.color,
                info.rotation,
                plan.fields,
                plan.deinterlace.rate(info.frame_rate) if plan.deinterlace else None,
            ),
            options.encoder,
            video.Carried(
                tuple(s.index for s in info.copied_streams),
                chapters=reader.excerpt_chapters() if excerpt else None,
                excerpt=excerpt,
                sidecars=[(c.streams[0], sc) for c, sc, _ in sidecars],
            ),
        )
        try:
            for n, (_, _, packets) in enumerate(sidecars):
                writer.copy_sidecar(-1 - n, packets)
        except BaseException:
            writer.abort()
            raise
    finally:
        for c, _, _ in sidecars:
            c.close()
    return writer, notes


def _stream(
    plan: Plan,
    reader: video.Reader,
    stage: FrameFiller,
    writer: video.Writer,
    report: Callable[..., None],
    excerpt: bool,
    keep_incomplete: bool,
) -> int:
    """Run the three stages side by side; returns the frames written. The output is
    complete under its final name on return, and removed on any failure.

    A reader thread decodes (and runs the stage's ``prepare`` on each frame) into a
    bounded queue, and hands the copied streams' packets straight to the writer's
    queue; this thread fills; a writer thread encodes and muxes (holding packets back
    until the video reaches their time).
    """
    stop = threading.Event()
    batch = getattr(stage, "batch_size", 1)
    decoded: queue.Queue = queue.Queue(maxsize=max(8, 2 * batch))
    to_write: queue.Queue = queue.Queue(maxsize=encode_queue_size(plan, batch))
    started = time.perf_counter()
    done = 0

    def read() -> None:
        for item in reader:
            if stop.is_set():
                return
            if isinstance(item, video.Frame):
                _put(decoded, stage.prepare(item), stop)
            else:
                _put(to_write, item, stop, writer_t)
        _put(decoded, _END, stop)

    def write() -> None:
        # The encoder yields to the fill: its threads start from this one, when the first
        # frame opens it, and inherit the lower priority. The fill's cost per frame is
        # uneven (held drawings next to nothing, a key frame or a mask a fraction of a
        # second); at equal priority the encoder keeps pace with the fill through held
        # drawings, its queue runs dry, and a core stands idle while the fill spends a
        # key frame. Yielding, it falls behind there and works off its queue meanwhile.
        threads.lower_priority(ENCODER_NICE)
        while (item := _get(to_write, stop, [])) is not _END:
            if isinstance(item, video.Frame):
                writer.write(item)
            else:
                writer.copy_packet(item)  # type: ignore[arg-type]

    def frames() -> Iterator[object]:
        while (item := _get(decoded, stop, [reader_t, writer_t])) is not _END:
            yield item

    def on_frames(n: int) -> None:
        nonlocal done
        done += n
        report(done, time.perf_counter() - started)

    reader_t, writer_t = _Stage(read, "ganime-read"), _Stage(write, "ganime-write")
    ok = False
    try:
        reader_t.start()
        writer_t.start()
        for frame in stage.stream(frames(), on_frames):
            _put(to_write, frame, stop, writer_t)
            if writer_t.error is not None:
                raise writer_t.error
        _put(to_write, _END, stop, writer_t)
        writer_t.join()
        reader_t.join()
        for t in (reader_t, writer_t):
            if t.error is not None:
                raise t.error
        if writer.frames_written != reader.frames_decoded:
            raise video.VideoError(
                f"{plan.input}: {reader.frames_decoded} frames decoded but {writer.frames_written} encoded"
            )
        short = _short_read(plan, reader, excerpt)
        if short and not keep_incomplete:  # nothing goes under the final name
            raise video.DamagedSource(f"{plan.input}: {short} (--keep-incomplete keeps what could be read)")
        writer.close()
        ok = True
    finally:
        stop.set()
        for t in (reader_t, writer_t):
            if t.is_alive():
                t.join(timeout=10)
        if not ok:
            writer.abort()
        reader.close()
    report(done, time.perf_counter() - started, finished=True)
    return done


def _shortfall(plan: Plan, reader: video.Reader, excerpt: bool, codec: str) -> list[str]:
    """Warnings about what the output could not be: coded progressive, or kept though cut short."""
    info, warnings = plan.info, []
    if info.interlaced and plan.fields is None:  # coded progressive after all
        warnings.append(
            f"the source is interlaced and {codec} cannot code it so: it was encoded"
            " progressive, combing and all (use --codec x264, or deinterlace it first)"
        )
    if reader.retimed:
        warnings.append(
            f"{reader.retimed} frame(s) had a timestamp that did not increase; each was moved just after the last"
        )
    short = _short_read(plan, reader, excerpt)
    if short:
        warnings.append(f"{short}; kept as asked (--keep-incomplete)")
    elif not excerpt and info.duration and reader.span < 0.9 * info.duration - 0.5:
        warnings.append(f"the video ends at {reader.span:.1f} s, the file (its sound) at {info.duration:.1f} s")
    return warnings


def _short_read(plan: Plan, reader: video.Reader, excerpt: bool) -> str | None:
    """What is missing when a source decoded short of its stated length, else None.

    Demuxers stop quietly at a broken container (a download cut off, a damaged disc
    rip), so this is judged after decoding. By time, not frame count: a variable-rate
    file leaves held frames out.
    """
    length = plan.info.duration
    if excerpt or not length or reader.span >= 0.9 * length - 0.5:
        return None
    if reader.reached >= 0.9 * length - 0.5:
        return None  # the file was read to its end: its video is just shorter than its sound (warned below)
    return f"only {reader.span:.1f} s of its {length:.1f} s of video could be read: the file looks damaged or truncated"


def convert_many(
    inputs: Iterable[str | Path],
    output: str | Path | None = None,
    options: ConvertOptions | None = None,
    progress: ProgressCallback | None = None,
    on_result: Callable[[Result], None] | None = None,
    dry_run: bool = False,
) -> list[Result]:
    """Convert files and folders; one failing file never stops the batch.

    ``output`` names the output file when a single file is given, else a folder under
    which each input folder's tree is mirrored. Existing outputs are skipped unless
    ``options.overwrite``, so re-running a batch resumes it. With ``dry_run`` each
    file is planned (status ``planned``) and nothing is written.
    """
    options = options or ConvertOptions()
    out = Path(output) if output is not None else None
    scan = scan_inputs(inputs)
    planned = plan_outputs(scan.found, out, options.aspect)
    results = own_outputs_skipped(scan, on_result)
    for i, (src, _root, dst) in enumerate(planned):
        if not dry_run and (known := remembered_failure(src, dst, options)) is not None:
            results.append(known)
            if on_result:
                on_result(known)
            continue
        try:
            plan = plan_file(src, dst, options)
            if dry_run:
                status = "skipped" if plan.skip_reason else "planned"
                result = Result(src, dst, status, plan.skip_reason or "", plan=plan)
            else:
                result = convert_file(src, dst, options, progress, plan=plan, index=i, files=len(planned))
        except ConvertError as e:
            result = Result(src, dst, "failed", str(e), error=e)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop a season
            result = Result(src, dst, "failed", f"{src}: {type(e).__name__}: {e}", error=e)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def own_outputs_skipped(scan: Inputs, on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """A ``skipped`` result for each of this tool's own outputs a folder scan left out."""
    results = [Result(path, None, "skipped", why) for path, why in scan.skipped]
    for r in results:
        if on_result:
            on_result(r)
    return results


def read_frames(path: str | Path, start: float = 0.0) -> tuple[video.VideoInfo, Iterator[np.ndarray]]:
    """A file's info and its frames, lazily, as 8-bit RGB decoded with the file's own colour matrix.

    What eval and training read footage with; conversion itself keeps 10-bit as 10-bit.
    """
    info = video.probe(path)

    def frames() -> Iterator[np.ndarray]:
        with video.Reader(path, start=start or None, color=video.ColorSpec.for_video(info)) as r:
            for item in r:
                if isinstance(item, video.Frame):
                    img = item.image
                    yield (img >> 8).astype(np.uint8) if img.dtype == np.uint16 else img

    return info, frames()
