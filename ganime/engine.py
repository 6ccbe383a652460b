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
from .compositor import Compositor
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
        self._trace: torch.Tensor | None = None  # fill_traced's input, and what it made
        self._made: torch.Tensor | None = None
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
            return self.run(canvas, mask)
        n, w, ww = canvas.shape[0], canvas.shape[-1], self.window
        out = self.run(
            torch.cat([canvas[..., :ww], canvas[..., w - ww :]]), torch.cat([mask[..., :ww], mask[..., w - ww :]])
        )
        prediction = torch.zeros_like(canvas)
        prediction[..., :ww] = out[:n]
        prediction[..., w - ww :] = out[n:]
        return prediction

    def run(self, canvas: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
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

    def fill(self, frames: list[np.ndarray], chars: list[torch.Tensor | None] | None = None) -> list[np.ndarray]:
        """Canvases (H, W, 3) in the frames' dtype, known pixels exactly as in the source.

        ``chars``: per frame, (h, w) bool over its picture, the characters no side may be
        made of (None: none found): a model that takes sources (``patch``) is told not to
        copy them, any other fill is given the picture with them closed over.
        """
        out: list[np.ndarray] = []
        started = time.perf_counter()
        i = 0
        while i < len(frames):
            chunk = frames[i : i + self.batch_size]
            try:
                out.extend(self._fill_batch(chunk, chars[i : i + len(chunk)] if chars else None))
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

    def fill_traced(
        self, frame: np.ndarray, chars: torch.Tensor | None, avoid: torch.Tensor | None = None
    ) -> tuple[np.ndarray, torch.Tensor]:
        """``fill([frame], [avoid])[0]``, and (H, W) the share of each canvas pixel copied
        from the picture pixels ``chars`` marks ((h, w) bool over the picture; None: none),
        in one run of the model: ``PatchFill.traced``, or for a weight-free fill (linear in
        its input) the fill of the mask; NaN for a model that cannot say."""
        started = time.perf_counter()
        lay, c = self.layout, self.layout.content
        trace = torch.zeros(1, 1, lay.canvas_height, lay.canvas_width, device=self.device)
        if chars is not None:
            trace[0, 0, :, lay.left : lay.left + c.width] = chars.to(self.device).float()
        self._trace = trace
        try:
            (out,) = self._fill_batch([frame], [avoid])
        finally:
            self._trace = None
        self.stats.seconds += time.perf_counter() - started
        made, self._made = self._made, None
        assert made is not None
        return out, made

    @torch.inference_mode()
    def _fill_batch(self, frames: list[np.ndarray], chars: list[torch.Tensor | None] | None = None) -> list[np.ndarray]:
        lay = self.layout
        c = lay.content
        source = None
        originals: list[np.ndarray] | None = None  # the frames, where characters were closed over
        if chars is not None and any(m is not None for m in chars):
            if getattr(self.model, "takes_source", False) and self.window is None:
                source = self.compositor.mask.new_ones(len(frames), 1, lay.canvas_height, lay.canvas_width)
                source -= self.compositor.mask
                for k, m in enumerate(chars):
                    if m is not None:
                        source[k, 0, :, lay.left : lay.left + c.width][m.to(source.device)] = 0.0
            else:  # a mirror or a network: it sees the background where the characters were
                from .temporal.characters import closed_over

                originals = frames
                frames = [f if m is None else closed_over(f, c, m) for f, m in zip(frames, chars, strict=True)]
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
        trace = self._trace
        if trace is not None:  # fill_traced: one frame, its provenance too
            made = torch.full_like(trace, float("nan"))
            if hasattr(self.model, "traced"):
                prediction, made = self.model.traced(canvas, mask, trace, source)
            elif isinstance(self.model, PictureFill):
                made = self.model(trace.expand(-1, 3, -1, -1).contiguous(), mask).mean(dim=1, keepdim=True)
                prediction = self.model.fill_(canvas, mask)
            else:
                prediction = self._predict(canvas, mask)
            self._made = made[0, 0].float().cpu().clamp(0, 1)
        elif source is not None:
            prediction = self.run(canvas, mask, source)
        elif isinstance(self.model, PictureFill):
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
        if originals is not None:  # the picture itself is the source's, characters and all
            for out, f in zip(canvas_np, originals, strict=True):
                out[:, lay.left : lay.left + c.width] = f[c.y : c.bottom, c.x : c.right]
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

    def __init__(self, filler: Filler, characters: Callable[[np.ndarray], torch.Tensor | None] | None = None) -> None:
        """``characters``: finds a frame's characters ((h, w) bool over its picture, or None),
        which no side is then made of (``--characters``)."""
        self.filler = filler
        self.batch_size = filler.batch_size
        self.characters = characters

    def prepare(self, frame: video.Frame) -> video.Frame:
        return frame

    def stream(
        self, frames: Iterable[video.Frame], on_frames: Callable[[int], None] | None = None
    ) -> Iterator[video.Frame]:
        pending: list[video.Frame] = []

        def flush() -> Iterator[video.Frame]:
            images = [f.image for f in pending]
            chars = None
            if self.characters is not None:
                started = time.perf_counter()
                chars = [self.characters(i) for i in images]
                self.filler.stats.seconds += time.perf_counter() - started
            canvases = self.filler.fill(images, chars)
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
