"""Whether a change left the output as it was: for refactors that must change nothing.

    # the temporal engine's output frames on real clips, hashed (run in each checkout)
    python benchmarks/same_output.py hashes before.json          # in the checkout before
    python benchmarks/same_output.py hashes after.json           # after
    python benchmarks/same_output.py compare before.json after.json
    # every quality value of two ``ganime eval`` runs (eval.json; timings left out)
    python benchmarks/same_output.py compare eval_before/eval.json eval_after/eval.json

``hashes`` runs ``TemporalFiller.stream`` (one torch thread) over the first frames of
the clips below, with the models and options that reach the engine's every part
(key frames, loose frames, single frames, the masks found ahead and by halves, the
provenance trace), and writes each output frame's SHA-256 and the engine's counts.
Wide clips are cut to their 4:3 centre, as ``ganime eval`` does. ``compare`` exits 1
on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from fractions import Fraction
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# (name, clip, frames, model, TemporalOptions fields)
CASES = [
    ("calm", "convert/onepiece_640x480_audio.mp4", 180, "patch", {"characters": True}),
    ("dvd", "convert/popeye_dvd_720x478_sar8-9.mkv", 160, "patch", {"characters": True}),
    ("dvd_edge", "convert/popeye_dvd_720x478_sar8-9.mkv", 120, "edge", {"characters": True}),
    ("cuts", "eval/anime_cuts_480p.mp4", 120, "patch", {"characters": True}),
    ("sintel_traced", "eval/3d_sintel_letterboxed.mp4", 40, "patch", {"characters": True, "provenance": True}),
    ("pan_no_characters", "eval/anime_pan_360p.mp4", 120, "patch", {"characters": False}),
    ("static_blur", "eval/anime_static_2to1.mp4", 60, "blur", {"characters": True}),
]


def hashes(out: Path, data: Path, only: list[str]) -> None:
    import numpy as np
    import torch

    from ganime import video
    from ganime.engine import Filler
    from ganime.geometry import compute_layout
    from ganime.models import build_model
    from ganime.pipeline import ConvertOptions, make_filler, plan_file
    from ganime.temporal import TemporalFiller, TemporalOptions

    torch.set_num_threads(1)
    result = {}
    for name, clip, n, model, fields in CASES:
        if only and name not in only:
            continue
        options = ConvertOptions(model=model)
        plan = plan_file(data / clip, out.with_suffix(".unused.mkv"), options)
        filler = make_filler(plan, options, torch.device("cpu"))
        reader = video.Reader(plan.input, color=plan.color)
        frames = list(itertools.islice((f for f in reader if isinstance(f, video.Frame)), n))
        reader.close()
        if filler.layout.left == 0:  # already wide: its 4:3 centre
            h, w = frames[0].image.shape[:2]
            cw = (h * 4 // 3) // 2 * 2
            x0 = (w - cw) // 4 * 2
            frames = [
                video.Frame(np.ascontiguousarray(f.image[:, x0 : x0 + cw]), f.pts, f.time_base or Fraction(1, 24))
                for f in frames
            ]
            filler = Filler(build_model(model), compute_layout(cw, h), torch.device("cpu"))
        engine = TemporalFiller(filler, TemporalOptions(**fields))
        out_frames = engine.stream([engine.prepare(f) for f in frames])
        digests = [hashlib.sha256(f.image.tobytes()).hexdigest()[:16] for f in out_frames]
        counts = {k: v for k, v in vars(engine.stats).items() if k not in ("seconds", "model_seconds")}
        result[name] = {"frames": digests, "stats": counts}
        print(f"{name}: {len(digests)} frames, {counts}", file=sys.stderr)
    out.write_text(json.dumps(result, indent=1))


def compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    bad = 0
    if "clips" in a:  # two eval.json: every value but the timings
        key = lambda c: (c["clip"], c["model"])  # noqa: E731
        runs_a, runs_b = {key(c): c for c in a["clips"]}, {key(c): c for c in b["clips"]}
        if runs_a.keys() != runs_b.keys():
            print("different clips or models")
            return 1
        for k, run in runs_a.items():
            for field, value in run.items():
                if "fps" not in field and runs_b[k].get(field) != value:
                    bad += 1
                    print(f"{k[0]} {k[1]}: {field} {value} -> {runs_b[k].get(field)}")
        print(f"{len(runs_a)} clip runs compared")
    else:
        for name, run in a.items():
            other = b.get(name)
            if other is None:
                print(f"{name}: missing")
                bad += 1
                continue
            differ = [i for i, (x, y) in enumerate(zip(run["frames"], other["frames"], strict=False)) if x != y]
            # Counts one side does not have (a counter added since) are not compared.
            shared = run["stats"].keys() & other["stats"].keys()
            same_counts = all(run["stats"][k] == other["stats"][k] for k in shared)
            print(
                f"{name}: {len(run['frames'])}/{len(other['frames'])} frames, {len(differ)} differ"
                f"{f' (first {differ[:3]})' if differ else ''}, counts {'the same' if same_counts else 'differ'}"
            )
            bad += len(differ) + (len(run["frames"]) != len(other["frames"])) + (not same_counts)
    print("the same" if not bad else f"{bad} difference(s)")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hashes", help="hash the engine's output frames on real clips")
    h.add_argument("out", type=Path)
    h.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    h.add_argument("--only", nargs="*", default=[], help="case names")
    c = sub.add_parser("compare", help="two hashes files, or two eval.json")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.command == "hashes":
        hashes(args.out, args.data, args.only)
    else:
        raise SystemExit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
