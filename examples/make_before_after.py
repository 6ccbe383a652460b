"""Render the README's before/after picture from the shipped example.

    python examples/make_before_after.py    # examples/before_after.png

Top: the 4:3 source as a 16:9 screen shows it (black bars). Bottom: ganime's output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.io import write_png

from ganime import convert_file, video
from ganime.pipeline import ConvertOptions


def frame_at(path: Path, index: int) -> np.ndarray:
    with video.Reader(path) as r:
        frames = (item.image for item in r if isinstance(item, video.Frame))
        for i, f in enumerate(frames):
            if i == index:
                return f
    raise ValueError(f"{path} has fewer than {index + 1} frames")


def main() -> None:
    here = Path(__file__).resolve().parent
    src = here / "cartoon_4x3.mkv"
    out = here / "cartoon_4x3.16x9.mkv"
    convert_file(src, out, ConvertOptions(overwrite=True))
    before, after = frame_at(src, 72), frame_at(out, 72)
    boxed = np.zeros_like(after)
    left = (after.shape[1] - before.shape[1]) // 2
    boxed[:, left : left + before.shape[1]] = before
    gap = np.full((8, after.shape[1], 3), 255, np.uint8)
    picture = np.concatenate([boxed, gap, after])[::2, ::2]  # half size keeps the README light
    write_png(torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1), str(here / "before_after.png"))
    out.unlink()


if __name__ == "__main__":
    main()
