"""The shot memory (a panorama in the shot's reference coordinates) and the key frames that fill it."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from ..engine import Filler
from ..geometry import column_runs
from ..models.classical import push_pull
from ..motion import Similarity, sample_grid, span
from .characters import ShotCharacters
from .options import TemporalOptions, TemporalStats
from .propagate import Propagation
from .provenance import Provenance
from .records import Entry, Geometry, Panorama, at_brightness, bbox, memory_grid, whole_run


def copyable(still: torch.Tensor, band: int, share: float) -> torch.Tensor:
    """Which picture pixels a key frame's patches may copy: ``still`` (h, w), 1 where background.

    Beside a side whose ``band`` nearest columns hold less than ``share`` still
    background (parallax: the whole scene moves against the camera) the restriction
    would force copies of far, unlike background, such as sky into rocks (Sintel: strip
    PSNR 11 dB against 15 per frame); there every pixel of that band may be copied.
    """
    out = still.clone()
    w = still.shape[1]
    for part in (slice(0, min(band, w)), slice(max(0, w - band), w)):
        if out[:, part].numel() and float(out[:, part].mean()) < share:
            out[:, part] = 1.0
    return out


class ShotMemory:
    """The shot memory and the key frames that fill it.

    Owns the panorama (``panorama``: everything frames of the shot showed, and what key
    frames generated, in the shot's reference coordinates; first value written wins)
    and the last key frame (``key``). ``recall`` reads a frame's sides from it,
    ``remember`` writes a frame's canvas into it, ``key_frame`` runs the fill on what
    neither propagation nor the memory has, ``forget_beside`` forgets what was
    generated beside a picture that moved on. Borrows propagation (what moves, how far
    frames ahead reach), the shot's characters (never copied) and the trace
    (``Provenance``), which it keeps beside the values; counts key frames and the
    model's time in ``stats``.
    """

    def __init__(
        self,
        geometry: Geometry,
        options: TemporalOptions,
        filler: Filler,
        propagation: Propagation,
        characters: ShotCharacters | None,
        provenance: Provenance,
        stats: TemporalStats,
    ) -> None:
        self.h, self.w, self.pic_w, self.left = geometry.h, geometry.w, geometry.pic_w, geometry.left
        self.side_cols, self.strips = geometry.side_cols, geometry.strips
        self.options, self.filler, self.stats = options, filler, stats
        self.propagation, self.characters, self.provenance = propagation, characters, provenance
        self.panorama: Panorama | None = None
        self.key: tuple[int, Similarity, np.ndarray] | None = None  # (shot, camera, thumbnail) of the last key frame

    def new_shot(self) -> None:
        """Forget the panorama. The last key frame is kept: ``SideTrust`` compares its
        shot and camera with the frame's, and a new shot's memory is empty until a frame
        of it is written."""
        self.panorama = None

    def reset(self) -> None:
        """Forget the panorama and the last key frame (a fresh start within the shot)."""
        self.panorama = None
        self.key = None

    def recall(
        self,
        t: Entry,
        X: np.ndarray,
        Y: np.ndarray,
        values: np.ndarray,
        filled: np.ndarray,
        real: np.ndarray,
        dist: np.ndarray,
    ) -> None:
        """Frame t's sides from the memory, in place: where no frame in reach showed them
        (not ``filled``), and where what propagation brought from ``dist`` frames away is
        still fading in over it (``ramp``); ``real`` is lowered to the share that came
        from a frame. ``X``, ``Y``: the side grid's columns and rows in reference coordinates."""
        w = np.clip((self.options.window - dist) / max(1, self.options.ramp), 0, 1)
        want = ~filled | (w < 1)
        box = bbox(want) if self.panorama is not None else None
        if box is None:
            return
        mem = self.panorama
        assert mem is not None
        trace = self.provenance.trace
        r0, r1, c0, c1 = box
        mv, ok = memory_grid(mem, X[c0:c1], Y[r0:r1])
        mv = at_brightness(mv, t)
        ok &= want[r0:r1, c0:c1]
        fresh = filled[r0:r1, c0:c1] & ok
        wk = w[r0:r1, c0:c1]
        old = values[r0:r1, c0:c1]
        if trace is not None and mem.trace is not None:
            marked = memory_grid(mem, X[c0:c1], Y[r0:r1], mem.trace)[0][..., 0]
            marked = np.where(fresh, marked * (1 - wk), marked)  # real content counts 0
            part = trace[r0:r1, c0:c1]
            part.copy_(torch.from_numpy(np.where(ok, marked, part.numpy())))
        if fresh.any():  # real content fading in over the memory
            mixed = np.where(fresh[..., None], mv + (old - mv) * wk[..., None], mv)
            real[r0:r1, c0:c1] = np.where(ok, np.where(fresh, wk, 0.0), real[r0:r1, c0:c1])
        else:  # the memory alone (a still shot): where it is valid, nothing real was there
            mixed = mv
        if ok.all():
            old[...] = mixed
        else:
            np.copyto(old, mixed, where=ok[..., None])
        filled[r0:r1, c0:c1] |= ok

    def forget_beside(self, t: Entry, changed: list[bool]) -> None:
        """Forget the generated content beside a picture that has moved on (``changed``:
        the left and right side), and the memory under the picture.

        The memory keeps the picture as the frame that first showed each place saw it.
        Where the picture's outer tenth no longer looks like that (parallax in a 3D
        scene, light changing, a character staying at the edge), what was generated
        beside it no longer continues it. That side's generated pixels and the memory
        under the picture are forgotten, so this frame's picture and a new key frame
        take their place; what frames showed of the sides is kept.
        """
        mem = self.panorama
        assert mem is not None
        self.stats.refreshed += 1
        x0, y0, x1, y1 = mem.box
        px0, py0, px1, py1 = t.to_ref.box(self.left, 0, self.left + self.pic_w - 1, self.h - 1)
        mid = (px0 + px1) / 2 - x0
        cols = np.arange(x1 - x0)
        side = (cols < mid) if changed[0] else np.zeros(cols.size, bool)
        if changed[1]:
            side |= cols >= mid
        forget = mem.made & side[None, :]
        # Under the picture: the memory pixels whose centres it covers, which this frame
        # writes again (a pixel it only grazes would be left a hole).
        eps = 1e-4
        r0, r1 = max(0, math.ceil(py0 - eps) - y0), max(0, min(y1, math.floor(py1 + eps) + 1) - y0)
        c0, c1 = max(0, math.ceil(px0 - eps) - x0), max(0, min(x1, math.floor(px1 + eps) + 1) - x0)
        forget[r0:r1, c0:c1] = True
        mem.valid &= ~forget
        mem.made &= ~forget
        self.key = None

    def key_frame(
        self, t: Entry, buf: deque[Entry], canvas: torch.Tensor, values: torch.Tensor, filled: torch.Tensor
    ) -> None:
        """Run the model once on t's canvas widened to what the frames ahead will need.

        Everything known goes in: the picture, propagated sides, and the shot memory in
        the margins; what the model makes is written into the memory for later frames.
        """
        started = time.perf_counter()
        self.stats.key_frames += 1
        self.key = (t.shot, t.to_ref, t.thumb)
        ml, mt, mr, mb = self.propagation.reach(t, buf)
        bh, bw = self.h + mt + mb, self.w + ml + mr
        big = torch.zeros(3, bh, bw)
        known = torch.zeros(1, bh, bw)
        big[:, mt : mt + self.h, ml : ml + self.w] = canvas
        inner = torch.zeros(self.h, self.w)
        inner[:, self.left : self.left + self.pic_w] = 1
        inner[:, self.side_cols.long()] = filled.float()
        known[0, mt : mt + self.h, ml : ml + self.w] = inner
        if self.panorama is not None:  # the margins take what the shot memory has there
            a, bx, by = t.to_ref.a, t.to_ref.bx, t.to_ref.by
            xs = a * (np.arange(bw, dtype=np.float64) - ml) + bx
            ys = a * (np.arange(bh, dtype=np.float64) - mt) + by
            mv, ok = memory_grid(self.panorama, xs, ys)
            mv = torch.from_numpy(at_brightness(mv, t)).permute(2, 0, 1)
            take = torch.from_numpy(ok) & (known[0] < 0.5)
            big = torch.where(take, mv, big)
            known[0] = torch.where(take, 1.0, known[0])
        mask = 1 - known
        device = self.filler.device
        source = None
        moving = t.moving is not None and bool(t.moving.any())
        takes_source = getattr(self.filler.model, "takes_source", False)
        chars = self.characters.for_key(t) if takes_source and self.characters is not None else None
        if moving or chars is not None:  # a patch-copying model copies background only
            source = known.clone()
            pic = source[0, mt : mt + self.h, ml + self.left : ml + self.left + self.pic_w]
            if moving:
                rows, cols = np.arange(self.h, dtype=np.float64), np.arange(self.pic_w, dtype=np.float64)
                still = torch.from_numpy(~self.propagation.moving_at(t.moving, cols, rows)).float()
                pic *= copyable(still, max(1, min(self.pic_w // 2, 2 * self.left)), self.options.still_share)
            if chars is not None:  # never copied; with ``character_behind`` not continued either
                pic[chars] = -1.0 if self.options.character_behind else 0.0
            source = source[None].to(device)
        prov = self.provenance
        trace = prov.key_trace(t, (ml, mt, bh, bw), known, self.panorama) if prov.trace is not None else None
        with torch.inference_mode():
            if trace is not None:
                pred, made_from = prov.fill(big * known, mask, trace, source)
                # What the frame showed is real content in the memory (provenance.py): only
                # what the model made carries a trace there.
                trace = torch.where(known > 0.5, torch.zeros_like(made_from), made_from)
            else:
                pred = self.filler.run((big * known)[None].to(device), mask[None].to(device), source)[0].float().cpu()
        full = torch.where(known > 0.5, big, pred.clamp(0, 1))
        crop = full[:, mt : mt + self.h, ml : ml + self.w][:, :, self.side_cols.long()].permute(1, 2, 0)
        values[~filled] = crop[~filled]
        if trace is not None and prov.trace is not None:
            side = trace[0, mt : mt + self.h, ml : ml + self.w][:, self.side_cols.long()]
            prov.trace[~filled] = side[~filled]
        self.remember(t, full, offset=(ml, mt), made=(known[0] < 0.5).numpy(), trace=trace)
        self.stats.model_seconds += time.perf_counter() - started

    def remember(
        self,
        t: Entry,
        canvas: torch.Tensor | Callable[[int, int], torch.Tensor],
        offset: tuple[int, int] = (0, 0),
        made: np.ndarray | None = None,
        trace: torch.Tensor | None = None,
    ) -> None:
        """Write ``canvas`` (frame t's coordinates, shifted by ``offset``) where the memory is empty.

        ``canvas`` may be a function that makes columns [c0, c1) of it: most frames of a
        shot add only a narrow band to the memory (or nothing), and only that is built.
        ``made`` marks the canvas pixels that were generated (None: everything was seen);
        ``trace`` (1, h, w) what of the canvas was copied from characters (provenance; None: nothing).
        """
        ox, oy = offset
        if callable(canvas):
            ch, cw = self.h, self.w
        else:
            _, ch, cw = canvas.shape
        to_ref = t.to_ref
        eps = 1e-4
        started = self.panorama is None
        # Where the canvas's first and last pixel centres land in the reference frame.
        bx0, by0, bx1, by1 = to_ref.box(-ox, -oy, cw - 1 - ox, ch - 1 - oy)
        self._grow((math.floor(bx0 + eps), math.floor(by0 + eps), math.ceil(bx1 - eps) + 1, math.ceil(by1 - eps) + 1))
        mem = self.panorama
        assert mem is not None
        if started:
            mem.gain = t.gain
        x0, y0, x1, y1 = mem.box
        # The memory pixels this canvas covers (their centres inside its span).
        gx0, gy0 = max(x0, math.ceil(bx0 - eps)), max(y0, math.ceil(by0 - eps))
        gx1, gy1 = min(x1, math.floor(bx1 + eps) + 1), min(y1, math.floor(by1 + eps) + 1)
        if gx0 >= gx1 or gy0 >= gy1:
            return
        region = mem.valid[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        for c0, c1 in column_runs((~region).any(axis=0), self.RUN_GAP):
            rows = span((~region[:, c0:c1]).any(axis=1))
            assert rows is not None
            self._write(t, canvas, (ox, oy), (cw, ch), made, trace, (gx0 + c0, gy0 + rows[0], gx0 + c1, gy0 + rows[1]))

    # Empty memory columns more than this far apart are written apart: a frame whose two sides were
    # forgotten writes its two side bands, not the whole canvas between them again
    # (resampling the whole canvas was a tenth of the engine's time on a 1080p pan).
    RUN_GAP = 16

    def _write(
        self,
        t: Entry,
        canvas: torch.Tensor | Callable[[int, int], torch.Tensor],
        offset: tuple[int, int],
        size: tuple[int, int],
        made: np.ndarray | None,
        trace: torch.Tensor | None,
        box: tuple[int, int, int, int],
    ) -> None:
        """``remember`` for the memory pixels of ``box`` (reference x0, y0, x1, y1) that are empty."""
        mem = self.panorama
        assert mem is not None
        (ox, oy), (cw, ch) = offset, size
        x0, y0 = mem.box[:2]
        bx0, by0, bx1, by1 = box
        valid = mem.valid
        ys, xs = slice(by0 - y0, by1 - y0), slice(bx0 - x0, bx1 - x0)
        empty = ~valid[ys, xs]
        inv = t.to_ref.inverse()
        # Frame coordinates of those memory pixels (rounding only past the span: it was checked).
        fx = np.clip(inv.a * np.arange(bx0, bx1) + inv.bx + ox, 0, cw - 1)
        fy = np.clip(inv.a * np.arange(by0, by1) + inv.by + oy, 0, ch - 1)
        k0, k1 = int(fx.min()), min(cw, int(fx.max()) + 2)  # the canvas columns they mix
        part = canvas(k0, k1) if callable(canvas) else canvas[:, :, k0:k1]
        if whole_run(fx) and whole_run(fy):
            # A whole-pixel shift (a still camera, a key frame): the pixels themselves, no resampling.
            fx0, fy0 = int(fx[0]) - k0, int(fy[0])
            sample = part.numpy()[:, fy0 : fy0 + fy.size, fx0 : fx0 + fx.size].transpose(1, 2, 0)
        else:
            # Bilinear: written once, read back Catmull-Rom; cubic here too scored the same
            # on both splits and cost 2.5 s of a 1080p clip's 30 s of engine time.
            sample = sample_grid(part.permute(1, 2, 0).numpy(), fx - k0, fy)
        if t.gain != 1.0 or t.offset != 0.0:  # the memory holds reference-frame brightness
            sample = (sample - t.offset) / t.gain
        gen = False if made is None else made[np.rint(fy).astype(np.intp)][:, np.rint(fx).astype(np.intp)]
        marked: np.ndarray | float = 0.0  # the trace of what is written (seen pixels: real content)
        if trace is not None and mem.trace is not None:
            marked = sample_grid(trace[0, :, k0:k1, None].numpy(), fx - k0, fy)
        if t.moving is not None and t.moving.any():
            # What moves against the camera is not background: it stays out of the memory
            # (left for later frames to show, or a key frame to generate).
            px, py = fx - ox - self.left, fy - oy
            inside = np.logical_and.outer((py >= 0) & (py <= self.h - 1), (px >= 0) & (px <= self.pic_w - 1))
            empty = empty & ~(inside & self.propagation.moving_at(t.moving, px, py))
        if mem.trace is not None:
            np.copyto(mem.trace[ys, xs], marked, where=empty[..., None])
        if empty.all():  # a fresh region (a shot's first key frame): no mask to respect
            mem.values[ys, xs] = sample
            valid[ys, xs] = True
            mem.made[ys, xs] = gen
        else:
            np.copyto(mem.values[ys, xs], sample, where=empty[..., None])
            valid[ys, xs] |= empty
            np.copyto(mem.made[ys, xs], gen, where=empty)

    def _grow(self, need: tuple[int, int, int, int]) -> None:
        """Make the memory cover ``need`` (reference box), within ``max_extent`` canvases."""
        nx0, ny0, nx1, ny1 = need
        pad_x, pad_y = self.w // 4, self.h // 4  # grow in steps, not a column per frame
        limit_w, limit_h = int(self.options.max_extent * self.w), int(self.options.max_extent * self.h)
        mem = self.panorama
        if mem is None:
            shape = (ny1 - ny0, nx1 - nx0)
            empty = np.zeros(shape, bool)
            self.panorama = Panorama(nx0, ny0, np.zeros((*shape, 3), np.float32), empty, empty.copy())
            if self.provenance.trace is not None:
                self.panorama.trace = np.zeros((*shape, 1), np.float32)
            self.stats.peak_memory_pixels = max(self.stats.peak_memory_pixels, (ny1 - ny0) * (nx1 - nx0))
            return
        x0, y0, x1, y1 = mem.box
        if nx0 >= x0 and ny0 >= y0 and nx1 <= x1 and ny1 <= y1:
            return
        ux0 = min(x0, nx0 - pad_x) if nx0 < x0 else x0
        uy0 = min(y0, ny0 - pad_y) if ny0 < y0 else y0
        ux1 = max(x1, nx1 + pad_x) if nx1 > x1 else x1
        uy1 = max(y1, ny1 + pad_y) if ny1 > y1 else y1
        # Bounded: keep the part nearest the current frame, forget the far end of a long pan.
        if ux1 - ux0 > limit_w:
            cx = (nx0 + nx1) // 2
            ux0 = min(max(ux0, cx - limit_w // 2), ux1 - limit_w)
            ux1 = ux0 + limit_w
        if uy1 - uy0 > limit_h:
            cy = (ny0 + ny1) // 2
            uy0 = min(max(uy0, cy - limit_h // 2), uy1 - limit_h)
            uy1 = uy0 + limit_h
        values = np.zeros((uy1 - uy0, ux1 - ux0, 3), np.float32)
        valid = np.zeros((uy1 - uy0, ux1 - ux0), bool)
        made = np.zeros_like(valid)
        # Copy the overlap of the old memory.
        ox0, oy0, ox1, oy1 = max(x0, ux0), max(y0, uy0), min(x1, ux1), min(y1, uy1)
        if ox0 < ox1 and oy0 < oy1:
            new = np.s_[oy0 - uy0 : oy1 - uy0, ox0 - ux0 : ox1 - ux0]
            old = np.s_[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
            values[new] = mem.values[old]
            valid[new] = mem.valid[old]
            made[new] = mem.made[old]
        trace = None
        if mem.trace is not None:
            trace = np.zeros((*valid.shape, 1), np.float32)
            if ox0 < ox1 and oy0 < oy1:
                trace[new] = mem.trace[old]
        self.panorama = Panorama(ux0, uy0, values, valid, made, mem.gain, trace)
        self.stats.peak_memory_pixels = max(self.stats.peak_memory_pixels, valid.size)

    def smooth_over(self, t: Entry, values: torch.Tensor, filled: np.ndarray, scale: float) -> None:
        """Fill a few unfilled side pixels smoothly from what surrounds them, in place.

        Slivers are thin, so the pyramid fill runs on a crop around each strip's gap
        (with ``pad`` pixels of context) instead of the whole canvas.
        """
        pad = 16
        for s0, s1 in self.strips:
            box = bbox(~filled[:, s0:s1])
            if box is None:
                continue
            r0, r1, c0, c1 = box
            shift = 0 if s0 == 0 else self.pic_w  # side-grid column -> canvas column
            y0, y1 = max(0, r0 - pad), min(self.h, r1 + pad)
            x0, x1 = max(0, s0 + c0 + shift - pad), min(self.w, s0 + c1 + shift + pad)
            known = np.ones((y1 - y0, x1 - x0), np.float32)  # the picture is known
            for a, b, sh in ((0, self.left, 0), (self.left + self.pic_w, self.w, self.pic_w)):
                a, b = max(a, x0), min(b, x1)
                if a < b:
                    known[:, a - x0 : b - x0] = filled[y0:y1, a - sh : b - sh]
            crop = self.propagation.canvas(t, values, torch.from_numpy(filled), scale, x0, x1)[:, y0:y1]
            smooth = push_pull(crop[None], torch.from_numpy(known)[None, None])[0].permute(1, 2, 0)
            g0, g1 = s0 + c0, s0 + c1
            gap = torch.from_numpy(~filled[r0:r1, g0:g1])
            patch = smooth[r0 - y0 : r1 - y0, g0 + shift - x0 : g1 + shift - x0]
            values[r0:r1, g0:g1] = torch.where(gap[..., None], patch, values[r0:r1, g0:g1])
