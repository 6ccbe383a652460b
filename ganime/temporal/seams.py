"""Where the sides meet the picture: the feathered seam and the live mirror beside it."""

from __future__ import annotations

import numpy as np
import torch

from .. import video
from ..compositor import Compositor, SideSeam
from .characters import ShotCharacters
from .options import TemporalOptions
from .provenance import Provenance
from .records import Entry, Geometry, Shown


class SeamBlend:
    """Where the sides meet the picture: the feathered seam and the live mirror beside it.

    Owns the seam blend (``compositor.SideSeam``) and the live-mirror zone; borrows the
    shot's characters (a character is never mirrored) and the trace (``Provenance``),
    which the live mirror blends as it blends the values.
    """

    def __init__(
        self,
        geometry: Geometry,
        options: TemporalOptions,
        compositor: Compositor,
        characters: ShotCharacters | None,
        provenance: Provenance,
    ) -> None:
        self.layout, self.options = geometry.layout, options
        self.h, self.w, self.pic_w, self.left = geometry.h, geometry.w, geometry.pic_w, geometry.left
        self.side_cols = geometry.side_cols
        self.characters, self.provenance = characters, provenance
        self._seam = SideSeam.of(compositor, geometry.layout)
        self._mirror = self._mirror_map()

    @staticmethod
    def seam_still(t: Entry, last: Shown) -> bool:
        """Whether the picture's outer columns are as they were when ``last``'s seam was
        blended (within codec noise), so the seam needs no redoing."""
        ref = last.seam_thumb
        if ref.shape != t.thumb.shape:
            return False
        edges = (slice(None), [0, -1])
        return float(np.abs(t.thumb[edges] - ref[edges]).max()) < 1.0

    def _mirror_map(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(side columns, their mirror columns in the picture, weights) of the live-mirror zone."""
        reach = max(self.left, self.w - self.left - self.pic_w, 1) * self.options.mirror_reach
        s = torch.arange(self.side_cols.numel())
        c = self.side_cols.long()
        right = c >= self.left
        # Distance from the seam (1 = the first generated column) and the picture column
        # that mirrors onto it about the picture's edge.
        dist = torch.where(right, c - (self.left + self.pic_w) + 1, self.left - c)
        src = torch.where(right, self.pic_w - dist, dist - 1).clamp(0, self.pic_w - 1)
        weight = (1 - (dist.float() - 1) / max(reach, 1e-6)).clamp(0, 1) * self.options.live_mirror
        keep = weight > 0
        cols = s[keep]
        assert cols.numel() == 0 or int(cols[-1]) - int(cols[0]) + 1 == cols.numel()  # one run
        return cols, src[keep], weight[keep]

    def live_mirror(self, t: Entry, values: torch.Tensor, real: torch.Tensor, scale: float) -> torch.Tensor:
        """Generated side pixels next to the seam take this frame's mirror image.

        What the memory generated next to the seam is the mirror of the frame it was
        made from; when a character moves along the picture's edge, that copy goes stale
        while a fill of each frame follows it. Real content (seen in some frame) is kept;
        the shot memory itself is never changed, so nothing drifts.
        """
        cols, src, weight = self._mirror
        if cols.numel() == 0:
            return values
        # The zone is one run of side-grid columns (the inner ends of both strips): a view.
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        live = t.picture.index_select(1, src).float().div_(scale)  # (H, k, 3)
        w = (1 - real[:, c0:c1]) * weight  # (H, k)
        shot_chars = self.characters.moved_to(t, src) if self.characters is not None else None
        if shot_chars is not None:  # never a mirror of a character (the shot's, moved with the camera)
            w = w.masked_fill(shot_chars, 0.0)
        values[:, c0:c1].lerp_(live, w[..., None])  # values are this frame's own
        trace = self.provenance.trace
        if trace is not None:  # provenance: a mirrored character is a copied one
            chars = self.provenance.frame_chars(t)
            if chars is not None:
                trace[:, c0:c1].lerp_(chars.index_select(1, src).float(), w)
            else:
                trace[:, c0:c1].mul_(1 - w)
        return values

    def composite(self, t: Entry, values: torch.Tensor, scale: float, base: np.ndarray | None = None) -> np.ndarray:
        """(H, S, 3) output samples of the sides: values feathered into the seam by the
        engine's compositor (``compositor.SideSeam``). Real content is feathered too: a
        fraction of a pixel of motion error, or a character that moved since the frame
        it came from, would otherwise show as a step. With ``base`` (a held drawing's
        last sides), only the seam is redone."""
        return self._seam.blend(t.picture, values, scale, t.frame.image.dtype, base)

    def canvas_out(self, t: Entry, sides: np.ndarray, centre_from_planes: str | None) -> video.Frame:
        """The output canvas: the source picture untouched, ``sides`` beside it (the picture
        area left unset for frames whose planes of ``centre_from_planes`` format the
        writer copies it from: ``TemporalFiller.centre_from_planes``)."""
        image = t.frame.image
        c = self.layout.content
        out = np.empty((self.h, self.w, 3), image.dtype)
        out[:, : self.left] = sides[:, : self.left]
        if t.frame.planes is None or t.frame.pix_fmt != centre_from_planes:
            out[:, self.left : self.left + self.pic_w] = image[c.y : c.bottom, c.x : c.right]
        out[:, self.left + self.pic_w :] = sides[:, self.left :]
        return video.Frame(out, t.frame.pts, t.frame.time_base, t.frame.planes, t.frame.pix_fmt)


class CrossFade:
    """The sides fading from the last ones shown into the new ones, over ``handover``
    frames (the end of a stretch that leaned on its own fill, a side made again, a new
    shot that continues the scene): owns the fade under way."""

    def __init__(self, options: TemporalOptions, provenance: Provenance) -> None:
        self.frames, self.provenance = options.handover, provenance
        self._from: tuple[torch.Tensor, int] | None = None  # (sides faded out of, frames left)
        self._trace: torch.Tensor | None = None  # and their trace (provenance)

    def start(self, last: Shown | None, t: Entry) -> None:
        """Fade from ``last``'s sides, if t follows it."""
        if last is not None and last.index == t.index - 1 and self.frames > 0:
            self._from = (last.values, self.frames)
            self._trace = last.trace

    def stop(self) -> None:
        self._from = None

    def apply(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` with the fade's share of the sides faded out of (the trace too)."""
        if self._from is None:
            return values
        before, left = self._from
        values = values + (before - values) * (left / (self.frames + 1))
        prov = self.provenance
        if prov.trace is not None and self._trace is not None:
            prov.trace = prov.trace + (self._trace - prov.trace) * (left / (self.frames + 1))
        self._from = (before, left - 1) if left > 1 else None
        return values
