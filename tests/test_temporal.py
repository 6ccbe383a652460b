"""The temporal engine on synthetic shots with known ground truth."""

from __future__ import annotations

import queue
import threading
from collections import deque
from fractions import Fraction

import numpy as np
import torch
from conftest import psnr, view

from ganime import synthetic, video
from ganime.engine import Filler
from ganime.geometry import compute_layout
from ganime.models import ARCHS, build_model
from ganime.motion import match, thumbnail
from ganime.temporal import TemporalFiller, TemporalOptions, TemporalStats
from ganime.temporal.propagate import Propagation
from ganime.temporal.records import Entry, Geometry
from ganime.temporal.shots import ShotAnalysis

CPU = torch.device("cpu")


def shot(frames: int, pan: float, seed: int = 0, width: int = 172, height: int = 96, character: bool = True):
    """(ground truth 16:9 frames, 4:3 source frames, camera positions) of one synthetic shot."""
    scene = synthetic.Scene(width=width, height=height, frames=frames, pan=pan, seed=seed)
    truth = np.stack(list(synthetic.render(scene, character=character)))
    return truth, [synthetic.centre_crop(f) for f in truth], synthetic.camera(scene)


def engine(source: list[np.ndarray], **options: object) -> TemporalFiller:
    lay = compute_layout(source[0].shape[1], source[0].shape[0])
    return TemporalFiller(Filler(build_model("edge"), lay, CPU), TemporalOptions(**options))  # type: ignore[arg-type]


def run(source: list[np.ndarray], pts: list[int] | None = None, **options: object) -> tuple[np.ndarray, TemporalFiller]:
    eng = engine(source, **options)
    pts = pts if pts is not None else list(range(len(source)))
    frames = [video.Frame(f, p, Fraction(1, 24)) for f, p in zip(source, pts, strict=True)]
    out = list(eng.stream(frames))
    assert [f.pts for f in out] == pts  # order and timestamps out = in
    return np.stack([f.image for f in out]), eng


def per_frame(source: list[np.ndarray]) -> np.ndarray:
    eng = engine(source)
    return np.stack(eng.filler.fill(source))


def sides(frames: np.ndarray, left: int) -> np.ndarray:
    return np.concatenate([frames[:, :, :left], frames[:, :, -left:]], axis=2)


# ------------------------------------------------------------------ engine


def test_pan_reproduces_the_sides_the_camera_reveals() -> None:
    truth, source, cam = shot(24, pan=0.5, character=False)
    out, eng = run(source)
    flat = per_frame(source)
    lay = eng.layout
    # The true sides of frame t that some frame of the shot shows inside its picture.
    revealed = np.zeros(truth.shape[:3], bool)
    xs = np.arange(lay.canvas_width)
    for t, ct in enumerate(cam):
        seen = np.zeros(lay.canvas_width, bool)
        for cu in cam:
            x = xs + ct - cu  # this column in frame u's canvas
            seen |= (x >= lay.left + 1) & (x < lay.left + lay.content.width - 1)
        seen[lay.left : lay.left + lay.content.width] = False
        revealed[t, :, seen] = True
    assert revealed.mean() > 0.15
    err_t = np.abs(out.astype(float) - truth)[revealed].mean()
    err_f = np.abs(flat.astype(float) - truth)[revealed].mean()
    assert 10 * np.log10(255**2 / (err_t**2 + 1e-9)) > 30  # within a level or two
    assert err_t < err_f / 5
    assert eng.stats.propagated > 0 and eng.stats.shots == 1


def test_static_shot_has_identical_sides_and_runs_the_model_once() -> None:
    _, source, _ = shot(12, pan=0.0)
    out, eng = run(source)
    s = sides(out, eng.layout.left)
    assert all(np.array_equal(s[0], x) for x in s[1:])
    assert eng.stats.key_frames == 1 and eng.stats.shots == 1


def test_generated_sides_next_to_the_seam_follow_the_picture_edge() -> None:
    """A small thing moving along the picture's edge shows in the mirror next to the seam,
    as in a fill of each frame, while the shot memory and the rest of the sides stay still."""
    _, source, _ = shot(10, pan=0.0, character=False)
    moving = []
    for i, f in enumerate(source):
        f = f.copy()
        f[4 + 8 * i : 20 + 8 * i, 0:5] = 250  # a white mark sliding down the left edge
        moving.append(f)
    live, eng = run(moving, live_mirror=1.0)
    still, _ = run(moving, live_mirror=0.0)
    left = eng.layout.left
    col = left - 2  # the second generated column, mirroring picture column 1 (past the seam feather)
    truth_mirror = np.stack(moving)[:, :, 1].astype(float)

    def error(out: np.ndarray) -> float:
        return float(np.abs(out[1:, :, col].astype(float) - truth_mirror[1:]).mean())

    assert error(live) < 0.7 * error(still)  # the mirror has weight 0.77 in that column
    # Beyond the mirror's reach (a fifth of the side) nothing changes.
    reach = int(np.ceil(0.2 * left)) + 1
    assert np.array_equal(live[:, :, : left - reach], still[:, :, : left - reach])
    assert np.array_equal(live[:, :, -(left - reach) :], still[:, :, -(left - reach) :])


def test_the_end_of_a_fade_does_not_pop() -> None:
    """Leaving frames that leaned on their own fill (a fade-in) hands over gradually."""
    # A slow pan: the memory that starts after the fade holds what the pan shows, which
    # differs from the frames' own fills the fade leaned on.
    _, source, _ = shot(24, pan=0.5)
    faded = [np.clip(f.astype(np.float32) * min(1.0, 0.35 + 0.065 * i), 0, 255).astype(np.uint8) for i, f in
             enumerate(source)]  # fmt: skip
    end = 11  # the first frame at full brightness

    def biggest_step(handover: int) -> float:
        out, eng = run(faded, handover=handover)
        assert eng.stats.loose > 0  # the fade leaned on each frame's own fill
        s = sides(out, eng.layout.left).astype(np.float64)
        return max(float(np.abs(s[i + 1] - s[i]).mean()) for i in range(end, len(s) - 1))

    assert biggest_step(8) < 0.5 * biggest_step(0)


