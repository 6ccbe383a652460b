"""The temporal engine's parts, each built and exercised alone (no ``TemporalFiller``)."""

from __future__ import annotations

import dataclasses
from collections import deque
from fractions import Fraction

import numpy as np
import pytest
import torch

from ganime import synthetic, video
from ganime.engine import Filler
from ganime.geometry import compute_layout
from ganime.models import build_model
from ganime.temporal import TemporalOptions, TemporalStats
from ganime.temporal.characters import CharacterMasks, ShotCharacters
from ganime.temporal.memory import ShotMemory
from ganime.temporal.propagate import Propagation
from ganime.temporal.provenance import Provenance
from ganime.temporal.records import Entry, Geometry, Shown
from ganime.temporal.seams import SeamBlend
from ganime.temporal.shots import ShotAnalysis
from ganime.temporal.trust import SideTrust

CPU = torch.device("cpu")
OPTIONS = TemporalOptions()


def pan(frames: int = 12, step: int = 4, width: int = 128, height: int = 96) -> list[np.ndarray]:
    """4:3 pictures of a painted world the camera pans over, ``step`` px a frame to the right."""
    world = synthetic.paint_background(width + step * frames, height, seed=5)
    return [np.ascontiguousarray(world[:, i * step : i * step + width]) for i in range(frames)]


def geometry(picture: np.ndarray) -> Geometry:
    return Geometry.of(compute_layout(picture.shape[1], picture.shape[0]), OPTIONS.thumb_height)


def entries(pictures: list[np.ndarray], g: Geometry) -> deque[Entry]:
    """The shot analysis's records of the pictures (every one decided)."""
    analysis = ShotAnalysis(g, OPTIONS, TemporalStats())
    buf: deque[Entry] = deque()
    for i, p in enumerate(pictures):
        buf.append(analysis.analyse(video.Frame(p, i, Fraction(1, 24)), i, buf))
    for e in buf:
        if not e.decided:
            analysis.decide(e, None, buf)
    return buf


def memory_of(g: Geometry, stats: TemporalStats | None = None) -> ShotMemory:
    filler = Filler(build_model("edge"), g.layout, CPU)
    provenance = Provenance(g, OPTIONS, None, filler, stats or TemporalStats())
    return ShotMemory(g, OPTIONS, filler, Propagation(g, OPTIONS), None, provenance, stats or TemporalStats())


def test_shot_analysis_chains_the_camera_and_counts_one_shot() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    stats = TemporalStats()
    analysis = ShotAnalysis(g, OPTIONS, stats)
    buf: deque[Entry] = deque()
    for i, p in enumerate(pictures):
        buf.append(analysis.analyse(video.Frame(p, i, Fraction(1, 24)), i, buf))
    assert stats.shots == 1 and all(e.shot == 0 and e.decided for e in buf)
    # The camera moves 4 px a frame: frame i sits 4 i px on in the shot's reference.
    assert [round(e.to_ref.bx) for e in buf] == [4 * i for i in range(len(pictures))]
    cut = np.ascontiguousarray(255 - pictures[0][:, ::-1])  # an unrelated picture
    buf.append(analysis.analyse(video.Frame(cut, 12, Fraction(1, 24)), 12, buf))
    analysis.decide(buf[-1], None, buf)  # the stream ends there: a cut, not a flash
    assert buf[-1].shot == 1 and stats.shots == 2


