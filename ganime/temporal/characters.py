"""The characters of a shot's pictures (``ganime.segment``), for the fills to leave out:
``CharacterMasks`` finds them in a picture, ``ShotCharacters`` keeps a shot's and
decides when to find them again."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import torch
import torch.nn.functional as F

from .. import segment, threads
from ..geometry import Rect
from ..models.classical import close_holes, dilate
from ..motion import Similarity, sample_grid, to_thumb
from .options import TemporalOptions, TemporalStats
from .records import Entry, Geometry, relit_levels, scale_of


def frame_characters(content: Rect, device: torch.device) -> Callable[[np.ndarray], torch.Tensor | None]:
    """A function giving a source frame's characters ((h, w) bool over its picture
    ``content``, None where none), for fills that take frames one by one."""
    find = CharacterMasks(TemporalOptions(), device)

    def characters(image: np.ndarray) -> torch.Tensor | None:
        pic = np.ascontiguousarray(image[content.y : content.bottom, content.x : content.right])
        wide = image.dtype == np.uint16
        return find(torch.from_numpy(pic.astype(np.int32) if wide else pic), 65535.0 if wide else 255.0)

    return characters


def closed_over(image: np.ndarray, content: Rect, chars: torch.Tensor) -> np.ndarray:
    """A copy of a source frame whose characters (``chars``, over the picture ``content``)
    are closed over from the background around them: what a frame's own fill is given,
    so that its mirror and its patches show the background, never a character."""
    out = image.copy()
    pic = out[content.y : content.bottom, content.x : content.right]
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    x = torch.from_numpy(pic.astype(np.float32)).permute(2, 0, 1)[None] / scale
    keep = (~chars)[None, None].float()
    closed = close_holes(x, keep)[0].permute(1, 2, 0).mul_(scale).round_().clamp_(0, scale).numpy()
    pic[...] = np.where(chars.numpy()[..., None], closed.astype(image.dtype), pic)
    return out


def moved_mask(
    chars: torch.Tensor, then: Similarity, now: Similarity, left: int, columns: torch.Tensor | None = None
) -> torch.Tensor:
    """A frame's characters (``chars``, (h, w) bool over its picture, which starts ``left``
    columns into the canvas) where they are in a later frame of the shot, the camera
    having moved from ``then`` to ``now`` (each frame's canvas -> the shot's reference).

    Nearest samples, rows and columns apart (zoom and shift only); what the earlier
    frame did not show counts as no character. ``columns``: only these picture columns
    of the result, (h, len(columns)) (the live mirror needs a few, every frame).
    """
    h, w = chars.shape
    rel = then.inverse().then(now)  # the later canvas -> the earlier one
    at = np.arange(w) if columns is None else columns.numpy()
    xs = np.rint(rel.a * (left + at) + rel.bx - left).astype(np.int64)
    ys = np.rint(rel.a * np.arange(h) + rel.by).astype(np.int64)
    cols, rows = (xs >= 0) & (xs < w), (ys >= 0) & (ys < h)
    out = chars.index_select(0, torch.from_numpy(ys.clip(0, h - 1)))
    out = out.index_select(1, torch.from_numpy(xs.clip(0, w - 1)))
    return out & torch.from_numpy(rows)[:, None] & torch.from_numpy(cols)[None, :]


def grown_within(seeds: torch.Tensor, within: torch.Tensor, step: int = 4) -> torch.Tensor:
    """The parts of ``within`` ((h, w) bool) connected to ``seeds``, traced on a grid of
    ``step`` pixels (a gap narrower than that joins; the result stays inside ``within``)."""
    h, w = within.shape
    pad = (0, -w % step, 0, -h % step)
    coarse = F.max_pool2d(F.pad(within.float(), pad)[None, None], step)[0, 0] > 0
    grown = (F.max_pool2d(F.pad(seeds.float(), pad)[None, None], step)[0, 0] > 0) & coarse
    while True:  # each round one coarse pixel further: as many rounds as the longest path
        wider = dilate(grown, 1) & coarse
        if torch.equal(wider, grown):
            break
        grown = wider
    return grown.repeat_interleave(step, 0).repeat_interleave(step, 1)[:h, :w] & within


def joined_across(
    mask: torch.Tensor, looks: list[tuple[torch.Tensor, torch.Tensor]], grow: int, limit: float
) -> torch.Tensor:
    """``mask`` ((h, w) bool, widened by ``grow``) with, per (cut, found) of ``looks``,
    what ``found`` (a look at the cut, not widened) holds connected to the cut, widened
    like the mask; unless that adds more than ``limit`` times the character of ``mask``
    the cut belongs to (``CharacterMasks.JOIN_MAX``)."""
    joined = mask
    for cut, found in looks:
        part = dilate(grown_within(dilate(cut, 2 * grow) & found, found), grow) & ~mask
        if float(part.sum()) <= limit * float(grown_within(cut, mask).sum()):
            joined = joined | part
    return joined


def same_drawing(
    thumb_then: np.ndarray,
    then: Similarity,
    thumb_now: np.ndarray,
    now: Similarity,
    factor: int,
    left: int,
    level: float,
    chars: torch.Tensor | None = None,
    band: int | None = None,
    span: tuple[int, int] | None = None,
    share: float = 0.005,
    seen: float = 0.97,
    light: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0), (1.0, 0.0)),
) -> bool:
    """Whether the earlier frame's characters, moved with the camera, are still the later
    frame's: its thumbnail (``thumb_now``) is at least ``seen`` covered by the earlier
    one's warped to it, and less than ``share`` of it differs by more than ``level``
    levels (what the temporal engine counts as moving against the camera) outside the
    characters (``chars``: the earlier frame's, already moved to the later one, (h, w)
    bool over its picture). A mouth or an eye redrawn inside a character leaves its
    silhouette, and so its mask, as it was; a hand moved out of it does not. ``band``:
    only changes within that many picture columns of either edge count (what a mirror
    of the picture by its seams can show). ``span``: only the picture columns [a, b) count,
    and ``share`` is of that part of the thumbnail (one half's mask: ``CharacterMasks.halves``).
    ``light``: the two frames' brightness against the shot's reference, (gain, offset)
    then and now (``Entry.gain``, ``Entry.offset``): undone, as the ghost guard undoes
    it, so that a fade or film flicker does not read as a new drawing.
    """
    th, tw = thumb_now.shape
    rel = to_thumb(then.inverse().then(now), factor, left)
    xs = rel.a * np.arange(tw, dtype=np.float64) + rel.bx
    ys = rel.a * np.arange(th, dtype=np.float64) + rel.by
    cols = (xs >= 0) & (xs <= thumb_then.shape[1] - 1)
    rows = (ys >= 0) & (ys <= thumb_then.shape[0] - 1)
    if cols.mean() * rows.mean() < seen:
        return False
    warped = sample_grid(thumb_then[..., None], xs[cols], ys[rows])[..., 0]
    if light[0] != light[1]:  # at the later frame's light
        warped = relit_levels(warped, *light)
    differs = np.abs(warped - thumb_now[np.ix_(rows, cols)]) > level
    if chars is not None and differs.any():
        # The characters on the thumbnail's grid, a thumbnail pixel wider (its blur).
        inside = F.max_pool2d(chars[None, None, : th * factor, : tw * factor].float(), factor)
        inside = dilate(inside[0, 0] > 0, 1).numpy()
        differs &= ~inside[np.ix_(rows, cols)]
    if band is not None:
        near = np.zeros(tw, bool)
        k = max(1, -(-band // factor))
        near[:k] = near[tw - k :] = True
        differs &= near[cols][None, :]
    area = th * tw
    if span is not None:
        x = np.arange(tw)
        part = (x >= span[0] // factor) & (x < -(-span[1] // factor))
        differs &= part[cols][None, :]
        area = th * int(part.sum())
    return float(differs.sum()) < share * area


MASK_THREAD = "ganime-masks"  # the one thread (``ganime.threads``) masks are found on ahead


class CharacterMasks:
    """Finds the characters of pictures with the shipped segmenter (loaded on first use).

    A salient-object network marks the one thing a picture is about: on a whole frame
    of `anime_static` it marks the girl in the middle and nothing of the man at the
    left seam, who is copied into the side as a second head. What matters to the sides
    is what stands by the seams, so the segmenter looks at each half of the picture on
    its own (60 % of its width each, as far as ``patch`` takes sources and more), and
    keeps its own probabilities (``stretch=False``): a half with nothing in front stays
    low (under 0.1 on the backgrounds of the eval clips) instead of being stretched
    until a table edge reads as a character. A character the halves cut where one of
    them stops looking is made whole from one more look centred on the cut (``join``).

    A mask is found once a shot (ahead, on a worker thread, for the shot's first frame)
    and again only where a key frame's or a loose frame's picture changed outside it
    (docs/temporal.md, "Characters"): U²-Net-p costs about 0.12 s a half at 224 on one core (0.24 s in float32).
    """

    OVERLAP = 0.6  # each "half" is this share of the picture's width
    # The square each half is seen at: at 224 the masks of the eval clips' anime frames
    # match those at the released 320 (IoU 0.88-0.99; 0.54 on anime_cammove's sail) for
    # 0.4 of the cost (float32: 0.49 s for both halves on one core, 1.9 s at 320); at 192 and 160
    # they fall apart (IoU down to 0.72 and 0.31).
    SIZE = 224

    AHEAD = 8  # masks found ahead and kept, at most (each holds its picture until found)

    # A character one half finds up to the line where that half's view ends, with nothing
    # found beside it there, on at least this share of the rows, is cut by the line: the
    # other half saw only part of it and did not call it one (``join``).
    CUT_ROWS = 0.02
    # ... and on at least half of those rows it reaches this share of a half's width into
    # the half from the line. A thin strip along the line is the half's own edge marked
    # (the segmenter sees a border there), not a character: on 4 of 12 frames of the
    # 640x480 benchmark clip a 10-20 px strip, which a look at the cut never completed.
    CUT_REACH = 0.1
    # A look at a cut adds at most this share of the character it completes (what the
    # halves found of it): the half that found it saw it whole or nearly. On a 3D film
    # the segmenter marks a staircase, and the look at it spread over the rest of the
    # stairs (as much again: `3d_sintel`, frame 0); on the tuning clips' frames and the
    # 640x480 benchmark clip's a look added 0-0.38 of the character.
    JOIN_MAX = 0.5

    def __init__(self, options: TemporalOptions, device: torch.device) -> None:
        self.level = options.character_level
        self.grow = options.character_grow
        self.joins = options.character_join
        self.device = device
        self._segmenter: segment.Segmenter | None = None
        self._lock = threading.Lock()
        # Per frame started ahead: its mask, or on the CPU its two halves' probabilities.
        self._ahead: OrderedDict[int, list[Future]] = OrderedDict()
        self.taken_ahead = 0  # masks asked for that had been found ahead
        self.views = 0  # looks at a cut character (``join``), beside the halves

    def ahead(self, key: int, picture: torch.Tensor, scale: float) -> bool:
        """Start finding the characters of a picture that will likely be asked for as
        ``key`` (a frame index), on a worker thread.

        The engine runs torch on one core and the encoder leaves the other partly idle
        (a conversion of the 640x480 benchmark clip uses 1.1-1.35 cores of 2): a mask
        found there while the engine renders the frames before it costs no wall time.
        The result is the same as finding it when asked (the same function, one thread).
        False (nothing started) while ``AHEAD`` masks are kept: ask again later.
        """
        if key in self._ahead:
            return True
        if len(self._ahead) >= self.AHEAD:
            return False
        pool = threads.thread(MASK_THREAD)
        if self.device.type == "cpu":  # each half on its own: the engine may take one (``__call__``)
            halves = [pool.submit(self._half, picture, scale, i) for i in (0, 1)]
            # Then, on the same thread, the mask joined where the halves cut a character.
            self._ahead[key] = [*halves, pool.submit(self._joined_ahead, picture, scale, halves)]
        else:
            self._ahead[key] = [pool.submit(self._find, picture, scale)]
        return True

    def drop(self, key: int) -> None:
        """Forget the mask found ahead for ``key`` (no longer needed)."""
        for f in self._ahead.pop(key, ()):
            f.cancel()

    def close(self) -> None:
        """Drop the masks still pending, and wait for the one being found (if any)."""
        for parts in self._ahead.values():
            for f in parts:
                f.cancel()
        self._ahead.clear()
        worker = threads.started(MASK_THREAD)  # (never started for an engine that found nothing ahead)
        if worker is not None:
            worker.submit(int).result()  # what was running has ended

    @classmethod
    def halves(cls, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """The picture columns [a, b) of the two halves the segmenter looks at, for a picture ``w`` wide."""
        half = max(1, round(w * cls.OVERLAP))  # overlapping: a character in the middle is whole in one
        return (0, half), (w - half, w)

    def found_ahead(self, key: int) -> bool:
        """Whether the mask of ``key`` was started ahead (asking for it costs no half of it)."""
        return key in self._ahead

    def __call__(
        self, picture: torch.Tensor, scale: float, key: int | None = None, sides: tuple[bool, bool] = (True, True)
    ) -> torch.Tensor | None:
        """(h, w) bool, True on characters, for a (h, w, 3) picture of samples up to ``scale``;
        None where there are none. ``key``: the frame's index, for a mask found ``ahead``
        (kept until dropped: frames after it that show the same drawing share it).
        ``sides``: which halves to look at (``halves``; a mask found ahead has both): the
        characters of the other are left for the caller to know."""
        parts = self._ahead.get(key) if key is not None else None
        if parts is None:
            return self._find(picture, scale, here=True, sides=sides)
        self.taken_ahead += 1
        if len(parts) == 1:
            return parts[0].result()
        # A half the worker has not begun is found here, while it finds the other: a shot
        # start decoded shortly before it is rendered (held drawings render fast) is
        # often asked for before its mask is done. The same bits either way.
        probs = [None if f.cancel() else f for f in parts[:2]]
        if all(f is not None for f in probs):  # the worker found both: it joins them too
            mask = parts[2].result()[0]
        else:
            parts[2].cancel()
            probs = [self._half(picture, scale, i) if f is None else f for i, f in enumerate(probs)]
            mask = self._mask(picture.shape[:2], *(p if isinstance(p, torch.Tensor) else p.result() for p in probs))
            mask = self.join(picture, scale, mask)
        done: Future = Future()
        done.set_result(mask)
        self._ahead[key] = [done]  # asked for again by the frames that share it
        return mask

    def _segmenter_now(self) -> segment.Segmenter:
        with self._lock:  # the worker and the engine may both ask first
            if self._segmenter is None:
                self._segmenter = segment.load(device=self.device)
                self._segmenter.size = self.SIZE
        return self._segmenter

    def _halves(self, picture: torch.Tensor, scale: float) -> list[torch.Tensor]:
        """The two overlapping halves (``halves``) of a (h, w, 3) picture, (1, 3, h, w') in [0, 1]."""
        image = picture.permute(2, 0, 1)[None].float().div_(scale)
        (_, half), (start, _) = self.halves(image.shape[-1])
        return [image[..., :half], image[..., start:]]

    def _half(self, picture: torch.Tensor, scale: float, which: int) -> torch.Tensor:
        """The segmenter's probabilities (1, 1, h, w') over one half (0: left, 1: right)."""
        return self._segmenter_now()(self._halves(picture, scale)[which], stretch=False)

    def _joined_ahead(
        self, picture: torch.Tensor, scale: float, halves: list[Future]
    ) -> tuple[torch.Tensor | None] | None:
        """On the mask thread, after the halves found ahead: their mask, joined (``join``);
        None where the engine took a half (it joins then)."""
        if any(f.cancelled() for f in halves):
            return None
        return (self.join(picture, scale, self._mask(picture.shape[:2], *(f.result() for f in halves))),)

    def _cuts(self, mask: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
        """Per line where a half stops looking that cuts a character of ``mask`` (as
        ``_mask`` gives it, widened) on at least ``CUT_ROWS`` of the rows, with none
        beside it there: ((h, w) bool, the cut; the line's column)."""
        h, w = mask.shape
        (_, half), (start, _) = self.halves(w)
        reach = max(1, round(self.CUT_REACH * half))
        found = []
        # The right half's characters end at its first column, the left's at its last,
        # each widened by ``grow``; the column beyond is the other half's alone.
        for line, col, beyond in ((start, start - self.grow, -1), (half, half - 1 + self.grow, 1)):
            if 0 < col < w - 1:
                rows = mask[:, col] & ~mask[:, col + beyond]
                if int(rows.sum()) < max(2, self.CUT_ROWS * h):
                    continue
                a, b = (col, col + reach) if beyond < 0 else (max(0, col - reach + 1), col + 1)
                inside = mask[rows][:, a:b]  # into the half that found it
                if float(inside.all(dim=1).float().mean()) < 0.5:
                    continue
                cut = torch.zeros_like(mask)
                cut[:, col] = rows
                found.append((cut, line))
        return found

    def join(self, picture: torch.Tensor, scale: float, mask: torch.Tensor | None) -> torch.Tensor | None:
        """``mask`` (both halves' characters) with those it cuts made whole.

        A character across the middle of the picture is seen whole by one half and in
        part by the other, which may not call that part a character: the mask then ended
        in a straight vertical line through a hood or a head of hair (on 28 of 62 frames
        of the eval clips), and what lay beyond it could be copied into a side. Where
        that happens (``_cuts``) the segmenter looks once more, at a window as wide as a
        half centred on the line, where the character is in the middle, and what it finds
        there connected to the cut is added. (A look at the whole picture also finds
        what lies further, an arm, but spread over the background on some frames: the
        dark wall behind `anime_lofi`'s girl, most of an `anime_cuts` frame.)
        """
        if mask is None or not self.joins:
            return mask
        w = mask.shape[1]
        width = self.halves(w)[0][1]
        looks = []
        for cut, line in self._cuts(mask):
            x0 = min(max(0, line - width // 2), w - width)
            view = picture[:, x0 : x0 + width].permute(2, 0, 1)[None].float().div_(scale)
            found = torch.zeros_like(mask)
            found[:, x0 : x0 + width] = self._segmenter_now()(view, stretch=False)[0, 0].cpu() > self.level
            with self._lock:  # (the worker and the engine both join)
                self.views += 1
            looks.append((cut, found))
        return joined_across(mask, looks, self.grow, self.JOIN_MAX)

    def _find(
        self, picture: torch.Tensor, scale: float, here: bool = False, sides: tuple[bool, bool] = (True, True)
    ) -> torch.Tensor | None:
        """The mask; ``here``: asked for on the engine's thread, which waits for it."""
        seg = self._segmenter_now()
        halves = self._halves(picture, scale)
        first = second = None
        if not all(sides):  # one half
            if sides[0]:
                first = seg(halves[0], stretch=False)
            elif sides[1]:
                second = seg(halves[1], stretch=False)
        elif self.device.type != "cpu":
            p = seg(torch.cat(halves), stretch=False)
            first, second = p[0:1], p[1:2]
        elif here and all(f.done() for parts in self._ahead.values() for f in parts):
            # The engine waits: the worker, idle, takes one half (float32: 0.35 s instead of 0.59 s).
            # On the CPU each half always goes through alone, so the bits do not depend
            # on where it ran (a batch of two differs from two singles by 1e-7).
            pending = threads.thread(MASK_THREAD).submit(seg, halves[1], False)
            first, second = seg(halves[0], stretch=False), pending.result()
        else:
            first, second = seg(halves[0], stretch=False), seg(halves[1], stretch=False)
        mask = self._mask(picture.shape[:2], first, second)
        return self.join(picture, scale, mask) if all(sides) else mask

    def _mask(
        self, shape: tuple[int, ...], first: torch.Tensor | None, second: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The (h, w) mask from the halves' probabilities (either None: not looked at)."""
        h, w = shape[0], shape[1]
        (_, half), (start, _) = self.halves(w)
        ref = first if first is not None else second
        prob = torch.zeros((h, w), device=ref.device if ref is not None else self.device)
        if first is not None:
            prob[:, :half] = first[0, 0]
        if second is not None:
            prob[:, start:] = torch.maximum(prob[:, start:], second[0, 0])
        found = prob > self.level
        if not bool(found.any()):
            return None
        if self.grow > 0:  # the outline and the mask's soft edge go with the character
            found = dilate(found, self.grow)
        return found.cpu()


class ShotCharacters:
    """The characters of the shot being rendered, found as seldom as may be.

    Owns the shot's mask (``chars``, over the picture of the frame it was found for)
    and, per half of the picture (``CharacterMasks.halves``), the frame its mask was
    found in; a new shot (``new_shot``) forgets them. ``of_frame`` gives a frame's
    characters: the shot's mask moved with the camera where the drawing held, else
    found again (a half, or both). ``moved_to`` gives the mask where it is in a later
    frame. Shot starts are found ahead on the mask thread (``find_ahead``, given the
    engine's frames under way), for models that take sources. Counts masks in ``stats``.
    """

    def __init__(
        self,
        geometry: Geometry,
        options: TemporalOptions,
        stats: TemporalStats,
        masks: CharacterMasks,
        ahead: bool,
    ) -> None:
        self.options, self.stats, self.masks = options, stats, masks
        self.left, self.pic_w, self.factor = geometry.left, geometry.pic_w, geometry.factor
        self.chars: torch.Tensor | None = None  # the shot's characters (None: none, or not found yet)
        self._found = False  # the shot's characters were found (``chars``, None: none)
        # (index, camera, thumbnail, (gain, offset)) of their frame
        self._at: tuple[int, Similarity, np.ndarray, tuple[float, float]] | None = None
        # The same for each half of the picture the segmenter looks at: the frame each half's mask was found in.
        self._half_at: list[tuple[int, Similarity, np.ndarray, tuple[float, float]] | None] = [None, None]
        self._ahead = ahead
        self._scanned = 0  # frames up to here were looked at for masks to find ahead
        self._ahead_shot = -1  # the last shot whose first frame's mask was started ahead
        self._ahead_frames: deque[int] = deque()  # frames whose masks were started ahead

    def new_shot(self) -> None:
        """Forget the last shot's characters."""
        self.chars = None
        self._found = False
        self._at = None
        self._half_at = [None, None]

    def find_ahead(self, buf: deque[Entry], next_index: int) -> None:
        """Start finding the characters of the decided shot starts in ``buf`` not yet
        looked at (frames before ``next_index`` are rendered already).

        A shot's first frame is nearly always a key frame. Later drawings are not tried:
        animated on threes, the 640x480 benchmark clip has 45 new drawings for 8 key
        frames in 362 frames, more than the spare core can find."""
        if not self._ahead:
            return
        for e in buf:
            if e.index < max(self._scanned, next_index):
                continue
            if not e.decided:
                return
            if not e.single and e.shot != self._ahead_shot:
                if not self.masks.ahead(e.index, e.picture, scale_of(e.picture)):
                    return  # enough kept: this one again after the next frame
                self._ahead_shot = e.shot
                self._ahead_frames.append(e.index)
            self._scanned = e.index + 1

    def forget_ahead(self, next_index: int) -> None:
        """Drop the masks found ahead for frames already rendered (before ``next_index``)."""
        while self._ahead_frames and self._ahead_frames[0] < next_index:
            self.masks.drop(self._ahead_frames.popleft())

    def close(self) -> None:
        """End the masks found ahead (the stream has ended)."""
        self.masks.close()
        self.stats.masks_ahead = self.masks.taken_ahead
        self.stats.join_views = self.masks.views

    def for_key(self, t: Entry) -> torch.Tensor | None:
        """(h, pic_w) bool: the characters of key frame t's picture (None: none).

        Kept for the frames after it in the shot: the live mirror leaves them out.
        """
        return self.of_frame(t, exact=True)

    def of_frame(self, t: Entry, exact: bool, band: int | None = None) -> torch.Tensor | None:
        """The characters of t's picture, found as seldom as may be: the shot's mask moved
        with the camera where it still covers what changed (``same_drawing``), the mask
        found ahead for t (``find_ahead``: shot starts), else found now, and kept as the
        shot's. ``exact``: for a key frame; a frame that leans on its own fill may look
        again only every ``character_every`` frames, and with ``band`` only at changes
        near the picture's edges (its own fill is a mirror)."""
        scale = scale_of(t.picture)
        if t.single:  # a flash or a blank frame: no camera to move a mask with, nor a shot to keep it
            if self._found:
                return self.chars
            self.stats.character_masks += 1
            return self.masks(t.picture, scale, key=t.index)
        at = self._at
        sides = (True, True)
        if self._found and at is not None:
            moved = self.moved_to(t)
            level = self.options.moving if self.options.moving > 0 else 24.0
            # A frame that leans on its own fill may look again only every few frames
            # (``character_every``; film weave moves everything a little each frame).
            recent = not exact and t.index - at[0] < self.options.character_every
            if at[0] == t.index or recent:
                return moved
            # Each half of the picture (what the segmenter looks at) against the frame its
            # own mask was found in: a half whose drawing holds keeps its mask, moved.
            spans = self.masks.halves(self.pic_w)
            sides = tuple(
                not same_drawing(
                    ref[2],
                    ref[1],
                    t.thumb,
                    t.to_ref,
                    self.factor,
                    self.left,
                    level,
                    moved,
                    band,
                    span,
                    light=(ref[3], (t.gain, t.offset)),
                )
                for ref, span in zip(self._half_at, spans, strict=True)
            )
            if not any(sides):
                self.stats.masks_moved += exact
                return moved
            if all(sides) or self.masks.found_ahead(t.index):
                sides = (True, True)
            else:  # one half anew; the other keeps its characters over its columns (both in the overlap)
                new = self.masks(t.picture, scale, sides=sides)
                kept = spans[0] if sides[1] else spans[1]
                old = torch.zeros(t.picture.shape[:2], dtype=torch.bool) if moved is None else moved.clone()
                old[:, : kept[0]] = False
                old[:, kept[1] :] = False
                chars = self.masks.join(t.picture, scale, old if new is None else new | old)
                self.chars = chars if chars is not None and bool(chars.any()) else None
                self.stats.half_masks += 1
        if all(sides):
            self.chars = self.masks(t.picture, scale, key=t.index)
        here = (t.index, t.to_ref, t.thumb, (t.gain, t.offset))
        self._at = here
        self._half_at = [here if s else ref for s, ref in zip(sides, self._half_at, strict=True)]
        self._found = True
        self.stats.character_masks += 1
        return self.chars

    def moved_to(self, t: Entry, columns: torch.Tensor | None = None) -> torch.Tensor | None:
        """The shot's characters (``chars``) where they are in frame t: moved with the
        camera; ``columns``: only these picture columns."""
        chars = self.chars
        if chars is None or self._at is None:
            return chars
        if self._at[1] == t.to_ref:
            return chars if columns is None else chars.index_select(1, columns)
        return moved_mask(chars, self._at[1], t.to_ref, self.left, columns)
