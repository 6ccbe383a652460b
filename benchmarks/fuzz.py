"""A fuzzing campaign against ``ganime convert``: damaged and absurd inputs, each run in its own process.

    python benchmarks/fuzz.py                      # every kind, 8 cases each
    python benchmarks/fuzz.py --per-kind 20 --seed 3 --json fuzz.json

Tiny synthetic episodes (a panning cartoon with a tune) are written in each container
the reader accepts (MKV, MP4, M4V, MOV, AVI, TS, M2TS, WebM, MPEG-PS, VOB, FLV, WMV, 3GP,
GIF, Y4M), then mutated: truncated at random offsets, bits flipped in the
header and in the payload, ranges zeroed, absurd frame sizes and rates, audio that ends
early or is damaged, video that ends early. Each case is converted by a fresh
``python -m ganime convert`` with a time limit. A case passes when the process exits 0
or 1 within the limit, prints no traceback, leaves its input byte for byte as it was,
and leaves nothing under the final name when it fails (and no ``.partial`` file
either way). What fails is listed with its command, to reproduce it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ganime import synthetic

CONTAINERS = {  # extension -> (codec, pixel format, with sound, size); what the reader meets in the wild
    ".mkv": ("libx264", "yuv420p", True, (64, 48)),
    ".mp4": ("libx264", "yuv420p", True, (64, 48)),
    ".m4v": ("libx264", "yuv420p", True, (64, 48)),
    ".mov": ("libx264", "yuv420p", True, (64, 48)),
    ".avi": ("mpeg4", "yuv420p", True, (64, 48)),
    ".ts": ("libx264", "yuv420p", True, (64, 48)),
    ".m2ts": ("libx264", "yuv420p", True, (64, 48)),
    ".webm": ("libvpx-vp9", "yuv420p", False, (64, 48)),  # (WebM holds no AAC)
    ".mpg": ("mpeg2video", "yuv420p", False, (64, 48)),
    ".vob": ("mpeg2video", "yuv420p", False, (64, 48)),
    ".flv": ("flv", "yuv420p", True, (64, 48)),
    ".wmv": ("wmv2", "yuv420p", True, (64, 48)),
    ".3gp": ("h263", "yuv420p", True, (176, 144)),  # H.263 takes only its own sizes
    ".gif": ("gif", "rgb8", False, (64, 48)),
    ".y4m": ("rawvideo", "yuv420p", False, (64, 48)),
}


@dataclass
class Case:
    kind: str
    name: str
    returncode: int | None = None
    seconds: float = 0.0
    problem: str = ""  # empty: passed
    command: str = ""
    said: str = ""  # the failure line a user saw (to judge whether failing was right)


def frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    scene = synthetic.Scene(
        width=max(width, round(height * 16 / 9 / 2) * 2), height=height, frames=n, pan=1.0, seed=seed
    )
    return [synthetic.centre_crop(f, Fraction(width, height)) for f in synthetic.render(scene)]


def episode(path: Path, n: int = 24, fps: Fraction = Fraction(24), audio_seconds: float | None = None, **kw) -> Path:
    codec, pix, sound, (width, height) = CONTAINERS.get(path.suffix, CONTAINERS[".mkv"])
    seconds = min(n / float(fps), 10.0) if audio_seconds is None else audio_seconds  # 6 frames at 1/1000 fps
    audio = synthetic.melody(seconds) if seconds > 0 and sound else None
    width, height = kw.pop("width", width), kw.pop("height", height)
    if path.suffix in (".mpg", ".vob"):
        fps = Fraction(25)  # MPEG-2 takes only the standard rates
    return synthetic.write_clip(path, frames(n, width, height), fps, audio, codec=codec, pix_fmt=pix, crf=23, **kw)


# ------------------------------------------------------------------ mutations


def truncated(rng: random.Random, base: bytes) -> bytes:
    return base[: rng.randrange(1, len(base))]


def header_flips(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(min(len(data), 4096))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def payload_flips(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 64)):
        i = rng.randrange(min(len(data) - 1, 4096), len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def zeroed(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randint(16, max(32, len(data) // 4)))
    data[start:end] = bytes(end - start)
    return bytes(data)


MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "truncated": truncated,
    "header-bitflips": header_flips,
    "payload-bitflips": payload_flips,
    "zeroed-range": zeroed,
}


def made(kind: str, i: int, rng: random.Random, folder: Path) -> Path:
    """A case that is odd by construction rather than by damage."""
    ext = rng.choice([".mkv", ".mp4"])
    path = folder / f"{kind}_{i}{ext}"
    if kind == "absurd-size":
        width, height = rng.choice([(2, 2), (4, 2), (2, 64), (400, 8), (66, 50), (34, 26)])
        return episode(path, 6, width=width, height=height)
    if kind == "absurd-rate":
        fps = rng.choice([Fraction(1, 1000), Fraction(1, 7), Fraction(1000), Fraction(30000, 1001) * 8, Fraction(1)])
        return episode(path, 6, fps=fps)
    if kind == "audio-ends-early":
        return episode(path, 24, audio_seconds=rng.choice([0.05, 0.3, 0.6]))
    if kind == "video-ends-early":
        return episode(path, rng.choice([1, 2, 5]), audio_seconds=2.0)
    if kind == "broken-audio":
        base = episode(path, 24).read_bytes()
        # Damage the tail, where the interleaved audio of the last seconds sits.
        data = bytearray(base)
        for _ in range(32):
            i = rng.randrange(len(data) // 2, len(data))
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        return path
    raise ValueError(kind)


MADE = ("absurd-size", "absurd-rate", "audio-ends-early", "video-ends-early", "broken-audio")


def check(case: Case, src: Path, out_dir: Path, timeout: float) -> Case:
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    dst = out_dir / f"{src.stem}.16x9.mkv"
    cmd = [sys.executable, "-m", "ganime", "convert", str(src), "-o", str(dst), "-m", "edge", "--device", "cpu",
           "--preset", "ultrafast", "--no-progress"]  # fmt: skip
    case.command = " ".join(cmd)
    started = time.perf_counter()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        case.seconds = time.perf_counter() - started
        case.problem = f"no answer within {timeout:.0f} s (a hang)"
        return case
    case.seconds = time.perf_counter() - started
    case.returncode = run.returncode
    case.said = next((line for line in run.stderr.splitlines() if line.startswith(("failed:", "error:"))), "")
    problems = []
    if run.returncode not in (0, 1):
        problems.append(f"exit code {run.returncode}")
    if "Traceback" in run.stderr or "Traceback" in run.stdout:
        problems.append("a traceback: " + run.stderr.strip().splitlines()[-1][:200])
    if hashlib.sha256(src.read_bytes()).hexdigest() != before:
        problems.append("the input was changed")
    if run.returncode != 0 and dst.exists():
        problems.append("a failed file left an output under the final name")
    if list(out_dir.glob("*.partial*")):
        problems.append("a .partial file was left")
    case.problem = "; ".join(problems)
    return case


def campaign(per_kind: int, seed: int, timeout: float, work: Path, progress: Callable[[Case], None] | None = None):
    rng = random.Random(seed)
    bases = {ext: episode(work / f"base{ext}", 24).read_bytes() for ext in CONTAINERS}
    cases: list[Case] = []
    out_dir = work / "out"
    out_dir.mkdir()
    for ext in CONTAINERS:  # each container whole first: it must convert
        case = check(Case("whole", f"base{ext}"), work / f"base{ext}", out_dir, timeout)
        if case.returncode != 0 and not case.problem:
            case.problem = f"a whole file failed: {case.said}"
        cases.append(case)
        if progress:
            progress(case)
    for k, (kind, mutate) in enumerate(MUTATIONS.items()):
        for i in range(per_kind):
            ext = list(CONTAINERS)[(k * per_kind + i) % len(CONTAINERS)]  # every container, across the kinds
            src = work / f"{kind}_{i}{ext}"
            src.write_bytes(mutate(rng, bases[ext]))
            cases.append(check(Case(kind, src.name), src, out_dir, timeout))
            if progress:
                progress(cases[-1])
    for kind in MADE:
        for i in range(per_kind):
            try:
                src = made(kind, i, rng, work)
            except Exception as e:  # noqa: BLE001 - a case the encoder itself refuses to make
                cases.append(Case(kind, f"{kind}_{i}", problem="", command=f"(not made: {e})"))
                continue
            cases.append(check(Case(kind, src.name), src, out_dir, timeout))
            if progress:
                progress(cases[-1])
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="copy the inputs of failing cases here, to reproduce them")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ganime-fuzz-"))
    try:
        cases = campaign(
            args.per_kind,
            args.seed,
            args.timeout,
            work,
            lambda c: print(
                f"{c.kind:18} {c.name:28} exit {c.returncode} {c.seconds:5.1f} s {c.problem or 'ok'}", flush=True
            ),
        )
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for c in cases:
                if c.problem and (work / c.name).exists():
                    shutil.copy(work / c.name, args.keep / c.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kinds = sorted({c.kind for c in cases})
    print("\n| kind | cases | exit 0 | exit 1 | not made | problems |\n|---|---|---|---|---|---|")
    for k in kinds:
        ks = [c for c in cases if c.kind == k]
        print(
            f"| {k} | {len(ks)} | {sum(c.returncode == 0 for c in ks)} | {sum(c.returncode == 1 for c in ks)} |"
            f" {sum(c.command.startswith('(not made') for c in ks)} | {sum(bool(c.problem) for c in ks)} |"
        )
    bad = [c for c in cases if c.problem]
    for c in bad:
        print(f"PROBLEM {c.kind} {c.name}: {c.problem}\n  {c.command}")
    if args.json:
        args.json.write_text(json.dumps([asdict(c) for c in cases], indent=1))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