def test_propagation_copies_what_other_frames_show_of_a_side() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    propagation = Propagation(g, OPTIONS)
    t = buf[3]
    reach = propagation.rigid_reach(t, buf)
    assert {e.index for e in reach} == set(range(12)) - {3}
    X = t.to_ref.a * g.side_cols.double().numpy() + t.to_ref.bx
    Y = t.to_ref.a * np.arange(g.h, dtype=np.float64) + t.to_ref.by
    later = sorted(reach, key=lambda e: abs(e.index - t.index))
    values, unfilled, dist = propagation.propagate(t, later, X, Y, 255.0, buf)
    # The right strip is what frames after t show (the camera pans right) ...
    right = slice(g.left, None)
    assert not unfilled[:, right].any()
    world = synthetic.paint_background(128 + 4 * 12, 96, seed=5)
    truth = world[:, 12 + 128 : 12 + 128 + g.side_cols.numel() - g.left].astype(np.float32) / 255
    assert np.abs(values[:, right] - truth).mean() < 0.02
    assert dist[:, right].min() >= 1
    # ... and of the left one only what frames before t showed: frame 0's picture starts
    # 12 px on in t's left strip (one pixel in from its edge, which is often dark).
    assert unfilled[:, :11].all() and not unfilled[:, 11 : g.left].any()
    assert dist[:, 11 : g.left].max() == 3


def test_propagation_paints_the_two_strips_side_by_side_to_the_same_bits() -> None:
    """The right strip is painted on the band thread while the engine paints the left:
    the result is the one strip after the other's, to the bit, whichever ran first."""
    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    propagation = Propagation(g, OPTIONS)
    t = buf[6]  # frames before and after it: both strips get something
    X = t.to_ref.a * g.side_cols.double().numpy() + t.to_ref.bx
    Y = t.to_ref.a * np.arange(g.h, dtype=np.float64) + t.to_ref.by
    near = sorted(propagation.rigid_reach(t, buf), key=lambda e: (abs(e.index - t.index), e.index > t.index))
    both = propagation.propagate(t, near, X, Y, 255.0, buf)
    assert not both[1][:, : g.left].all() and not both[1][:, g.left :].all()  # each strip got something
    for order in (g.strips, g.strips[::-1]):
        values = np.zeros_like(both[0])
        dist = np.full_like(both[2], np.inf)
        unfilled = np.ones_like(both[1])
        for strip in order:  # on this thread, one after the other
            propagation._strip(t, near, X, Y, 255.0, buf, strip, values, dist, unfilled)
        for mine, theirs in zip((values, unfilled, dist), both, strict=True):
            assert np.array_equal(mine, theirs)


def right_strip(pictures: list[np.ndarray], options: TemporalOptions) -> tuple[np.ndarray, np.ndarray]:
    """Frame 3's right strip propagated from the frames after it: per column, the mean
    absolute difference from the painted world (``pan``'s), and per pixel how many frames
    away the frame it came from is (nothing is left unfilled)."""
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    propagation = Propagation(g, options)
    t = buf[3]
    X = t.to_ref.a * g.side_cols.double().numpy() + t.to_ref.bx
    Y = t.to_ref.a * np.arange(g.h, dtype=np.float64) + t.to_ref.by
    later = sorted(propagation.rigid_reach(t, buf), key=lambda e: abs(e.index - t.index))
    values, unfilled, dist = propagation.propagate(t, later, X, Y, 255.0, buf)
    assert not unfilled[:, g.left :].any()
    world = synthetic.paint_background(128 + 4 * 12, 96, seed=5)
    truth = world[:, 12 + 128 : 12 + 128 + g.side_cols.numel() - g.left].astype(np.float32) / 255
    return np.abs(values[:, g.left :] - truth).mean(axis=(0, 2)), dist[:, g.left :]


def test_propagation_evens_out_a_frame_shown_a_shade_off() -> None:
    # Frame 5 shows the columns it adds to frame 3's right strip 16 levels too bright
    # (too little for the ghost guard): its band is shifted to meet frame 4's.
    pictures = pan()
    pictures[5] = pictures[5].copy()
    pictures[5][:, -10:] = np.clip(pictures[5][:, -10:].astype(int) + 16, 0, 255).astype(np.uint8)
    assert right_strip(pictures, OPTIONS)[0].max() < 0.02
    assert right_strip(pictures, dataclasses.replace(OPTIONS, agree=0.0))[0].max() > 0.05


