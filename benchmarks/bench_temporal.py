"""Cost of the temporal engine alone, against filling each frame on its own.

    python benchmarks/bench_temporal.py                        # 640x480 synthetic pan, 240 frames
    python benchmarks/bench_temporal.py --clip episode.mkv --frames 240 --threads 1

Frames are decoded first and held in memory, so only the fill stage is timed: the
temporal engine (analysis, propagation, shot memory, key frames, compositing) and
the same model run per frame (``--no-temporal``), in the same process, one after
the other. ``--threads`` sets torch's CPU threads (a conversion leaves one core to
the encoder, so one thread of two is what a 2-core conversion gives the fill).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import torch

from ganime import synthetic, video
from ganime.pipeline import ConvertOptions, make_filler, plan_file
from ganime.temporal import TemporalFiller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="a 4:3 clip (default: a synthetic 640x480 panning cartoon)")
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--model", default=None, help="model (default: the default model)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip = args.clip
    if clip is None:
        clip = Path(tempfile.mkdtemp(prefix="ganime-bench-")) / "pan_640x480.mkv"
        fps = Fraction(24)
        scene = synthetic.Scene(width=852, height=480, frames=args.frames, fps=fps, pan=1.5, seed=11)
        synthetic.write_clip(clip, (synthetic.centre_crop(f) for f in synthetic.render(scene)), fps, crf=18)
    options = ConvertOptions(model=args.model) if args.model else ConvertOptions()
    plan = plan_file(clip, clip.with_suffix(".out.mkv"), options)
    filler = make_filler(plan, options, torch.device("cpu"))
    reader = video.Reader(plan.input, color=plan.color)
    frames = list(itertools.islice((f for f in reader if isinstance(f, video.Frame)), args.frames))
    reader.close()
    filler.fill([f.image for f in frames[:4]])  # warm-up

    engine = TemporalFiller(filler)
    started = time.perf_counter()
    n = sum(1 for _ in engine.stream(frames))
    temporal = (time.perf_counter() - started) / n
    started = time.perf_counter()
    filler.fill([f.image for f in frames])
    per_frame = (time.perf_counter() - started) / len(frames)

    print(f"clip: {plan.input} ({plan.layout.describe()}), {n} frames, model {plan.model}, {args.threads} thread(s)")
    print(f"{'fill':<22}{'ms/frame':>10}{'fps':>8}{'ratio':>8}")
    print(f"{'per frame':<22}{1000 * per_frame:>10.1f}{1 / per_frame:>8.1f}{1.0:>7.2f}x")
    print(f"{'temporal engine':<22}{1000 * temporal:>10.1f}{1 / temporal:>8.1f}{per_frame / temporal:>7.2f}x")
    s = engine.stats
    print(
        f"engine: {s.shots} shot(s), {s.key_frames} key frame(s), {s.refreshed} refreshed, {s.held} held, "
        f"{s.single} single, {s.loose} loose; model {s.model_seconds:.2f} s of {s.seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
