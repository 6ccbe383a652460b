"""Planning a conversion: which files, where their outputs go, and what converting each will do.

Nothing here decodes a frame: ``plan_file`` probes a file and lays out its canvas,
model, encoder and streams (what ``--dry-run`` prints); ``pipeline`` runs the plan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from . import geometry, video
from .geometry import Layout
from .models import default_model, model_for_weights, resolve_weights
from .weights import WeightsError


class ConvertError(Exception):
    """A file that could not be converted; the message names the file and the reason."""


@dataclass(frozen=True)
class ConvertOptions:
    """Everything a conversion can be told. The CLI builds one from its flags."""

    model: str | None = None  # None: the best available (models.default_model())
    aspect: Fraction = Fraction(16, 9)
    encoder: video.EncoderSettings = field(default_factory=video.EncoderSettings)
    device: str = "auto"
    batch_size: int = 0  # 0: chosen from the frame size and device
    start: float | None = None  # seconds
    duration: float | None = None  # seconds
    overwrite: bool = False
    force: bool = False  # convert even when the source is already at the target aspect
    detect_bars: bool = True
    sidecars: bool = True  # add the subtitle files beside the source (ep01.eng.srt) as streams
    keep_incomplete: bool = False  # keep the output of a source that decodes short of its length
    deinterlace: str = "auto"  # auto, off, ivtc (inverse telecine) or bwdif (see video.fields)
    weights: Path | None = None  # a ganime weight file for the model (default: its installed weights)
    temporal: bool = True  # shots, held frames, camera motion and propagation; False: every frame alone
    temporal_window: int = 48  # frames of look-ahead and look-behind for the temporal engine
    retry: bool = False  # convert sources that failed on their content before (ganime.failures)
    characters: bool = True  # keep characters (ganime.segment) out of what the sides are made from
    provenance: bool = False  # trace the share of side pixels copied from characters (for ganime eval; slow)
    seed: int | None = None  # the seed of a model's random search (patch's); None: the model's own

    @property
    def model_name(self) -> str:
        """The model that runs: as asked, else the one ``weights`` holds, else the best available.

        Raises WeightsError for a ``weights`` file that is not a ganime weight file.
        """
        if self.model:
            return self.model
        return model_for_weights(self.weights) if self.weights is not None else default_model()


@dataclass(frozen=True)
class Plan:
    """What converting one file will do; also what --dry-run prints."""

    input: Path
    output: Path
    info: video.VideoInfo
    layout: Layout
    model: str
    encoder: str
    pix_fmt: str
    color: video.ColorSpec
    skip_reason: str | None = None
    weights: Path | None = None
    fields: str | None = None  # 'tff'/'bff': coded interlaced like the source
    deinterlace: video.FieldPlan | None = None  # made progressive on decoding (telecine, interlace)
    changes: tuple[str, ...] = ()  # copied streams the output container cannot hold as they are
    sidecars: tuple[video.Sidecar, ...] = ()  # subtitle files beside the source, added as streams

    @property
    def kept_streams(self) -> tuple[video.StreamInfo, ...]:
        return self.info.copied_streams

    @property
    def dropped_streams(self) -> tuple[video.StreamInfo, ...]:
        """Other video streams (angles, previews) are not carried over; cover art is."""
        return tuple(
            s for s in self.info.streams if s.type == "video" and not s.cover and s.index != self.info.video_index
        )


@dataclass
class Result:
    """The outcome of one file."""

    input: Path
    output: Path | None
    status: str  # converted | skipped | failed | planned
    message: str = ""
    frames: int = 0
    seconds: float = 0.0
    decode_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    plan: Plan | None = None
    error: BaseException | None = None  # the exception behind a failure, for -v
    fill_seconds: float = 0.0  # time spent in the model and compositor
    characters_copied: float = math.nan  # share of side pixels copied from characters (provenance only)

    @property
    def fill_fps(self) -> float:
        return self.frames / self.fill_seconds if self.fill_seconds > 0 else 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Progress:
    """A progress report: ``frames`` of about ``total`` done for file ``index`` of ``files``."""

    path: Path
    index: int
    files: int
    frames: int
    total: int | None
    elapsed: float
    done: bool = False


ProgressCallback = Callable[[Progress], None]


# ----------------------------------------------------------------------- planning


def output_name(path: Path, aspect: Fraction) -> str:
    """``episode.mkv`` -> ``episode.16x9.mkv`` (always Matroska unless told otherwise)."""
    return f"{path.stem}.{geometry.aspect_label(aspect)}.mkv"


# What ``output_name`` appends (``.16x9.mkv``, ``.2.39.mp4``), and a partial file's name.
_OWN_NAME = re.compile(r"\.(?:\d{1,2}x\d{1,2}|\d\.\d\d)(?P<partial>\.partial)?\.[A-Za-z0-9]+$")


def own_output(path: Path) -> str | None:
    """Why ``path`` is a file this tool wrote (a folder scan leaves it out), or None.

    The name alone cannot say so: ``.1x01.mkv`` is how many rips name season 1,
    episode 1. A finished output is known by the tag ganime writes into it
    (``video.written_by_ganime``); an unfinished one by its exact ``.partial`` name.
    """
    m = _OWN_NAME.search(path.name)
    if m is None:
        return None
    if m["partial"]:
        return "an unfinished output of ganime (removed or remade when its episode is converted)"
    if video.written_by_ganime(path):
        return "written by ganime (a converted episode, not a source)"
    return None


def is_own_output(path: Path) -> bool:
    """True for files this tool writes, which a folder scan must not convert again."""
    return own_output(path) is not None


@dataclass
class Inputs:
    """What a scan found: (file, the folder it was found under or None), and what it left out and why."""

    found: list[tuple[Path, Path | None]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def scan_inputs(paths: Iterable[str | Path], also: frozenset[str] = frozenset()) -> Inputs:
    """Expand files and folders into the video files to convert.

    Folders are searched recursively for video extensions (plus ``also``), in sorted
    order; this tool's own outputs found there are left out, each with the reason
    (a file named on the command line is always taken). A file named twice (itself
    and the folder holding it) is listed once. A path that does not exist raises
    FileNotFoundError.
    """
    wanted = video.VIDEO_EXTENSIONS | also
    scan = Inputs()
    seen: set[Path] = set()

    def add(f: Path, root: Path | None) -> None:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            scan.found.append((f, root))

    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file() or f.suffix.lower() not in wanted or f.resolve() in seen:
                    continue
                why = own_output(f)
                if why is None:
                    add(f, p)
                else:
                    seen.add(f.resolve())
                    scan.skipped.append((f, why))
        elif p.exists():
            add(p, None)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return scan


def find_inputs(paths: Iterable[str | Path], also: frozenset[str] = frozenset()) -> list[tuple[Path, Path | None]]:
    """The (video file, folder it was found under or None) pairs of ``scan_inputs``."""
    return scan_inputs(paths, also).found


def output_for(src: Path, root: Path | None, output: Path | None, single: bool, aspect: Fraction) -> Path:
    """Where ``src`` is written: beside it; or ``output`` (a file for one input, else a folder)."""
    name = output_name(src, aspect)
    if output is None:
        return src.with_name(name)
    if single and not output.is_dir() and output.suffix:
        return output
    if root is not None:
        return output / src.relative_to(root).parent / name
    return output / name


def plan_outputs(
    found: list[tuple[Path, Path | None]], output: Path | None, aspect: Fraction
) -> list[tuple[Path, Path | None, Path]]:
    """(source, folder, output) for each source of a batch.

    Two sources that would write the same output (``ep1.avi`` and ``ep1.mkv`` side by
    side) keep their extension in the name instead (``ep1.avi.16x9.mkv``), so neither
    is skipped as "already converted" nor overwrites the other.
    """
    single = len(found) == 1 and found[0][1] is None
    dsts = [output_for(src, root, output, single, aspect) for src, root in found]
    counts: dict[Path, int] = {}
    for d in dsts:
        counts[d.resolve()] = counts.get(d.resolve(), 0) + 1
    planned = []
    for (src, root), dst in zip(found, dsts, strict=True):
        if counts[dst.resolve()] > 1:
            dst = dst.with_name(f"{src.name}.{dst.name.removeprefix(src.stem + '.')}")
        planned.append((src, root, dst))
    return planned


def _field_order(info: video.VideoInfo, encoder: video.EncoderSettings) -> str | None:
    """'tff'/'bff' when the output is to stay interlaced like the source, else None."""
    if not (info.interlaced and encoder.keeps_interlacing) or info.rotation in (90, 270):
        return None  # (a picture turned a quarter has its fields in columns: coded progressive)
    return "tff" if info.top_field_first else "bff"


# Narrower than this (display aspect of the picture) is not a 4:3 show: a phone video or a
# square crop, 38 % or more of whose 16:9 frame would be generated. 5:4 (1.25) converts.
NARROWEST = 1.1


def plan_file(src: str | Path, output: str | Path | None, options: ConvertOptions) -> Plan:
    """Probe ``src`` and decide geometry, model and encoder. Reads, never writes."""
    src = Path(src)
    try:
        info = video.probe(src)
    except video.VideoError as e:
        raise ConvertError(str(e)) from e
    try:  # an unknown model or missing weights fail before any work
        weight_file = resolve_weights(options.model_name, options.weights)
    except (ValueError, WeightsError) as e:
        raise ConvertError(f"{src}: {e}") from e
    color = video.ColorSpec.for_video(info)
    content = None
    if options.detect_bars:
        content = geometry.detect_bars(video.sample_frames(src, 12, color))
    layout = geometry.compute_layout(*video.even_size(info.width, info.height), info.sar, options.aspect, content)
    out = Path(output) if output is not None else src.with_name(output_name(src, options.aspect))
    if out.resolve() == src.resolve():
        raise ConvertError(f"{src}: the output would overwrite the input")
    if video.output_format(out) == "webm" and options.encoder.codec != "av1":
        raise ConvertError(f"{out}: WebM holds only AV1 of the codecs ganime writes: use --codec av1 or an .mkv output")
    skip = None
    if layout.at_target and not options.force:
        skip = (
            f"already {layout.content_aspect:.2f}:1, at or wider than the target "
            f"{float(options.aspect):.2f}:1 (use --force to convert anyway)"
        )
    elif layout.content_aspect < NARROWEST and not options.force:
        generated = 1 - layout.content_aspect / layout.display_aspect
        shape = "portrait" if layout.content_aspect < 1 else "near-square"
        if info.rotation:
            shape += f" as shown (turned {info.rotation}° by its display rotation)"
        skip = (
            f"{shape} ({layout.content_aspect:.2f}:1): {generated:.0%} of the picture would be generated"
            " (use --force to convert anyway)"
        )
    enc = options.encoder
    changes = ()
    fields_plan = None
    if skip is None:
        flagged = ("tff" if info.top_field_first else "bff") if info.interlaced else None
        try:
            fields_plan = video.plan_fields(src, options.deinterlace, info.frame_rate, flagged)
        except (av.FFmpegError, ValueError):  # a file idet cannot read is left as it is
            fields_plan = None
        copy = tuple(s.index for s in info.copied_streams)
        changes = tuple(video.stream_changes(src, copy, video.output_format(out)))
    return Plan(
        input=src,
        output=out,
        info=info,
        layout=layout,
        model=options.model_name,
        encoder=enc.encoder_name(info.bit_depth),
        pix_fmt=enc.pix_fmt(info.pix_fmt, info.bit_depth),
        color=color,
        skip_reason=skip,
        weights=weight_file,
        fields=_field_order(info, enc) if fields_plan is None else None,  # made progressive: coded so
        deinterlace=fields_plan,
        changes=changes,
        sidecars=tuple(video.find_sidecars(src)) if options.sidecars else (),
    )