def test_propagation_evens_out_a_shade_that_changes_down_the_band() -> None:
    # Frame 5 shows its new columns of frame 3's right strip brighter from 0 levels at the
    # top to 24 at the bottom (the light of a sky changing down the frame): the band meets
    # frame 4's row by row, where one shift for it all would leave each row up to 12 off.
    pictures = pan()
    pictures[5] = pictures[5].copy()
    h = pictures[5].shape[0]
    ramp = np.linspace(0, 24, h)[:, None, None]
    pictures[5][:, -10:] = np.clip(pictures[5][:, -10:].astype(float) + ramp, 0, 255).round().astype(np.uint8)
    error, dist = right_strip(pictures, OPTIONS)
    from_5 = (dist == 2).all(axis=0)  # the band is still frame 5's, all of it
    assert from_5.any()
    assert error[from_5].max() < 0.012  # a single shift: 6 levels (0.024) on average
    assert right_strip(pictures, dataclasses.replace(OPTIONS, agree=0.0))[0][from_5].max() > 0.04


def test_propagation_leaves_out_a_frame_that_disagrees_with_the_nearer_ones() -> None:
    # Frame 5 shows noise where the others show the world (the ghost guard off): its band
    # is not copied, the frames after it fill those columns.
    pictures = pan()
    pictures[5] = pictures[5].copy()
    pictures[5][:, -10:] = np.random.default_rng(0).integers(0, 256, pictures[5][:, -10:].shape, dtype=np.uint8)
    guard_off = dataclasses.replace(OPTIONS, moving=0.0)
    assert right_strip(pictures, guard_off)[0].max() < 0.02
    assert right_strip(pictures, dataclasses.replace(guard_off, agree=0.0))[0].max() > 0.1


def test_propagation_leaves_out_only_the_rows_of_a_band_that_disagree() -> None:
    # Something the ghost guard misses crosses frame 5's new columns in rows 32-63 only:
    # those rows come from the frames after it, the others still from frame 5.
    pictures = pan()
    pictures[5] = pictures[5].copy()
    rows = slice(32, 64)
    pictures[5][rows, -10:] = np.random.default_rng(1).integers(0, 256, pictures[5][rows, -10:].shape, dtype=np.uint8)
    error, dist = right_strip(pictures, dataclasses.replace(OPTIONS, moving=0.0))
    assert error.max() < 0.02
    from_5 = (dist == 2).any(axis=0)  # the columns frame 5 gave
    assert from_5.any() and (dist[rows][:, from_5] > 2).all() and (dist[:32][:, from_5] == 2).all()


def test_shot_memory_remembers_a_frame_and_recalls_it_where_the_camera_went() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    memory = memory_of(g)
    t, later = buf[0], buf[2]
    canvas = torch.zeros(3, g.h, g.w)
    canvas[:, :, g.left : g.left + g.pic_w] = torch.from_numpy(pictures[0]).permute(2, 0, 1).float() / 255
    memory.remember(t, canvas)
    assert memory.panorama is not None and memory.panorama.valid.any()
    # Frame 2 is 8 px on: its left strip's innermost 8 columns are what frame 0 showed.
    X = later.to_ref.a * g.side_cols.double().numpy() + later.to_ref.bx
    Y = later.to_ref.a * np.arange(g.h, dtype=np.float64) + later.to_ref.by
    n = g.side_cols.numel()
    values = np.zeros((g.h, n, 3), np.float32)
    filled = np.zeros((g.h, n), bool)
    real = filled.astype(np.float32)
    dist = np.full((g.h, n), np.inf, np.float32)
    memory.recall(later, X, Y, values, filled, real, dist)
    # Frame 0's canvas, 8 px on (as measured: 8.0001), covers frame 2's left strip and all
    # but the last 8 columns of its right one (9: the last needs a pixel past the canvas).
    assert abs(later.to_ref.bx - 8) < 0.01
    assert filled[:, : g.left].all() and filled[:, g.left : n - 9].all() and not filled[:, n - 8 :].any()
    assert np.allclose(values[:, : g.left], canvas[:, :, 8 : 8 + g.left].permute(1, 2, 0).numpy(), atol=1e-3)
    assert not real.any()  # recalled, not shown by a frame in reach
    memory.reset()
    assert memory.panorama is None and memory.key is None


