"""The benchmark scripts that must not rot: the GPU check's dry run, the training report, the clip looper."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import av
from conftest import load_benchmark

from ganime import synthetic

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_covers_every_part(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "gpu_check.py"
    cmd = [sys.executable, str(script), "--dry-run", "--device", "cpu", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = {r["part"] for r in report["rows"]}
    assert parts == {"tests", "speed", "train"}
    speed = [r for r in report["rows"] if r["part"] == "speed" and "temporal" in r["what"]]
    assert {"on", "off"} <= {r["what"].split()[-1] for r in speed} and all(r["fps"] > 0 for r in speed)
    train = next(r for r in report["rows"] if r["part"] == "train")
    assert train["steps"] > 0 and "val_" in train["result"]
    assert list((tmp_path / "train").glob("*.safetensors"))  # the weights come back with the report
    assert "part" in out.stdout and "train" in out.stdout  # the table is printed


def test_train_report_turns_a_log_into_a_table_and_a_curve(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    records = [{"step": 0, "val_lpips": 0.30, "val_psnr": 18.0, "val_ssim": 0.7, "val_sharpness": 0.6},
               {"step": 1, "seconds": 30.0, "g": 1.0},
               {"step": 2, "seconds": 60.0, "g": 0.9, "val_lpips": 0.25, "val_psnr": 18.5, "val_ssim": 0.71,
                "val_sharpness": 0.7}]  # fmt: skip
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_report.py"), str(log), "-o", str(tmp_path / "rep")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "rep" / "run.train.md").read_text()
    assert "2 steps in 1.0 min" in md and "| 2 | 1.0 | 0.2500 |" in md
    svg = (tmp_path / "rep" / "run.curve.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 1


def test_fuzz_mutations_damage_and_one_case_is_checked(tmp_path: Path) -> None:
    """The fuzz script cannot rot: its mutations change the bytes, and its check runs a real case."""
    import random

    fuzz = load_benchmark("fuzz")
    base = fuzz.episode(tmp_path / "base.mkv", 8).read_bytes()
    for name, mutate in fuzz.MUTATIONS.items():
        damaged = mutate(random.Random(1), base)
        assert damaged != base, name
    assert len(fuzz.truncated(random.Random(1), base)) < len(base)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(base[: len(base) // 3])
    out = tmp_path / "out"
    out.mkdir()
    case = fuzz.check(fuzz.Case("truncated", cut.name), cut, out, timeout=120)
    assert case.returncode in (0, 1) and case.problem == ""


def test_bench_convert_loops_the_4x3_centre_of_a_wide_clip(tmp_path: Path) -> None:
    """``--centre-43 --loop``: the re-encoded centre (Matroska, B-frames, no decoding time
    on its first frames) played twice: every frame, timestamps rising."""
    bench = load_benchmark("bench_convert")
    scene = synthetic.Scene(width=256, height=144, frames=24, pan=1.5, seed=3)
    wide = synthetic.write_clip(tmp_path / "wide.mp4", list(synthetic.render(scene)))
    centre = bench.centre_43(wide, tmp_path)
    looped = bench.loop(centre, 2, tmp_path)
    with av.open(str(looped)) as c:
        v = c.streams.video[0]
        pts = [f.pts for f in c.decode(v)]
        width = v.codec_context.width
    assert width == 192 and len(pts) == 48
    assert all(b > a for a, b in itertools.pairwise(pts))
