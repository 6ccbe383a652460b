"""Speed of ``ganime convert`` against ``ffmpeg -vf pad`` with the same encoder settings.

    python benchmarks/bench_convert.py                    # 640x480, 20 s synthetic cartoon
    python benchmarks/bench_convert.py --clip my4x3.mkv   # any 4:3 clip
    python benchmarks/bench_convert.py --models default,default:off,edge
    python benchmarks/bench_convert.py --clip short4x3.mp4 --loop 8   # a real clip, played 8 times
    python benchmarks/bench_convert.py --models default,default:nochars  # the cost of the character masks
    python benchmarks/bench_convert.py --clip ../shared/data/eval/anime_gasmask_1080p60.mp4 --centre-43 --loop 3  # HD

The synthetic clip is a worst case for the temporal engine (the camera pans in every
frame, so every frame propagates) and an easy one for the encoder (flat paint); real
episodes hold drawings and cameras still most of the time. ``--loop N`` makes a
longer clip out of a short real one (stream copy, N times back to back), so that the
start-up cost of either tool does not decide the ratio.

``--centre-43`` cuts the 4:3 centre out of a wider clip first (1080p -> 1440x1080, an HD
4:3 source such as a Blu-ray of an old show), re-encoded once at x264 CRF 12 with its
first audio track copied; the loop, if any, repeats that.

A model is NAME (the temporal engine, as ``convert`` runs by default), NAME:off
(``--no-temporal``, every frame filled on its own) or NAME:nochars (the engine with
``--no-characters``: no segmenter); ``default`` is the default model. Any of them may
end in @DIR: that ganime is imported from the checkout DIR (``git worktree add DIR
COMMIT``), so code before and after a change is timed in the same command:

    python benchmarks/bench_convert.py --models default@/tmp/before,default --repeat 3

Every run is a fresh process, timed wall-clock, with its peak resident memory read
from the kernel (wait4). ffmpeg and ganime runs alternate, so a machine that slows
down midway affects both alike; speeds are reported as ratios to ffmpeg in the same
run. ffmpeg (the CLI) is only the reference here: ganime itself never calls it.
"CPU s" is the process's user + system time over all its threads (the encoder's too).

``--floor`` adds a row: ffmpeg re-encoding the first ganime run's output with the same
settings. Real sides cost x264 more than black bars, and on a machine whose cores the
encoder fills that row's speed bounds any tool that makes those pictures (ganime's
analysis and fills share the same cores):

    python benchmarks/bench_convert.py --clip short4x3.mp4 --loop 8 --models default,edge:nochars --floor
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run in a child process: a parent that has imported torch would make every forked
# child's peak RSS start at the parent's size.
HELPER = """
import json, sys
from fractions import Fraction
from pathlib import Path
import av
from ganime import synthetic
from ganime.geometry import compute_layout
clip, seconds = Path(sys.argv[1]), float(sys.argv[2])
if not clip.exists():
    fps = Fraction(24)
    scene = synthetic.Scene(width=852, height=480, frames=int(seconds * fps), fps=fps, pan=1.5, seed=11)
    frames = (synthetic.centre_crop(f) for f in synthetic.render(scene))
    synthetic.write_clip(clip, frames, fps, synthetic.melody(seconds), crf=18)
with av.open(str(clip)) as c:
    v = c.streams.video[0]
    w, h = v.codec_context.width, v.codec_context.height
    n = sum(1 for _ in c.decode(video=0))
