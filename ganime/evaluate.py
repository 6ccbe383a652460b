"""``ganime eval`` and ``ganime preview``: measure and show outpainting quality.

Native 16:9 animation is the ground truth. Its centre at the source aspect (4:3 by
default) is cut out and written as a lossless clip, that clip is converted by the
same ``convert_file`` users run (one conversion per model, lossless encode), and the
output is compared with the real sides, on the generated pixels only.

LPIPS on the strips leads the report: PSNR and SSIM reward a soft average of what a
side might hold, LPIPS (with the sharpness ratio and the patch distance beside it)
what a viewer sees. Clips named in ``report`` form the report split, the others the
tuning split: choices are made on one and shown on the other, and the report gives
both means.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import geometry, metrics, perceptual, synthetic, video
from .engine import Filler, PerFrameFiller, resize_frames, select_device
from .geometry import Layout
from .models import load_model, resolve_weights
from .pipeline import ConvertError, ConvertOptions, convert_file, find_inputs, plan_file
from .pipeline import read_frames as pipeline_read_frames

IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .webp .bmp .tif .tiff".split())
TARGET = Fraction(16, 9)
LOSSLESS = video.EncoderSettings(codec="x264", crf=0, preset="ultrafast")


@dataclass(frozen=True)
class EvalOptions:
    """How ground truth is sampled and which models are scored.

    Args:
        models: model names, scored in this order.
        source_aspect: aspect of the kept centre (what a 4:3 broadcast showed).
        frames: frames per clip, taken ``stride`` apart from ``start`` seconds.
        height: ground truth taller than this is shrunk to it (None keeps it).
        sheet_frames: frames per clip on the contact sheet.
    """

    models: tuple[str, ...] = ("edge", "blur")
    source_aspect: Fraction = Fraction(4, 3)
    frames: int = 48
    stride: int = 1
    start: float = 0.0
    height: int | None = 480
    device: str = "auto"
    batch_size: int = 0
    sheet_frames: int = 3
    weights: Path | None = None  # a weight file for the (single) model evaluated
    temporal: tuple[bool, ...] = (True, False)  # the temporal engine on, off (per frame), or both
    perceptual: Path | None = None  # folder of LPIPS weights (else $GANIME_PERCEPTUAL, else download)
    report: tuple[str, ...] = ()  # clip names or glob patterns of the report split (the rest: tuning)
    characters: bool = True  # characters are kept out of the sides (ConvertOptions, as convert does)
    provenance: bool = True  # measure the share of side pixels copied from characters (segmenter on every frame)
    show_masks: bool = False  # contact sheets show the characters the segmenter finds in each picture
    # Runs per clip of a model with a seeded random search (patch), seeds 0 .. seeds-1, the
    # figures averaged: one run of such a model is one draw, which moves a clip's LPIPS by
    # up to ~0.015 (benchmarks/results/issue31/session7). Deterministic models run once.
    seeds: int = 1


def label(model: str, temporal: bool) -> str:
    """How a model run is named in reports: per-frame runs say so."""
    return model if temporal else f"{model} per-frame"


@dataclass
class Score:
    """One model on one clip."""

    clip: str
    model: str
    frames: int
    width: int
    height: int
    psnr: float
    ssim: float
    temporal: float
    flicker: float
    seam: float
    fill_fps: float
    total_fps: float
    lpips: float = math.nan  # NaN: no perceptual weights (see Report.notes)
    sharpness: float = math.nan
    patch: float = math.nan
    pops: float = 0.0  # frame pairs where a side block changes far beyond picture and truth (metrics.pops)
    copied: float = math.nan  # % of side pixels copied from characters (temporal engine; NaN: not traced)
    split: str = "tune"  # "tune" or "report"
    seeds: int = 1  # runs averaged: one per seed of a model with a random search (EvalOptions.seeds)
    spread: float = math.nan  # largest minus smallest LPIPS over those runs (NaN: one run)


@dataclass
class Report:
    """Every score, plus where the files went."""

    scores: list[Score]
    options: EvalOptions
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # clips in a folder that are not usable truth: why
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why

    def models(self) -> list[str]:
        return list(dict.fromkeys(s.model for s in self.scores))

    def clips(self) -> list[str]:
        return list(dict.fromkeys(s.clip for s in self.scores))

    KEYS = (
        *("lpips", "copied", "sharpness", "patch", "pops", "psnr", "ssim"),
        *("temporal", "flicker", "seam", "fill_fps", "total_fps"),
    )

    def splits(self) -> list[str]:
        """The splits present, tuning first."""
        return [s for s in ("tune", "report") if any(x.split == s for x in self.scores)]

    def mean(self, model: str, split: str | None = None) -> dict[str, float]:
        """Mean of each figure over the clips (of one split, or all); PSNR: mean of the per-clip dB;
        pops: their sum (a count).

        A figure no clip could give (LPIPS without weights) is NaN.
        """
        rows = [s for s in self.scores if s.model == model and (split is None or s.split == split)]
        out = {}
        for k in self.KEYS:
            vals = [getattr(s, k) for s in rows if math.isfinite(getattr(s, k))]
            if k == "pops":
                out[k] = float(np.sum(vals))
                continue
            out[k] = float(np.mean(vals)) if vals else (math.inf if k == "psnr" and rows else math.nan)
        return out

    def to_json(self) -> str:
        opts = asdict(self.options)
        opts["source_aspect"] = str(self.options.source_aspect)
        opts["weights"] = str(self.options.weights) if self.options.weights else None
        opts["perceptual"] = str(self.options.perceptual) if self.options.perceptual else None
        return json.dumps(
            {
                "options": opts,
                "seconds": self.seconds,
                "mean": {m: self.mean(m) for m in self.models()},
                "clips": [asdict(s) for s in self.scores],
                "skipped": self.skipped,
            },
            indent=2,
        )

    HEAD = (
        "| model | LPIPS ↓ | chars % ↓ | sharpness →1 | patch ↓ | pops ↓ | PSNR dB ↑ | SSIM ↑ | temporal ↓ "
        "| flicker ↓ | seam ↓ "
        "| fill fps | total fps |"
    )

    @staticmethod
    def row(r: dict[str, float]) -> str:
        def f(v: float, fmt: str) -> str:
            return "n/a" if math.isnan(v) else format(v, fmt)

        return (
            f"| {f(r['lpips'], '.4f')} | {f(r.get('copied', math.nan), '.2f')} | {f(r['sharpness'], '.2f')} "
            f"| {f(r['patch'], '.2f')} | {r.get('pops', 0):.0f} "
            f"| {r['psnr']:.2f} "
            f"| {r['ssim']:.4f} | {r['temporal']:.2f} | {f(r['flicker'], '.2f')} | {r['seam']:.2f} "
            f"| {r['fill_fps']:.1f} | {r['total_fps']:.1f} |"
        )

    def to_markdown(self) -> str:
        rule = "|---" * 13 + "|"
        lines: list[str] = []
        groups: list[tuple[str | None, str]] = [(None, f"Mean over all {len(self.clips())} clip(s)")]
        if len(self.splits()) > 1:
            for split in self.splits():
                n = len({s.clip for s in self.scores if s.split == split})
                groups.append((split, f"Mean over the {'report' if split == 'report' else 'tuning'} split ({n} clips)"))
        for split, title in groups:
            lines += [f"{title}:", "", self.HEAD, rule]
            lines += [f"| {m} " + self.row(self.mean(m, split)) for m in self.models()]
            lines.append("")
        lines += [
            "Per clip:",
            "",
            "| clip | split | size | frames " + self.HEAD,
            "|---|---|---|---" + rule,
        ]
        for s in self.scores:
            where = f"| {s.clip} | {s.split} | {s.width}x{s.height} | {s.frames} | {s.model} "
            lines.append(where + self.row(asdict(s)))
        seeded = [s for s in self.scores if s.seeds > 1]
        if seeded:
            lines += ["", "Averaged over seeds (a model with a random search; its LPIPS spread between them):", ""]
            lines += [f"- {s.clip}, {s.model}: {s.seeds} seeds, spread {s.spread:.4f}" for s in seeded]
        if self.notes:
            lines += ["", *[f"Note: {n}" for n in self.notes]]
        if self.skipped:
            lines += ["", "Skipped (not usable as 16:9 ground truth):", ""]
            lines += [f"- {clip}: {why}" for clip, why in self.skipped.items()]
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ ground truth


def split_of(name: str, report: tuple[str, ...]) -> str:
    """ "report" when ``name`` (or its stem) matches one of the report split's names or patterns."""
    stem = Path(name).stem
    return "report" if any(fnmatch.fnmatchcase(n, pat) for pat in report for n in (name, stem)) else "tune"


