"""The temporal engine: sides that stay still and reuse what the camera already saw.

Filled frame by frame, generated sides flicker and the model runs on every frame.
Animation is kinder than that: hard cuts separate shots, drawings are held for two
or three frames, and backgrounds are paintings the camera slides over. So, per shot:

- **Analysis** (``motion``): each frame gets a grey thumbnail, its camera motion
  against the previous frame (translation + zoom, robust to characters), and a
  verdict: same shot, a *cut* (z-scored difference after motion is undone; a single
  odd frame followed by the old picture is a *flash*, filled on its own, and does not
  end the shot), a *held* drawing (nothing moved), or *blank* (a black or white
  frame of a fade, filled on its own). Motions are chained into a map from each
  frame to the shot's reference frame.
- **Propagation**: a side pixel of frame t that some other frame u of the same shot
  shows inside its picture, within ``window`` frames before or after and linked to t
  by motion that fits (``rigid``), is copied from the nearest such u (aligned by the
  camera motion, corrected for fades). Only background is copied: a pixel of u that a
  frame a few before or after it (aligned by the camera) disagrees with moves against
  the camera (a character, an effect) and is never propagated, written to the shot
  memory or offered to a model that copies patches (``moving``), so a character is
  not pasted where it no longer is.
- **Shot memory**: everything a frame ends up showing (picture and sides) is written
  once into a panorama in reference coordinates. Sides that no frame in reach shows
  come from there, so they move with the camera and stay put on the background.
- **Key frames**: only what neither source has is generated: the model runs on that
  frame's canvas (widened to what the frames ahead will show, so a pan does not need
  it again next frame) with everything known filled in, and the result goes into the
  shot memory. A static shot runs the model once; a pan every so often.
- **No popping**: real content that propagation brings in is faded in over ``ramp``
  frames as it comes within reach, replacing what the memory held; the seam is
  feathered against the current frame's edge, and generated pixels within a fifth of
  the side from it lean (``live_mirror``) toward the current frame's mirror image, so
  something moving along the picture's edge shows next to the seam, as in a per-frame
  fill, while the memory and the rest of the sides stay still.
- **Where the model of the shot fails**: frames the camera motion explains poorly
  (parallax, smoke), or a still shot whose light changed since its key frame (a slow
  fade), lean gradually toward their own per-frame fill: the
  trust in the shot's sides falls by at most ``loosen`` per new drawing, and only
  frames leaning far on their own fill (``loose_model``) pay for the model's. A moving
  camera's side whose picture edge has drifted from what the memory holds there leans
  the same way (``stale_lean``), and past ``stale`` that side is generated again. Back on
  firm ground (say, the end of a fade) the memory starts afresh and the sides
  cross-fade from the last ones shown over ``handover`` frames instead of popping.

Memory is bounded: frames are held for ``window`` frames each way at most, and the
panorama is capped at ``max_extent`` canvases (a zoom past 2x either way starts a new
shot, whose sides cross-fade from the old ones like the end of a fade); frames leave
in the order they came, with their own timestamps.

The package, a part per file, each an object with its own state (docs/ARCHITECTURE.md,
"The temporal engine"): ``shots`` (``ShotAnalysis``), ``propagate`` (``Propagation``: what
other frames show, what moves), ``memory`` (``ShotMemory``: the panorama, key frames),
``trust`` (``SideTrust``: how far the sides hold), ``seams`` (``SeamBlend``: the join with
the picture; ``CrossFade``), ``own_fill`` (``OwnFill``: a frame's own fill, blended in),
``characters`` (``CharacterMasks``, ``ShotCharacters``), ``provenance``
(``Provenance``, for eval); ``filler`` (``TemporalFiller``) orchestrates them; ``records``
holds what they share; ``options``.
"""

from .filler import TemporalFiller
from .options import TemporalOptions, TemporalStats
from .records import Prepared

__all__ = ["Prepared", "TemporalFiller", "TemporalOptions", "TemporalStats"]
