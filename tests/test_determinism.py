"""The same input and options give the same output bytes: alone, anywhere in a batch, in any order."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from conftest import cartoon_frames

from ganime import pipeline, synthetic
from ganime.video.writer import steady_heap


def clips(root: Path) -> list[Path]:
    """Three short panning cartoons of different widths, none a multiple of 16 once widened."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (w, h) in enumerate([(96, 72), (120, 90), (144, 108)]):
        frames = cartoon_frames(10, w, h, seed=i, pan=1.5)
        out.append(synthetic.write_clip(root / f"c{i}.mkv", frames, Fraction(24), synthetic.melody(10 / 24)))
    return out


def test_outputs_are_the_same_bytes_alone_and_in_a_batch_in_both_orders(tmp_path: Path) -> None:
    sources = clips(tmp_path / "in")
    options = pipeline.ConvertOptions(device="cpu")  # the default model, masks and all
    alone = {}
    for src in sources:  # each in a fresh process, as a user converting one file would
        dst = tmp_path / "alone" / f"{src.stem}.mkv"
        run = subprocess.run(
            [sys.executable, "-m", "ganime", "convert", str(src), "-o", str(dst), "--device", "cpu", "--no-progress"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        alone[src.stem] = dst.read_bytes()
    for name, order in (("forward", sources), ("backward", sources[::-1])):
        results = pipeline.convert_many(order, tmp_path / name, options)
        assert [r.status for r in results] == ["converted"] * 3
        for r in results:
            assert r.output is not None and r.output.read_bytes() == alone[r.input.stem], (name, r.input.name)
    with steady_heap() as steady:
        assert steady  # glibc here: the heap is filled while libx264 runs, its stray reads see the same bytes
