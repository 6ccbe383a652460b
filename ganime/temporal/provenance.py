"""Where the sides came from: the share of each side pixel copied from a character.

``ganime eval`` asks the engine for it (``TemporalOptions.provenance``) to count the
characters a fill pastes into the sides. Running a segmenter on the output does not
work: fragments of a character are not salient objects, and flat paint matches
anything. The fills know where each pixel came from, so the engine carries a trace
beside the side values: 1 where a pixel was copied, voted or mirrored from a pixel the
segmenter calls character, 0 where it came from background or a real frame, shares in
between where values were blended. It follows the values through every step:

- key frames: ``patch`` carries the trace as a fourth channel through its copies and
  votes (``PatchFill.traced``); a weight-free fill (the mirror, the blur) is linear in
  its input, so the trace is that fill applied to the character mask;
- the shot memory keeps a trace plane beside its values, so later frames read the
  trace of what the key frame made;
- propagated pixels (another frame shows that place inside its picture) and the
  picture's own pixels written to the memory count 0: they show what the true side
  shows there, as far as the camera model holds;
- the live mirror, the frame's own fill where the sides do not hold, held drawings and
  cross-fades blend the trace as they blend the values.

Every rendered frame (not a held drawing) has its characters found, about 0.4 s a
frame on CPU: for evaluation, never for a conversion.
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine import Filler
from ..models.classical import PictureFill
from .characters import CharacterMasks
from .options import TemporalOptions, TemporalStats
from .records import Entry, Geometry, Panorama, memory_grid, scale_of


class Provenance:
    """The trace of character pixels beside the side values (``TemporalOptions.provenance``).

    Owns ``trace``, the (H, S) trace of the frame being made, which the engine's other
    steps blend as they blend the values (None when off, and before a frame's sides
    are made), and the masks it finds on every frame rendered (``frame_chars``). Adds
    each frame's share to ``stats.copied`` (``count``).
    """

    def __init__(
        self,
        geometry: Geometry,
        options: TemporalOptions,
        characters: CharacterMasks | None,
        filler: Filler,
        stats: TemporalStats,
    ) -> None:
        self.h, self.w, self.pic_w, self.left = geometry.h, geometry.w, geometry.pic_w, geometry.left
        self.side_cols = geometry.side_cols
        self.filler, self.stats = filler, stats
        self.trace: torch.Tensor | None = None  # (H, S) of the frame being made (provenance only)
        self._tracer: CharacterMasks | None = None
        self._traced_chars: tuple[int, torch.Tensor | None] | None = None
        if options.provenance:
            # Always the default masks, whatever this run's ``character_level``,
            # ``character_grow`` and ``character_join``: the figures of runs with other
            # settings then compare.
            standard = TemporalOptions()
            same = (options.character_level, options.character_grow, options.character_join) == (
                standard.character_level,
                standard.character_grow,
                standard.character_join,
            )
            self._tracer = characters if same and characters else None
            if self._tracer is None:
                self._tracer = CharacterMasks(standard, filler.device)

    @property
    def on(self) -> bool:
        """Whether the trace is kept (``TemporalOptions.provenance``)."""
        return self._tracer is not None

    def frame_chars(self, t: Entry) -> torch.Tensor | None:
        """(h, pic_w) bool characters of t's picture (None: none), found once per frame."""
        if self._traced_chars is not None and self._traced_chars[0] == t.index:
            return self._traced_chars[1]
        assert self._tracer is not None
        chars = self._tracer(t.picture, scale_of(t.picture))
        self._traced_chars = (t.index, chars)
        return chars

    def count(self, trace: torch.Tensor | None) -> None:
        """Add a rendered frame's share of side pixels copied from characters to the stats."""
        if self._tracer is not None:
            self.stats.copied += float(trace.mean()) if trace is not None else float("nan")
            self.stats.traced += 1

    def fill(
        self, canvas: torch.Tensor, mask: torch.Tensor, trace: torch.Tensor, source: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(3, H, W) fill of one canvas and (1, H, W) its trace (NaN where the model cannot say)."""
        model, dev = self.filler.model, self.filler.device
        c, m, tr = canvas[None].to(dev), mask[None].to(dev), trace[None].to(dev)
        if hasattr(model, "traced"):
            pred, made = model.traced(c, m, tr, source)
            return pred[0].float().cpu(), made[0].float().cpu()
        pred = self.filler.run(c, m, source)[0].float().cpu()
        if isinstance(model, PictureFill):  # linear in its input: the fill of the mask is the trace
            made = model(tr.expand(-1, 3, -1, -1).contiguous(), m).mean(dim=1)[0:1]
            return pred, made.float().cpu().clamp(0, 1)
        return pred, torch.full_like(pred[:1], float("nan"))

    def key_trace(
        self, t: Entry, box: tuple[int, int, int, int], known: torch.Tensor, mem: Panorama | None
    ) -> torch.Tensor:
        """(1, bh, bw) trace of a key frame's widened canvas: its picture's characters, the
        sides' trace so far, and the shot memory's (``mem``) in the margins."""
        ml, mt, bh, bw = box
        out = torch.zeros(1, bh, bw)
        if mem is not None and mem.trace is not None:
            a, bx, by = t.to_ref.a, t.to_ref.bx, t.to_ref.by
            xs = a * (np.arange(bw, dtype=np.float64) - ml) + bx
            ys = a * (np.arange(bh, dtype=np.float64) - mt) + by
            marked, ok = memory_grid(mem, xs, ys, mem.trace)
            out[0] = torch.from_numpy(np.where(ok, marked[..., 0], 0.0))
        inner = out[0, mt : mt + self.h, ml : ml + self.w]
        if self.trace is not None:
            inner[:, self.side_cols.long()] = self.trace
        chars = self.frame_chars(t)
        inner[:, self.left : self.left + self.pic_w] = chars.float() if chars is not None else 0.0
        return out * known
