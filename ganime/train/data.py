"""Training data: frames from videos and stills, grouped into shots, turned into masked samples.

- Videos are decoded once; shot cuts are found on small grey thumbnails (a jump in
  mean absolute difference), near-duplicate frames (held drawings) are skipped, and
  at most ``frames_per_video`` frames are kept, spread over the file.
- Every still image is a shot of its own. The validation split takes whole shots, so
  no validation frame has a near-twin in training.
- A sample is a random 16:9 crop at the training resolution, lightly scaled and
  flipped (no colour changes: animation has exact palettes), with the sides outside
  a jittered 4:3 centre to generate, or, for a share of samples, random rectangles
  and strokes so a model also learns to fill holes it has context on both sides of.
  A share is caught part-way through a fade to black or white: every show fades, and
  a correction learnt at full brightness must shrink in the dark, where one 8-bit
  level is a large change.
- Samples depend only on (seed, step, index): a resumed run sees exactly the batches
  the interrupted one would have.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import video
from ..engine import resize_frames
from ..pipeline import read_frames

IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .webp .bmp".split())


@dataclass(frozen=True)
class DataOptions:
    """How frames are gathered and samples made.

    Args:
        height, width: training resolution (16:9).
        frames_per_video: frames kept per video at most, spread over the file.
        duplicate: mean absolute difference (8-bit levels, thumbnails) below which a
            frame repeats the last kept one.
        cut: mean absolute difference above which a new shot starts.
        val_fraction: share of shots held out for validation.
        random_mask_share: share of training samples with random holes instead of sides.
        fade_share: share of samples (and of validation frames) faded towards black or
            white; training draws the remaining brightness log-uniformly from 3-100 %.
        store_height: frames are kept at this height (room for the scale augmentation).
    """

    height: int = 144
    width: int = 256
    frames_per_video: int = 120
    duplicate: float = 1.5
    cut: float = 28.0
    val_fraction: float = 0.15
    random_mask_share: float = 0.25
    fade_share: float = 0.2
    store_height: int = 192
    source_aspect: Fraction = Fraction(4, 3)


@dataclass
class Shot:
    """Consecutive frames of one camera shot (or one still image)."""

    source: str
    index: int
    frames: list[np.ndarray] = field(default_factory=list)


def _thumb(frame: np.ndarray) -> np.ndarray:
    """32x18 grey thumbnail for cut and duplicate tests."""
    t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().mean(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(t, (18, 32))[0, 0].numpy()


def _store(frame: np.ndarray, height: int, sar: Fraction) -> np.ndarray:
    """The frame in square pixels, shrunk to ``height`` lines (never enlarged)."""
    h, w = frame.shape[:2]
    new_h = min(h, height)
    new_w = max(2, round(w * sar * new_h / h))
    return np.ascontiguousarray(resize_frames(frame[None], new_h, new_w)[0])


def read_shots(path: Path, options: DataOptions) -> list[Shot]:
    """The shots of one video (cuts respected, held frames skipped) or one still.

    Decoded as a stream: only the frames kept are stored, already shrunk, so a long
    or large clip never sits in memory whole.
    """
    info, frames = read_frames(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        first = next(frames, None)
        return [Shot(path.name, 0, [_store(first, options.store_height, info.sar)])] if first is not None else []
    stride = max(1, math.ceil((info.estimated_frames or options.frames_per_video) / options.frames_per_video))
    shots: list[Shot] = []
    prev = last_kept = None
    recent: list[float] = []  # frame-to-frame changes within the shot (motion level)
    for i, f in enumerate(frames):
        t = _thumb(f)
        change = float(np.abs(t - prev).mean()) if prev is not None else math.inf
        # A cut: a big jump, or one far above the shot's own motion (a fast pan is not a cut).
        moving = float(np.median(recent[-5:])) if recent else 0.0
        if change > options.cut or (change > options.cut / 2 and change > 3 * moving):
            shots.append(Shot(path.name, len(shots)))
            last_kept, recent = None, []
        elif change > options.duplicate:
            recent.append(change)
        prev = t
        if last_kept is not None and np.abs(t - last_kept).mean() < options.duplicate:
            continue  # a held drawing: nothing new to learn
        if i % stride and shots[-1].frames:
            continue
        shots[-1].frames.append(_store(f, options.store_height, info.sar))
        last_kept = t
    return [s for s in shots if s.frames]


def gather(paths: list[Path], options: DataOptions) -> tuple[list[Shot], list[Shot]]:
    """(training shots, validation shots) from video files, images and folders of them."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in (video.VIDEO_EXTENSIONS | IMAGE_EXTENSIONS)
            )
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    shots = [s for f in files for s in read_shots(f, options)]
    # Usable frames must hold a 16:9 crop of at least half the training height.
    shots = [s for s in shots if _usable(s.frames[0], options)]
    if not shots:
        raise ValueError("no usable frames in the training data")
    train, val = [], []
    for s in shots:
        h = int(hashlib.sha256(f"{s.source}#{s.index}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < options.val_fraction else train).append(s)
    if not val and len(train) > 1:
        val.append(train.pop())
    if not train:
        train, val = val, train
    return train, val


def _usable(frame: np.ndarray, options: DataOptions) -> bool:
    h, w = frame.shape[:2]
    crop_h = min(h, w * options.height / options.width)
    return crop_h >= options.height / 2


# --------------------------------------------------------------------- samples


def side_mask(height: int, width: int, centre: int, offset: int = 0) -> torch.Tensor:
    """(1, H, W) mask: 1 outside a ``centre``-wide band shifted by ``offset`` columns."""
    m = torch.ones(1, height, width)
    x0 = max(0, (width - centre) // 2 + offset)
    m[..., x0 : x0 + centre] = 0
    return m


def random_holes(rng: np.random.Generator, height: int, width: int) -> torch.Tensor:
    """(1, H, W) mask of a few rectangles and thick strokes (LaMa-style irregular holes)."""
    m = np.zeros((height, width), np.float32)
    for _ in range(rng.integers(1, 4)):
        h, w = int(rng.integers(height // 8, height // 2)), int(rng.integers(width // 8, width // 3))
        y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
        m[y : y + h, x : x + w] = 1
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(rng.integers(0, 3)):
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(height / 30, height / 12)
        for _ in range(rng.integers(3, 8)):
            ny = np.clip(y + rng.normal(0, height / 6), 0, height - 1)
            nx = np.clip(x + rng.normal(0, width / 6), 0, width - 1)
            for t in np.linspace(0, 1, 8):
                cy, cx = y + (ny - y) * t, x + (nx - x) * t
                m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
            y, x = ny, nx
    return torch.from_numpy(m)[None]


class Samples:
    """Makes training batches and the fixed validation set."""

    def __init__(
        self, train: list[Shot], val: list[Shot], options: DataOptions, seed: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> None:
        self.options = options
        self.seed = seed
        rank, ranks = shard
        frames = [f for s in train for f in s.frames]
        # Each rank of a distributed run draws from its own share of the frames.
        self.frames = frames[rank::ranks] if len(frames) >= ranks else frames
        self.shard = shard
        self.val_frames = [f for s in val for f in s.frames]

    def _crop(self, frame: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        """A 16:9 crop resized to the training size, (3, H, W) float in [0, 1]."""
        o = self.options
        h, w = frame.shape[:2]
        full = min(h, w * o.height / o.width)
        scale = rng.uniform(0.8, 1.0) if rng is not None else 1.0
        ch = max(2, round(full * scale))
        cw = min(w, round(ch * o.width / o.height))
        if rng is not None:
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        else:
            y, x = (h - ch) // 2, (w - cw) // 2
        crop = torch.from_numpy(np.ascontiguousarray(frame[y : y + ch, x : x + cw])).permute(2, 0, 1)[None].float()
        out = F.interpolate(crop, size=(o.height, o.width), mode="bilinear", antialias=True, align_corners=False)[0]
        if rng is not None and rng.random() < 0.5:
            out = out.flip(-1)
        out = (out / 255).clamp(0, 1)
        if rng is not None and rng.random() < o.fade_share:
            keep = math.exp(rng.uniform(math.log(0.03), 0.0))
            out = out * keep if rng.random() < 0.75 else 1 - (1 - out) * keep  # to black, or a flash to white
        return out

    def centre_width(self) -> int:
        o = self.options
        return round(o.height * o.source_aspect / 2) * 2

    def batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``step``: (images (N, 3, H, W), masks (N, 1, H, W)); the same for the same step."""
        rank, ranks = self.shard
        rng = np.random.default_rng([self.seed, step] if ranks == 1 else [self.seed, step, rank])
        o = self.options
        images, masks = [], []
        for _ in range(size):
            frame = self.frames[int(rng.integers(len(self.frames)))]
            images.append(self._crop(frame, rng))
            if rng.random() < o.random_mask_share:
                masks.append(random_holes(rng, o.height, o.width))
            else:
                centre = self.centre_width()
                jitter = int(rng.integers(-centre // 12, centre // 12 + 1)) // 2 * 2
                offset = int(rng.integers(-o.width // 32, o.width // 32 + 1))
                masks.append(side_mask(o.height, o.width, centre + jitter, offset))
        return torch.stack(images), torch.stack(masks)

    def validation(self, limit: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre crops of validation frames with the exact 4:3 side mask (no augmentation)."""
        o = self.options
        frames = self.val_frames or self.frames
        picks = np.linspace(0, len(frames) - 1, num=min(limit, len(frames))).round().astype(int)
        images = torch.stack([self._crop(frames[i], None) for i in picks])
        # A fixed share faded to black at a ladder of depths (every show has fades).
        ladder = (0.08, 0.25, 0.5)
        faded = np.flatnonzero(np.arange(len(images)) % max(1, round(1 / o.fade_share)) == 1) if o.fade_share else []
        for k, i in enumerate(faded):
            images[i] *= ladder[k % len(ladder)]
        mask = side_mask(o.height, o.width, self.centre_width())
        return images, mask.expand(len(images), -1, -1, -1).clone()
