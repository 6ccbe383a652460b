"""Procedural cartoon scenes with known ground truth, for tests, examples and benchmarks.

A scene is a painted background wider than the frame (sky bands, clouds, hills,
houses and trees with dark outlines, flat colours like cel animation), a camera that
pans across it, and a character that walks and bobs, drawn "on twos" (a new drawing
every second frame) as TV animation is. Rendering the 16:9 view and cutting out its
4:3 centre gives a 4:3 source whose true sides are known.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

OUTLINE = np.array([34, 28, 40], np.uint8)


@dataclass(frozen=True)
class Scene:
    """A cartoon shot.

    Args:
        width, height: the 16:9 (ground-truth) frame size.
        frames: number of frames.
        fps: frame rate.
        pan: camera travel over the shot, in frame widths (0 = static camera).
        seed: picks colours and the placement of clouds, houses and trees.
    """

    width: int = 856
    height: int = 480
    frames: int = 48
    fps: Fraction = Fraction(24)
    pan: float = 0.6
    seed: int = 0


def _ellipse(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, colour, outline: float) -> None:
    """Draw a filled ellipse with a dark outline (cel style), clipped to the canvas."""
    h, w = canvas.shape[:2]
    x0, x1 = max(0, int(cx - rx - outline - 1)), min(w, int(cx + rx + outline + 2))
    y0, y1 = max(0, int(cy - ry - outline - 1)), min(h, int(cy + ry + outline + 2))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    outer = ((xx - cx) / (rx + outline)) ** 2 + ((yy - cy) / (ry + outline)) ** 2 <= 1
    inner = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    region = canvas[y0:y1, x0:x1]
    if outline > 0:
        region[outer] = OUTLINE
    region[inner] = colour


def _rect(canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, colour, outline: int) -> None:
    h, w = canvas.shape[:2]
    ox0, oy0, ox1, oy1 = max(0, x0 - outline), max(0, y0 - outline), min(w, x1 + outline), min(h, y1 + outline)
    if ox0 < ox1 and oy0 < oy1:
        canvas[oy0:oy1, ox0:ox1] = OUTLINE
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if ix0 < ix1 and iy0 < iy1:
        canvas[iy0:iy1, ix0:ix1] = colour


def _triangle(canvas: np.ndarray, x0: int, x1: int, base: int, apex: int, colour, outline: int) -> None:
    """An isosceles roof from x0..x1 at ``base`` up to ``apex``, outlined."""
    h, w = canvas.shape[:2]
    cx = (x0 + x1) / 2
    half = (x1 - x0) / 2
    top, bot = max(0, apex - outline), min(h, base + outline)
    left, right = max(0, x0 - 2 * outline), min(w, x1 + 2 * outline)
    if top >= bot or left >= right:
        return
    yy, xx = np.mgrid[top:bot, left:right].astype(np.float32)
    frac = (yy - apex) / max(1, base - apex)  # 0 at apex, 1 at base
    inner = (np.abs(xx - cx) <= frac * half) & (yy >= apex) & (yy < base)
    outer = (np.abs(xx - cx) <= frac * half + 1.5 * outline) & (yy >= apex - outline) & (yy < base + outline)
    region = canvas[top:bot, left:right]
    region[outer] = OUTLINE
    region[inner] = colour


def paint_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A wide painted background (HWC uint8), flat colours with dark outlines."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    sky = [np.array(c, np.uint8) for c in ([118, 178, 236], [146, 196, 240], [178, 214, 244], [206, 228, 246])]
    horizon = int(height * 0.62)
    for i, c in enumerate(sky):  # flat sky bands, as painted backgrounds have
        img[i * horizon // len(sky) : (i + 1) * horizon // len(sky)] = c
    line = max(1, height // 160)
    for _ in range(max(2, width // 220)):  # clouds: clusters of outlined ellipses
        cx, cy = rng.uniform(0, width), rng.uniform(0.08, 0.35) * height
        r = rng.uniform(0.05, 0.09) * height
        for dx, dy, k in ((-1.1, 0.2, 0.8), (0, 0, 1.0), (1.1, 0.15, 0.85)):
            _ellipse(img, cx + dx * r, cy + dy * r, r * k * 1.3, r * k, (250, 250, 252), line)
    # Far hills: a sum of sines, flat colour, outlined ridge.
    xs = np.arange(width)
    phase = rng.uniform(0, 2 * math.pi, 3)
    ridge = horizon - height * (
        0.12
        + 0.05 * np.sin(xs / width * 2 * math.pi * 2 + phase[0])
        + 0.03 * np.sin(xs / width * 2 * math.pi * 5 + phase[1])
        + 0.015 * np.sin(xs / width * 2 * math.pi * 11 + phase[2])
    )
    yy = np.arange(height)[:, None]
    img[(yy >= ridge[None, :]) & (yy < horizon)] = (96, 150, 110)
    img[np.abs(yy - ridge[None, :]) < line] = OUTLINE
    img[horizon:] = (118, 176, 84)  # meadow
    road_top, road_bot = int(height * 0.80), int(height * 0.88)
    img[road_top:road_bot] = (196, 176, 136)
    img[road_top : road_top + line] = OUTLINE
    img[road_bot - line : road_bot] = OUTLINE
    # Houses and trees along the horizon.
    x = rng.uniform(0, 0.1) * width
    palette = [(226, 120, 96), (240, 206, 120), (150, 170, 220), (236, 236, 220)]
    while x < width:
        if rng.random() < 0.55:
            hw, hh = rng.uniform(0.10, 0.16) * height, rng.uniform(0.10, 0.16) * height
            base = horizon + int(0.06 * height)
            _rect(img, int(x), int(base - hh), int(x + hw), base, palette[rng.integers(len(palette))], line)
            _triangle(img, int(x - 0.1 * hw), int(x + 1.1 * hw), int(base - hh), int(base - hh - 0.6 * hw),
                      (150, 60, 60), line)  # fmt: skip
            door = hw / 4
            _rect(img, int(x + hw / 2 - door / 2), int(base - 1.6 * door), int(x + hw / 2 + door / 2), base,
                  (110, 80, 60), line)  # fmt: skip
            x += hw + rng.uniform(0.05, 0.15) * height
        else:
            r = rng.uniform(0.04, 0.07) * height
            base = horizon + int(0.05 * height)
            _rect(img, int(x + r * 0.8), int(base - 1.2 * r), int(x + r * 1.2), base, (120, 84, 56), line)
            _ellipse(img, x + r, base - 1.9 * r, r, r * 1.1, (70, 140, 70), line)
            x += 2 * r + rng.uniform(0.03, 0.1) * height
    return img


def _draw_character(frame: np.ndarray, cx: float, ground: float, size: float, step: int) -> None:
    """A round character walking: body, head, eyes, feet that alternate."""
    line = max(1.0, size / 30)
    bob = (step % 2) * size * 0.04
    for side in (-1, 1):  # feet
        lift = size * 0.06 if (step // 1 + (side > 0)) % 2 else 0.0
        _ellipse(frame, cx + side * size * 0.18, ground - size * 0.05 - lift, size * 0.14, size * 0.07,
                 (60, 60, 80), line)  # fmt: skip
    _ellipse(frame, cx, ground - size * 0.35 - bob, size * 0.28, size * 0.3, (236, 96, 80), line)  # body
    _ellipse(frame, cx, ground - size * 0.78 - bob, size * 0.24, size * 0.22, (252, 224, 196), line)  # head
    for side in (-1, 1):
        _ellipse(frame, cx + side * size * 0.09 + size * 0.04, ground - size * 0.8 - bob, size * 0.035,
                 size * 0.055, (30, 30, 40), 0)  # fmt: skip


def camera(scene: Scene) -> list[int]:
    """Where each frame's left edge is on the painted background (pixels)."""
    travel = round(scene.pan * scene.width)
    out = []
    for i in range(scene.frames):
        t = i / max(1, scene.frames - 1)
        ease = 0.5 - 0.5 * math.cos(math.pi * t)  # camera accelerates and settles
        out.append(round(ease * travel))
    return out