def read_frames(
    path: Path, count: int, stride: int = 1, start: float = 0.0
) -> tuple[list[np.ndarray], video.VideoInfo]:
    """Up to ``count`` frames, ``stride`` apart from ``start`` seconds, as 8-bit RGB."""
    info, frames = pipeline_read_frames(path, start)
    return list(itertools.islice(frames, 0, count * stride, stride)), info


def fit(width: int, height: int, source_aspect: Fraction) -> tuple[int, Layout]:
    """The largest even height whose conversion canvas fits in ``width``, and that layout.

    The canvas of a converted centre is rounded up to even side widths, so it can be
    a few pixels wider than an exact 16:9 frame; the ground truth is then cut a
    couple of lines shorter so the generated sides line up with real pixels.
    """
    h = height - height % 2
    while h >= 2:
        w43 = max(2, round(h * source_aspect) // 2 * 2)
        lay = geometry.compute_layout(w43, h, Fraction(1), TARGET)
        if lay.canvas_width <= width:
            return h, lay
        h -= 2
    raise ValueError(f"a {width}x{height} frame is too small to evaluate")


def prepare_truth(frames: list[np.ndarray], sar: Fraction, options: EvalOptions) -> tuple[np.ndarray, Layout]:
    """Ground truth (T, H, W, 3) cut to the canvas a conversion of its centre produces."""
    arr = np.stack(frames)
    size = f"{arr.shape[2]}x{arr.shape[1]}" + (f" (SAR {sar.numerator}:{sar.denominator})" if sar != 1 else "")
    bars = geometry.detect_bars(list(arr[:: max(1, len(arr) // 8)]))
    if bars is not None:  # letterboxed ground truth: only the picture counts
        arr = arr[:, bars.y : bars.bottom, bars.x : bars.right]
        size += f" with its picture {bars.width}x{bars.height} inside black bars"
    h, w = arr.shape[1:3]
    shown = w * sar  # display width: anamorphic pixels are resampled to square ones
    if shown / h < float(TARGET) * 0.99:
        raise ValueError(f"{size} shows {float(shown / h):.2f}:1, narrower than 16:9: not ground truth for 16:9")
    # Wider than 16:9: keep the 16:9 centre, cut in storage pixels before any resampling.
    wide = min(shown, Fraction(math.ceil(h * TARGET) + 1))
    keep = min(w, math.ceil(wide / sar))
    x0 = (w - keep) // 2
    arr = arr[:, :, x0 : x0 + keep]
    out_h = min(h, options.height) if options.height else h
    arr = resize_frames(arr, out_h, max(2, round(keep * sar * out_h / h)))
    h, w = arr.shape[1:3]
    fh, lay = fit(w, h, options.source_aspect)
    y0, x0 = (h - fh) // 2, (w - lay.canvas_width) // 2
    return np.ascontiguousarray(arr[:, y0 : y0 + fh, x0 : x0 + lay.canvas_width]), lay


# A side strip whose brightest 1 % of samples is at most this (8-bit) is flat black.
BLACK = 24


def black_strips(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T,) bool: frames whose true sides are flat black (a fade, a title card on black).

    Any dark fill matches those sides and scores 50 dB there, which would lift a clip's
    mean by what its first frames happen to be; they are left out of the scores.
    """
    sides = truth[:, mask].reshape(len(truth), -1)
    scale = 255.0 / np.iinfo(truth.dtype).max if truth.dtype.kind == "u" else 1.0
    return np.percentile(sides, 99, axis=1) * scale <= BLACK


def centre(truth: np.ndarray, lay: Layout) -> np.ndarray:
    """The kept centre of ground-truth canvases: what a 4:3 broadcast showed."""
    return np.ascontiguousarray(truth[:, :, lay.left : lay.left + lay.content.width])


# ------------------------------------------------------------------------- eval


def evaluate(
    inputs: Iterable[str | Path],
    options: EvalOptions,
    out_dir: str | Path,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Score every model on every clip; writes eval.json, eval.md and contact sheets to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.weights is not None and len(options.models) != 1:
        raise ValueError("--weights goes with exactly one --model")
    for m in options.models:  # unknown models and missing weights fail before any work
        resolve_weights(m, options.weights)
    # A folder scan leaves out what an earlier eval wrote there (its sheets are PNGs).
    written = out_dir.resolve()
    found = find_inputs(inputs, IMAGE_EXTENSIONS)
    clips = [(p, f) for p, f in found if f is None or written not in p.resolve().parents]
    if not clips:
        raise ValueError("no clips or images to evaluate")
    report = Report([], options)
    scorer: perceptual.LPIPS | None = None
    tried = False
    started = time.perf_counter()
    sheets: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="ganime-eval-") as tmp:
        for clip, folder in clips:
            if progress:
                progress(f"{clip.name}: reading ground truth")
            frames, info = read_frames(clip, options.frames, options.stride, options.start)
            if not frames:
                raise ValueError(f"{clip}: no frames at {options.start} s")
            try:
                truth, lay = prepare_truth(frames, info.sar, options)
            except ValueError as e:
                if folder is None:  # named on its own: the user meant this clip
                    raise ValueError(f"{clip}: {e}") from None
                # A folder of footage mixes 4:3 and 16:9 clips: score those that can be.
                report.skipped[str(clip.relative_to(folder))] = str(e)
                continue
            mask = lay.mask() > 0
            keep = ~black_strips(truth, mask)  # scored frames: a black side matches any dark fill
            if not keep.any():
                report.skipped[clip.name] = f"the true sides of all {len(truth)} frames are flat black"
                continue
            if not keep.all():
                report.notes.append(
                    f"{clip.name}: {int((~keep).sum())} of {len(truth)} frames left out of the scores"
                    " (their true sides are flat black)"
                )
            src = synthetic.write_clip(
                Path(tmp) / f"{clip.stem}.4x3.mkv", list(centre(truth, lay)), crf=0, pix_fmt="yuv444p"
            )
            outputs = {}
            for model, temporal in itertools.product(options.models, options.temporal):
                name = label(model, temporal)
                if progress:
                    progress(f"{clip.name}: {name}")
                runs: list[dict[str, float]] = []
                out0: np.ndarray | None = None
                for seed in range(options.seeds):
                    dst = Path(tmp) / f"{clip.stem}.{model}.{int(temporal)}.{seed}.mkv"
                    opts = ConvertOptions(
                        model=model,
                        encoder=LOSSLESS,
                        device=options.device,
                        batch_size=options.batch_size,
                        overwrite=True,
                        detect_bars=False,
                        deinterlace="off",  # its input is the truth's own frames, written progressive
                        weights=options.weights,
                        temporal=temporal,
                        characters=options.characters,
                        provenance=options.provenance and temporal,
                        seed=seed if options.seeds > 1 else None,
                    )
                    result = convert_file(src, dst, opts)
                    out = np.stack(read_frames(dst, len(truth))[0])
                    dst.unlink()
                    if out.shape != truth.shape:
                        raise ConvertError(f"{clip}: {name} produced {out.shape[1:3]}, expected {truth.shape[1:3]}")
                    if out0 is None:
                        out0 = out
                    elif seed == 1 and np.array_equal(out, out0):
                        break  # no random search (or one the seed does not reach): one run says it all
                    m = metrics.all_metrics(out[keep], truth[keep], mask)
                    if not tried:  # loaded once there is something to score (it may download)
                        tried = True
                        try:
                            scorer = perceptual.load_lpips(options.perceptual)
                        except perceptual.PerceptualError as e:
                            report.notes.append(f"LPIPS not measured: {e}")
                    if scorer is not None:
                        m["lpips"] = metrics.strip_lpips(out[keep], truth[keep], mask, scorer.distance)
                    m.update(fill_fps=result.fill_fps, total_fps=result.fps, copied=100 * result.characters_copied)
                    runs.append(m)
                assert out0 is not None
                # Each figure is the mean over the seeds; ``spread`` says how far one draw's
                # LPIPS moved from another's (what a single run cannot tell).
                mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
                lp = [r["lpips"] for r in runs if "lpips" in r]
                spread = float(max(lp) - min(lp)) if len(lp) > 1 else math.nan
                report.scores.append(
                    Score(
                        clip.name,
                        name,
                        int(keep.sum()),
                        truth.shape[2],
                        truth.shape[1],
                        **mean,
                        split=split_of(clip.name, options.report),
                        seeds=len(runs),
                        spread=spread,
                    )
                )
                out = out0  # the sheets show the first draw
                outputs[name] = out[keep]
            truth = truth[keep]  # the sheets show scored frames, not black ones
            if options.show_masks:
                outputs = {"characters (mask)": CharacterViews(truth, lay), **outputs}  # type: ignore[dict-item]
            sheet = contact_sheet(truth, lay, outputs, options.sheet_frames)
            save_png(sheet, out_dir / f"sheet_{clip.stem}.png")
            sheets.append(contact_sheet(truth, lay, outputs, 1, title=clip.name))
    if not report.scores:
        clip, why = next(iter(report.skipped.items()))
        raise ValueError(f"no clip is usable as 16:9 ground truth ({clip}: {why}; {len(report.skipped)} skipped)")
    report.seconds = time.perf_counter() - started
    (out_dir / "eval.json").write_text(report.to_json())
    (out_dir / "eval.md").write_text(report.to_markdown())
    save_png(stack_rows(sheets), out_dir / "contact.png")
    report.files = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md", "sheet": out_dir / "contact.png"}
    return report


# ---------------------------------------------------------------------- pictures


def mask_overlay(picture: np.ndarray, chars: np.ndarray | None) -> np.ndarray:
    """``picture`` with the pixels ``chars`` marks tinted red (what the fill keeps out of the sides)."""
    out = picture.astype(np.float32)
    peak = 65535.0 if picture.dtype == np.uint16 else 255.0
    if chars is not None:
        out[chars] = 0.45 * out[chars] + 0.55 * np.array([1.0, 0.16, 0.16]) * peak
    return out.round().astype(picture.dtype)


class CharacterViews:
    """Frames' inputs with their characters (as ``--characters`` finds them) tinted, sides
    blanked; made when a sheet asks for one (a segmenter run each), so ``frames[t]`` works."""

    def __init__(self, frames: np.ndarray, lay: Layout) -> None:
        import torch

        from .temporal import TemporalOptions
        from .temporal.characters import CharacterMasks

        self.frames, self.lay = frames, lay
        self._find = CharacterMasks(TemporalOptions(), torch.device("cpu"))
        self._made: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, t: int) -> np.ndarray:
        import torch

        if t not in self._made:
            frame, lay = self.frames[t], self.lay
            x0, x1 = lay.left, lay.left + lay.content.width
            pic = np.ascontiguousarray(frame[:, x0:x1])
            scale = 65535.0 if pic.dtype == np.uint16 else 255.0
            chars = self._find(torch.from_numpy(pic.astype(np.int32) if scale > 255 else pic), scale)
            view = np.zeros_like(frame)
            view[:, x0:x1] = mask_overlay(pic, None if chars is None else chars.numpy())
            self._made[t] = view
        return self._made[t]


def masked_view(frame: np.ndarray, lay: Layout) -> np.ndarray:
    """What the model is given: the picture with the sides blanked."""
    out = np.zeros_like(frame)
    out[:, lay.left : lay.left + lay.content.width] = frame[:, lay.left : lay.left + lay.content.width]
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """The image with a caption bar above it."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (img.shape[1], 18), (24, 24, 28))
    ImageDraw.Draw(bar).text((4, 3), text, fill=(240, 240, 240))
    return np.concatenate([np.asarray(bar), img])


def _cell(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    return resize_frames(img[None], max(2, round(h * width / w)), width)[0] if w > width else img


def grid(images: list[tuple[str, np.ndarray]], columns: int, cell_width: int = 384) -> np.ndarray:
    """Labelled images in a grid, white gutters."""
    cells = [_label(_cell(img, cell_width), text) for text, img in images]
    h = max(c.shape[0] for c in cells)
    w = max(c.shape[1] for c in cells)
    gap = 6
    rows = math.ceil(len(cells) / columns)
    sheet = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, np.uint8)
    for i, c in enumerate(cells):
        r, k = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + k * (w + gap)
        sheet[y : y + c.shape[0], x : x + c.shape[1]] = c
    return sheet


def contact_sheet(
    truth: np.ndarray, lay: Layout, outputs: dict[str, np.ndarray], count: int, title: str | None = None
) -> np.ndarray:
    """Rows of frames; columns: ground truth, masked input, each model."""
    # Evenly inside the clip, never its first frame (often a fade from black).
    n = min(count, len(truth))
    picks = np.linspace(0, len(truth) - 1, num=n + 2)[1:-1].round().astype(int) if len(truth) > 2 else [0]
    images = []
    for t in picks:
        name = f"{title} " if title else ""
        images.append((f"{name}ground truth (frame {t})", truth[t]))
        images.append(("input (sides blanked)", masked_view(truth[t], lay)))
        images += [(model, out[t]) for model, out in outputs.items()]
    return grid(images, columns=2 + len(outputs), cell_width=320)


def stack_rows(sheets: list[np.ndarray]) -> np.ndarray:
    w = max(s.shape[1] for s in sheets)
    padded = [np.pad(s, ((0, 0), (0, w - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    return np.concatenate(padded)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, optimize=True)
    return path


# ---------------------------------------------------------------------- preview


def preview(
    path: str | Path,
    at: float,
    models: tuple[str, ...],
    output: str | Path,
    device: str = "auto",
    source_aspect: Fraction = Fraction(4, 3),
    weights: Path | None = None,
    characters: bool = True,
) -> Path:
    """One frame converted by each model, side by side in one labelled PNG (``characters``:
    kept out of the sides, as ``convert`` does by default).

    A 4:3 source is laid out as ``convert`` would (bars detected, SAR kept); a 16:9
    (or wider) source is treated like ``eval``: its centre is filled and the real
    sides are shown too.
    """
    path = Path(path)
    if weights is not None and len(models) != 1:
        raise ValueError("--weights goes with exactly one --model")
    loaded = {m: load_model(m, weights, select_device(device)) for m in models}
    info = video.probe(path)
    frames, _ = read_frames(path, 1, start=at)
    if not frames:
        raise ValueError(f"{path}: no frame at {at} s")
    dev = select_device(device)
    shown: list[tuple[str, np.ndarray]] = []
    stamp = f"{path.name} @ {at:.2f} s"
    plan = plan_file(path, None, ConvertOptions(model=models[0] if models else None, weights=weights))
    if plan.layout.at_target:
        truth, lay = prepare_truth(frames, info.sar, EvalOptions(source_aspect=source_aspect, height=None))
        source = centre(truth, lay)[0]
        shown += [(f"ground truth - {stamp}", truth[0]), ("input (sides blanked)", masked_view(truth[0], lay))]
    else:
        lay = plan.layout
        source = frames[0]
        boxed = np.zeros((lay.canvas_height, lay.canvas_width, 3), np.uint8)
        c = lay.content
        boxed[:, lay.left : lay.left + c.width] = source[c.y : c.bottom, c.x : c.right]
        shown.append((f"source - {stamp}", boxed))
    from .temporal.characters import frame_characters

    for model in models:
        filler = Filler(loaded[model], lay, dev)
        chars = frame_characters(lay.content, dev) if characters else None
        (out,) = PerFrameFiller(filler, chars).stream([video.Frame(source, 0, Fraction(1))])
        shown.append((model, out.image))
    # What --characters keeps out of the sides in this frame.
    canvas = np.zeros((lay.canvas_height, lay.canvas_width, 3), source.dtype)
    c = lay.content
    canvas[:, lay.left : lay.left + c.width] = source[c.y : c.bottom, c.x : c.right]
    shown.append(("characters (--characters keeps them out of the sides)", CharacterViews(canvas[None], lay)[0]))
    return save_png(grid(shown, columns=2, cell_width=640), output)
