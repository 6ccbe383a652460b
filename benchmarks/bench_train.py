"""Training throughput of each shipped architecture: optimisation steps per second.

    python benchmarks/bench_train.py --data ../shared/data/train/stills

Builds each model with its registry config at the size it was trained at (see
weights/README.md), runs one warm-up step and then ``--steps`` timed steps of its
family's full losses (GLCIC in its joint phase, generator and discriminators).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ganime.train import Trainer, TrainOptions

SIZES = {"context-encoder": 128, "glcic": 96, "lama": 96}  # training heights of the shipped weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="16:9 clips or stills to sample from")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model, height in SIZES.items():
            options = TrainOptions(
                data=[args.data], output=Path(tmp) / f"{model}.safetensors", model=model, height=height,
                width=round(height * 16 / 9 / 8) * 8, batch_size=args.batch_size, device=args.device,
                glcic_phases=(0.0, 0.0),
            )  # fmt: skip
            trainer = Trainer(options)
            trainer.train_step(*trainer.samples.batch(0, args.batch_size))  # warm-up
            started = time.perf_counter()
            for step in range(1, args.steps + 1):
                trainer.train_step(*trainer.samples.batch(step, args.batch_size))
            rate = args.steps / (time.perf_counter() - started)
            print(f"{model:<16} {rate:6.2f} steps/s  (batch {args.batch_size}, {height} lines, "
                  f"{torch.get_num_threads()} threads, {trainer.device})")  # fmt: skip


if __name__ == "__main__":
    main()
