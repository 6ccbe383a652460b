"""Render the shipped example clip (and, on request, its 16:9 ground truth).

    python examples/make_example.py                      # examples/cartoon_4x3.mkv
    python examples/make_example.py --truth truth.mkv    # also the true 16:9 view

The clip is made entirely by ganime.synthetic: a painted background wider than the
frame, a camera panning across it, a character walking on twos, and a short tune.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ganime.synthetic import make_example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("-o", "--output", type=Path, default=here / "cartoon_4x3.mkv")
    parser.add_argument("--truth", type=Path, default=None, help="also write the 16:9 ground truth here")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    path = make_example(args.output, seconds=args.seconds, truth=args.truth)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
