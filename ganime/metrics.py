"""Quality of generated pixels against ground truth; imports nothing from ganime.

Every metric takes ``out`` and ``truth`` as (T, H, W, 3) arrays (uint8, or uint16
read on a 16-bit scale) and a (H, W) boolean ``mask`` of the generated pixels; the
kept centre never counts. Differences are reported in 8-bit levels (0-255) whatever
the input depth, so figures from different sources compare.

- ``psnr``: over the generated pixels of all frames (inf when identical).
- ``ssim``: mean SSIM (Gaussian window 11, sigma 1.5, RGB averaged) over generated pixels,
  each strip taken on its own so that no window reaches into the kept centre.
- ``temporal_error``: mean |(out[t+1] - out[t]) - (truth[t+1] - truth[t])| over generated
  pixels: the change between frames that the ground truth does not have, i.e. flicker
  or frozen sides where the scene moves.
- ``flicker``: mean |out[t+1] - out[t]| over generated pixels whose ground truth is
  still (no channel changes by more than ``STILL`` levels): motion the sides make up
  where the scene has none. ``temporal_error`` also counts sides that stay still while
  the scene moves, which no fill that does not know the true sides can avoid; this one
  isolates what a viewer calls flicker. NaN when nothing is still.
- ``seam_error``: mean |jump_out - jump_truth| over horizontally or vertically adjacent
  pairs with one kept and one generated pixel: a visible edge at the join is error,
  an edge the ground truth also has there is not.
- ``strip_lpips``: LPIPS (a perceptual network passed in) of each generated strip
  against the true one, mean over strips and frames: what a viewer sees, where PSNR
  and SSIM reward a soft average of what the side might hold.
- ``sharpness``: mean gradient magnitude of the generated strips over the true strips'
  (1: detail like the show's; below: smear; above: noise or invented edges).
- ``patch_distance``: bidirectional 7x7 patch distance (Simakov et al. 2008) between
  generated and true strips, RMS in 8-bit levels: does every patch of the output look
  like some patch of the truth and the reverse, wherever it lies. Position-free, so a
  plausible texture one patch off is not punished as PSNR would.
- ``pops``: frame pairs in which some block of a side changes far more than both the
  picture (its blocks' ``POP_CENTRE`` quantile of change) and the true side there: a
  fragment that appears for a frame or two, a mosaic that re-forms. Counted, not
  averaged: one pop a minute is what a viewer notices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .geometry import column_runs


def _levels(x: np.ndarray) -> np.ndarray:
    """float32 in 8-bit levels (callers pass the few pixels they need, never whole clips)."""
    a = x.astype(np.float32)
    return a / np.float32(257.0) if x.dtype == np.uint16 else a


def _check(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> None:
    if out.shape != truth.shape:
        raise ValueError(f"shapes differ: {out.shape} vs {truth.shape}")
    if out.ndim != 4 or mask.shape != out.shape[1:3]:
        raise ValueError(f"expected (T, H, W, 3) frames and an (H, W) mask, got {out.shape} and {mask.shape}")
    if not mask.any():
        raise ValueError("the mask selects no generated pixel")


def psnr(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the generated pixels (peak 255)."""
    _check(out, truth, mask)
    diff = (_levels(out[:, mask]) - _levels(truth[:, mask])).astype(np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - size // 2  # weights summed in double, used as float
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def ssim_tensor(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """(N, H, W) SSIM per pixel (mean over channels) of (N, C, H, W) tensors on a 0-``peak`` scale.

    Differentiable, so training can use the same figure as a loss.
    """
    g = _gaussian_window().to(x)
    c = x.shape[1]
    pad = len(g) // 2

    def blur(z: torch.Tensor) -> torch.Tensor:
        z = F.pad(z, (pad, pad, pad, pad), mode="replicate")
        z = F.conv2d(z, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(z, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=1)


def ssim_map(out: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T, H, W) SSIM per pixel (mean over RGB), window centred on each pixel."""
    x = torch.from_numpy(_levels(out)).permute(0, 3, 1, 2)  # (T, 3, H, W)
    y = torch.from_numpy(_levels(truth)).permute(0, 3, 1, 2)
    return ssim_tensor(x, y).numpy()


def ssim(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM over the generated pixels.

    Computed on each run of generated columns cut out on its own, so no window
    reaches into the kept picture: for side strips the centre has no influence.
    """
    _check(out, truth, mask)
    values = []
    for x0, x1 in column_runs(mask.any(axis=0)):
        local = ssim_map(out[:, :, x0:x1], truth[:, :, x0:x1])
        values.append(local[:, mask[:, x0:x1]].reshape(-1))
    return float(np.concatenate(values).mean())


def temporal_error(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Frame-to-frame change of the output that the ground truth does not have (8-bit levels)."""
    _check(out, truth, mask)
    if out.shape[0] < 2:
        return 0.0
    o, t = _levels(out[:, mask]), _levels(truth[:, mask])  # (T, P, 3)
    return float(np.mean(np.abs(np.diff(o, axis=0) - np.diff(t, axis=0)), dtype=np.float64))


STILL = 2.0  # levels: a ground-truth pixel that changes less than this between frames is still


def flicker(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Frame-to-frame change of the output where the ground truth is still (8-bit levels)."""
    _check(out, truth, mask)
    if out.shape[0] < 2:
        return 0.0
    o, t = _levels(out[:, mask]), _levels(truth[:, mask])  # (T, P, 3)
    still = np.abs(np.diff(t, axis=0)).max(axis=-1) <= STILL  # (T-1, P)
    if not still.any():
        return math.nan
    return float(np.abs(np.diff(o, axis=0)).mean(axis=-1)[still].mean(dtype=np.float64))


def _seam_pairs(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(y0, x0, y1, x1) index arrays of neighbour pairs that straddle the kept/generated edge."""
    pairs = []
    ys, xs = np.nonzero(mask[:, 1:] != mask[:, :-1])  # horizontal neighbours
    if ys.size:
        pairs.append((ys, xs, ys, xs + 1))
    ys, xs = np.nonzero(mask[1:, :] != mask[:-1, :])  # vertical neighbours
    if ys.size:
        pairs.append((ys, xs, ys + 1, xs))
    return pairs


def seam_error(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """How much the jump across the kept/generated boundary differs from the ground truth's (8-bit levels)."""
    _check(out, truth, mask)
    errors = []
    for y0, x0, y1, x1 in _seam_pairs(mask):
        jump_o = _levels(out[:, y1, x1]) - _levels(out[:, y0, x0])  # (T, K, 3)
        jump_t = _levels(truth[:, y1, x1]) - _levels(truth[:, y0, x0])
        errors.append(np.abs(jump_o - jump_t).reshape(-1))
    if not errors:
        raise ValueError("the mask has no boundary")
    return float(np.mean(np.concatenate(errors), dtype=np.float64))


def _strips(frames: np.ndarray, mask: np.ndarray) -> list[torch.Tensor]:
    """Each run of generated columns as float (T, 3, H, w) in [0, 1] (rows of the mask's extent)."""
    out = []
    for x0, x1 in column_runs(mask.any(axis=0)):
        rows = np.flatnonzero(mask[:, x0:x1].any(axis=1))
        part = frames[:, rows[0] : rows[-1] + 1, x0:x1]
        out.append(torch.from_numpy(_levels(part) / np.float32(255.0)).permute(0, 3, 1, 2))
    return out


def strip_lpips(
    out: np.ndarray, truth: np.ndarray, mask: np.ndarray, lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> float:
    """Mean LPIPS of the generated strips against the true ones (``lpips(x, y)`` -> per-pair distances)."""
    _check(out, truth, mask)
    values = [lpips(o, t) for o, t in zip(_strips(out, mask), _strips(truth, mask), strict=True)]
    return float(torch.cat(values).double().mean())


def _gradient(x: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of grey (T, 3, H, W) in 8-bit levels (forward differences)."""
    g = x.mean(dim=1) * 255.0
    gx, gy = g[:, :-1, 1:] - g[:, :-1, :-1], g[:, 1:, :-1] - g[:, :-1, :-1]
    return torch.sqrt(gx**2 + gy**2).mean(dtype=torch.float64)


def sharpness(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient of the generated strips over the true strips' (1: as detailed as the show)."""
    _check(out, truth, mask)
    go = sum(float(_gradient(s)) * s[0, 0].numel() for s in _strips(out, mask))
    gt = sum(float(_gradient(s)) * s[0, 0].numel() for s in _strips(truth, mask))
    return go / gt if gt > 0 else math.nan


PATCH = 7
PATCH_FRAMES = 3  # frames scored by patch_distance, evenly spread (the search is quadratic)
# The exhaustive search is cut down alike for every model: the patches looked up are taken
# on a 4-px grid, the patches they are looked up among on a 2-px grid (a texture is
# matched to within a pixel each way; the first grid lies on the second, so a strip is
# at distance 0 from itself).
QUERY_STRIDE = 4
BASE_STRIDE = 2


def _patches(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(P, 3 * PATCH * PATCH) patches of (3, H, W) on a ``stride`` grid, in 8-bit levels
    about mid-grey (small magnitudes keep the float32 expansion of the distance exact enough)."""
    p = F.unfold(x[None] * 255.0 - 128.0, PATCH, stride=stride)[0]
    return p.T.contiguous()


def _nearest(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each row of ``a``: the squared distance to its nearest row of ``b``."""
    bb = (b * b).sum(dim=1)
    out = []
    for i in range(0, a.shape[0], chunk):
        q = a[i : i + chunk]
        d = (q * q).sum(dim=1, keepdim=True) + bb[None] - 2 * q @ b.T
        out.append(d.min(dim=1).values.clamp_min(0))
    return torch.cat(out)


def patch_distance(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Bidirectional 7x7 patch distance between generated and true strips (RMS, 8-bit levels).

    For each patch of the generated strip the nearest patch of the true strip of the
    same frame, and the reverse; each direction's RMS per pixel, averaged both ways and
    over strips and ``PATCH_FRAMES`` frames spread over the clip.
    """
    _check(out, truth, mask)
    picks = np.unique(np.linspace(0, len(out) - 1, num=min(PATCH_FRAMES, len(out))).round().astype(int))
    values = []
    for so, st in zip(_strips(out[picks], mask), _strips(truth[picks], mask), strict=True):
        if min(so.shape[-2:]) < PATCH:
            continue
        for o, t in zip(so, st, strict=True):
            per = float(3 * PATCH * PATCH)
            there = math.sqrt(float(_nearest(_patches(o, QUERY_STRIDE), _patches(t, BASE_STRIDE)).mean()) / per)
            back = math.sqrt(float(_nearest(_patches(t, QUERY_STRIDE), _patches(o, BASE_STRIDE)).mean()) / per)
            values.append((there + back) / 2)
    return float(np.mean(values)) if values else math.nan


# A side block "pops" when its change between two frames (mean over the block of the
# largest channel change, 8-bit levels) is at least POP_FLOOR and POP_RATIO times both the
# picture's (the POP_CENTRE quantile of its blocks' changes: a character moving in the
# picture counts as change there) and the true side's at that block. At a floor of 12 the
# tuning clip anime_cuts counted 3-5 pairs for every fill, `edge` and `blur` included: a
# drawing held but for one odd frame, whose sides the engine makes again and then takes
# back (12-18 levels over a block). What users report as pops (a glove, a box with a red
# spot appearing for a frame) changes a block far more.
POP_FLOOR = 20.0
POP_RATIO = 3.0
POP_CENTRE = 0.9


def _block_change(frames: np.ndarray, size: int) -> np.ndarray:
    """(T-1, by, bx) mean over size x size blocks of the largest channel change between frames."""
    d = np.abs(np.diff(_levels(frames), axis=0)).max(axis=-1)  # (T-1, h, w)
    t, h, w = d.shape
    by, bx = max(1, h // size), max(1, w // size)
    d = d[:, : by * size if h >= size else h, : bx * size if w >= size else w]
    return d.reshape(t, by, d.shape[1] // by, bx, d.shape[2] // bx).mean(axis=(2, 4))


def pops(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> int:
    """Frame pairs where a block of a side changes far more than the picture and the truth (see the module)."""
    _check(out, truth, mask)
    if out.shape[0] < 2:
        return 0
    size = max(8, mask.shape[0] // 12)
    cols = mask.any(axis=0)
    kept = np.flatnonzero(~cols)
    if kept.size == 0:
        return 0
    centre = _block_change(out[:, :, kept[0] : kept[-1] + 1], size)
    centre_change = np.quantile(centre.reshape(len(centre), -1), POP_CENTRE, axis=1)  # (T-1,)
    popped = np.zeros(out.shape[0] - 1, bool)
    for x0, x1 in column_runs(cols):
        o = _block_change(out[:, :, x0:x1], size)
        t = _block_change(truth[:, :, x0:x1], size)
        limit = np.maximum(POP_RATIO * np.maximum(t, centre_change[:, None, None]), POP_FLOOR)
        popped |= (o > limit).any(axis=(1, 2))
    return int(popped.sum())


def all_metrics(out: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM, temporal error, flicker, seam error, sharpness, patch distance and pops in one dict."""
    return {
        "psnr": psnr(out, truth, mask),
        "ssim": ssim(out, truth, mask),
        "temporal": temporal_error(out, truth, mask),
        "flicker": flicker(out, truth, mask),
        "seam": seam_error(out, truth, mask),
        "sharpness": sharpness(out, truth, mask),
        "patch": patch_distance(out, truth, mask),
        "pops": float(pops(out, truth, mask)),
    }
