"""Temporal error of a model with the engine and per frame, against sides frozen still.

    python benchmarks/bench_temporal_floor.py ../shared/data/eval
    python benchmarks/bench_temporal_floor.py clip1.mp4 clip2.mkv --model edge --frames 48

``ganime eval``'s temporal error counts every change of the sides that the true sides
do not make. Sides that never change score the mean change of the true strips from
frame to frame: the floor of any fill that cannot see the true sides, printed here as
"frozen". Each figure is also given without the frame pairs across a cut (a pair
whose picture changes by more than 25 levels and 4x the clip's median change), where
every fill is scored on noise.

Each clip is prepared as ``ganime eval`` prepares it (its centre cut out and written
losslessly, converted by ``convert_file`` with a lossless encode).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ganime import evaluate, synthetic
from ganime.pipeline import ConvertOptions, convert_file, find_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path, help="native 16:9 clips, or folders of them")
    parser.add_argument("--model", default="glcic")
    parser.add_argument("--frames", type=int, default=72)
    args = parser.parse_args()
    options = evaluate.EvalOptions(models=(args.model,), frames=args.frames)
    rows = []
    print(
        f"{'clip':32s} {'cuts':>4s}  {'engine':>15s}  {'per frame':>15s}  {'frozen':>15s}   (all pairs / within shots)"
    )
    with tempfile.TemporaryDirectory(prefix="ganime-floor-") as tmp:
        for clip, _ in find_inputs(args.clips, evaluate.IMAGE_EXTENSIONS):
            frames, info = evaluate.read_frames(clip, options.frames, options.stride, options.start)
            try:
                truth, lay = evaluate.prepare_truth(frames, info.sar, options)
            except ValueError as e:
                print(f"{clip.name[:32]:32s} skipped: {e}")
                continue
            sides = lay.mask() > 0
            src = synthetic.write_clip(
                Path(tmp) / f"{clip.stem}.mkv", list(evaluate.centre(truth, lay)), crf=0, pix_fmt="yuv444p"
            )
            t = truth.astype(np.float32)
            change = np.abs(np.diff(t[:, ~sides], axis=0)).mean(axis=(1, 2))
            cut = change > max(25.0, 4 * float(np.median(change)))
            true_steps = np.diff(t[:, sides], axis=0)
            row = []
            for temporal in (True, False):
                dst = Path(tmp) / f"{clip.stem}.{int(temporal)}.mkv"
                opts = ConvertOptions(
                    model=args.model,
                    encoder=evaluate.LOSSLESS,
                    device="cpu",
                    overwrite=True,
                    detect_bars=False,
                    temporal=temporal,
                )
                convert_file(src, dst, opts)
                out = np.stack(evaluate.read_frames(dst, len(truth))[0]).astype(np.float32)
                err = np.abs(np.diff(out[:, sides], axis=0) - true_steps).mean(axis=(1, 2))
                row += [err.mean(), err[~cut].mean()]
            frozen = np.abs(true_steps).mean(axis=(1, 2))
            row += [frozen.mean(), frozen[~cut].mean()]
            rows.append(row)
            cells = "  ".join(f"{row[i]:7.3f} {row[i + 1]:7.3f}" for i in (0, 2, 4))
            print(f"{clip.name[:32]:32s} {int(cut.sum()):4d}  {cells}", flush=True)
    if rows:
        mean = np.array(rows).mean(axis=0)
        cells = "  ".join(f"{mean[i]:7.3f} {mean[i + 1]:7.3f}" for i in (0, 2, 4))
        print(f"{'mean':32s} {'':4s}  {cells}")


if __name__ == "__main__":
    main()