def test_sides_leave_the_memory_gradually_when_a_drawing_on_threes_breaks_it() -> None:
    """The light drops in a still shot drawn on threes as a character steps into the
    picture's right edge: the sides slide to the frame's own fill over several
    drawings, not in one."""
    _, source, _ = shot(36, pan=0.0, character=False)
    drawn = [f.copy() for f in source[::3] for _ in range(3)]  # each drawing held for 3 frames
    w = drawn[0].shape[1]
    for i, f in enumerate(drawn[12:]):  # from the 5th drawing on, darker, and a block grows at the edge
        f[:] = (f * 0.8).astype(np.uint8)
        f[20:80, w - w // 8 - 2 * (i // 3) :] = (240, 40, 40)

    def right_sides(loosen: float) -> tuple[np.ndarray, TemporalFiller]:
        out, eng = run(drawn, loosen=loosen)
        return out[:, :, -eng.layout.left :].astype(np.float64), eng

    (slid, eng), (jumped, _) = right_sides(0.1), right_sides(1.0)
    assert eng.stats.loose > 0 and eng.stats.held >= 20
    step = lambda s: np.abs(np.diff(s, axis=0)).mean(axis=(1, 2, 3))  # noqa: E731
    assert step(slid).max() < 0.5 * step(jumped).max()
    assert step(slid)[12:].sum() > 0.5 * step(jumped)[12:].sum()  # it does move to the new fill


def test_frames_leaning_far_on_their_own_fill_get_it_from_the_model() -> None:
    """A model that starts from a weight-free fill gives frames blended lightly with
    their own fill that starting fill; once the trust in the shot's sides falls below
    ``loose_model``, the model's fill, as a per-frame run would."""
    torch.manual_seed(0)
    model = ARCHS["glcic"]({"width": 0.125, "prefill": "edge"}).eval()
    with torch.no_grad():  # an untrained correction is zero: give it one
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, source, _ = shot(40, pan=0.0)
    w = source[0].shape[1]
    for i in [*range(8, 11), *range(20, 40)]:  # darker, with something at the right edge: briefly, then for good
        source[i][:] = (source[i] * 0.8).astype(np.uint8)
        source[i][20:80, w - w // 8 :] = (240, 40, 40)
    lay = compute_layout(w, source[0].shape[0])
    frames = [video.Frame(f, i, Fraction(1, 24)) for i, f in enumerate(source)]
    runs = {}
    for level in (0.0, 0.5, 2.0):
        eng = TemporalFiller(Filler(model, lay, CPU), TemporalOptions(loose_model=level))
        runs[level] = np.stack([f.image for f in eng.stream(frames)]).astype(np.int16), eng.stats
    (start, s0), (mixed, s5), (made, s2) = runs[0.0], runs[0.5], runs[2.0]
    assert s0.loose_model == 0 and s2.loose_model == s2.loose == s5.loose
    assert 0 < s5.loose_model < s5.loose
    from_start = [i for i in range(len(frames)) if np.array_equal(mixed[i], start[i])]
    from_model = [i for i in range(len(frames)) if np.array_equal(mixed[i], made[i])]
    assert set(from_start) | set(from_model) == set(range(len(frames)))
    light = [i for i in from_start if i not in from_model]  # the prefill and the model differ there
    deep = [i for i in from_model if i not in from_start]
    assert light and deep and max(light) < min(deep)  # the trust falls gradually


def test_a_memory_made_in_the_dark_is_not_brought_up_to_full_brightness() -> None:
    """After a fade-in the sides lean on the frame's own fill, not on what the fade's dark
    first frame generated scaled up (coarse and noisy on real footage), until the memory restarts."""
    _, source, _ = shot(30, pan=0.5)
    faded = [np.clip(f.astype(np.float32) * min(1.0, 0.08 + 0.1 * i), 0, 255).round().astype(np.uint8) for i, f in
             enumerate(source)]  # fmt: skip
    out, eng = run(faded)
    left = eng.layout.left
    gap = np.abs(sides(out, left).astype(np.float64) - sides(per_frame(faded), left)).mean(axis=(1, 2, 3))
    # Full brightness from frame 10; the motion fits (averaged over 4 frames each way) trust
    # the camera again from frame 14, where a fresh memory starts.
    assert gap[10:14].max() < 1.5
    assert gap[14:].max() > 3  # afterwards the memory (real content from the pan) takes over


def test_a_still_camera_stays_still_after_a_fade_in() -> None:
    """Motion read off a fade's dark frames (where a character outweighs the faded
    background) is never a drift reference: after the fade the sides stand still."""
    _, source, _ = shot(36, pan=0.0)
    faded = [np.clip(f.astype(np.float32) * min(1.0, 0.35 + 0.065 * i), 0, 255).astype(np.uint8) for i, f in
             enumerate(source)]  # fmt: skip
    out, eng = run(faded)
    outer = out[:, :, : eng.layout.left // 2].astype(np.int16)  # beyond the live mirror next to the seam
    steps = np.abs(np.diff(outer[22:], axis=0)).max(axis=(1, 2, 3))  # once the cross-fade is over
    assert steps.max() <= 1


def test_generated_sides_follow_a_picture_that_changed() -> None:
    """A light comes on over the right of a slow pan: that side's generated content is
    made again from the changed picture; the left side keeps what it had."""
    truth, _, _ = shot(28, pan=0.3, character=False)
    lit = truth.astype(np.int16)
    lit[12:, :, int(0.6 * lit.shape[2]) :] += 60
    truth = np.clip(lit, 0, 255).astype(np.uint8)
    source = [synthetic.centre_crop(f) for f in truth]
    # The light switched on in one part disagrees with the frames before it, which the
    # ghost guard (``moving``) rightly keeps out of the memory; off, this is the refresh alone.
    (out, eng), (kept, _) = run(source, moving=0.0), run(source, stale=0.0, moving=0.0)
    left = eng.layout.left
    assert eng.stats.refreshed >= 1
    after = slice(21, None)  # once the cross-fade from the sides shown before is over
    right = np.s_[after, :, -left:]
    assert psnr(out[right], truth[right]) > psnr(kept[right], truth[right]) + 3
    unchanged = np.abs(out[after, :, :left].astype(np.int16) - kept[after, :, :left])
    assert unchanged.max() <= 1  # up to rounding
    _, deep = run([f.astype(np.uint16) * 257 for f in source], moving=0.0)  # 16-bit sources judge staleness alike
    assert deep.stats.refreshed == eng.stats.refreshed


def test_a_side_drifting_from_the_memory_leans_on_its_own_fill() -> None:
    """A light slowly brightens the right of a slow pan. Before the picture's edge is far
    enough from the memory for that side to be made again, the side leans toward the
    frame's own fill, gradually; back on firm ground the memory starts afresh, and
    neither side jumps."""
    truth, _, _ = shot(40, pan=0.1, character=False)
    lit = truth.astype(np.float32)
    for i in range(5, len(lit)):
        lit[i, :, int(0.75 * lit.shape[2]) :] += 0.4 * (i - 4)
    source = [synthetic.centre_crop(f) for f in np.clip(lit.round(), 0, 255).astype(np.uint8)]
    # A light brightening one part is kept out of the memory by the ghost guard
    # (``moving``); off, this is the lean alone.
    (out, eng), (kept, plain) = run(source, moving=0.0), run(source, stale_lean=0.0, moving=0.0)
    own = per_frame(source)
    left = eng.layout.left
    assert eng.stats.loose > 0 and plain.stats.loose == 0
    # Leaning, it never went stale enough to be made again (without the lean it may: the
    # bands propagated beside the brightening part are evened out to the nearer frames').
    assert eng.stats.refreshed == 0
    strip = {"left": np.s_[:, :, :left], "right": np.s_[:, :, -left:]}
    gap = lambda a: np.abs(a[strip["right"]].astype(np.float64) - own[strip["right"]]).mean(axis=(1, 2, 3))  # noqa: E731
    assert gap(out).mean() < gap(kept).mean() - 1 and (gap(out) < gap(kept) - 3).any()
    for part in strip.values():  # no pop on either side: steps no bigger than the plain run's
        step = lambda a: np.abs(np.diff(a[part].astype(np.float64), axis=0)).mean(axis=(1, 2, 3))  # noqa: B023, E731
        assert step(out).max() <= step(kept).max() + 1


def test_a_long_zoom_restarts_the_shot_without_a_jump() -> None:
    """Past 2x the memory starts afresh (bounded), and the sides cross-fade into it."""
    source = [view(1.035**-i) for i in range(30)]  # zooming in 3.5 % a frame, 2.7x in all

    def steps(handover: int) -> np.ndarray:
        out, eng = run(source, handover=handover)
        assert eng.stats.shots == 2  # one restart, where the zoom passed 2x
        s = sides(out, eng.layout.left).astype(np.float64)
        return np.abs(np.diff(s, axis=0)).mean(axis=(1, 2, 3))

    jump, faded = steps(0), steps(8)
    restart = int(jump.argmax())
    assert jump[restart] > 1.5 * np.median(jump)  # without the cross-fade the restart shows
    assert faded[restart] < 0.3 * jump[restart]


def test_sides_follow_a_fade_too_slow_to_break_a_held_drawing() -> None:
    """A still picture fades by less than ``hold`` per frame, so every frame on its own
    looks held: the sides still follow the picture's brightness, not the first frame's."""
    _, source, _ = shot(1, pan=0.0, character=False)
    n = 300
    faded = [np.clip(source[0] * (1 - 0.6 * i / (n - 1)), 0, 255).round().astype(np.uint8) for i in range(n)]
    out, eng = run(faded)
    assert eng.stats.held > n // 2  # most frames still cost nothing
    left = eng.layout.left
    gap = np.abs(
        sides(out, left).astype(np.float64).mean(axis=(1, 2, 3)) - sides(per_frame(faded), left).mean(axis=(1, 2, 3))
    )
    assert gap.max() < TemporalOptions().edge_change + 2  # the still camera's edge check bounds the lag
    assert gap[-20:].max() < 3


def test_a_big_character_crossing_a_still_background_does_not_move_the_camera() -> None:
    """A figure with hard outlines everywhere, a third of the picture wide, walks across a
    still painted background: its phase-correlation peak sits a pixel or so from zero
    and it pulls a fit its way, yet the camera stood still and the sides must too."""
    _, source, _ = shot(1, pan=0.0, character=False, width=344, height=192)
    h, w = source[0].shape[:2]
    stripes = np.kron(np.random.default_rng(1).integers(0, 2, (h * 3 // 4, w // 12)), np.ones((1, 4))).astype(bool)
    frames = []
    for i in range(16):
        f = source[0].copy()
        x = w // 3 + (i // 2) * 3  # drawn on twos, 3 px a drawing
        figure = f[h // 4 :, x : x + stripes.shape[1]]
        figure[stripes], figure[~stripes] = (20, 20, 20), (250, 230, 200)
        frames.append(f)
    out, eng = run(frames)
    left = eng.layout.left
    reach = int(np.ceil(0.2 * left)) + 1  # the live mirror's zone next to the seams
    outer = np.concatenate([out[:, :, : left - reach], out[:, :, -(left - reach) :]], axis=2)
    assert eng.stats.key_frames == 1
    # A picture that changes this much leans a little on its own fill (a few levels);
    # a camera wrongly following the figure drags the sides by tens of levels.
    assert np.abs(np.diff(outer.astype(int), axis=0)).max() <= 4


def test_a_character_stepping_into_a_still_shots_edge_leaves_the_sides_be() -> None:
    """Beside a still camera the shot's sides are its background: something stepping into
    the picture's edge is no reason to trade them for a per-frame fill, which would smear
    it across the side. Only a change of light (see the fade tests) is."""
    _, source, _ = shot(36, pan=0.0, character=False)
    drawn = [f.copy() for f in source[::3] for _ in range(3)]
    w = drawn[0].shape[1]
    for i, f in enumerate(drawn[12:]):  # from the 5th drawing on, a block grows at the right edge
        f[20:80, w - w // 8 - 2 * (i // 3) :] = (240, 40, 40)
    out, eng = run(drawn)
    left = eng.layout.left
    reach = int(np.ceil(0.2 * left)) + 1
    outer = out[:, :, -(left - reach) :]
    assert eng.stats.loose == 0 and eng.stats.key_frames == 1
    assert all(np.array_equal(outer[0], o) for o in outer[1:])


def test_held_frames_reuse_the_sides() -> None:
    _, source, _ = shot(8, pan=0.3)
    doubled = [f for f in source for _ in range(2)]  # every drawing held for two frames
    out, eng = run(doubled)
    assert eng.stats.held == len(source)
    s = sides(out, eng.layout.left)
    for i in range(0, len(doubled), 2):
        assert np.array_equal(s[i], s[i + 1])


def test_a_held_drawing_redoes_only_the_seam_where_the_edge_changed() -> None:
    _, source, _ = shot(6, pan=0.0, character=False)
    still = source[0]
    changed = still.copy()
    changed[40:46, :4] = 255 - changed[40:46, :4]  # a small change at the picture's left edge
    out, eng = run([still, still, changed, changed, still])
    assert eng.stats.held == 4
    s = sides(out, eng.layout.left)
    assert np.array_equal(s[0], s[1]) and np.array_equal(s[2], s[3])
    diff = np.abs(s[2].astype(int) - s[1]).max(axis=(1, 2))
    assert diff[40:46].max() > 10  # the seam blends the changed edge ...
    assert diff[:30].max() == 0 and diff[56:].max() == 0  # ... and nothing else moved
    assert np.array_equal(s[4], s[0])


def test_prepared_frames_give_the_same_output() -> None:
    _, source, _ = shot(16, pan=0.7)
    plain, _ = run(source)
    eng = engine(source)
    frames = [eng.prepare(video.Frame(f, i, Fraction(1, 24))) for i, f in enumerate(source)]
    prepared = np.stack([f.image for f in eng.stream(frames)])
    assert np.array_equal(plain, prepared)


def test_motion_measured_on_another_thread_gives_the_same_output() -> None:
    # A pan, a cut, a blank frame and a flash back: every path that measures motion,
    # with frames prepared on another thread while the engine runs, as a conversion does.
    _, a, _ = shot(12, pan=0.7, seed=1)
    _, b, _ = shot(12, pan=0.3, seed=2)
    source = a + b[:5] + [np.zeros_like(a[0])] + b[5:]
    plain, _ = run(source)
    eng = engine(source)
    ready: queue.Queue = queue.Queue(maxsize=4)
    made = []

    def produce() -> None:
        try:
            for i, f in enumerate(source):
                made.append(eng.prepare(video.Frame(f, i, Fraction(1, 24))))
                ready.put(made[-1])
        finally:  # a failure shows as missing frames, never as a hung test
            ready.put(None)

    worker = threading.Thread(target=produce)
    worker.start()
    out = np.stack([f.image for f in eng.stream(iter(ready.get, None))])
    worker.join()
    assert np.array_equal(plain, out)
    # Measured ahead for every frame but the first and those next to the blank one ...
    assert sum(p.match is not None for p in made) == len(source) - 3
    # ... and taken by the engine at least up to the blank frame (after it, the hint
    # the engine would start from can differ, and then it measures again).
    assert eng.stats.measured_ahead >= 16


def test_a_cut_resets_and_nothing_crosses_it() -> None:
    _, first, _ = shot(10, pan=0.4, seed=1)
    _, second, _ = shot(10, pan=0.0, seed=7)
    both, eng = run(first + second)
    alone, _ = run(second)
    assert eng.stats.shots == 2
    assert np.array_equal(both[10:], alone)


def test_a_flash_does_not_end_the_shot() -> None:
    _, source, _ = shot(12, pan=0.0)
    flashed = list(source)
    flashed[6] = np.full_like(source[6], 250)  # one white frame (a lightning flash)
    out, eng = run(flashed)
    assert eng.stats.shots == 1 and eng.stats.single == 1
    s = sides(out, eng.layout.left)
    assert np.array_equal(s[5], s[7])  # the shot goes on with the same sides


def test_fade_to_black_is_filled_frame_by_frame() -> None:
    _, source, _ = shot(10, pan=0.0)
    faded = [(f.astype(float) * (1 - i / 9)).astype(np.uint8) for i, f in enumerate(source)]
    out, eng = run(faded)
    assert eng.stats.single >= 1  # the black end is blank: nothing to carry
    left = eng.layout.left
    # Sides follow the picture's brightness down (no bright sides beside a dark picture).
    assert sides(out, left)[-1].mean() < 5 and sides(out, left)[0].mean() > 50


def test_sixteen_bit_sources_keep_their_depth() -> None:
    _, source, _ = shot(6, pan=0.3)
    deep = [f.astype(np.uint16) * 257 for f in source]
    out, _ = run(deep)
    out8, _ = run(source)
    assert out.dtype == np.uint16
    assert psnr((out >> 8).astype(np.uint8), out8) > 40


def test_memory_is_bounded_and_output_streams_on_a_long_clip() -> None:
    window = 6
    _, source, _ = shot(40, pan=1.5, width=86, height=48)
    frames = source + source[::-1]  # a long back-and-forth pan, 80 frames in one shot
    frames = frames * 3
    eng = engine(frames, window=window, max_extent=2.0)
    consumed = 0

    def feed():
        nonlocal consumed
        for i, f in enumerate(frames):
            consumed = i + 1
            yield video.Frame(f, 3 * i, Fraction(1, 72))  # timestamps need not be 0, 1, 2...

    lag = 0
    pts = []
    for out in eng.stream(feed()):
        pts.append(out.pts)
        lag = max(lag, consumed - len(pts))
    assert pts == [3 * i for i in range(len(frames))]
    assert lag <= window + 2  # frames leave while the rest is still being read
    assert eng.stats.peak_buffer <= 2 * window + 3
    lay = eng.layout
    assert eng.stats.peak_memory_pixels <= (2.0 * lay.canvas_width + 2) * (2.0 * lay.canvas_height + 2)


def test_a_fade_is_not_mistaken_for_motion() -> None:
    """Brightness changing between frames while a character moves: the camera stays put."""
    _, source, _ = shot(6, pan=0.0)
    for i in range(1, 5):
        a, b = (np.clip(source[j].astype(np.float32) * (0.35 + 0.07 * j), 0, 255).astype(np.uint8) for j in (i, i + 1))
        m = match(thumbnail(a, 1), thumbnail(b, 1))
        assert abs(m.motion.bx) < 0.25 and abs(m.motion.by) < 0.25 and abs(m.motion.a - 1) < 0.005
        assert m.gain > 1.05  # the fade is seen as brightness


# ------------------------------------------------------------------ ghosts

MAGENTA = np.array([255, 0, 255], np.uint8)  # in no painted background


def walking_against_a_pan(
    frames: int = 32, width: int = 172, height: int = 96, speed: int = 3
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A magenta character walking right, the camera following it (``speed`` px a frame):
    against the painted world behind it, it moves as fast as the camera pans."""
    world = synthetic.paint_background(width + speed * frames + 2, height, seed=3)
    truth = []
    for i in range(frames):
        cam = speed * i
        frame = world[:, cam : cam + width].copy()
        x0 = 24 + (i // 2) % 2  # by the picture's left edge, a step every other frame
        frame[height // 2 - (i // 2) % 2 : height - 8, x0 : x0 + 14] = MAGENTA
        truth.append(frame)
    t = np.stack(truth)
    return t, [synthetic.centre_crop(f) for f in t]


def magenta(frames: np.ndarray) -> np.ndarray:
    return np.abs(frames.astype(int) - MAGENTA.astype(int)).max(axis=-1) < 60


def test_a_character_the_camera_follows_leaves_no_ghost() -> None:
    """The camera pans with a character walking by the picture's left edge: every frame
    before shows it where the background now is. With ``moving`` and ``agree`` off (the old engine)
    the sides are smeared with it in every frame; on, only in the shot's first frames,
    before any frame has seen it move (what no other frame shows is taken for
    background: ``moving_unseen``), and never once it has. (The edge fill's mirror would
    show it beside the seam too: ``patch``, the model that copies background, runs.)"""
    truth, source = walking_against_a_pan()
    lay = compute_layout(source[0].shape[1], source[0].shape[0])
    ghosts = {}
    # The default; no guard at all; only the check that a propagated band agrees with
    # the nearer frames' beside it (``agree``), which catches some of it.
    for name, changes in (("on", {}), ("off", {"moving": 0.0, "agree": 0.0}), ("agree", {"moving": 0.0})):
        frames = [video.Frame(f, i, Fraction(1, 24)) for i, f in enumerate(source)]
        eng = TemporalFiller(Filler(build_model("patch"), lay, CPU), TemporalOptions(**changes))
        out = np.stack([f.image for f in eng.stream(frames)])
        assert eng.stats.propagated > 0  # the pan is followed: sides come from other frames
        s_out, s_truth = sides(out, lay.left), sides(truth[:, :, : out.shape[2]], lay.left)
        ghosts[name] = (magenta(s_out) & ~magenta(s_truth)).sum(axis=(1, 2))
    assert (ghosts["off"] > 100).mean() > 0.9, ghosts["off"]  # the old engine: in nearly every frame
    settled = TemporalOptions().moving_span + 8  # a span to see it move, a span of frames that showed it unseen
    assert ghosts["on"][settled:].max() == 0, ghosts["on"]
    assert ghosts["on"].sum() < 0.25 * ghosts["off"].sum(), ghosts
    assert ghosts["on"].sum() < ghosts["agree"].sum() < 0.8 * ghosts["off"].sum(), ghosts


def test_moving_pixels_are_found_and_the_background_is_not() -> None:
    # The two parts alone: the shot analysis makes the records, propagation reads them.
    _, source = walking_against_a_pan()
    options = TemporalOptions()
    geometry = Geometry.of(compute_layout(source[0].shape[1], source[0].shape[0]), options.thumb_height)
    analysis, propagation = ShotAnalysis(geometry, options, TemporalStats()), Propagation(geometry, options)
    buf: deque = deque()
    frames = [video.Frame(f, i, Fraction(1, 24)) for i, f in enumerate(source)]
    for i, f in enumerate(frames[:24]):
        buf.append(analysis.analyse(f, i, buf))
    t = buf[12]
    assert t.decided and t.shot == 0 and t.to_ref.bx > 0  # the camera pans
    mov = propagation.moving(t, buf)
    assert t.moving is mov  # kept on the record: asked again, not measured again
    char = magenta(source[12][None])[0]
    factor = geometry.factor
    c = (factor - 1) / 2
    ys = np.clip(np.rint((np.arange(char.shape[0]) - c) / factor), 0, mov.shape[0] - 1).astype(int)
    xs = np.clip(np.rint((np.arange(char.shape[1]) - c) / factor), 0, mov.shape[1] - 1).astype(int)
    full = mov[ys][:, xs]
    assert full[char].mean() > 0.95  # the character moves
    # The background does not, away from where the frames compared (8 either way, the
    # camera 3 px a frame) show the character: those count as moving too, by caution.
    far = np.zeros_like(char)
    far[:, 16 + 3 * 8 + 8 :] = True
    assert full[far].mean() < 0.02


def test_parallax_is_not_taken_for_motion_but_a_thing_crossing_the_picture_is() -> None:
    """A near fence slides over the far rows by 1 px every 4 frames (the parallax of a
    camera moving through a scene: the camera fit follows the far rows), while a thing
    crosses at 1.5 px a frame. Compared with frames up to 8 away, the fence is 2 px off:
    within ``moving_reach``, so it may be copied; the thing moves against the camera."""
    h, w = 96, 128
    rng = np.random.default_rng(4)
    posts = np.repeat(rng.integers(30, 226, size=(w // 4 + 8, 3)), 4, axis=0).astype(np.uint8)
    far = rng.integers(30, 226, size=(h // 8, 1, 3)).repeat(8, 0).astype(np.uint8)

    def picture(i: int) -> np.ndarray:
        pic = np.broadcast_to(far, (h, w, 3)).copy()
        shift = round(i / 4)
        pic[48:] = posts[shift : shift + w][None]
        x = 20 + 3 * i // 2
        pic[20:40, x : x + 12] = MAGENTA
        return pic

    flagged = {}
    for reach in (1, 2):
        options = TemporalOptions(moving_reach=reach)
        geometry = Geometry.of(compute_layout(w, h), options.thumb_height)
        buf: deque = deque()
        for i in range(17):
            pic = picture(i)
            frame = video.Frame(pic, i, Fraction(1, 24))
            buf.append(Entry(i, frame, torch.from_numpy(pic), thumbnail(pic, geometry.factor), 50.0, 0, decided=True))
        mov = Propagation(geometry, options).moving(buf[8], buf)
        f = geometry.factor
        # The fence's rows, and the thing where it is in frame 8 (x 32-44), inside its outline.
        flagged[reach] = (mov[56 // f :].mean(), mov[22 // f : 38 // f, 34 // f : 42 // f].mean())
    assert TemporalOptions().moving_reach == 2
    assert flagged[2][0] < 0.1 and flagged[2][1] == 1.0, flagged  # at the picture's right edge, posts come in
    assert flagged[1][0] > 0.9 and flagged[1][1] == 1.0, flagged  # a reach of 1 px takes the fence for motion


def test_copyable_lifts_the_restriction_only_beside_a_side_with_little_background() -> None:
    from ganime.temporal.memory import copyable

    still = torch.ones(8, 20)
    still[:, 3:6] = 0  # a character near the left side: most of the left band is still background
    kept = copyable(still, band=8, share=0.5)
    assert torch.equal(kept, still)  # the character stays out of what may be copied
    still[:, 14:] = 0  # everything beside the right side moves (parallax)
    lifted = copyable(still, band=8, share=0.5)
    assert lifted[:, 12:].eq(1).all()  # there any pixel may be copied
    assert torch.equal(lifted[:, :12], still[:, :12])  # the left band is left as it was
    assert torch.equal(still[:, 14:], torch.zeros(8, 6))  # the input is not changed


def test_a_character_by_the_seam_is_not_continued_into_the_side() -> None:
    """A held character at the picture's left edge: with the segmenter (the default) the side
    continues the landscape behind it; without, the key frame's patches smear its body across."""
    world = synthetic.paint_background(171, 96, seed=1)
    picture = world.copy()
    synthetic._draw_character(picture, 31, 96 * 0.86, 48, 0)
    frames = [video.Frame(np.ascontiguousarray(picture[:, 21:149]), i, Fraction(1, 24)) for i in range(8)]
    lay = compute_layout(128, 96)
    body = np.array([236, 96, 80])

    def body_in_left_side(characters: bool) -> tuple[int, int]:
        engine = TemporalFiller(
            Filler(build_model("patch"), lay, torch.device("cpu"), 4), TemporalOptions(characters=characters)
        )
        out = np.stack([f.image for f in engine.stream(iter(frames))])
        side = out[:, :, : lay.left - 4].astype(int)  # beyond the feathered seam
        return int((np.abs(side - body).max(-1) < 40).sum()), engine.stats.character_masks

    smeared, masks = body_in_left_side(False)
    assert smeared > 1000 and masks == 0
    kept_out, masks = body_in_left_side(True)
    assert kept_out == 0 and masks >= 1  # one mask for the shot's key frame, not one per frame


def test_masks_found_ahead_on_a_worker_change_nothing_but_where_they_run() -> None:
    """Shot starts have their characters found on a worker thread while the engine renders
    the frames before them; the output is the same as with every mask found when needed."""
    world = synthetic.paint_background(171, 96, seed=1)
    first = world.copy()
    synthetic._draw_character(first, 31, 96 * 0.86, 48, 0)
    second = np.ascontiguousarray(synthetic.paint_background(171, 96, seed=5)[:, ::-1])
    synthetic._draw_character(second, 140, 96 * 0.86, 40, 1)
    frames = [
        video.Frame(np.ascontiguousarray(p[:, 21:149]), i, Fraction(1, 24))
        for i, p in enumerate([first] * 6 + [second] * 6)
    ]
    lay = compute_layout(128, 96)

    def run(ahead: bool) -> tuple[np.ndarray, TemporalFiller]:
        options = TemporalOptions(characters=True, masks_ahead=ahead, window=8)
        eng = TemporalFiller(Filler(build_model("patch"), lay, CPU, 4), options)
        return np.stack([f.image for f in eng.stream(iter(frames))]), eng

    there, eng = run(True)
    here, alone = run(False)
    assert eng.stats.shots == 2 and eng.stats.character_masks == 2
    assert eng.stats.masks_ahead == 2 and alone.stats.masks_ahead == 0
    assert np.array_equal(there, here)
    # One mask thread for the process, however many engines ran.
    assert sum(t.name.startswith("ganime-masks") for t in threading.enumerate()) <= 1


def test_character_masks_found_ahead_are_bounded_and_equal_to_those_found_when_asked() -> None:
    from ganime.temporal.characters import CharacterMasks

    picture = synthetic.paint_background(171, 96, seed=1)
    synthetic._draw_character(picture, 31, 96 * 0.86, 48, 0)
    pic = torch.from_numpy(np.ascontiguousarray(picture[:, 21:149]))
    masks = CharacterMasks(TemporalOptions(), CPU)
    try:
        assert all(masks.ahead(i, pic, 255.0) for i in range(masks.AHEAD))
        assert not masks.ahead(masks.AHEAD, pic, 255.0)  # enough kept: not started
        direct = masks(pic, 255.0)
        assert direct is not None and direct[:, :20].any()  # the character at the left edge
        assert torch.equal(masks(pic, 255.0, key=3), direct) and masks.taken_ahead == 1
        for i in range(6):  # frames 0-5 were rendered
            masks.drop(i)
        assert masks.ahead(masks.AHEAD, pic, 255.0)  # room again
        assert torch.equal(masks(pic, 255.0, key=6), direct) and masks.taken_ahead == 2
    finally:
        masks.close()


def test_a_mask_asked_for_before_the_worker_begins_its_halves_is_the_same() -> None:
    """A mask started ahead whose halves the worker has not begun (it is busy) is found by
    the asker instead, half by half; the bits are those of a mask found when asked."""
    import threading as th

    from ganime.temporal.characters import MASK_THREAD, CharacterMasks
    from ganime.threads import thread

    picture = synthetic.paint_background(171, 96, seed=1)
    synthetic._draw_character(picture, 31, 96 * 0.86, 48, 0)
    pic = torch.from_numpy(np.ascontiguousarray(picture[:, 21:149]))
    masks = CharacterMasks(TemporalOptions(), CPU)
    try:
        direct = masks(pic, 255.0)
        assert direct is not None and direct[:, :20].any()
        gate = th.Event()
        busy = thread(MASK_THREAD).submit(gate.wait, 10)  # the worker is busy with something else
        assert masks.ahead(5, pic, 255.0)
        taken = masks(pic, 255.0, key=5)  # both halves found here: the worker never began them
        assert not busy.done()  # (the worker is still busy: nothing waited for it)
        gate.set()
        busy.result()
        assert taken is not None and torch.equal(taken, direct) and masks.taken_ahead == 1
        assert torch.equal(masks(pic, 255.0, key=5), direct)  # asked again by a later frame
    finally:
        gate.set()
        masks.close()


def test_a_mask_moves_with_the_camera_and_is_kept_while_only_the_inside_changes() -> None:
    from ganime.motion import Similarity, thumbnail
    from ganime.temporal.characters import moved_mask, same_drawing

    world = synthetic.paint_background(400, 96, seed=3)
    lay = compute_layout(128, 96)
    chars = np.zeros((96, 128), bool)
    chars[30:80, 10:40] = True
    then, now = Similarity(1.0, 0.0, 0.0), Similarity(1.0, 3.0, 0.0)  # the camera moved 3 px right
    moved = moved_mask(torch.from_numpy(chars), then, now, lay.left)
    assert moved[:, 7:37].equal(torch.from_numpy(chars[:, 10:40])) and not moved[:, 37:].any()
    some = torch.tensor([0, 8, 36, 37, 127])  # only the columns asked for: the same values
    assert moved_mask(torch.from_numpy(chars), then, now, lay.left, some).equal(moved.index_select(1, some))
    f = max(1, round(96 / 80))
    first = world[:, 100:228].copy()
    second = world[:, 103:231].copy()  # the same background, 3 px on
    assert same_drawing(thumbnail(first, f), then, thumbnail(second, f), now, f, lay.left, 24.0)
    inside = second.copy()
    inside[40:60, 10:25] = 255 - inside[40:60, 10:25]  # redrawn inside the character
    assert not same_drawing(thumbnail(first, f), then, thumbnail(inside, f), now, f, lay.left, 24.0)
    assert same_drawing(thumbnail(first, f), then, thumbnail(inside, f), now, f, lay.left, 24.0, moved)
    outside = second.copy()
    outside[40:60, 60:90] = 255 - outside[40:60, 60:90]  # something new beside it
    assert not same_drawing(thumbnail(first, f), then, thumbnail(outside, f), now, f, lay.left, 24.0, moved)
    # A mirror by the seams shows the picture's edges only: within ``band`` columns of them.
    assert same_drawing(thumbnail(first, f), then, thumbnail(outside, f), now, f, lay.left, 24.0, moved, band=24)
    assert not same_drawing(thumbnail(first, f), then, thumbnail(outside, f), now, f, lay.left, 24.0, moved, band=80)
    far = Similarity(1.0, 30.0, 0.0)  # a quarter of the picture not seen before
    assert not same_drawing(thumbnail(first, f), then, thumbnail(second, f), far, f, lay.left, 24.0)
    # Each half the segmenter looks at on its own: the change (columns 60-90) is in the right one only.
    left, right = (0, 77), (51, 128)
    assert same_drawing(thumbnail(first, f), then, thumbnail(outside, f), now, f, lay.left, 24.0, moved, span=(0, 50))
    assert not same_drawing(thumbnail(first, f), then, thumbnail(outside, f), now, f, lay.left, 24.0, moved, span=right)
    assert not same_drawing(thumbnail(first, f), then, thumbnail(outside, f), now, f, lay.left, 24.0, moved, span=left)


def test_one_half_of_a_mask_is_the_same_as_that_half_of_the_whole() -> None:
    """``sides``: the segmenter looks at one half of the picture only; what it finds there
    is what a whole mask finds there (each half always goes through on its own)."""
    from ganime.temporal.characters import CharacterMasks

    picture = synthetic.paint_background(171, 96, seed=1)
    synthetic._draw_character(picture, 40, 96 * 0.86, 48, 0)
    synthetic._draw_character(picture, 135, 96 * 0.86, 48, 1)
    pic = torch.from_numpy(np.ascontiguousarray(picture[:, 21:149]))
    masks = CharacterMasks(TemporalOptions(), CPU)
    (_, half), (start, _) = masks.halves(128)
    whole = masks(pic, 255.0)
    left = masks(pic, 255.0, sides=(True, False))
    right = masks(pic, 255.0, sides=(False, True))
    assert whole is not None and left is not None and right is not None
    g = masks.grow
    assert left[:, : start - g].equal(whole[:, : start - g]) and not left[:, half + g :].any()
    assert right[:, half + g :].equal(whole[:, half + g :]) and not right[:, : start - g].any()
    assert (left | right).equal(whole)


def test_grown_within_keeps_the_parts_the_seeds_touch() -> None:
    from ganime.temporal.characters import grown_within

    within = torch.zeros(40, 60, dtype=torch.bool)
    within[5:30, 2:12] = True  # an arm...
    within[25:30, 12:40] = True  # ...joined to a body
    within[5:15, 50:58] = True  # something apart
    seeds = torch.zeros_like(within)
    seeds[28, 38] = True
    got = grown_within(seeds, within)
    assert got.equal(within & (torch.arange(60) < 45)[None, :])  # arm and body, not the rest
    assert not grown_within(torch.zeros_like(within), within).any()


def test_a_straight_cut_where_a_half_stops_looking_is_found() -> None:
    """A character one half finds up to the line where that half's view ends, with
    nothing found beside it, is cut there; one that goes on across the line is not,
    nor a single row or a thin strip along the line (the half's own edge marked)."""
    from ganime.temporal.characters import CharacterMasks

    masks = CharacterMasks(TemporalOptions(), CPU)
    (_, half), (start, _) = masks.halves(128)
    g = masks.grow
    mask = torch.zeros(96, 128, dtype=torch.bool)
    mask[20:80, start - g : start + 40] = True  # the right half's character, cut by its first column
    cuts = masks._cuts(mask)
    assert len(cuts) == 1 and cuts[0][1] == start and int(cuts[0][0].sum()) == 60
    mask[20:80, start - g - 10 : start - g] = True  # the left half found it there too
    assert masks._cuts(mask) == []
    mask[:] = False
    mask[30:60, 40 : half - 1 + g + 1] = True  # the left half's, cut by its last column
    assert [line for _, line in masks._cuts(mask)] == [half]
    mask[:] = False
    mask[30:31, start - g : start + 10] = True  # one row: a thin line, not a cut character
    assert masks._cuts(mask) == []
    mask[:] = False
    mask[10:90, start - g : start + 2] = True  # a strip along the line: the half's own edge marked
    assert masks._cuts(mask) == []


def test_a_look_at_a_cut_adds_what_continues_the_character() -> None:
    """What a look at the cut finds connected to it is added (widened as the mask is);
    what it finds apart is not, nor a spread larger than the character it completes."""
    from ganime.temporal.characters import CharacterMasks, joined_across

    masks = CharacterMasks(TemporalOptions(), CPU)
    g = masks.grow
    start = masks.halves(128)[1][0]
    mask = torch.zeros(96, 128, dtype=torch.bool)
    mask[20:80, start - g : start + 40] = True  # the right half's character, cut by its first column
    (cut, line), *rest = masks._cuts(mask)
    assert line == start and not rest
    found = torch.zeros_like(mask)
    found[24:76, start - 20 : start + 36] = True  # the look: the character, its far part too
    found[5:12, start - 25 : start - 15] = True  # something apart from it
    got = joined_across(mask, [(cut, found)], g, CharacterMasks.JOIN_MAX)
    assert got[24:76, start - 20 - g : start].all()  # the far part, widened by ``grow``
    assert not got[:16, : start - g].any()  # not what stands apart
    assert (got & mask).equal(mask) and not got[:, : start - 20 - g - 1].any()
    spread = found.clone()
    spread[:, : start + 36] = True  # the look marks everything left of the line: a spread
    assert joined_across(mask, [(cut, spread)], g, CharacterMasks.JOIN_MAX).equal(mask)


def test_joined_masks_are_the_same_found_ahead_or_when_asked() -> None:
    """A picture whose halves cut what they mark: the joined mask only adds to the
    halves', and the worker (ahead) and the engine (when asked) find the same bits."""
    from ganime.temporal.characters import CharacterMasks

    picture = synthetic.paint_background(427, 240, seed=1)[:, 53:373].copy()
    synthetic._draw_character(picture, 110, 240 * 0.92, 150, 0)
    pic = torch.from_numpy(np.ascontiguousarray(picture))
    halves = CharacterMasks(TemporalOptions(character_join=False), CPU)(pic, 255.0)
    masks = CharacterMasks(TemporalOptions(), CPU)
    try:
        joined = masks(pic, 255.0)
        assert halves is not None and joined is not None and masks._cuts(halves)
        assert masks.views == 1 and (joined | halves).equal(joined) and not joined.equal(halves)
        assert masks.ahead(0, pic, 255.0)
        assert torch.equal(masks(pic, 255.0, key=0), joined) and masks.views == 2
    finally:
        masks.close()


def test_a_change_by_one_edge_finds_that_half_of_the_mask_only() -> None:
    """A character that comes in by the right edge calls for the right half's characters
    only: the left half keeps the shot's mask (half the segmenter's cost)."""
    from ganime.temporal.characters import CharacterMasks

    world = synthetic.paint_background(171, 96, seed=1)
    first = world.copy()
    synthetic._draw_character(first, 40, 96 * 0.86, 48, 0)
    later = first.copy()
    synthetic._draw_character(later, 135, 96 * 0.86, 48, 1)
    frames = [
        video.Frame(np.ascontiguousarray(p[:, 21:149]), i, Fraction(1, 24))
        for i, p in enumerate([first] * 4 + [later] * 4)
    ]
    lay = compute_layout(128, 96)
    # A low edge_change: the new drawing at the edge makes the sides lean on its own fill.
    options = TemporalOptions(characters=True, window=8, edge_change=1.0)
    eng = TemporalFiller(Filler(build_model("patch"), lay, CPU, 4), options)
    out = [f.image for f in eng.stream(iter(frames))]
    assert len(out) == 8 and eng.stats.shots == 1 and eng.stats.loose >= 1
    assert eng.stats.character_masks == 2 and eng.stats.half_masks == 1
    masks = CharacterMasks(options, CPU)
    before = masks(torch.from_numpy(frames[0].image), 255.0)
    assert before is not None and before[:, :20].any() and not before[:, -12:].any()
    assert eng.characters is not None
    shot = eng.characters.chars
    assert shot is not None
    # The left half's characters are the shot's, kept (the camera is still); the right edge's are new.
    _, (start, _) = masks.halves(128)
    assert shot[:, :start].equal(before[:, :start])
    assert shot[:, -12:].any()


def test_named_helper_threads_are_one_per_process_and_not_inherited_by_a_fork() -> None:
    import os

    from ganime import threads

    name = "ganime-test-helper"
    assert threads.started(name) is None  # asking does not start it
    pool = threads.thread(name)
    assert threads.thread(name) is pool and threads.started(name) is pool
    assert pool.submit(threading.current_thread).result().name.startswith(name)
    pid = os.fork()
    if pid == 0:  # the child: its parent's threads are not there, a new one starts
        ok = threads.started(name) is None and threads.thread(name).submit(int).result() == 0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_colour_thumbnail_is_the_block_mean_in_eight_bit_levels() -> None:
    from ganime.temporal.records import colour_thumbnail

    rng = np.random.default_rng(3)
    for factor in (2, 4, 8):
        pic = rng.integers(0, 256, (8 * factor + 3, 5 * factor + 1, 3), dtype=np.uint8)
        want = torch.from_numpy(pic[: 8 * factor, : 5 * factor]).float().view(8, factor, 5, factor, 3).mean((1, 3))
        got = colour_thumbnail(torch.from_numpy(pic), (8, 5), factor)
        assert got.dtype == np.float32 and got.shape == (8, 5, 3)
        assert np.array_equal(got, want.numpy())  # integer sums, one division: the float mean's own bits
        wide = torch.from_numpy(pic.astype(np.int32) * 257)  # 16-bit samples of the same picture
        assert np.allclose(colour_thumbnail(wide, (8, 5), factor), want.numpy(), atol=1e-3)


def test_prepare_makes_both_thumbnails_from_one_pass() -> None:
    """The decoding thread sums each frame's blocks once for the grey thumbnail and the
    colour one: the same floats as each made on its own, 8-bit and 16-bit frames alike."""
    from ganime.motion import thumbnail
    from ganime.temporal.records import colour_thumbnail

    rng = np.random.default_rng(5)
    options = TemporalOptions()
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        source = rng.integers(0, top + 1, (123, 170, 3), dtype=dtype)
        geometry = Geometry.of(compute_layout(170, 123), 20)
        analysis = ShotAnalysis(geometry, options, TemporalStats())
        p = analysis.prepare(video.Frame(source, 0, Fraction(1, 24)))
        c = geometry.layout.content
        pic = source[c.y : c.bottom, c.x : c.right]
        assert geometry.factor > 1 and p.thumb.shape == (
            pic.shape[0] // geometry.factor,
            pic.shape[1] // geometry.factor,
        )
        assert np.array_equal(p.thumb, thumbnail(pic, geometry.factor))
        wide = torch.from_numpy(pic.astype(np.int32)) if dtype == np.uint16 else torch.from_numpy(pic)
        assert np.array_equal(p.colour, colour_thumbnail(wide, p.thumb.shape, geometry.factor))


def test_a_fade_is_not_a_new_drawing_for_the_masks() -> None:
    """A held drawing fading in (every level scaled) keeps its mask once the light the
    shot analysis measured is undone; a real change under the same fade does not."""
    from ganime.motion import Similarity, thumbnail
    from ganime.temporal.characters import same_drawing

    world = synthetic.paint_background(200, 96, seed=5)
    lay = compute_layout(128, 96)
    cam = Similarity(1.0, 0.0, 0.0)
    f = max(1, round(96 / 80))
    first = world[:, 40:168].copy()
    faded = (first.astype(np.float32) * 0.55 + 10).round().astype(np.uint8)  # value = 0.55 * then + 10/255
    light = ((1.0, 0.0), (0.55, 10 / 255))
    assert not same_drawing(thumbnail(first, f), cam, thumbnail(faded, f), cam, f, lay.left, 24.0)
    assert same_drawing(thumbnail(first, f), cam, thumbnail(faded, f), cam, f, lay.left, 24.0, light=light)
    changed = faded.copy()
    changed[30:70, 20:50] = 255 - changed[30:70, 20:50]
    assert not same_drawing(thumbnail(first, f), cam, thumbnail(changed, f), cam, f, lay.left, 24.0, light=light)
    # The other way round (a fade out, the mask found in the darker frame) too.
    back = ((0.55, 10 / 255), (1.0, 0.0))
    assert same_drawing(thumbnail(faded, f), cam, thumbnail(first, f), cam, f, lay.left, 24.0, light=back)
