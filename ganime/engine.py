"""Batched inference: source frames in, filled canvases out, on CPU or CUDA.

The model sees the canvas as float (N, 3, H, W) in [0, 1] with the pixels to generate
zeroed, and a (N, 1, H, W) mask. The compositor then builds the output: known pixels
are copied from the source array (bit-exact, never through float), and inside the
generated strips the prediction fades in from the seam over a few pixels, so the
join shows no step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import video
from .geometry import Layout
from .models.classical import PictureFill
from .models.start import prepare_for_inference


class DeviceError(ValueError):
    """A --device value that cannot be used on this machine."""


def select_device(spec: str = "auto") -> torch.device:
    """``auto`` picks the first CUDA GPU when there is one, else the CPU."""
    s = spec.strip().lower()
    if s == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(s)
    except RuntimeError:
        raise DeviceError(f"not a device: {spec!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} asked for, but this torch sees no CUDA GPU")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} asked for, but there are {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device("cuda", index)
    if dev.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r} (use auto, cpu, cuda or cuda:N)")
    return dev


def configure_cpu_threads(reserve: int = 0) -> None:
    """Use every core the process may run on (containers often allow fewer than exist),
    less ``reserve`` for work running beside torch (at least one thread is kept).

    An explicit ``OMP_NUM_THREADS`` wins: the user is sharing the machine on purpose.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    n = max(1, n - reserve)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def resize_frames(frames: np.ndarray, height: int, width: int, chunk: int = 8) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames with antialiasing, a few at a time (bounded memory)."""
    if frames.shape[1:3] == (height, width):
        return frames
    out = np.empty((len(frames), height, width, 3), np.uint8)
    for i in range(0, len(frames), chunk):
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + chunk])).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        out[i : i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def column_bands(mask: np.ndarray, margin: int) -> list[tuple[int, int]]:
    """Column ranges that hold generated pixels, each widened by ``margin``.

    The compositor works on these bands only: for side strips that is two narrow
    slices of the canvas instead of all of it.
    """
    cols = mask.any(axis=0)
    w = cols.size
    bands: list[tuple[int, int]] = []
    x = 0
    while x < w:
        if not cols[x]:
            x += 1
            continue
        start = x
        while x < w and cols[x]:
            x += 1
        lo, hi = max(0, start - margin), min(w, x + margin)
        if bands and lo <= bands[-1][1]:
            bands[-1] = (bands[-1][0], hi)
        else:
            bands.append((lo, hi))
    return bands


def nearest_known(mask: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """For each generated pixel within ``reach`` steps of the known area: its nearest known pixel.

    Returns (source, steps): ``source`` holds the flat index of that known pixel (-1
    beyond reach; its own index for a known pixel), ``steps`` the chessboard distance
    (0 for known pixels, reach + 1 beyond reach). Computed once per layout.
    """
    h, w = mask.shape
    source = np.where(mask, -1, np.arange(h * w).reshape(h, w))
    steps = np.where(mask, reach + 1, 0)
    for step in range(1, reach + 1):
        grown = source.copy()
        for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)):
            shifted = np.full_like(source, -1)
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            shifted[yd, xd] = source[ys, xs]
            take = (grown < 0) & (shifted >= 0)
            grown[take] = shifted[take]
        steps[(source < 0) & (grown >= 0)] = step
        source = grown
    return source, steps


@dataclass
class Compositor:
    """Pastes predictions into the generated area with a feathered seam.

    The ``feather`` generated pixels next to the known picture blend from the nearest
    known pixel (so the seam is continuous) into the prediction.
    """

    mask: torch.Tensor  # (1, 1, H, W) 1 = generate
    bands: list[tuple[int, int]]  # column ranges holding generated pixels
    spans: list[tuple[int, int]]  # per band, the columns where the seam blend happens
    gathers: list[tuple[torch.Tensor, torch.Tensor]]  # per span: nearest-known index, alpha
    feather: int

    @classmethod
    def for_mask(cls, mask: np.ndarray, device: torch.device, feather: int) -> Compositor:
        gen = mask > 0
        source, steps = nearest_known(gen, feather)
        alpha = np.where(gen, np.clip((steps - 0.5) / max(feather, 1), 0, 1), 0).astype(np.float32)
        bands = column_bands(gen, feather + 1)
        blended = (gen & (alpha < 1)).any(axis=0)
        spans: list[tuple[int, int]] = []
        gathers: list[tuple[torch.Tensor, torch.Tensor]] = []
        for x0, x1 in bands:
            cols = np.flatnonzero(blended[x0:x1])
            if cols.size == 0 or feather == 0:
                spans.append((x0, x0))
                gathers.append((torch.zeros(0, dtype=torch.long), torch.zeros(0)))
                continue
            f0, f1 = x0 + int(cols[0]), x0 + int(cols[-1]) + 1
            idx = np.where(source[:, f0:f1] >= 0, source[:, f0:f1], 0)  # beyond reach alpha is 1
            spans.append((f0, f1))
            gathers.append(
                (
                    torch.from_numpy(idx.reshape(-1)).to(device),
                    torch.from_numpy(alpha[:, f0:f1]).to(device).view(1, 1, -1, f1 - f0),
                )
            )
        m = torch.from_numpy(mask.astype(np.float32)).to(device).view(1, 1, *mask.shape)
        return cls(m, bands, spans, gathers, feather)

    def blend(self, canvas: torch.Tensor, prediction: torch.Tensor) -> list[torch.Tensor]:
        """The output pixels, band by band, as float (N, 3, H, band width)."""
        n, c, h, _ = canvas.shape
        flat = canvas.flatten(2)  # (N, 3, H*W)
        out = []
        for (x0, x1), (f0, f1), (idx, alpha) in zip(self.bands, self.spans, self.gathers, strict=True):
            band = prediction[..., x0:x1]
            if f1 > f0:
                band = band.clone()
                edge = flat.index_select(2, idx).view(n, c, h, f1 - f0)
                band[..., f0 - x0 : f1 - x0] = prediction[..., f0:f1] * alpha + edge * (1 - alpha)
            out.append(band)
        return out


@dataclass
class SideSeam:
    """The compositor's seam blend for sides kept apart from the picture.

    Engines that hold the sides on their own (the temporal engine) keep them as an
    (H, S, 3) side grid: the left strip's columns, then the right strip's. This is
    ``Compositor.blend`` in those terms: the same pixels blend from the same picture
    pixels with the same alpha. Where the seam is whole-height bands whose alpha
    depends on the column alone (side strips beside a full-height picture), the blend
    runs on slices (``bands``) instead of gathering every pixel.
    """

    rows: torch.Tensor  # side-grid row, column, alpha and flat picture index of each blended pixel
    cols: torch.Tensor
    alphas: torch.Tensor
    sources: torch.Tensor
    at: tuple[np.ndarray, np.ndarray]
    bands: list[tuple[int, int, int, torch.Tensor]] | None  # (first, last + 1 column, picture column, alpha)

    @classmethod
    def of(cls, compositor: Compositor, layout: Layout) -> SideSeam:
        h, w, left, pic_w = layout.canvas_height, layout.canvas_width, layout.left, layout.content.width
        n_side = w - pic_w
        strips = [r for r in ((0, left), (left, n_side)) if r[1] > r[0]]
        rows, cols, alphas, sources = cls._pixels(compositor, h, w, left, pic_w)
        at = (rows.numpy(), cols.numpy())
        return cls(rows, cols, alphas, sources, at, cls._bands(rows, cols, alphas, sources, strips, h, pic_w))

    @staticmethod
    def _pixels(
        compositor: Compositor, h: int, w: int, left: int, pic_w: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, side columns, alpha, picture index) of every blended side pixel."""
        rows, cols, alphas, sources = [], [], [], []
        for (f0, f1), (idx, alpha) in zip(compositor.spans, compositor.gathers, strict=True):
            if f1 <= f0:
                continue
            r, c = torch.meshgrid(torch.arange(h), torch.arange(f0, f1), indexing="ij")
            a = alpha.cpu().reshape(h, f1 - f0)
            src = idx.cpu().reshape(h, f1 - f0)
            side = (c < left) | (c >= left + pic_w)
            keep = side & (a < 1)
            sr, sc = src[keep] // w, src[keep] % w - left
            rows.append(r[keep])
            cols.append(torch.where(c[keep] < left, c[keep], c[keep] - pic_w))
            alphas.append(a[keep])
            sources.append(sr * pic_w + sc.clamp(0, pic_w - 1))
        if not rows:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty, torch.zeros(0), empty
        return torch.cat(rows), torch.cat(cols), torch.cat(alphas), torch.cat(sources)

    @staticmethod
    def _bands(
        rows: torch.Tensor,
        cols: torch.Tensor,
        alphas: torch.Tensor,
        sources: torch.Tensor,
        strips: list[tuple[int, int]],
        h: int,
        pic_w: int,
    ) -> list[tuple[int, int, int, torch.Tensor]] | None:
        """The blend as whole-height bands, if it is that; None for any other shape."""
        if rows.numel() == 0:
            return []
        bands = []
        for s0, s1 in strips:
            inside = (cols >= s0) & (cols < s1)
            if not bool(inside.any()):
                continue
            c, r, a, src = cols[inside], rows[inside], alphas[inside], sources[inside]
            c0, c1 = int(c.min()), int(c.max()) + 1
            width = c1 - c0
            if c.numel() != h * width:
                return None
            grid = torch.full((h, width), -1.0)
            grid[r, c - c0] = a
            picture_col = src % pic_w
            if (grid < 0).any() or not bool((grid == grid[:1]).all()):
                return None
            if not bool((picture_col == picture_col[0]).all()) or not bool((src // pic_w == r).all()):
                return None
            bands.append((c0, c1, int(picture_col[0]), grid[0].view(1, width, 1)))
        return bands

    def blend(
        self, picture: torch.Tensor, values: torch.Tensor, scale: float, dtype: np.dtype, base: np.ndarray | None = None
    ) -> np.ndarray:
        """(H, S, 3) output samples: ``values`` (in [0, 1]) feathered into ``picture``'s edge.

        With ``base`` (sides already blended once), only the seam is redone.
        """
        fr, fc, fa, fs = self.rows, self.cols, self.alphas, self.sources
        if base is not None:
            out = base.copy()
        else:
            out = values.mul(scale).round_().clamp_(0, scale).numpy().astype(dtype)
        if self.bands is not None:
            for c0, c1, pc, a in self.bands:  # the same blend on slices
                edge = picture[:, pc : pc + 1].float()
                seam = (a * scale) * values[:, c0:c1] + (1 - a) * edge
                out[:, c0:c1] = seam.round_().clamp_(0, scale).numpy().astype(dtype)
        elif fr.numel():
            # The compositor's blend from this frame's picture edge, except where the side is real.
            a = fa[:, None]
            edge = picture.reshape(-1, 3).index_select(0, fs).float()
            seam = (a * scale) * values[fr, fc] + (1 - a) * edge
            out[self.at] = seam.round_().clamp_(0, scale).numpy().astype(dtype)
        return out


@dataclass
class FillStats:
    """What the engine did, for the user and for benchmarks."""

    batches: int = 0
    frames: int = 0
    oom_retries: int = 0
    batch_size: int = 0
    seconds: float = 0.0  # wall time inside fill()


class Filler:
    """Runs one model over batches of source frames laid out by one ``Layout``."""

    def __init__(
        self,
        model: nn.Module,
        layout: Layout,
        device: torch.device,
        batch_size: int = 0,
        feather: int | None = None,
        compositor: Compositor | None = None,
    ) -> None:
        """``compositor``: another Filler's of the same layout and device (it takes a
        while to make), instead of making one with ``feather``."""
        self.model = prepare_for_inference(model.to(device))
        self.layout = layout
        self.device = device
        # Neural models on CUDA also run in mixed precision (prepare_for_inference made
        # their convolutions channels-last everywhere): bf16 where the GPU has it (fp16
        # otherwise); LaMa's Fourier units run their FFT in float32 regardless, since
        # cuFFT in half precision only takes power-of-two sizes.
        neural = any(True for _ in self.model.parameters())
        self.amp_dtype: torch.dtype | None = None
        if neural and device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.batch_size = batch_size or self.auto_batch_size()
        mask = layout.mask()
        if compositor is None:
            if feather is None:
                feather = max(2, round(layout.canvas_height / 60))  # 8 px at 480 lines
            feather = min(feather, max(0, layout.side_width // 2))
            compositor = Compositor.for_mask(mask, device, feather)
        self.compositor = compositor
        self._mask_np = mask > 0
        self.stats = FillStats(batch_size=self.batch_size)
        self._buffer: torch.Tensor | None = None
        self.window = self._strip_window(getattr(self.model, "receptive_field", None))

    def _strip_window(self, radius: int | None) -> int | None:
        """Width of the window each side strip is run in, or None for the whole canvas.

        A model with a bounded receptive field only needs its strip plus ``radius``
        columns of picture: each side then runs on its own window (both in one batch)
        with the same result, when that is less than the canvas. The right window
        starts on the model's stride grid and pads like the full canvas would.
        """
        lay = self.layout
        if radius is None or not (lay.left and lay.right):
            return None
        step = getattr(self.model, "modulo", 1)
        need = max(lay.left, lay.right) + self.compositor.feather + 1 + radius
        width = need + (lay.canvas_width - need) % step  # width = canvas width (mod step)
        return width if 2 * width < lay.canvas_width else None

    def _predict(self, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The model's prediction for the canvas (only the strips' columns when windowed)."""
        if self.window is None:
            return self._run(canvas, mask)
        n, w, ww = canvas.shape[0], canvas.shape[-1], self.window
        out = self._run(
            torch.cat([canvas[..., :ww], canvas[..., w - ww :]]), torch.cat([mask[..., :ww], mask[..., w - ww :]])
        )
        prediction = torch.zeros_like(canvas)
        prediction[..., :ww] = out[:n]
        prediction[..., w - ww :] = out[n:]
        return prediction

    def _run(self, canvas: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The model's prediction; ``source`` (where the model takes one, ``takes_source``)
        marks the known pixels it may copy from."""
        if source is not None and getattr(self.model, "takes_source", False):
            return self.model(canvas, mask, source)
        if self.amp_dtype is None:
            return self.model(canvas, mask)
        with torch.autocast("cuda", dtype=self.amp_dtype):
            return self.model(canvas.contiguous(memory_format=torch.channels_last), mask).float()

    def auto_batch_size(self) -> int:
        """Frames per model call: enough to amortise overheads, bounded by memory.

        A weight-free fill holds a few float canvases per frame; a neural model holds
        its activations, roughly 4 KB per pixel for the networks here (64 channels at
        full resolution through several layers). Out-of-memory halves it anyway.
        """
        pixels = self.layout.canvas_width * self.layout.canvas_height
        neural = any(True for _ in self.model.parameters())
        per_frame = pixels * (4096 if neural else 3 * 4 * 16)
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(max(1, min(32, free // per_frame)))
        if neural:
            return int(max(1, min(4, 1_000_000 // pixels)))
        return int(max(1, min(8, 4_000_000 // pixels)))

    def _canvas(self, n: int) -> torch.Tensor:
        """A zeroed float canvas batch, reused: only the picture area is ever written
        (and the strips by picture fills, which never read them)."""
        lay = self.layout
        if self._buffer is None or self._buffer.shape[0] < n:
            self._buffer = torch.zeros(n, 3, lay.canvas_height, lay.canvas_width, device=self.device)
        return self._buffer[:n]

    def fill(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Canvases (H, W, 3) in the frames' dtype, known pixels exactly as in the source."""
        out: list[np.ndarray] = []
        started = time.perf_counter()
        i = 0
        while i < len(frames):
            chunk = frames[i : i + self.batch_size]
            try:
                out.extend(self._fill_batch(chunk))
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                # Halve and retry the same frames: a long job should slow down, not die.
                torch.cuda.empty_cache()
                self.batch_size = max(1, self.batch_size // 2)
                self.stats.oom_retries += 1
                self.stats.batch_size = self.batch_size
                continue
            i += len(chunk)
        self.stats.seconds += time.perf_counter() - started
        return out

    @torch.inference_mode()
    def _fill_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        lay = self.layout
        c = lay.content
        dtype = frames[0].dtype
        scale = 65535.0 if dtype == np.uint16 else 255.0
        canvas_np = np.empty((len(frames), lay.canvas_height, lay.canvas_width, 3), dtype)
        for out, f in zip(canvas_np, frames, strict=True):
            out[:, lay.left : lay.left + c.width] = f[c.y : c.bottom, c.x : c.right]
        src = canvas_np[:, :, lay.left : lay.left + c.width]  # (N, h, w, 3) view
        host = torch.from_numpy(src.astype(np.int32) if dtype == np.uint16 else src)
        # A zero canvas with the picture converted straight into its place: the strips
        # are never converted, and the model gets contiguous NCHW. Transposing while
        # still 8-bit moves a quarter of the bytes a float transpose would.
        canvas = self._canvas(len(frames))
        pic = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).contiguous()
        canvas[..., lay.left : lay.left + c.width] = pic.float().div_(scale)
        mask = self.compositor.mask.expand(len(frames), -1, -1, -1)
        if isinstance(self.model, PictureFill):
            # Filled in place: a picture fill never reads the strips, so the reused
            # buffer's strips may stay dirty, and a full-canvas copy is saved.
            prediction = self.model.fill_(canvas, mask)
        else:
            prediction = self._predict(canvas, mask)
        for (x0, x1), band in zip(self.compositor.bands, self.compositor.blend(canvas, prediction), strict=True):
            q = band.mul(scale).round_().clamp_(0, scale).permute(0, 2, 3, 1).cpu().numpy().astype(dtype)
            # Only generated pixels are written: known pixels in a band stay the source's.
            gen = self._mask_np[:, x0:x1]
            canvas_np[:, :, x0:x1][:, gen] = q[:, gen]
        self.stats.batches += 1
        self.stats.frames += len(frames)
        return list(canvas_np)


class FrameFiller(Protocol):
    """The fill stage's contract: decoded frames in, filled canvases out, in order, each
    with its own timestamp and source planes.

    ``prepare`` runs in the reader thread on each decoded frame (work that can go beside
    the fill; its result is what ``stream`` receives); ``stream`` runs in the calling
    thread and reports frames done through ``on_frames``; ``seconds`` is the time spent
    filling. Implemented by ``PerFrameFiller`` and ``temporal.TemporalFiller``.
    """

    def prepare(self, frame: video.Frame) -> object: ...

    def stream(
        self, frames: Iterable[object], on_frames: Callable[[int], None] | None = None
    ) -> Iterator[video.Frame]: ...

    @property
    def seconds(self) -> float: ...


class PerFrameFiller:
    """Every frame filled on its own, a batch at a time (``--no-temporal``)."""

    def __init__(self, filler: Filler) -> None:
        self.filler = filler
        self.batch_size = filler.batch_size

    def prepare(self, frame: video.Frame) -> video.Frame:
        return frame

    def stream(
        self, frames: Iterable[video.Frame], on_frames: Callable[[int], None] | None = None
    ) -> Iterator[video.Frame]:
        pending: list[video.Frame] = []

        def flush() -> Iterator[video.Frame]:
            canvases = self.filler.fill([f.image for f in pending])
            for f, canvas in zip(pending, canvases, strict=True):
                yield video.Frame(canvas, f.pts, f.time_base, f.planes, f.pix_fmt)
            if on_frames:
                on_frames(len(pending))
            pending.clear()

        for frame in frames:
            pending.append(frame)
            if len(pending) >= self.filler.batch_size:  # the batch may shrink after running out of memory
                yield from flush()
        if pending:
            yield from flush()

    @property
    def seconds(self) -> float:
        return self.filler.stats.seconds
