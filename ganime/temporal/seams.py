"""Where the sides meet the picture: the feathered seam and the live mirror beside it."""

from __future__ import annotations

import numpy as np
import torch

from .. import video
from .records import (
    Entry,
)


class SeamBlend:
    """Methods of ``TemporalFiller``: where the sides meet the picture: the feathered seam and the live mirror beside
    it."""

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

    def _live_mirror(self, t: Entry, values: torch.Tensor, real: torch.Tensor, scale: float) -> torch.Tensor:
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
        shot_chars = self._chars_for(t, src)
        if shot_chars is not None:  # never a mirror of a character (the shot's, moved with the camera)
            w = w.masked_fill(shot_chars, 0.0)
        values[:, c0:c1].lerp_(live, w[..., None])  # values are this frame's own
        if self.trace is not None:  # provenance: a mirrored character is a copied one
            chars = self._frame_chars(t)
            if chars is not None:
                self.trace[:, c0:c1].lerp_(chars.index_select(1, src).float(), w)
            else:
                self.trace[:, c0:c1].mul_(1 - w)
        return values

    def _composite(self, t: Entry, values: torch.Tensor, scale: float, base: np.ndarray | None = None) -> np.ndarray:
        """(H, S, 3) output samples of the sides: values feathered into the seam by the
        engine's compositor (``compositor.SideSeam``). Real content is feathered too: a
        fraction of a pixel of motion error, or a character that moved since the frame
        it came from, would otherwise show as a step. With ``base`` (a held drawing's
        last sides), only the seam is redone."""
        return self._seam.blend(t.picture, values, scale, t.frame.image.dtype, base)

    def _canvas_out(self, t: Entry, sides: np.ndarray) -> video.Frame:
        """The output canvas: the source picture untouched, ``sides`` beside it."""
        image = t.frame.image
        c = self.layout.content
        out = np.empty((self.h, self.w, 3), image.dtype)
        out[:, : self.left] = sides[:, : self.left]
        if t.frame.planes is None or t.frame.pix_fmt != self.centre_from_planes:
            out[:, self.left : self.left + self.pic_w] = image[c.y : c.bottom, c.x : c.right]
        out[:, self.left + self.pic_w :] = sides[:, self.left :]
        return video.Frame(out, t.frame.pts, t.frame.time_base, t.frame.planes, t.frame.pix_fmt)
