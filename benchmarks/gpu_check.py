"""One-shot check of a CUDA machine: tests, conversion speed, a short bf16 training run; one table.

    python benchmarks/gpu_check.py --out "$OUT"                 # on a GPU machine, < 8 minutes
    python benchmarks/gpu_check.py --out /tmp/gc --dry-run      # anywhere: tiny sizes, every step

Three parts, each timed, each a row (or rows) of the table printed at the end and of
``OUT/gpu_check.json``:

1. **tests**: the default test suite with CUDA visible (``pytest -q``); the tests that
   have a CUDA variant run it there (batch invariance, the out-of-memory back-off under
   a memory cap, autocast against fp32).
2. **speed**: ``ganime convert`` of synthetic 4:3 cartoons at 1920x1440 (-> 2560x1440)
   and 640x480 (-> 856x480) with ``edge``, the default model and every shipped neural
   model, with the temporal engine and per frame, against ``ffmpeg -vf pad`` with the
   same encoder settings in the same run (when ffmpeg is installed). Frames per second
   and the ratio to real time (24 fps) and to ffmpeg.
3. **train**: ``ganime train --init`` of the best shipped network for a fixed wall-clock
   budget (bf16 autocast on CUDA), stopped by SIGTERM (the trainer finishes the step and
   checkpoints it); weights, log and validation curve land in ``OUT/train``.

``--dry-run`` runs all three at toy sizes on whatever device there is (a test runs it on
CPU so the script cannot rot): one test file, 64x48 clips of a few frames, a training
budget of seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_TIME = 24.0  # frames per second of the material (anime is 23.976 or 24)


def run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, float, str]:
    """(exit code, seconds, last lines of output) of one command."""
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        code, text = out.returncode, (out.stdout + out.stderr)
    except subprocess.TimeoutExpired as e:
        code, text = 124, f"timed out after {timeout:.0f} s: {e}"
    return code, time.perf_counter() - start, "\n".join(text.strip().splitlines()[-5:])


def make_clip(path: Path, width: int, height: int, seconds: float) -> int:
    """A synthetic 4:3 cartoon (panning camera, a walking character); returns its frame count."""
    from ganime import synthetic

    fps = Fraction(24)
    frames = max(2, int(seconds * fps))
    wide = round(height * 16 / 9 / 2) * 2
    scene = synthetic.Scene(width=wide, height=height, frames=frames, fps=fps, pan=1.0, seed=5)
    synthetic.write_clip(path, (synthetic.centre_crop(f)[:, :width] for f in synthetic.render(scene)), fps, crf=18)
    return frames


def shipped_networks() -> list[str]:
    """Registered neural models whose weights ship in ``weights/``, best first."""
    from ganime.models import PREFERENCE, REGISTRY

    names = [n for n in REGISTRY if REGISTRY[n].needs_weights and (ROOT / "weights" / f"{n}.safetensors").is_file()]
    return sorted(names, key=lambda n: PREFERENCE.index(n) if n in PREFERENCE else len(PREFERENCE))


def check_tests(dry: bool, rows: list[dict]) -> None:
    target = ["tests/test_geometry.py"] if dry else []
    code, sec, tail = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *target], 900)
    rows.append({"part": "tests", "what": "pytest " + (" ".join(target) or "(default suite)"), "ok": code == 0,
                 "seconds": round(sec, 1), "result": tail.splitlines()[-1] if tail else ""})  # fmt: skip


def check_speed(dry: bool, device: str, work: Path, rows: list[dict]) -> None:
    from ganime.geometry import compute_layout
    from ganime.models import PREFERENCE, REGISTRY

    sizes = [(64, 48, 0.5)] if dry else [(1920, 1440, 6.0), (640, 480, 10.0)]
    default = next(n for n in PREFERENCE if n in REGISTRY)
    models = list(dict.fromkeys(["edge", default, *shipped_networks()]))
    if dry:
        models = models[:2]
    for w, h, seconds in sizes:
        clip = work / f"clip_{w}x{h}.mkv"
        frames = make_clip(clip, w, h, seconds)
        lay = compute_layout(w, h)
        size = f"{w}x{h}->{lay.canvas_width}x{lay.canvas_height}"
        ref = None
        if shutil.which("ffmpeg"):
            pad = f"pad={lay.canvas_width}:{lay.canvas_height}:{lay.left}:0"
            cmd = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clip), "-vf", pad, "-c:v", "libx264",
                   "-crf", "18", "-preset", "medium", "-tune", "animation", str(work / "ffmpeg.mkv")]  # fmt: skip
            code, sec, tail = run(cmd, 600)
            ref = sec if code == 0 else None
            rows.append({"part": "speed", "what": f"{size} ffmpeg pad", "ok": code == 0, "seconds": round(sec, 2),
                         "fps": round(frames / sec, 1), "result": tail})  # fmt: skip
        for model in models:
            for temporal in ("on", "off"):
                out = work / f"{model}-{temporal}-{w}.mkv"
                cmd = [sys.executable, "-m", "ganime", "convert", str(clip), "-o", str(out), "-m", model,
                       "--temporal" if temporal == "on" else "--no-temporal", "--device", device,
                       "--crf", "18", "--preset", "medium", "--overwrite", "--no-progress"]  # fmt: skip
                code, sec, tail = run(cmd, 600)
                fps = frames / sec
                row = {
                    "part": "speed",
                    "what": f"{size} {model} temporal {temporal}",
                    "ok": code == 0,
                    "seconds": round(sec, 2),
                    "fps": round(fps, 1),
                    "x_real_time": round(fps / REAL_TIME, 2),
                }
                if ref:
                    row["vs_ffmpeg"] = round(ref / sec, 2)
                if code:
                    row["result"] = tail
                rows.append(row)


def check_train(
    dry: bool, device: str, budget: float, work: Path, out: Path, data: list[Path], rows: list[dict]
) -> None:
    nets = shipped_networks()
    if not nets:
        rows.append({"part": "train", "what": "no shipped network", "ok": False, "seconds": 0.0})
        return
    model = nets[0]
    if not data:  # footage of our own: a few synthetic 16:9 shots
        from PIL import Image

        from ganime import synthetic

        folder = work / "footage"
        folder.mkdir(exist_ok=True)
        size = (86, 48) if dry else (640, 360)
        for s in range(4):
            scene = synthetic.Scene(width=size[0], height=size[1], frames=12, fps=Fraction(24), pan=1.0, seed=20 + s)
            synthetic.write_clip(folder / f"shot{s}.mkv", list(synthetic.render(scene)), crf=12)
            Image.fromarray(next(iter(synthetic.render(scene)))).save(folder / f"still{s}.png")
        data = [folder]
    dest = out / "train"
    dest.mkdir(parents=True, exist_ok=True)
    weights = str(dest / f"{model}.safetensors")
    cmd = [sys.executable, "-m", "ganime", "train", "-m", model, "--init", model, "-o", weights,
           "--steps", "1000000", "--device", device, "--val-every", "5" if dry else "50",
           "--checkpoint-every", "1000000", "--val-frames", "8" if dry else "64"]  # fmt: skip
    if dry:
        cmd += ["--height", "32", "--batch-size", "2"]
    else:
        cmd += ["--batch-size", "16"]
    for d in data:
        cmd += ["-d", str(d)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # finish the step, checkpoint, exit 130
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
    sec = time.perf_counter() - start
    text = proc.stdout.read() if proc.stdout else ""
    log = dest / f"{model}.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    vals = [r for r in records if "val_lpips" in r or "val_psnr" in r]
    steps = records[-1]["step"] if records else 0
    seconds = records[-1].get("seconds", 0.0) if records else 0.0
    key = "val_lpips" if vals and "val_lpips" in vals[0] else "val_psnr"
    curve = " -> ".join(f"{r[key]:.4f}@{r['step']}" for r in vals)
    rows.append(
        {
            "part": "train",
            "what": f"{model} --init {model} ({device})",
            "ok": proc.returncode in (0, 130) and steps > 0,
            "seconds": round(sec, 1),
            "steps": steps,
            "steps_per_s": round(steps / seconds, 2) if seconds else None,
            "result": f"{key} {curve}" if vals else text.strip().splitlines()[-1:],
        }
    )


def table(rows: list[dict]) -> str:
    lines = [f"{'part':<7}{'what':<52}{'ok':<4}{'seconds':>9}  result"]
    for r in rows:
        extra = []
        for k in ("fps", "x_real_time", "vs_ffmpeg", "steps", "steps_per_s"):
            if r.get(k) is not None:
                extra.append(f"{k} {r[k]}")
        res = r.get("result", "")
        if isinstance(res, list):
            res = " ".join(res)
        text = ", ".join(extra) + (("; " if extra and res else "") + str(res).replace("\n", " | ")[:160])
        lines.append(f"{r['part']:<7}{r['what']:<52}{'yes' if r['ok'] else 'NO':<4}{r['seconds']:>9}  {text}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check")))
    ap.add_argument("--dry-run", action="store_true", help="toy sizes, any device: checks that the script runs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-seconds", type=float, default=None, help="training budget (default 150; dry run 15)")
    ap.add_argument("--data", type=Path, action="append", default=[], help="16:9 footage to train on")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: tests, speed, train")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    skip = set(filter(None, args.skip.split(",")))
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"device {device}; GPU {gpu}; torch {torch.__version__}", flush=True)
    rows: list[dict] = []
    started = time.perf_counter()
    if "tests" not in skip:
        check_tests(args.dry_run, rows)
    if "speed" not in skip:
        check_speed(args.dry_run, device, work, rows)
    if "train" not in skip:
        budget = args.train_seconds or (15.0 if args.dry_run else 150.0)
        check_train(args.dry_run, device, budget, work, args.out, args.data, rows)
    shutil.rmtree(work, ignore_errors=True)
    report = {"device": device, "gpu": gpu, "torch": torch.__version__, "seconds": time.perf_counter() - started,
              "rows": rows}  # fmt: skip
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(table(rows))
    print(f"total {report['seconds']:.0f} s; {args.out / 'gpu_check.json'}")
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
