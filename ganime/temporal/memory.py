"""The shot memory (a panorama in the shot's reference coordinates) and the key frames that fill it."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from ..models.classical import push_pull
from ..motion import sample_grid
from .characters import moved_mask, same_drawing
from .records import (
    Entry,
    Panorama,
    Shown,
    bbox,
    memory_grid,
    whole_run,
)


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
    """Methods of ``TemporalFiller``: the shot memory (a panorama in the shot's reference coordinates) and the key
    frames that fill it."""

    def _key_frame(
        self, t: Entry, buf: deque[Entry], canvas: torch.Tensor, values: torch.Tensor, filled: torch.Tensor
    ) -> None:
        """Run the model once on t's canvas widened to what the frames ahead will need.

        Everything known goes in: the picture, propagated sides, and the shot memory in
        the margins; what the model makes is written into the memory for later frames.
        """
        started = time.perf_counter()
        self.stats.key_frames += 1
        self._key = (t.shot, t.to_ref, t.thumb)
        ml, mt, mr, mb = self._reach(t, buf)
        bh, bw = self.h + mt + mb, self.w + ml + mr
        big = torch.zeros(3, bh, bw)
        known = torch.zeros(1, bh, bw)
        big[:, mt : mt + self.h, ml : ml + self.w] = canvas
        inner = torch.zeros(self.h, self.w)
        inner[:, self.left : self.left + self.pic_w] = 1
        inner[:, self.side_cols.long()] = filled.float()
        known[0, mt : mt + self.h, ml : ml + self.w] = inner
        if self._memory is not None:  # the margins take what the shot memory has there
            a, bx, by = t.to_ref.a, t.to_ref.bx, t.to_ref.by
            xs = a * (np.arange(bw, dtype=np.float64) - ml) + bx
            ys = a * (np.arange(bh, dtype=np.float64) - mt) + by
            mv, ok = memory_grid(self._memory, xs, ys)
            mv = torch.from_numpy(self._at_brightness(mv, t)).permute(2, 0, 1)
            take = torch.from_numpy(ok) & (known[0] < 0.5)
            big = torch.where(take, mv, big)
            known[0] = torch.where(take, 1.0, known[0])
        mask = 1 - known
        device = self.filler.device
        source = None
        moving = t.moving is not None and bool(t.moving.any())
        chars = self._key_characters(t) if getattr(self.filler.model, "takes_source", False) else None
        if moving or chars is not None:  # a patch-copying model copies background only
            source = known.clone()
            pic = source[0, mt : mt + self.h, ml + self.left : ml + self.left + self.pic_w]
            if moving:
                rows, cols = np.arange(self.h, dtype=np.float64), np.arange(self.pic_w, dtype=np.float64)
                still = torch.from_numpy(~self._moving_at(t.moving, cols, rows)).float()
                pic *= copyable(still, max(1, min(self.pic_w // 2, 2 * self.left)), self.options.still_share)
            if chars is not None:  # never copied; with ``character_behind`` not continued either
                pic[chars] = -1.0 if self.options.character_behind else 0.0
            source = source[None].to(device)
        trace = self._key_trace(t, (ml, mt, bh, bw), known) if self.trace is not None else None
        with torch.inference_mode():
            if trace is not None:
                pred, made_from = self._trace_fill(big * known, mask, trace, source)
                # What the frame showed is real content in the memory (provenance.py): only
                # what the model made carries a trace there.
                trace = torch.where(known > 0.5, torch.zeros_like(made_from), made_from)
            else:
                pred = self.filler.run((big * known)[None].to(device), mask[None].to(device), source)[0].float().cpu()
        full = torch.where(known > 0.5, big, pred.clamp(0, 1))
        crop = full[:, mt : mt + self.h, ml : ml + self.w][:, :, self.side_cols.long()].permute(1, 2, 0)
        values[~filled] = crop[~filled]
        if trace is not None and self.trace is not None:
            side = trace[0, mt : mt + self.h, ml : ml + self.w][:, self.side_cols.long()]
            self.trace[~filled] = side[~filled]
        self._remember(t, full, offset=(ml, mt), made=(known[0] < 0.5).numpy(), trace=trace)
        self.stats.model_seconds += time.perf_counter() - started

    def _key_characters(self, t: Entry) -> torch.Tensor | None:
        """(h, pic_w) bool: the characters of key frame t's picture (None: none, or switched off).

        Kept for the frames after it in the shot: the live mirror leaves them out.
        """
        return self._shot_characters(t, exact=True) if self._characters is not None else None

    def _shot_characters(self, t: Entry, exact: bool, band: int | None = None) -> torch.Tensor | None:
        """The characters of t's picture, found as seldom as may be: the shot's mask moved
        with the camera where it still covers what changed (``same_drawing``), the mask
        found ahead for t (``_find_ahead``: shot starts), else found now, and kept as the
        shot's. ``exact``: for a key frame; a frame that leans on its own fill may look
        again only every ``character_every`` frames, and with ``band`` only at changes
        near the picture's edges (its own fill is a mirror)."""
        assert self._characters is not None
        scale = 65535.0 if t.picture.dtype == torch.int32 else 255.0
        if t.single:  # a flash or a blank frame: no camera to move a mask with, nor a shot to keep it
            if self._key_masked:
                return self._key_chars
            self.stats.character_masks += 1
            return self._characters(t.picture, scale, key=t.index)
        at = self._chars_at
        sides = (True, True)
        if self._key_masked and at is not None:
            moved = self._chars_for(t)
            level = self.options.moving if self.options.moving > 0 else 24.0
            # A frame that leans on its own fill may look again only every few frames
            # (``character_every``; film weave moves everything a little each frame).
            recent = not exact and t.index - at[0] < self.options.character_every
            if at[0] == t.index or recent:
                return moved
            # Each half of the picture (what the segmenter looks at) against the frame its
            # own mask was found in: a half whose drawing holds keeps its mask, moved.
            spans = self._characters.halves(self.pic_w)
            sides = tuple(
                not same_drawing(ref[2], ref[1], t.thumb, t.to_ref, self.factor, self.left, level, moved, band, span)
                for ref, span in zip(self._half_at, spans, strict=True)
            )
            if not any(sides):
                self.stats.masks_moved += exact
                return moved
            if all(sides) or self._characters.found_ahead(t.index):
                sides = (True, True)
            else:  # one half anew; the other keeps its characters over its columns (both in the overlap)
                new = self._characters(t.picture, scale, sides=sides)
                kept = spans[0] if sides[1] else spans[1]
                old = torch.zeros(t.picture.shape[:2], dtype=torch.bool) if moved is None else moved.clone()
                old[:, : kept[0]] = False
                old[:, kept[1] :] = False
                chars = old if new is None else new | old
                self._key_chars = chars if bool(chars.any()) else None
                self.stats.half_masks += 1
        if all(sides):
            self._key_chars = self._characters(t.picture, scale, key=t.index)
        self._chars_at = (t.index, t.to_ref, t.thumb)
        self._half_at = [
            (t.index, t.to_ref, t.thumb) if s else ref for s, ref in zip(sides, self._half_at, strict=True)
        ]
        self._key_masked = True
        self.stats.character_masks += 1
        return self._key_chars

    def _chars_for(self, t: Entry, columns: torch.Tensor | None = None) -> torch.Tensor | None:
        """The shot's characters (``_key_chars``) where they are in frame t: moved with the
        camera; ``columns``: only these picture columns."""
        chars = self._key_chars
        if chars is None or self._chars_at is None:
            return chars
        if self._chars_at[1] == t.to_ref:
            return chars if columns is None else chars.index_select(1, columns)
        return moved_mask(chars, self._chars_at[1], t.to_ref, self.left, columns)

    def _remember(
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
        started = self._memory is None
        # Where the canvas's first and last pixel centres land in the reference frame.
        bx0, by0, bx1, by1 = to_ref.box(-ox, -oy, cw - 1 - ox, ch - 1 - oy)
        self._grow((math.floor(bx0 + eps), math.floor(by0 + eps), math.ceil(bx1 - eps) + 1, math.ceil(by1 - eps) + 1))
        mem = self._memory
        assert mem is not None
        if started:
            mem.gain = t.gain
        x0, y0, x1, y1 = mem.box
        # The memory pixels this canvas covers (their centres inside its span).
        gx0, gy0 = max(x0, math.ceil(bx0 - eps)), max(y0, math.ceil(by0 - eps))
        gx1, gy1 = min(x1, math.floor(bx1 + eps) + 1), min(y1, math.floor(by1 + eps) + 1)
        if gx0 >= gx1 or gy0 >= gy1:
            return
        valid = mem.valid
        region = valid[gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        box = bbox(~region)
        if box is None:
            return
        r0, r1, c0, c1 = box
        ys, xs = slice(gy0 - y0 + r0, gy0 - y0 + r1), slice(gx0 - x0 + c0, gx0 - x0 + c1)
        empty = ~valid[ys, xs]
        inv = to_ref.inverse()
        # Frame coordinates of those memory pixels (rounding only past the span: it was checked).
        fx = np.clip(inv.a * np.arange(gx0 + c0, gx0 + c1) + inv.bx + ox, 0, cw - 1)
        fy = np.clip(inv.a * np.arange(gy0 + r0, gy0 + r1) + inv.by + oy, 0, ch - 1)
        k0, k1 = int(fx.min()), min(cw, int(fx.max()) + 2)  # the canvas columns they mix
        part = canvas(k0, k1) if callable(canvas) else canvas[:, :, k0:k1]
        if whole_run(fx) and whole_run(fy):
            # A whole-pixel shift (a still camera, a key frame): the pixels themselves, no resampling.
            fx0, fy0 = int(fx[0]) - k0, int(fy[0])
            sample = part.numpy()[:, fy0 : fy0 + fy.size, fx0 : fx0 + fx.size].transpose(1, 2, 0)
        else:
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
            empty = empty & ~(inside & self._moving_at(t.moving, px, py))
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
        mem = self._memory
        if mem is None:
            shape = (ny1 - ny0, nx1 - nx0)
            empty = np.zeros(shape, bool)
            self._memory = Panorama(nx0, ny0, np.zeros((*shape, 3), np.float32), empty, empty.copy())
            if self.trace is not None:
                self._memory.trace = np.zeros((*shape, 1), np.float32)
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
        self._memory = Panorama(ux0, uy0, values, valid, made, mem.gain, trace)
        self.stats.peak_memory_pixels = max(self.stats.peak_memory_pixels, valid.size)

    def _smooth_over(self, t: Entry, values: torch.Tensor, filled: np.ndarray, scale: float) -> None:
        """Fill a few unfilled side pixels smoothly from what surrounds them, in place.

        Slivers are thin, so the pyramid fill runs on a crop around each strip's gap
        (with ``pad`` pixels of context) instead of the whole canvas.
        """
        pad = 16
        for s0, s1 in self._strips:
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
            crop = self._canvas(t, values, torch.from_numpy(filled), scale, x0, x1)[:, y0:y1]
            smooth = push_pull(crop[None], torch.from_numpy(known)[None, None])[0].permute(1, 2, 0)
            g0, g1 = s0 + c0, s0 + c1
            gap = torch.from_numpy(~filled[r0:r1, g0:g1])
            patch = smooth[r0 - y0 : r1 - y0, g0 + shift - x0 : g1 + shift - x0]
            values[r0:r1, g0:g1] = torch.where(gap[..., None], patch, values[r0:r1, g0:g1])

    def _hand_over(self, last: Shown | None, t: Entry) -> None:
        """Cross-fade from ``last``'s sides over the next ``handover`` frames, if t follows it."""
        if last is not None and last.index == t.index - 1 and self.options.handover > 0:
            self._handover = (last.values, self.options.handover)
            self._handover_trace = last.trace
