"""How long a 22-minute episode takes, per model, at SD and HD: the README's table.

    python benchmarks/episode_time.py --data ../shared/data -o benchmarks/results/issue30/episode_time

Runs ``bench_convert.py`` (each model and ``ffmpeg -vf pad`` in fresh processes, the
same encoder settings, alternating) on three real 4:3 sources built from the
development data with the ffmpeg CLI (the benchmark's own inputs; ganime never calls
ffmpeg):

- SD calm: the 640x480 TV anime clip, played 4 times back to back (held drawings,
  still cameras);
- SD busy: 20 s of the 720x478 SAR 8:9 DVD cartoon (film weave: the picture moves in
  every frame; telecined, so inverse telecine runs too);
- HD busy: the 4:3 centre (1440x1080) of the anamorphic film clip (cuts, a lateral
  move), square pixels.

An episode's time is 22 minutes times the measured seconds per second of source (a
DVD's 29.97 frames a second and a film's 23.976 alike); the ratio to ``ffmpeg -vf pad``
in the same run is the figure to compare across machines. Writes ``NAME.json`` and
``NAME.md``; ``--table NAME.json`` writes the table again from a run's JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPISODE_MINUTES = 22
HERE = Path(__file__).resolve().parent


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", *args], check=True)


def sources(data: Path, work: Path) -> list[tuple[str, Path, int]]:
    """(label, clip, --loop) for each case."""
    busy = work / "sd_busy_dvd_720x478.mkv"
    dvd = data / "convert/popeye_dvd_720x478_sar8-9.mkv"
    _ffmpeg("-i", str(dvd), "-t", "20", "-map", "0:v", "-c", "copy", str(busy))
    hd = work / "hd_busy_1440x1080.mkv"
    _ffmpeg("-i", str(data / "eval/anime_jjk0_anamorphic_239.mp4"), "-vf", "scale=2586:1080,setsar=1,crop=1440:1080",
            "-c:v", "libx264", "-crf", "16", "-preset", "fast", "-c:a", "copy", str(hd))  # fmt: skip
    return [
        ("SD calm (640x480 TV anime)", data / "convert/onepiece_640x480_audio.mp4", 4),
        ("SD busy (720x478 DVD, film weave)", busy, 1),
        ("HD busy (1440x1080, cuts, moves)", hd, 1),
    ]


def table(rows: list[dict], machine: str, repeat: int, day: str) -> str:
    """The markdown table of a run."""
    lines = [
        f"Measured {day} on {machine}; libx264 CRF 18 preset medium; {repeat} run(s).",
        "",
        "| source | tool | fps | vs ffmpeg pad | a 22-min episode | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        minutes = EPISODE_MINUTES * r["seconds"] / (r["frames"] / r["rate"])
        tool = r["tool"].replace("ganime default", "ganime default (patch)")
        figures = f"{r['fps']:.1f} | {r['ratio']:.2f}x | {minutes:.0f} min | {r['peak_rss_mb']:.0f} MB"
        lines.append(f"| {r['case']} | {tool} | {figures} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", default="default,edge,blur,glcic,lama")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=Path("episode_time"))
    parser.add_argument("--table", type=Path, help="only write the table again from this run's JSON")
    args = parser.parse_args()
    if args.table:
        run = json.loads(args.table.read_text())
        text = table(run["rows"], run["machine"], run["repeat"], run["day"])
        args.table.with_suffix(".md").write_text(text)
        print(text, end="")
        return
    from ganime import video

    rows = []
    with tempfile.TemporaryDirectory(prefix="ganime-episode-") as tmp:
        for label, clip, times in sources(args.data, Path(tmp)):
            out = Path(tmp) / "bench.json"
            cmd = [sys.executable, str(HERE / "bench_convert.py"), "--clip", str(clip), "--loop", str(times),
                   "--models", args.models, "--repeat", str(args.repeat), "--json", str(out)]  # fmt: skip
            subprocess.run(cmd, check=True)
            result = json.loads(out.read_text())
            rate = float(video.probe(clip).frame_rate or 24)
            for r in result["results"]:
                rows.append({"case": label, "frames": result["frames"], "rate": rate, **r})
    machine = f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, no GPU used (--device cpu)"
    run = {"machine": machine, "repeat": args.repeat, "day": time.strftime("%Y-%m-%d"), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(run, indent=2))
    text = table(rows, machine, args.repeat, run["day"])
    args.output.with_suffix(".md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
