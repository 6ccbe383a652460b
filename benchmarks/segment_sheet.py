"""Character masks on real footage: a contact sheet to look at, and the segmenter's speed.

    python benchmarks/segment_sheet.py ../shared/data/eval -o benchmarks/results/issue31/masks.png

For each clip (the first frame and one from its middle), the frame with what the
segmenter marks as character tinted red, the strips a 4:3 conversion would generate
outlined. Prints, per clip, the share of the 4:3 centre marked and of the columns
beside each seam (where the fill looks for what to continue), and the time a mask
takes. Input sizes other than the released 320 can be tried with ``--size``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ganime import segment, video
from ganime.pipeline import read_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", type=Path, help="a folder of 16:9 clips (or one clip)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--height", type=int, default=240, help="height of each cell")
    ap.add_argument("--size", type=int, default=segment.SIZE, help="the square the network sees")
    a = ap.parse_args()
    seg = segment.load()
    seg.size = a.size
    clips = (
        sorted(p for p in a.clips.iterdir() if p.suffix in video.VIDEO_EXTENSIONS) if a.clips.is_dir() else [a.clips]
    )
    cells, seconds, masks = [], [], 0
    for clip in clips:
        info, frames = read_frames(clip)
        picked = list(itertools.islice(frames, 0, 60))
        for k, frame in enumerate((picked[0], picked[len(picked) // 2])):
            x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
            h = a.height
            w = round(frame.shape[1] * float(info.sar) * h / frame.shape[0])
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            started = time.perf_counter()
            m = seg(x)[0, 0].numpy()
            seconds.append(time.perf_counter() - started)
            masks += 1
            pic = (x[0].permute(1, 2, 0).numpy() * 255).astype(np.float32)
            pic = pic * (1 - 0.6 * m[..., None]) + np.array([255, 0, 0]) * 0.6 * m[..., None]
            cell = Image.fromarray(pic.clip(0, 255).astype(np.uint8))
            left = round((w - h * 4 / 3) / 2)
            ImageDraw.Draw(cell).rectangle([left, 0, w - left - 1, h - 1], outline=(255, 255, 0))
            cells.append(cell)
            band = max(1, left // 2)
            near = np.concatenate([m[:, left : left + band], m[:, w - left - band : w - left]], axis=1)
            print(f"{clip.name} frame {k}: centre {float((m[:, left : w - left] > 0.5).mean()):.0%} marked,"
                  f" beside the seams {float((near > 0.5).mean()):.0%}")  # fmt: skip
    width = max(c.width for c in cells)
    sheet = Image.new("RGB", (2 * width + 12, (len(cells) + 1) // 2 * (a.height + 6)), "white")
    for i, c in enumerate(cells):
        sheet.paste(c, ((i % 2) * (width + 12), (i // 2) * (a.height + 6)))
    a.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.output)
    print(f"{masks} masks, {np.median(seconds) * 1000:.0f} ms each (median, {torch.get_num_threads()} threads)")
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