def test_shot_memory_writes_two_forgotten_sides_apart_as_it_would_together() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    canvas = torch.rand(3, g.h, g.w, generator=torch.Generator().manual_seed(2))
    results = []
    for gap in (ShotMemory.RUN_GAP, 10**6):  # the sides apart; one box over the whole canvas
        memory = memory_of(g)
        memory.RUN_GAP = gap
        memory.remember(buf[0], canvas)
        mem = memory.panorama
        assert mem is not None
        x0 = mem.box[0]
        sides = np.r_[0 : g.left, g.left + g.pic_w : g.w] - x0  # frame 0's side columns, forgotten
        mem.valid[:, sides] = False
        kept = mem.values.copy()
        memory.remember(buf[1], canvas)
        after = memory.panorama  # (grown: frame 1 is 4 px on)
        assert after is not None and after.box[0] == x0
        assert after.valid[:, sides[g.left :]].all()  # frame 1 shows frame 0's right side again
        inner = slice(g.left - x0 + 8, g.left + g.pic_w - x0 - 8)
        assert np.array_equal(after.values[:, inner], kept[:, inner])  # the picture, not written again
        results.append(after.values)
    assert np.allclose(results[0], results[1], atol=1e-5)  # (each box subtracts its own first column)


def test_a_key_frame_fills_what_nothing_shows_and_is_remembered() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    stats = TemporalStats()
    memory = memory_of(g, stats)
    t = buf[0]
    n = g.side_cols.numel()
    values, filled = torch.zeros(g.h, n, 3), torch.zeros(g.h, n, dtype=torch.bool)
    memory.key_frame(t, buf, memory.propagation.canvas(t, values, filled, 255.0), values, filled)
    assert stats.key_frames == 1 and memory.key is not None and memory.key[0] == t.shot
    assert values.abs().sum() > 0  # the sides were made
    mem = memory.panorama
    assert mem is not None and mem.made.any() and (mem.valid & ~mem.made).any()
    # A side generated beside a picture that moved on is forgotten; what frames showed stays.
    seen = mem.valid & ~mem.made
    memory.forget_beside(buf[4], [True, False])
    assert stats.refreshed == 1 and memory.key is None
    c = g.left + round(buf[4].to_ref.bx) - mem.x0  # the memory column where frame 4's picture starts
    assert np.array_equal(mem.valid[:, :c], seen[:, :c]) and not mem.made[:, :c].any()
    assert mem.made[:, -5:].any()  # the right side's generated pixels are kept


def test_side_trust_falls_gradually_and_with_the_light() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    memory = memory_of(g)
    trust = SideTrust(g, OPTIONS, memory)
    n = g.side_cols.numel()
    assert trust.bounded(torch.ones(1, n)).min() == 1
    fallen = trust.bounded(torch.zeros(1, n))
    assert torch.allclose(fallen, torch.full((1, n), 1 - OPTIONS.loosen))  # at most ``loosen`` a drawing
    trust.new_shot()
    assert trust.bounded(torch.zeros(1, n)).max() == 0
    buf = entries(pictures, g)
    t = buf[0]
    assert trust.light(t) == 1.0  # no memory yet: nothing to distrust
    assert trust.camera(t, buf) == 1.0  # a clean pan fits
    canvas = torch.zeros(3, g.h, g.w)
    memory.remember(t, canvas)
    t.gain = 1.6  # the picture is 60 % brighter than the memory's frame
    assert 0 < trust.light(t) < 1
    t.gain = 2.5
    assert trust.light(t) == 0


