"""Seconds per 640x480 frame for every registered model: engine vs. one plain forward per frame.

    python benchmarks/bench_models.py                 # CPU
    python benchmarks/bench_models.py --device cuda

"engine" is ``ganime.engine.Filler`` (batched, compositing included, mixed precision
and channels-last on CUDA); "one frame" is the model called on the whole padded
856x480 canvas, one frame at a time, in float32. Speed does not depend on the weight
values, so models without installed weights run with their initial ones here (and
only here). Models that share an architecture and config are timed once.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ganime import synthetic
from ganime.engine import Filler, configure_cpu_threads, select_device
from ganime.geometry import compute_layout
from ganime.models import REGISTRY, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=4, help="frames per neural model (fills use 8x more)")
    args = parser.parse_args()
    device = select_device(args.device)
    if device.type == "cpu":
        configure_cpu_threads()
    scene = synthetic.Scene(width=856, height=480, frames=64, pan=1.0, seed=3)
    frames = [np.ascontiguousarray(synthetic.centre_crop(f)) for f in synthetic.render(scene)]
    layout = compute_layout(640, 480)
    mask = torch.from_numpy(layout.mask())[None, None].to(device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, 640x480 -> {layout.canvas_width}x480")
    print(f"{'model':<16}{'params':>10}{'engine s/frame':>16}{'one frame s':>13}{'ratio':>8}")
    seen: dict[tuple[str, str], tuple[float, float]] = {}
    for name, spec in REGISTRY.items():
        model = build_model(name)
        params = sum(p.numel() for p in model.parameters())
        key = (spec.arch, json.dumps(spec.config, sort_keys=True))
        n = args.frames * (8 if params == 0 else 1)
        if key not in seen:
            filler = Filler(model, layout, device)
            filler.fill(frames[:1])  # warm-up
            t = time.perf_counter()
            filler.fill(frames[:n])
            engine = (time.perf_counter() - t) / n
            plain = model.to(device).eval()
            canvas = torch.zeros(1, 3, 480, layout.canvas_width, device=device)
            with torch.inference_mode():
                plain(canvas, mask)
                t = time.perf_counter()
                for f in frames[:n]:
                    canvas[..., layout.left : layout.left + 640] = (
                        torch.from_numpy(f).to(device).permute(2, 0, 1).float() / 255
                    )
                    plain(canvas, mask)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                single = (time.perf_counter() - t) / n
            seen[key] = (engine, single)
        engine, single = seen[key]
        print(f"{name:<16}{params / 1e6:>9.1f}M{engine:>16.3f}{single:>13.3f}{single / engine:>7.2f}x")


if __name__ == "__main__":
    main()
