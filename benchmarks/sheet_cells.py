"""Cut chosen cells out of a ``ganime eval`` contact sheet into a smaller picture (for the README).

    python benchmarks/sheet_cells.py EVAL_DIR/sheet_CLIP.png --row 1 --cells 0,2,4,8 -o picture.png

Cells are numbered left to right as the sheet lays them out: ground truth, input (sides
blanked), then each model in the order ``ganime eval -m`` named them, with the temporal
engine and per frame when both were scored. The sheet's grid (columns, rows) is found
from its white gutters.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def runs(white: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of non-gutter positions."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], white.astype(np.int8), [1]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sheet", type=Path)
    ap.add_argument("--row", type=int, default=0)
    ap.add_argument("--cells", required=True, help="comma-separated cell numbers")
    ap.add_argument("--columns", type=int, default=2, help="cells per row of the picture")
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    img = np.asarray(Image.open(a.sheet).convert("RGB"))
    white = (img > 250).all(axis=-1)
    cols, rows = runs(white.all(axis=0)), runs(white.all(axis=1))
    y0, y1 = rows[a.row]
    cells = [img[y0:y1, cols[int(c)][0] : cols[int(c)][1]] for c in a.cells.split(",")]
    h, w = max(c.shape[0] for c in cells), max(c.shape[1] for c in cells)
    n = len(cells)
    per = a.columns
    gap = 6
    out = np.full(((n + per - 1) // per * (h + gap) + gap, per * (w + gap) + gap, 3), 255, np.uint8)
    for i, c in enumerate(cells):
        r, k = divmod(i, per)
        out[gap + r * (h + gap) :][: c.shape[0], gap + k * (w + gap) :][:, : c.shape[1]] = c
    a.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(a.output, optimize=True)
    print(a.output)


if __name__ == "__main__":
    main()