def render(scene: Scene, character: bool = True) -> Iterator[np.ndarray]:
    """The scene's 16:9 frames (HWC uint8), the ground truth."""
    w, h = scene.width, scene.height
    world = paint_background(w + round(scene.pan * w) + 2, h, scene.seed)
    for i, x in enumerate(camera(scene)):
        frame = world[:, x : x + w].copy()
        if not character:
            yield frame
            continue
        drawing = i // 2  # animated on twos: the character changes every second frame
        tt = 2 * drawing / max(1, scene.frames - 1)
        cx = w * (0.42 + 0.22 * math.sin(tt * math.pi * 0.9))
        _draw_character(frame, cx, h * 0.86, h * 0.34, drawing)
        yield frame


def centre_crop(frame: np.ndarray, aspect: Fraction = Fraction(4, 3)) -> np.ndarray:
    """The centre of a frame at ``aspect`` (even width), as a 4:3 broadcast would have shown it."""
    h, w = frame.shape[:2]
    cw = min(w, round(h * aspect) // 2 * 2)
    x0 = (w - cw) // 2
    return frame[:, x0 : x0 + cw]


def melody(seconds: float, rate: int = 48000) -> np.ndarray:
    """A short stereo tune (float32, shape (2, samples)) so example clips have real audio."""
    notes = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6]
    n = int(seconds * rate)
    t = np.arange(n) / rate
    beat = 0.25
    idx = (t / beat).astype(int) % len(notes)
    freq = np.array(notes)[idx]
    env = np.exp(-6 * (t % beat))
    wave = 0.2 * np.sin(2 * np.pi * freq * t) * env
    return np.stack([wave, wave * 0.8]).astype(np.float32)