def test_the_seam_puts_the_picture_between_the_sides_and_redoes_only_a_changed_edge() -> None:
    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    filler = Filler(build_model("edge"), g.layout, CPU)
    seam = SeamBlend(g, OPTIONS, filler.compositor, None, Provenance(g, OPTIONS, None, filler, TemporalStats()))
    t = buf[0]
    n = g.side_cols.numel()
    values = torch.full((g.h, n, 3), 0.5)
    sides = seam.composite(t, values, 255.0)
    out = seam.canvas_out(t, sides, None).image
    assert out.shape == (g.h, g.w, 3) and np.array_equal(out[:, g.left : g.left + g.pic_w], pictures[0])
    assert abs(float(out[:, 0].mean()) - 127.5) < 1  # far from the seam: the side's value
    last = Shown(0, values, sides, t.thumb, float(t.thumb.mean()))
    assert seam.seam_still(t, last)
    changed = Entry(1, t.frame, t.picture, t.thumb.copy(), t.contrast)
    changed.thumb[:, 0] += 40  # the picture's left edge changed
    assert not seam.seam_still(changed, last)
    # The live mirror takes the frame's mirror image next to the seam where nothing real is.
    mirrored = seam.live_mirror(t, values.clone(), torch.zeros(g.h, n), 255.0)
    inner = g.left - 1  # the left strip's column next to the seam mirrors the picture's first
    expect = torch.from_numpy(pictures[0][:, 0].astype(np.float32) / 255)
    assert (mirrored[:, inner] - expect).abs().mean() < (values[:, inner] - expect).abs().mean()


@pytest.mark.parametrize("camera", [0.0, 3.0])
def test_shot_characters_are_found_once_for_a_held_drawing_and_move_with_the_camera(camera: float) -> None:
    world = synthetic.paint_background(200, 96, seed=1)
    synthetic._draw_character(world, 60, 96 * 0.86, 48, 0)  # by the picture's left edge
    first = np.ascontiguousarray(world[:, 40:168])
    shift = int(camera)
    second = np.ascontiguousarray(world[:, 40 + shift : 168 + shift])
    g = geometry(first)
    buf = entries([first, second], g)
    stats = TemporalStats()
    shot = ShotCharacters(g, OPTIONS, stats, CharacterMasks(OPTIONS, CPU), ahead=False)
    found = shot.for_key(buf[0])
    assert found is not None and found[:, :40].any() and stats.character_masks == 1
    again = shot.of_frame(buf[1], exact=True)
    assert stats.character_masks == 1 and stats.masks_moved == 1  # the same drawing: not found again
    assert again is not None and again.equal(shot.moved_to(buf[1]))
    if shift:
        assert again[:, : 128 - shift].equal(found[:, shift:])  # moved with the camera
    shot.new_shot()
    assert shot.chars is None and shot.moved_to(buf[1]) is None


def test_a_fading_drawing_keeps_its_characters_without_a_new_mask() -> None:
    """The shot analysis measures a fade's light (``Entry.gain``); the masks undo it, so
    a held drawing fading out is not looked at again (the segmenter's verdict on the
    same drawing can differ from frame to frame of a fade: a new mask each frame made
    a tree by the seam a character on some frames of `3d_bbb` and not on others)."""
    world = synthetic.paint_background(200, 96, seed=1)
    synthetic._draw_character(world, 60, 96 * 0.86, 48, 0)
    first = np.ascontiguousarray(world[:, 40:168])
    pictures = [(first.astype(np.float32) * (1 - 0.1 * i)).round().astype(np.uint8) for i in range(5)]
    g = geometry(first)
    buf = entries(pictures, g)
    assert buf[-1].gain < 0.7  # the fade was measured
    stats = TemporalStats()
    shot = ShotCharacters(g, OPTIONS, stats, CharacterMasks(OPTIONS, CPU), ahead=False)
    assert shot.for_key(buf[0]) is not None
    for e in list(buf)[1:]:
        shot.of_frame(e, exact=True)
    assert stats.character_masks == 1 and stats.masks_moved == 4


