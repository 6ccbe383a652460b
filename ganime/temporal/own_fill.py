"""A frame's own fill: the sides a frame would get filled on its own, for the frames the
shot's sides do not hold (and flashes and blank frames, filled only so)."""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import video
from ..engine import Filler
from ..models.classical import EdgeFill
from .characters import ShotCharacters
from .options import TemporalOptions, TemporalStats
from .provenance import Provenance
from .records import Entry, Geometry


class OwnFill:
    """Fills a frame on its own, its characters closed over first, and blends that fill
    into the shot's sides as far as they do not hold.

    Owns the two fills it chooses between: the model, and the cheap fill at the bottom
    of a model's ``prefill`` chain (the model itself where there is none), used where
    the frame leans only lightly on its own fill (``loose_model``). Borrows the shot's
    characters and the trace; counts loose frames and the model's time in ``stats``.
    """

    def __init__(
        self,
        geometry: Geometry,
        options: TemporalOptions,
        filler: Filler,
        characters: ShotCharacters | None,
        provenance: Provenance,
        stats: TemporalStats,
    ) -> None:
        self.layout, self.options, self.stats = geometry.layout, options, stats
        self.left, self.pic_w, self.side_cols = geometry.left, geometry.pic_w, geometry.side_cols
        self.filler, self.characters, self.provenance = filler, characters, provenance
        start = getattr(filler.model, "prefill", None)
        while getattr(start, "prefill", None) is not None:  # a fill over a fill (a network over
            start = start.prefill  # `patch`): the cheapest at the bottom of the chain, as `patch` uses
        self.cheap = filler
        if start is not None:
            self.cheap = Filler(start, filler.layout, filler.device, 1, compositor=filler.compositor)

    def alone(self, t: Entry) -> video.Frame:
        """The output canvas of a frame filled on its own (a flash, a blank frame), its
        characters never a side's source (``chars``); its picture as it was (the filler
        writes it back where it closed characters over)."""
        prov = self.provenance
        started = time.perf_counter()
        chars, left_in = self.chars(t)
        if prov.on:
            image, made = self.filler.fill_traced(t.frame.image, left_in, chars)
            prov.count(made[:, self.side_cols.long()])
        else:
            (image,) = self.filler.fill([t.frame.image], [chars])
        self.stats.model_seconds += time.perf_counter() - started
        return video.Frame(image, t.frame.pts, t.frame.time_base, t.frame.planes, t.frame.pix_fmt)

    def blend(
        self, t: Entry, values: torch.Tensor, real: torch.Tensor, trust: torch.Tensor, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The side ``values`` and their ``real``ness leaning on t's own fill by 1 - ``trust``
        ((1, S) per side column); the trace (``Provenance``) blended the same way."""
        prov = self.provenance
        self.stats.loose += 1
        started = time.perf_counter()
        fill = self.filler if float(trust.min()) < self.options.loose_model else self.cheap
        self.stats.loose_model += fill is self.filler
        # A mirror shows only the picture beside its seams: changes elsewhere do
        # not call for a new mask (on the 640x480 benchmark clip 10 masks -> 9).
        band = self.layout.side_width * 5 // 4 if isinstance(fill.model, EdgeFill) else None
        chars, left_in = self.chars(t, band)
        if prov.trace is not None:
            own, made = fill.fill_traced(t.frame.image, left_in, chars)
        else:
            (own,) = fill.fill([t.frame.image], [chars])
        self.stats.model_seconds += time.perf_counter() - started
        own_sides = torch.from_numpy(own[:, self.side_cols.long()].astype(np.float32)) / scale
        values = trust[..., None] * values + (1 - trust[..., None]) * own_sides
        if prov.trace is not None:
            prov.trace = trust[0] * prov.trace + (1 - trust[0]) * made[:, self.side_cols.long()]
        return values, real * trust

    def chars(self, t: Entry, band: int | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The characters no side of t's own fill may be made of, and those of its own
        that they miss (for the trace); (h, w) bool over the picture, or None.

        With ``characters``: the shot's (``ShotCharacters.of_frame``: its mask moved with
        the camera, or found here). The filler hands them to a model that takes sources
        (``patch``) as never to be copied, and closes them over for any other fill (a
        mirror would show a character by the seam in the side). Closing them over for
        ``patch`` too made the smooth closed area its best source: a close-up whose face
        was closed over filled its sides with brown smears. A new mask only where the
        drawing changed outside the shot's (near the edges, ``band``, for a mirror): a
        mask per such frame doubled the masks' cost on the 640x480 benchmark clip.
        """
        prov = self.provenance
        if self.characters is None:
            return None, prov.frame_chars(t) if prov.on else None
        chars = self.characters.of_frame(t, exact=False, band=band)
        left_in = None
        if prov.on:
            left_in = prov.frame_chars(t)
            if left_in is not None and chars is not None:
                left_in = left_in & ~chars
        return chars, left_in
