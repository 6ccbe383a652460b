"""Compositing: generated pixels pasted beside the picture with a feathered seam, the one rule every path uses.

``Compositor`` blends a model's prediction into the canvas; ``SideSeam`` is the same
blend for sides held apart from the picture (the temporal engine). The writer then puts
the source's own samples back in the picture area (``video.Writer``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .geometry import Layout, widened_runs


def column_bands(mask: np.ndarray, margin: int) -> list[tuple[int, int]]:
    """Column ranges that hold generated pixels, each widened by ``margin``.

    The compositor works on these bands only: for side strips that is two narrow
    slices of the canvas instead of all of it.
    """
    return widened_runs(mask.any(axis=0), lambda _: margin)


def nearest_known(mask: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """For each generated pixel within ``reach`` steps of the known area: its nearest known pixel.

    Returns (source, steps): ``source`` holds the flat index of that known pixel (-1
    beyond reach; its own index for a known pixel), ``steps`` the chessboard distance
    (0 for known pixels, reach + 1 beyond reach). Computed once per layout.
    """
    h, w = mask.shape
    source = np.where(mask, -1, np.arange(h * w).reshape(h, w))
    steps = np.where(mask, reach + 1, 0)
    for step in range(1, reach + 1):
        grown = source.copy()
        for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)):
            shifted = np.full_like(source, -1)
            ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
            xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            shifted[yd, xd] = source[ys, xs]
            take = (grown < 0) & (shifted >= 0)
            grown[take] = shifted[take]
        steps[(source < 0) & (grown >= 0)] = step
        source = grown
    return source, steps


@dataclass
class Compositor:
    """Pastes predictions into the generated area with a feathered seam.

    The ``feather`` generated pixels next to the known picture blend from the nearest
    known pixel (so the seam is continuous) into the prediction.
    """

    mask: torch.Tensor  # (1, 1, H, W) 1 = generate
    bands: list[tuple[int, int]]  # column ranges holding generated pixels
    spans: list[tuple[int, int]]  # per band, the columns where the seam blend happens
    gathers: list[tuple[torch.Tensor, torch.Tensor]]  # per span: nearest-known index, alpha
    feather: int

    @classmethod
    def for_mask(cls, mask: np.ndarray, device: torch.device, feather: int) -> Compositor:
        gen = mask > 0
        source, steps = nearest_known(gen, feather)
        alpha = np.where(gen, np.clip((steps - 0.5) / max(feather, 1), 0, 1), 0).astype(np.float32)
        bands = column_bands(gen, feather + 1)
        blended = (gen & (alpha < 1)).any(axis=0)
        spans: list[tuple[int, int]] = []
        gathers: list[tuple[torch.Tensor, torch.Tensor]] = []
        for x0, x1 in bands:
            cols = np.flatnonzero(blended[x0:x1])
            if cols.size == 0 or feather == 0:
                spans.append((x0, x0))
                gathers.append((torch.zeros(0, dtype=torch.long), torch.zeros(0)))
                continue
            f0, f1 = x0 + int(cols[0]), x0 + int(cols[-1]) + 1
            idx = np.where(source[:, f0:f1] >= 0, source[:, f0:f1], 0)  # beyond reach alpha is 1
            spans.append((f0, f1))
            gathers.append(
                (
                    torch.from_numpy(idx.reshape(-1)).to(device),
                    torch.from_numpy(alpha[:, f0:f1]).to(device).view(1, 1, -1, f1 - f0),
                )
            )
        m = torch.from_numpy(mask.astype(np.float32)).to(device).view(1, 1, *mask.shape)
        return cls(m, bands, spans, gathers, feather)

    def blend(self, canvas: torch.Tensor, prediction: torch.Tensor) -> list[torch.Tensor]:
        """The output pixels, band by band, as float (N, 3, H, band width)."""
        n, c, h, _ = canvas.shape
        flat = canvas.flatten(2)  # (N, 3, H*W)
        out = []
        for (x0, x1), (f0, f1), (idx, alpha) in zip(self.bands, self.spans, self.gathers, strict=True):
            band = prediction[..., x0:x1]
            if f1 > f0:
                band = band.clone()
                edge = flat.index_select(2, idx).view(n, c, h, f1 - f0)
                band[..., f0 - x0 : f1 - x0] = prediction[..., f0:f1] * alpha + edge * (1 - alpha)
            out.append(band)
        return out


@dataclass
class SideSeam:
    """The compositor's seam blend for sides kept apart from the picture.

    Engines that hold the sides on their own (the temporal engine) keep them as an
    (H, S, 3) side grid: the left strip's columns, then the right strip's. This is
    ``Compositor.blend`` in those terms: the same pixels blend from the same picture
    pixels with the same alpha. Where the seam is whole-height bands whose alpha
    depends on the column alone (side strips beside a full-height picture), the blend
    runs on slices (``bands``) instead of gathering every pixel.
    """

    rows: torch.Tensor  # side-grid row, column, alpha and flat picture index of each blended pixel
    cols: torch.Tensor
    alphas: torch.Tensor
    sources: torch.Tensor
    at: tuple[np.ndarray, np.ndarray]
    bands: list[tuple[int, int, int, torch.Tensor]] | None  # (first, last + 1 column, picture column, alpha)

    @classmethod
    def of(cls, compositor: Compositor, layout: Layout) -> SideSeam:
        h, w, left, pic_w = layout.canvas_height, layout.canvas_width, layout.left, layout.content.width
        n_side = w - pic_w
        strips = [r for r in ((0, left), (left, n_side)) if r[1] > r[0]]
        rows, cols, alphas, sources = cls._pixels(compositor, h, w, left, pic_w)
        at = (rows.numpy(), cols.numpy())
        return cls(rows, cols, alphas, sources, at, cls._bands(rows, cols, alphas, sources, strips, h, pic_w))

    @staticmethod
    def _pixels(
        compositor: Compositor, h: int, w: int, left: int, pic_w: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, side columns, alpha, picture index) of every blended side pixel."""
        rows, cols, alphas, sources = [], [], [], []
        for (f0, f1), (idx, alpha) in zip(compositor.spans, compositor.gathers, strict=True):
            if f1 <= f0:
                continue
            r, c = torch.meshgrid(torch.arange(h), torch.arange(f0, f1), indexing="ij")
            a = alpha.cpu().reshape(h, f1 - f0)
            src = idx.cpu().reshape(h, f1 - f0)
            side = (c < left) | (c >= left + pic_w)
            keep = side & (a < 1)
            sr, sc = src[keep] // w, src[keep] % w - left
            rows.append(r[keep])
            cols.append(torch.where(c[keep] < left, c[keep], c[keep] - pic_w))
            alphas.append(a[keep])
            sources.append(sr * pic_w + sc.clamp(0, pic_w - 1))
        if not rows:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty, torch.zeros(0), empty
        return torch.cat(rows), torch.cat(cols), torch.cat(alphas), torch.cat(sources)

    @staticmethod
    def _bands(
        rows: torch.Tensor,
        cols: torch.Tensor,
        alphas: torch.Tensor,
        sources: torch.Tensor,
        strips: list[tuple[int, int]],
        h: int,
        pic_w: int,
    ) -> list[tuple[int, int, int, torch.Tensor]] | None:
        """The blend as whole-height bands, if it is that; None for any other shape."""
        if rows.numel() == 0:
            return []
        bands = []
        for s0, s1 in strips:
            inside = (cols >= s0) & (cols < s1)
            if not bool(inside.any()):
                continue
            c, r, a, src = cols[inside], rows[inside], alphas[inside], sources[inside]
            c0, c1 = int(c.min()), int(c.max()) + 1
            width = c1 - c0
            if c.numel() != h * width:
                return None
            grid = torch.full((h, width), -1.0)
            grid[r, c - c0] = a
            picture_col = src % pic_w
            if (grid < 0).any() or not bool((grid == grid[:1]).all()):
                return None
            if not bool((picture_col == picture_col[0]).all()) or not bool((src // pic_w == r).all()):
                return None
            bands.append((c0, c1, int(picture_col[0]), grid[0].view(1, width, 1)))
        return bands

    def blend(
        self, picture: torch.Tensor, values: torch.Tensor, scale: float, dtype: np.dtype, base: np.ndarray | None = None
    ) -> np.ndarray:
        """(H, S, 3) output samples: ``values`` (in [0, 1]) feathered into ``picture``'s edge.

        With ``base`` (sides already blended once), only the seam is redone.
        """
        fr, fc, fa, fs = self.rows, self.cols, self.alphas, self.sources
        if base is not None:
            out = base.copy()
        else:
            out = values.mul(scale).round_().clamp_(0, scale).numpy().astype(dtype)
        if self.bands is not None:
            for c0, c1, pc, a in self.bands:  # the same blend on slices
                edge = picture[:, pc : pc + 1].float()
                seam = (a * scale) * values[:, c0:c1] + (1 - a) * edge
                out[:, c0:c1] = seam.round_().clamp_(0, scale).numpy().astype(dtype)
        elif fr.numel():
            # The compositor's blend from this frame's picture edge, except where the side is real.
            a = fa[:, None]
            edge = picture.reshape(-1, 3).index_select(0, fs).float()
            seam = (a * scale) * values[fr, fc] + (1 - a) * edge
            out[self.at] = seam.round_().clamp_(0, scale).numpy().astype(dtype)
        return out