lay = compute_layout(w, h, v.sample_aspect_ratio)
canvas = [lay.canvas_width, lay.canvas_height]
print(json.dumps({"width": w, "height": h, "frames": n, "canvas": canvas, "left": lay.left}))
"""


LOOP = """
import sys
from pathlib import Path
import av
src, dst, times = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
with av.open(str(src)) as template, av.open(str(dst), "w") as out:
    streams = [s for s in template.streams if s.type in ("video", "audio")]
    outs = {s.index: out.add_stream_from_template(s) for s in streams}
    end = 0.0  # seconds: where the next copy starts (the latest packet end of any stream)
    for p in template.demux(streams):
        if p.pts is not None and p.time_base:
            end = max(end, float((p.pts + (p.duration or 0)) * p.time_base))
    last_dts = {}  # per stream: the last decoding time written
    for i in range(times):
        with av.open(str(src)) as c:
            for p in c.demux([c.streams[s.index] for s in streams]):
                if p.dts is None and p.pts is None:
                    continue
                shift = round(i * end / p.time_base)
                if p.pts is not None:
                    p.pts += shift
                if p.dts is not None:
                    p.dts += shift
                elif i and p.stream.index in last_dts:
                    # Matroska stores no decoding time for the first frames before a
                    # B-frame; the muxer's guess (the presentation time) would run back
                    # past the copy before: the next tick after it instead.
                    p.dts = last_dts[p.stream.index] + 1
                if p.dts is not None:
                    last_dts[p.stream.index] = p.dts
                p.stream = outs[p.stream.index]
                out.mux(p)
"""


CROP = """
import sys
import av
src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as c, av.open(dst, "w") as out:
    v = c.streams.video[0]
    w, h = v.codec_context.width, v.codec_context.height
    cw = min(w, round(h * 4 / 3 / 2) * 2)
    x0 = (w - cw) // 4 * 2
    ov = out.add_stream("libx264", rate=v.average_rate, options={"crf": "12", "preset": "veryfast"})
    ov.width, ov.height, ov.pix_fmt = cw, h, "yuv420p"
    ov.codec_context.time_base = v.time_base
    audio = list(c.streams.audio)[:1]
    oa = {s.index: out.add_stream_from_template(s) for s in audio}
    for p in c.demux([v, *audio]):
        if p.stream.type == "audio":
            if p.dts is not None:
                p.stream = oa[p.stream.index]
                out.mux(p)
            continue
        for f in p.decode():
            g = av.VideoFrame.from_ndarray(f.to_ndarray(format="rgb24")[:, x0 : x0 + cw].copy(), format="rgb24")
            g.pts, g.time_base = f.pts, f.time_base
            out.mux(ov.encode(g))
    out.mux(ov.encode())