def test_own_fill_leans_on_the_frame_as_far_as_the_sides_do_not_hold() -> None:
    from ganime.temporal.own_fill import OwnFill

    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    stats = TemporalStats()
    filler = Filler(build_model("edge"), g.layout, CPU)
    own = OwnFill(g, OPTIONS, filler, None, Provenance(g, OPTIONS, None, filler, stats), stats)
    t, n = buf[5], g.side_cols.numel()
    values, real = torch.full((g.h, n, 3), 0.25), torch.ones(g.h, n)
    (alone,) = filler.fill([pictures[5]])
    own_sides = torch.from_numpy(alone[:, g.side_cols.long()].astype(np.float32)) / 255
    trust = torch.linspace(0, 1, n)[None]  # from the frame's own fill to the shot's sides
    blended, real_after = own.blend(t, values.clone(), real, trust, 255.0)
    assert torch.allclose(blended[:, 0], own_sides[:, 0]) and torch.allclose(blended[:, -1], values[:, -1])
    assert torch.allclose(real_after, trust.expand(g.h, n))
    assert stats.loose == 1 and stats.loose_model == 1  # trust 0 somewhere: the model's own fill
    frame = own.alone(t)  # a frame filled only on its own: the picture kept as it was
    assert np.array_equal(frame.image, alone)


def test_a_cross_fade_leaves_the_last_sides_over_its_frames() -> None:
    from ganime.temporal.seams import CrossFade

    pictures = pan()
    g = geometry(pictures[0])
    buf = entries(pictures, g)
    filler = Filler(build_model("edge"), g.layout, CPU)
    fade = CrossFade(OPTIONS, Provenance(g, OPTIONS, None, filler, TemporalStats()))
    n, frames = g.side_cols.numel(), OPTIONS.handover
    assert frames > 0
    last = Shown(4, torch.ones(g.h, n, 3), np.zeros((g.h, n, 3), np.uint8), buf[4].thumb, 0.0)
    fade.start(last, buf[7])  # not the next frame: nothing to fade from
    assert fade.apply(torch.zeros(g.h, n, 3)).max() == 0
    fade.start(last, buf[5])
    shares = [float(fade.apply(torch.zeros(g.h, n, 3)).mean()) for _ in range(frames + 1)]
    assert shares == pytest.approx([k / (frames + 1) for k in range(frames, -1, -1)])


def test_own_fill_with_patch_leaves_the_characters_out_of_its_sources() -> None:
    """A frame leaning on its own ``patch`` fill: its characters are never copied, and the
    side is made from the background around them; closed over first (as for a mirror),
    the smooth closed area was ``patch``'s source and the side came out a smear."""
    from ganime.temporal.characters import closed_over
    from ganime.temporal.own_fill import OwnFill

    world = synthetic.paint_background(200, 96, seed=1)
    synthetic._draw_character(world, 60, 96 * 0.86, 48, 0)  # by the picture's left edge
    picture = np.ascontiguousarray(world[:, 40:168])
    g = geometry(picture)
    buf = entries([picture], g)
    stats = TemporalStats()
    shot = ShotCharacters(g, OPTIONS, stats, CharacterMasks(OPTIONS, CPU), ahead=False)
    chars = shot.for_key(buf[0])
    assert chars is not None and chars[:, :20].any()
    filler = Filler(build_model("patch"), g.layout, CPU)
    own = OwnFill(g, OPTIONS, filler, shot, Provenance(g, OPTIONS, None, filler, stats), stats)
    n = g.side_cols.numel()
    values, _ = own.blend(buf[0], torch.zeros(g.h, n, 3), torch.ones(g.h, n), torch.zeros(1, n), 255.0)
    (expect,) = filler.fill([picture], [chars])
    left = values[:, : g.left].numpy() * 255
    assert np.abs(left - expect[:, : g.left]).max() < 0.51
    (smeared,) = filler.fill([closed_over(picture, g.layout.content, chars)])
    truth = world[:, 40 - g.left : 40].astype(np.float32)
    error, error_closed = np.abs(left - truth).mean(), np.abs(smeared[:, : g.left] - truth).mean()
    assert error < 0.8 * error_closed
