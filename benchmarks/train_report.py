"""Summarise ``ganime train`` logs for a model card: the validation curve as a table and an SVG.

    python benchmarks/train_report.py RUN.jsonl [RUN2.jsonl ...] -o benchmarks/results/issue21

For each log: steps, wall-clock, steps per second, the validation metrics at each
validation (LPIPS first), and ``NAME.curve.svg``, validation LPIPS against training
minutes (one line per log, so a fine-tune and its base can share a picture).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def read_log(path: Path) -> list[dict]:
    """The records of one JSONL training log, in order (a resumed run appends; the last record of a step wins)."""
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            by_step[r["step"]] = {**by_step.get(r["step"], {}), **r}
    return [by_step[k] for k in sorted(by_step)]


def summary(records: list[dict]) -> dict:
    """Steps, seconds, steps/s and the validation rows of one log."""
    steps = records[-1]["step"]
    seconds = max((r.get("seconds", 0.0) for r in records), default=0.0)
    vals = [r for r in records if "val_lpips" in r or "val_psnr" in r]
    return {"steps": steps, "seconds": seconds, "rate": steps / seconds if seconds else float("nan"), "vals": vals}


def table(name: str, s: dict) -> str:
    head = f"**{name}**: {s['steps']} steps in {s['seconds'] / 60:.1f} min ({s['rate']:.3f} steps/s)\n\n"
    rows = ["| step | minutes | val LPIPS | val sharpness | val PSNR | val SSIM |", "|---|---|---|---|---|---|"]
    for r in s["vals"]:
        rows.append(
            f"| {r['step']} | {r.get('seconds', 0.0) / 60:.1f} | {r.get('val_lpips', float('nan')):.4f} "
            f"| {r.get('val_sharpness', float('nan')):.3f} | {r.get('val_psnr', float('nan')):.2f} "
            f"| {r.get('val_ssim', float('nan')):.4f} |"
        )
    return head + "\n".join(rows) + "\n"


def svg(curves: dict[str, list[tuple[float, float]]], title: str) -> str:
    """A small line chart: validation LPIPS (y) against minutes of training (x)."""
    w, h, pad = 560, 300, 50
    xs = [x for c in curves.values() for x, _ in c] or [0.0]
    ys = [y for c in curves.values() for _, y in c] or [0.0]
    x1 = max(xs) or 1.0
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-6:
        y0, y1 = y0 - 0.01, y1 + 0.01

    def px(x: float, y: float) -> tuple[float, float]:
        return pad + (w - 2 * pad) * x / x1, h - pad - (h - 2 * pad) * (y - y0) / (y1 - y0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">training minutes</text>',
        f'<text x="14" y="{h / 2}" text-anchor="middle" transform="rotate(-90 14 {h / 2})">validation LPIPS</text>',
    ]
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        _, py = px(0, y)
        parts.append(f'<text x="{pad - 4}" y="{py + 4:.1f}" text-anchor="end">{y:.4f}</text>')
        x = x1 * i / 4
        qx, _ = px(x, y0)
        parts.append(f'<text x="{qx:.1f}" y="{h - pad + 14}" text-anchor="middle">{x:.0f}</text>')
    for k, (name, pts) in enumerate(curves.items()):
        colour = COLOURS[k % len(COLOURS)]
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in pts))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        parts.append(f'<text x="{w - pad}" y="{pad + 14 * k}" text-anchor="end" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--name", default=None, help="file name of the SVG (default: the first log's)")
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    curves = {}
    text = []
    for log in args.logs:
        s = summary(read_log(log))
        text.append(table(log.stem, s))
        curves[log.stem] = [(r.get("seconds", 0.0) / 60, r["val_lpips"]) for r in s["vals"] if "val_lpips" in r]
    name = args.name or args.logs[0].stem
    (args.output / f"{name}.curve.svg").write_text(svg(curves, f"{name}: validation LPIPS"))
    (args.output / f"{name}.train.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
