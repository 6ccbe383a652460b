"""A library converted on a local Ray against the same library converted as a local batch.

    python benchmarks/bench_ray.py --clips a.mp4,b.mkv            # 4 episodes
    python benchmarks/bench_ray.py --clips a.mp4 --episodes 4 --seconds 20 --repeat 2

Episode ``i`` is clip ``i mod len(clips)`` played back to back (stream copy) until it
lasts at least ``--seconds``, so that start-up costs do not decide the ratio. Both runs
are fresh ``ganime convert`` processes over the same folder with the same options;
the Ray run starts its own local Ray on every CPU of the machine, as ``--ray`` does
(its start-up is counted: a user pays it too). The two modes alternate when ``--repeat`` > 1, so a machine that
slows down midway affects both alike.

The outputs are then decoded and compared frame by frame. libx264 is bit-reproducible
only where the coded width is a multiple of 16 (at other widths the same frames encoded
twice in one process can differ in a few pixels), so at such widths "identical"
also reports the largest difference seen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import loop  # a sibling script, not a package


def episodes(clips: list[Path], count: int, seconds: float, work: Path) -> Path:
    """A folder of ``count`` episodes made from ``clips``, each at least ``seconds`` long."""
    lib = work / "library"
    lib.mkdir()
    for i in range(count):
        clip = clips[i % len(clips)]
        with av.open(str(clip)) as c:
            length = float(c.duration or 0) / av.time_base
        times = max(1, -(-int(seconds * 1000) // max(1, int(length * 1000))))
        made = loop(clip, times, work) if times > 1 else clip
        shutil.copy(made, lib / f"ep{i + 1:02d}{made.suffix}")
    return lib


def run(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds one process took; exits with its stderr if it failed."""
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"command failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return seconds


def frames_of(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def compare(a: Path, b: Path) -> dict:
    """Frame counts, timestamps and pixels of two outputs of the same episode."""
    fa, fb = frames_of(a), frames_of(b)
    same_pts = len(fa) == len(fb) and all(x[0] == y[0] for x, y in zip(fa, fb, strict=False))
    diffs = [int(np.abs(x[1].astype(np.int16) - y[1].astype(np.int16)).max()) for x, y in zip(fa, fb, strict=False)]
    width = fa[0][1].shape[1] if fa else 0
    return {
        "episode": a.name,
        "frames": [len(fa), len(fb)],
        "timestamps_equal": same_pts,
        "identical_frames": sum(d == 0 for d in diffs),
        "max_difference": max(diffs, default=0),
        "width_mod_16": width % 16 == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", required=True, help="comma-separated 4:3 clips the episodes are made of")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="least length of each episode")
    parser.add_argument("--model", default=None, help="model (default: the default model)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ganime-bench-ray-"))
    try:
        lib = episodes([Path(c) for c in args.clips.split(",")], args.episodes, args.seconds, work)
        base = [sys.executable, "-m", "ganime", "convert", str(lib), "--device", "cpu", "--overwrite"]
        if args.model:
            base += ["-m", args.model]
        env = dict(os.environ)
        cpus = len(os.sched_getaffinity(0))
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for _ in range(args.repeat):
            times["local"].append(run([*base, "-o", str(work / "local")], env))
            times["ray"].append(run([*base, "-o", str(work / "ray"), "--ray"], env))
        local, ray = min(times["local"]), min(times["ray"])
        outs = sorted((work / "local").glob("*"))
        checks = [compare(o, work / "ray" / o.name) for o in outs]
        frames = sum(c["frames"][0] for c in checks)
        result = {
            "episodes": args.episodes,
            "frames": frames,
            "cpus": cpus,
            "local_s": times["local"],
            "ray_s": times["ray"],
            "ray_over_local": ray / local,
            "outputs": checks,
        }
        print(f"{args.episodes} episodes, {frames} frames, Ray with {cpus} CPUs")
        print(f"| run | best of {args.repeat} (s) | fps | vs local |\n|---|---|---|---|")
        print(f"| local batch | {local:.1f} | {frames / local:.1f} | 1.00x |")
        print(f"| Ray | {ray:.1f} | {frames / ray:.1f} | {ray / local:.2f}x |")
        for c in checks:
            print(
                f"{c['episode']}: frames {c['frames'][0]}/{c['frames'][1]}, timestamps equal {c['timestamps_equal']},"
                f" identical {c['identical_frames']}/{c['frames'][0]}, max difference {c['max_difference']}"
                f" (width a multiple of 16: {c['width_mod_16']})"
            )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
