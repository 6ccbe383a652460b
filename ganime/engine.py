"""Batched inference: source frames in, filled canvases out, on CPU or CUDA.

The model sees the canvas as float (N, 3, H, W) in [0, 1] with the pixels to generate
zeroed, and a (N, 1, H, W) mask. The compositor then builds the output: known pixels
are copied from the source array (bit-exact, never through float), and inside the
generated strips the prediction fades in from the seam over a few pixels, so the
join shows no step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .geometry import Layout


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


def configure_cpu_threads() -> None:
    """Use every core the process may run on (containers often allow fewer than exist)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


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


@dataclass
class Compositor:
    """Pastes predictions into the generated area with a feathered seam.

    ``feather`` pixels inside the generated area, next to the known picture, blend
    from the nearest known pixel (so the seam is continuous) to the prediction.
    """

    mask: torch.Tensor  # (1, 1, H, W) 1 = generate
    alpha: torch.Tensor  # (1, 1, H, W) weight of the prediction
    bands: list[tuple[int, int]]
    feather: int

    @classmethod
    def for_mask(cls, mask: np.ndarray, device: torch.device, feather: int) -> Compositor:
        m = torch.from_numpy(mask.astype(np.float32)).to(device).view(1, 1, *mask.shape)
        # Distance (in px steps) of each generated pixel from the known area, up to feather.
        dist = torch.full_like(m, float(feather + 1))
        reached = 1 - m
        for step in range(1, feather + 1):
            grown = F.max_pool2d(reached, 3, stride=1, padding=1)
            dist = torch.where((grown > 0) & (reached == 0), torch.full_like(dist, float(step)), dist)
            reached = grown
        alpha = torch.where(m > 0, ((dist - 0.5) / feather).clamp(0, 1), torch.zeros_like(m))
        return cls(mask=m, alpha=alpha, bands=column_bands(mask > 0, feather + 1), feather=feather)

    def seam_colour(self, canvas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each generated pixel near the seam takes the average of its nearest known pixels."""
        known = 1 - mask
        value = canvas * known
        weight = known.expand(canvas.shape[0], 1, -1, -1).clone()
        for _ in range(self.feather):
            grown_v = F.avg_pool2d(value, 3, stride=1, padding=1, count_include_pad=False)
            grown_w = F.avg_pool2d(weight, 3, stride=1, padding=1, count_include_pad=False)
            fill = (weight == 0) & (grown_w > 0)
            value = torch.where(fill, grown_v / grown_w.clamp_min(1e-8), value)
            weight = torch.where(fill, torch.ones_like(weight), weight)
        return value

    def blend(self, canvas: torch.Tensor, prediction: torch.Tensor) -> list[torch.Tensor]:
        """The generated pixels, band by band, as float (N, 3, H, band width)."""
        out = []
        for x0, x1 in self.bands:
            c = canvas[..., x0:x1]
            p = prediction[..., x0:x1]
            m = self.mask[..., x0:x1]
            a = self.alpha[..., x0:x1]
            edge = self.seam_colour(c, m) if self.feather else p
            out.append(p * a + edge * (1 - a))
        return out


@dataclass
class FillStats:
    """What the engine did, for the user and for benchmarks."""

    batches: int = 0
    frames: int = 0
    oom_retries: int = 0
    batch_size: int = 0


class Filler:
    """Runs one model over batches of source frames laid out by one ``Layout``."""

    def __init__(
        self,
        model: nn.Module,
        layout: Layout,
        device: torch.device,
        batch_size: int = 0,
        feather: int | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.layout = layout
        self.device = device
        self.batch_size = batch_size or self.auto_batch_size()
        mask = layout.mask()
        if feather is None:
            feather = max(2, round(layout.canvas_height / 60))  # 8 px at 480 lines
        feather = min(feather, max(0, layout.side_width // 2))
        self.compositor = Compositor.for_mask(mask, device, feather)
        self._mask_np = mask > 0
        self.stats = FillStats(batch_size=self.batch_size)

    def auto_batch_size(self) -> int:
        """Frames per model call: enough to amortise overheads, bounded by memory."""
        pixels = self.layout.canvas_width * self.layout.canvas_height
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            # A fill needs a few canvases of float32 per frame; keep well inside free memory.
            return int(max(1, min(32, free // (pixels * 3 * 4 * 16))))
        return int(max(1, min(8, 4_000_000 // pixels)))

    def fill(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Canvases (H, W, 3) in the frames' dtype, known pixels exactly as in the source."""
        out: list[np.ndarray] = []
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
        return out

    @torch.inference_mode()
    def _fill_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        lay = self.layout
        c = lay.content
        src = np.stack([f[c.y : c.bottom, c.x : c.right] for f in frames])  # (N, h, w, 3)
        scale = 65535.0 if src.dtype == np.uint16 else 255.0
        canvas_np = np.zeros((len(frames), lay.canvas_height, lay.canvas_width, 3), src.dtype)
        canvas_np[:, :, lay.left : lay.left + c.width] = src
        host = torch.from_numpy(canvas_np.astype(np.int32) if src.dtype == np.uint16 else canvas_np)
        canvas = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(scale)
        mask = self.compositor.mask.expand(len(frames), -1, -1, -1)
        prediction = self.model(canvas, mask)
        for (x0, x1), band in zip(self.compositor.bands, self.compositor.blend(canvas, prediction), strict=True):
            q = band.mul(scale).round_().clamp_(0, scale).permute(0, 2, 3, 1).cpu().numpy().astype(src.dtype)
            known = ~self._mask_np[:, x0:x1]
            # Known pixels inside a band come back from the source, not from float.
            canvas_np[:, :, x0:x1] = np.where(known[None, :, :, None], canvas_np[:, :, x0:x1], q)
        self.stats.batches += 1
        self.stats.frames += len(frames)
        return list(canvas_np)