"""


def centre_43(clip: Path, work: Path) -> Path:
    """The 4:3 centre of a wider ``clip`` as a new file in ``work`` (re-encoded, audio copied)."""
    dst = work / f"{clip.stem}_43.mkv"
    out = subprocess.run([sys.executable, "-c", CROP, str(clip), str(dst)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return dst


def loop(clip: Path, times: int, work: Path) -> Path:
    """``clip`` played ``times`` times back to back (stream copy) as a new file in ``work``."""
    dst = work / f"{clip.stem}_x{times}.mkv"
    out = subprocess.run([sys.executable, "-c", LOOP, str(clip), str(dst), str(times)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return dst


def describe(clip: Path, seconds: float) -> dict:
    """Make the synthetic clip if needed; return its size, frame count and 16:9 canvas."""
    out = subprocess.run([sys.executable, "-c", HELPER, str(clip), str(seconds)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def timed(cmd: list[str], checkout: str | None = None) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, CPU seconds: user + system, all threads) of one process;
    ``checkout``: import ganime from there.

    ``python -m`` puts the working directory before PYTHONPATH on the module path, so a
    checkout's ganime runs from inside it (the paths in ``cmd`` are absolute)."""
    env = None
    if checkout:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=checkout)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="a 4:3 clip (default: a synthetic 640x480 cartoon)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic clip")
    parser.add_argument("--loop", type=int, default=1, help="play --clip this many times back to back")
    parser.add_argument("--centre-43", action="store_true", help="cut the 4:3 centre out of a wider --clip first")
    parser.add_argument("--models", default="default,default:off")
    parser.add_argument("--crf", default="18")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time ffmpeg encoding the first ganime run's own output (decode + x264, same settings):"
        " what any tool making those pictures spends in the encoder alone",
    )
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed as the reference (apt-get install ffmpeg)")

    work = Path(tempfile.mkdtemp(prefix="ganime-bench-"))
    clip = args.clip.resolve() if args.clip else work / "clip_640x480.mkv"
    if args.clip and args.centre_43:
        clip = centre_43(clip, work)
    if args.clip and args.loop > 1:
        clip = loop(clip, args.loop, work)
    info = describe(clip, args.seconds)
    width, height, frames = info["width"], info["height"], info["frames"]
    (canvas_w, canvas_h), left = info["canvas"], info["left"]
    pad = f"pad={canvas_w}:{canvas_h}:{left}:0"
    ffmpeg = ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clip), "-vf", pad, "-c:v", "libx264",
              "-crf", args.crf, "-preset", args.preset, "-tune", "animation", "-c:a", "copy",
              str(work / "ffmpeg.mkv")]  # fmt: skip
    runs: dict[str, list[tuple[float, float, float]]] = {"ffmpeg pad": []}
    commands: dict[str, tuple[list[str], str | None]] = {"ffmpeg pad": (ffmpeg, None)}
    for n, spec in enumerate(args.models.split(",")):
        named, _, checkout = spec.partition("@")
        if checkout and not (Path(checkout) / "ganime" / "__init__.py").is_file():
            raise SystemExit(f"{checkout}: not a ganime checkout (no ganime/__init__.py)")
        checkout = str(Path(checkout).resolve()) if checkout else ""
        model, _, mode = named.partition(":")
        cmd = [
            sys.executable, "-m", "ganime", "convert", str(clip), "-o", str(work / f"{n}-{model}-{mode or 'on'}.mkv"),
            "--crf", args.crf, "--preset", args.preset, "--device", "cpu", "--overwrite", "--no-progress",
            "--no-temporal" if mode == "off" else "--temporal",
        ]  # fmt: skip
        if mode == "nochars":
            cmd.append("--no-characters")
        if model != "default":
            cmd += ["--model", model]
        commands[f"ganime {spec}"] = (cmd, checkout or None)
        runs[f"ganime {spec}"] = []
    first = next((cmd[cmd.index("-o") + 1] for name, (cmd, _) in commands.items() if name != "ffmpeg pad"), None)
    if args.floor and first is not None:
        # The encoder's own cost on ganime's pictures (real sides cost x264 more than black
        # bars): on a machine whose cores the encoder fills, no tool making these pictures
        # beats this row's speed.
        commands["ffmpeg encode of ganime's output"] = (
            ["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", first, "-map", "0:v", "-c:v", "libx264",
             "-crf", args.crf, "-preset", args.preset, "-tune", "animation", str(work / "floor.mkv")],
            None,
        )  # fmt: skip
        runs["ffmpeg encode of ganime's output"] = []
    for _ in range(args.repeat):
        for name, (cmd, checkout) in commands.items():
            runs[name].append(timed(cmd, checkout))

    base = statistics.median(r[0] for r in runs["ffmpeg pad"])
    print(f"clip: {clip} ({width}x{height}, {frames} frames) -> {canvas_w}x{canvas_h}")
    print(f"encoder: libx264 crf {args.crf} preset {args.preset} tune animation; {args.repeat} run(s) each, median")
    column = max(24, *(len(name) + 2 for name in runs))
    print(f"{'tool':<{column}}{'seconds':>9}{'fps':>9}{'speed vs ffmpeg':>17}{'peak RSS MB':>13}{'CPU s':>9}")
    table = []
    for name, rs in runs.items():
        sec = statistics.median(r[0] for r in rs)
        rss = max(r[1] for r in rs)
        cpu = statistics.median(r[2] for r in rs)
        table.append(
            {"tool": name, "seconds": sec, "fps": frames / sec, "ratio": base / sec, "peak_rss_mb": rss, "cpu_s": cpu}
        )
        print(f"{name:<{column}}{sec:>9.2f}{frames / sec:>9.1f}{base / sec:>16.2f}x{rss:>13.0f}{cpu:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps({"clip": str(clip), "frames": frames, "results": table}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
