"""Inverse telecine of a synthetic 2:3 pulldown clip: frame counts, rates and A/V timing, as a table.

    python benchmarks/ivtc_report.py > benchmarks/results/issue24/ivtc.md

96 film pictures of a fast pan are telecined to 120 frames at 29.97 (with a tune) and converted
with the defaults (``--deinterlace auto``); the source and the output are then read back.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import av

from ganime import synthetic
from ganime.pipeline import ConvertOptions, convert_file

NTSC = Fraction(30000, 1001)


def film(n: int, width: int = 320, height: int = 240) -> list:
    scene = synthetic.Scene(width=round(height * 16 / 9 / 2) * 2, height=height, frames=n, pan=3.0, seed=0)
    return [synthetic.centre_crop(f, Fraction(width, height)) for f in synthetic.render(scene)]


def times(path: Path) -> tuple[list[float], list[float], Fraction]:
    with av.open(str(path)) as c:
        v = [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]
        c.seek(0)
        a = [
            float(p.pts * p.time_base)
            for p in c.demux(c.streams.audio[0])
            if p.size and p.pts is not None and p.pts >= 0
        ]
        return v, a, c.streams.video[0].average_rate


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ganime-ivtc-"))
    frames = synthetic.telecine(film(96))
    src = synthetic.write_clip(work / "tc.mkv", frames, NTSC, synthetic.melody(len(frames) / float(NTSC)), crf=12)
    result = convert_file(src, work / "out.mkv", ConvertOptions(overwrite=True))
    sv, sa, srate = times(src)
    ov, oa, orate = times(work / "out.mkv")
    print("# Inverse telecine of a synthetic 2:3 pulldown clip (`ganime convert`, defaults)\n")
    print("| | frames | rate | first picture (s) | end of last picture (s) | first audio packet (s) | audio packets |")
    print("|---|---|---|---|---|---|---|")
    for name, v, a, rate in (("source (30i, 96 film pictures)", sv, sa, srate), ("output", ov, oa, orate)):
        print(f"| {name} | {len(v)} | {rate} | {v[0]:.4f} | {v[-1] + 1 / float(rate):.4f} | {a[0]:.4f} | {len(a)} |")
    start = abs(ov[0] - sv[0]) * 1000
    end = abs((ov[-1] + 1 / float(orate)) - (sv[-1] + 1 / float(srate))) * 1000
    print(f"\nA/V offset against the source: picture start {start:.1f} ms, picture end {end:.1f} ms; the audio is")
    print("copied packet for packet (`tests/test_fields.py` checks time and bytes).")
    if result.plan is not None and result.plan.deinterlace is not None:
        print(f"Fields: {result.plan.deinterlace.describe()}")


if __name__ == "__main__":
    main()