def telecine(frames: list[np.ndarray]) -> list[np.ndarray]:
    """24p film frames in 30i video frames by 2:3 pulldown (as NTSC DVDs of anime are made).

    Every four film frames A B C D become five video frames whose (top, bottom) fields
    are (A, A) (B, B) (B, C) (C, D) (D, D): the third and fourth are combed.
    """
    out = []
    for i in range(0, len(frames) - 3, 4):
        a, b, c, d = frames[i : i + 4]
        for top, bottom in ((a, a), (b, b), (b, c), (c, d), (d, d)):
            f = top.copy()
            f[1::2] = bottom[1::2]
            out.append(f)
    return out


def interlace(fields: list[np.ndarray]) -> list[np.ndarray]:
    """Video frames of a camera that films every field anew (true interlace, top field first):
    frame k holds the top lines of picture 2k and the bottom lines of picture 2k + 1."""
    out = []
    for top, bottom in zip(fields[0::2], fields[1::2], strict=False):
        f = top.copy()
        f[1::2] = bottom[1::2]
        out.append(f)
    return out


def combing(frame: np.ndarray) -> float:
    """Mean excess of line-to-line difference over two-line difference: near 0 for a
    progressive picture, large where two fields of different moments are woven."""
    g = frame.astype(np.float32).mean(axis=2)
    adjacent = np.abs(g[1:-1] - 0.5 * (g[:-2] + g[2:]))
    return float(adjacent.mean())


def write_clip(
    path: str | Path,
    frames: Iterator[np.ndarray] | list[np.ndarray],
    fps: Fraction = Fraction(24),
    audio: np.ndarray | None = None,
    audio_rate: int = 48000,
    crf: int = 20,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    sar: Fraction | None = None,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
) -> Path:
    """Encode frames (and optional stereo float audio) into a file with PyAV.

    ``pts``/``time_base`` give each frame an explicit timestamp (variable frame rate);
    by default frames are 1/fps apart. ``rotation`` tags the stream to be shown turned
    that many degrees counter-clockwise (as a phone or a ``rotate`` tag does).
    """
    path = Path(path)
    tb = time_base or (Fraction(1, 1000) if pts is not None else Fraction(1) / fps)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    with av.open(str(path), "w") as out:
        opts = {"crf": str(crf), "preset": "medium"} if codec.startswith("lib") else {}
        vs = out.add_stream(codec, rate=fps, options=opts)
        vs.height, vs.width = first.shape[:2]
        vs.pix_fmt = pix_fmt
        vs.codec_context.time_base = tb
        # from_ndarray frames are converted with BT.601 limited range: say so in the file.
        vs.codec_context.colorspace = 5
        vs.codec_context.color_range = 1
        if sar:
            vs.codec_context.sample_aspect_ratio = sar
        if rotation:
            vs.set_display_rotation(rotation)
        stream_a = None
        if audio is not None:
            stream_a = out.add_stream("aac", rate=audio_rate, layout="stereo")
            stream_a.metadata["language"] = "eng"
        for i, img in enumerate(itertools.chain([first], frames)):
            fmt = "rgb48le" if img.dtype == np.uint16 else "rgb24"
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
            f.pts = pts[i] if pts is not None else i
            f.time_base = tb
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if stream_a is not None and audio is not None:
            chunk = 1024
            for k in range(0, audio.shape[1] - chunk + 1, chunk):
                samples = np.ascontiguousarray(audio[:, k : k + chunk])
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                af.sample_rate = audio_rate
                af.pts = k
                af.time_base = Fraction(1, audio_rate)
                for p in stream_a.encode(af):
                    out.mux(p)
            for p in stream_a.encode():
                out.mux(p)
    return path


def make_example(path: str | Path, seconds: float = 6.0, height: int = 480, truth: str | Path | None = None) -> Path:
    """The shipped example: a 4:3 panning cartoon with a tune; optionally its 16:9 ground truth."""
    fps = Fraction(24)
    width = round(height * 16 / 9 / 4) * 4
    scene = Scene(width=width, height=height, frames=int(seconds * fps), fps=fps, pan=0.7, seed=7)
    frames = list(render(scene))
    audio = melody(seconds)
    if truth is not None:
        write_clip(truth, frames, fps, audio, crf=18)
    return write_clip(path, [centre_crop(f) for f in frames], fps, audio, crf=20)
