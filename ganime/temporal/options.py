"""The temporal engine's settings and what it reports having done."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TemporalOptions:
    """Settings of the temporal engine; what each does and why it is set so: ``docs/temporal.md``.

    Args:
        window: frames of look-ahead and look-behind for propagation.
        thumb_height: analysis thumbnails are about this tall.
        cut: z-scored difference (after motion) above which a new shot starts.
        hold: mean change (8-bit levels on the thumbnail) under which a still frame repeats the last.
        blank: thumbnails with less contrast than this (levels) are blank (fades).
        key_share: share of side pixels left unknown that calls the model (less is smoothed over).
        margin: a key frame is generated this much wider on every side (fraction of the side width).
        ramp: frames over which real content fades in over the shot memory.
        max_extent: the shot memory covers at most this many canvases across and down.
        drift_span: chained motion is re-measured against a frame this far back.
        rigid: frames whose motion fit is worse than this stop propagation across them.
        agree: a frame's band of a side is shifted per channel to meet what nearer frames
            put beside it, over ``agree_cols`` columns both show; where it still differs
            there by more than this (8-bit levels, the mean over each run of
            ``agree_rows`` rows) those rows of it are not copied (0: off). The shift
            follows the rows: each agreeing run's median difference, interpolated between
            runs, at most this far from the band's own median.
        agree_cols, agree_rows: see ``agree``.
        edge_change: change (levels) of a still camera's picture edge since its key frame
            from which its sides lean on the frame's own fill.
        live_mirror: strength (0-1) with which generated pixels next to the seam take the
            current frame's mirror image, fading out over ``mirror_reach`` (share of the side).
        mirror_reach: see ``live_mirror``.
        handover: frames over which the sides cross-fade when the engine leaves frames that
            leaned on their own fill (0: switch at once).
        stale: median change (levels) of a moving camera's picture edge against the shot
            memory above which that side is generated again (0: never).
        loose_model: frames leaning on their own fill get it from the model once the trust
            in the shot's sides fell below this somewhere (else from the model's prefill).
        loosen: the most the trust in the shot's sides may fall from one new drawing to the next.
        stale_lean: staleness (levels) from which a moving camera's side leans toward the
            frame's own fill, all of it at ``stale``.
        moving: levels by which a pixel must differ from a frame before or after it, camera
            motion and light undone, to count as moving against the camera (0: off).
        moving_grow: what moves is widened by this many thumbnail pixels every way.
        moving_span: frames compared for ``moving``: 2, 4, ... up to this many each way.
        moving_unseen: count what no other frame shows, beside what moves, as moving.
        moving_reach: a pixel matching the other frame's within this many thumbnail pixels
            of where the camera puts it is not moving (parallax, resampling).
        still_share: beside a side whose nearest columns hold less than this share of
            still background, a key frame's patches may copy any pixel there.
        characters: a key frame's characters (``ganime.segment``, above ``character_level``,
            widened by ``character_grow`` pixels) are never copied into its sides, the
            live mirror leaves them out, and a frame's own fill gets them closed over.
            Off here (the engine alone); ``ConvertOptions`` turns it on: side pixels
            copied from characters 9.0 % -> 0.56 % on the tuning clips, at a strip LPIPS
            cost there of 0.011 (docs/temporal.md, "Characters").
        character_level: the segmenter's output above which a pixel is character.
        character_grow: pixels a character is widened by (its outline, the mask's softness).
        character_behind: characters are not continued either: ``patch`` completes them
            with the sides, so the side continues the background around them (off: they
            steer the layout as what moves does). Off: 0.3784 against 0.3767 on the tuning
            clips (docs/temporal.md, "Characters").
        character_join: a character cut by the line where one half of the picture the
            segmenter looks at ends (the other half saw only part of it and did not call
            it one) is made whole from one more look, centred on the cut
            (``CharacterMasks.join``): on `anime_cuts` the masks without it let 0.55 %
            of the sides come from characters, 0.0016 % with it.
        character_every: a frame that leans on its own fill finds its characters again
            (where its drawing changed outside the shot's mask) only once the mask is
            this many frames old. 1: 75 masks on 15 s of the DVD cartoon, 4: 57, but then
            1.74 % of 3d_sintel's sides copied from characters instead of 0.03 %.
        masks_ahead: find the characters of shot starts (usually key frames) ahead, on a
            worker thread, while the engine renders the frames before them (the same masks
            as found when needed; off: all on the engine's thread).
        provenance: trace how much of each side pixel was copied from a character
            (``temporal/provenance.py``; ``TemporalStats.copied_share``): for ``ganime
            eval``, it finds the characters of every rendered frame.
    """

    window: int = 48
    thumb_height: int = 80
    cut: float = 0.5
    hold: float = 0.6
    blank: float = 4.0
    key_share: float = 0.003
    margin: float = 0.0
    ramp: int = 8
    max_extent: float = 3.0
    drift_span: int = 12
    rigid: float = 0.3
    agree: float = 20.0
    agree_cols: int = 4
    agree_rows: int = 16
    edge_change: float = 8.0
    live_mirror: float = 0.5
    mirror_reach: float = 0.2
    handover: int = 8
    stale: float = 5.0
    loose_model: float = 0.5
    loosen: float = 0.1
    stale_lean: float = 2.5
    moving: float = 24.0
    moving_grow: int = 2
    moving_span: int = 8
    moving_unseen: bool = False
    moving_reach: int = 2
    still_share: float = 0.5
    characters: bool = False
    character_level: float = 0.5
    character_grow: int = 4
    character_behind: bool = False
    character_join: bool = True
    character_every: int = 1
    masks_ahead: bool = True
    provenance: bool = False


@dataclass
class TemporalStats:
    """What the engine did, for the user and for benchmarks."""

    frames: int = 0
    shots: int = 0
    held: int = 0
    single: int = 0  # frames filled on their own (flashes, blank frames)
    key_frames: int = 0
    loose: int = 0  # frames the camera model explained poorly, blended with their own fill
    loose_model: int = 0  # of those, the frames whose own fill the model made (see TemporalOptions)
    propagated: float = 0.0  # side pixels taken from other frames (sum of shares)
    seconds: float = 0.0
    model_seconds: float = 0.0
    peak_buffer: int = 0  # most frames held at once
    peak_memory_pixels: int = 0  # largest shot memory, in pixels
    refreshed: int = 0  # times generated sides were made again beside a picture that moved on
    measured_ahead: int = 0  # frames whose camera motion prepare() had measured (on the decoding thread)
    character_masks: int = 0  # key frames whose characters were found (ganime.segment)
    masks_ahead: int = 0  # of those, found ahead on the worker thread (TemporalOptions.masks_ahead)
    masks_moved: int = 0  # key frames that took the shot's mask moved with the camera (the same drawing)
    half_masks: int = 0  # of character_masks, those found for one half of the picture (the other's drawing held)
    join_views: int = 0  # segmenter looks at characters the halves cut (TemporalOptions.character_join)
    copied: float = 0.0  # sum over frames of the share of side pixels copied from characters (provenance)
    traced: int = 0  # frames whose provenance was traced

    @property
    def copied_share(self) -> float:
        """Mean share of side pixels copied from characters (NaN: not traced)."""
        return self.copied / self.traced if self.traced else float("nan")
