"""``patch``: exemplar-based completion that continues painted backgrounds, with no weights.

The sides are made of patches of the frame's own picture (and, run by the temporal
engine, of the shot memory): a multi-scale PatchMatch (Barnes et al. 2009) finds, for
every patch overlapping the area to fill, the most similar patch of the known picture,
and patch voting (Wexler et al. 2007) sets each generated pixel to the similarity-weighted
mean of what the patches covering it say. Coarse to fine: the coarse scales settle the
layout (where the floor, the wall and the sky go), the fine ones copy real texture, so
lines and grain look like the show's instead of a smear or a mirror image.

The coarsest scale is filled ring by ring from the seam outward, each pixel from the
patch whose known part matches best; a start from the ``edge`` fill there (as Wexler et
al. start from a smooth guess) kept what the mirror put in the side: a character by the
picture's edge came back, mirrored, as a blob the search then matched. The ``edge``
fill remains where no patch fits (a band with no picture beside it).

Everything is vectorised in torch (whole nearest-neighbour fields at a time, Jacobi
propagation as on a GPU), so it runs on CPU and CUDA alike, and it is deterministic:
its random search is seeded, so the same frame gives the same sides, and drawn per
position, so a mask a few pixels larger changes the sides only near what it changed.

``forward(image, mask, source=None)``: ``source`` (N, 1, H, W), where given, marks the
known pixels patches may be taken from (1) and those they may not (0): the temporal
engine leaves out what moves against the camera, so a character is never copied into
a side. A known pixel marked -1 is a character (``ganime.segment``): not a source, and
not context either. It is completed with the sides, as if it were a hole, from the
background around it, so that where a character stands by the seam the side continues
what is behind it (floor as floor, wall as wall) instead of the character; what is made
there is only a means (the output keeps the picture's own pixels), and the ``edge``
start mirrors the picture with its characters closed over.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import threads
from ..geometry import widened_runs
from .classical import EdgeFill, close_holes, dilate, known_box


@dataclass
class PatchConfig:
    """Settings of the patch fill.

    Args:
        patch: patch size (odd), at every scale.
        coarse_height: the coarsest scale is about this tall.
        work_height: scales taller than this copy the field of the one below (upsampled)
            and vote once, without a search of their own: fine scales add little layout
            and most of the cost.
        em_steps: search-and-vote rounds per scale.
        iterations: PatchMatch sweeps (propagation + random search) per search.
        context: patches come from the picture within this many widths of the strip
            being filled (at least ``min_context`` pixels), nearest texture first.
        distance_weight: extra cost per strip width between a patch and its source,
            in mean squared 8-bit levels: of two equally good patches the nearer wins,
            so backgrounds continue from beside the seam.
        confidence: how fast the weight of generated pixels in a patch comparison falls
            with their distance from the known picture, per pixel of the coarsest scale
            (Wexler et al.'s 1.3): the known context near the seam steers each match, not
            what the start fill guessed deep in the side (a mirrored character).
        coherence: extra cost (mean squared 8-bit levels) of a source that none of the
            target's neighbours continues (scaled by the share of them that do not), in
            the search: sources that continue their neighbours' copy win, so the sides are
            made of fewer, larger copied regions instead of a collage.
        seed: seed of the random search.
    """

    patch: int = 7
    coarse_height: int = 40
    work_height: int = 120
    em_steps: int = 3
    iterations: int = 2
    context: float = 3.0
    min_context: int = 32
    distance_weight: float = 20.0
    coherence: float = 0.0
    confidence: float = 1.3
    seed: int = 0


T = TypeVar("T")

BAND_THREAD = "ganime-bands"  # the one thread (``ganime.threads``) a second band or chunk runs on


def _run_bands(jobs: list[Callable[[], torch.Tensor]], device: torch.device) -> list[torch.Tensor]:
    """Each band's completion: on the CPU the second of every pair on a thread of its
    own (``ganime-bands``, one per process), the two sides of a frame at once.

    The bands share nothing (each seeds its own search), so the result is the same
    bits wherever a band ran; the conversion leaves torch one core, and the encoder
    and the mask thread leave part of the other idle.
    """
    if device.type != "cpu" or len(jobs) < 2:
        return [job() for job in jobs]
    pool = threads.thread(BAND_THREAD)
    out: list[torch.Tensor] = []
    for k in range(0, len(jobs), 2):
        pending = pool.submit(_as_here(jobs[k + 1])) if k + 1 < len(jobs) else None
        out.append(jobs[k]())
        if pending is not None:
            out.append(pending.result())
    return out


def _as_here(job: Callable[[], T]) -> Callable[[], T]:
    """``job`` to run on another thread in this thread's autograd mode (thread-local): under
    ``inference_mode`` the tensors made here may only be changed in place in that mode."""
    inference = torch.is_inference_mode_enabled()

    def run() -> T:
        with torch.inference_mode(inference), torch.no_grad():
            return job()

    return run


def _in_two(work: Callable[[int], None], n: int, split: bool) -> None:
    """``work(k)`` for k < n; with ``split``, the second half on the band thread meanwhile
    (chunks that write apart and read what no chunk writes: the same bits either way)."""
    if not split or n < 2:
        for k in range(n):
            work(k)
        return
    mid = (n + 1) // 2
    pending = threads.thread(BAND_THREAD).submit(_as_here(lambda: [work(k) for k in range(mid, n)]))
    for k in range(mid):
        work(k)
    pending.result()


def _bands(mask: torch.Tensor, context: float, min_context: int) -> list[tuple[int, int]]:
    """Column ranges to work on: each run of generated columns with picture beside it."""
    cols = mask.any(dim=0).cpu().numpy()
    return widened_runs(cols, lambda width: max(min_context, math.ceil(context * width)))


def _upsampled(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) ``image`` at ``size``, bilinear: the colours on their own, the carried
    channels (``PatchFill.traced``) apart. CPU torch interpolates 4 channels not quite as
    it does 3 (1e-7 here and there, with one thread), and a traced fill must be the fill."""
    up = [F.interpolate(part[None], size=size, mode="bilinear", align_corners=False)[0] for part in image.split(3)]
    return up[0] if len(up) == 1 else torch.cat(up)


def _drawn(gen: torch.Generator, low: int, high: int, lvl: _Level) -> torch.Tensor:
    """Random integers in [low, high) for the level's targets, drawn for every position of
    the level and read at the targets: each target's draw depends on where it is, not on
    how many targets and sources there are. Drawn per target, a mask 60 pixels larger
    shifted every draw after it, and the sides of a whole shot came out another collage
    (`anime_lofi`: strip LPIPS 0.6386 -> 0.6555 for those 60 pixels)."""
    return torch.randint(low, high, (lvl.hp * lvl.wp,), generator=gen).to(lvl.targets.device)[lvl.targets]


class _Level:
    """One scale: the image padded by the patch radius, its masks and index helpers (flat indices)."""

    def __init__(
        self, image: torch.Tensor, hole: torch.Tensor, allowed: torch.Tensor, r: int, masks: _Level | None = None
    ) -> None:
        """``masks``: a level made from the same ``hole`` and ``allowed`` (``masks_only``),
        whose masks and indices are taken instead of made again."""
        self.image = F.pad(image[None], (r, r, r, r), mode="replicate")[0].flatten(1)  # (3, Hp*Wp)
        if masks is None:
            self._masks(hole, allowed, r)
        else:
            self.__dict__.update({k: v for k, v in masks.__dict__.items() if k != "image"})

    @classmethod
    def masks_only(cls, hole: torch.Tensor, allowed: torch.Tensor, r: int) -> _Level:
        """A level's masks and indices without its picture: what depends only on the hole
        and the allowed sources (``_Level(..., masks=)`` adds the picture)."""
        lvl = cls.__new__(cls)
        lvl._masks(hole, allowed, r)
        return lvl

    def _masks(self, hole: torch.Tensor, allowed: torch.Tensor, r: int) -> None:
        self.h, self.w = hole.shape[-2:]
        self.r = r
        self.hp, self.wp = self.h + 2 * r, self.w + 2 * r
        dev = hole.device
        self.hole = F.pad(hole[None, None].float(), (r, r, r, r), mode="replicate")[0, 0] > 0.5
        ok = F.pad(allowed[None, None].float(), (r, r, r, r), mode="replicate")[0, 0]
        ok = ok * (~self.hole).float()
        # A source centre: its whole patch known and allowed.
        whole = ~dilate(ok < 0.5, r)  # every pixel of the patch (inside the padded image) ok
        inner = torch.zeros_like(whole)
        inner[r : r + self.h, r : r + self.w] = True
        self.valid = (whole & inner).flatten()
        self.sources = self.valid.nonzero().flatten()
        # Targets: every patch centre (inside the image) whose patch touches the hole.
        near = dilate(self.hole, r)
        self.targets = (near & inner).flatten().nonzero().flatten()
        self.holes = (self.hole & inner).flatten().nonzero().flatten()
        # Where each target sits in ``targets`` (-1: not a target).
        self.position = torch.full((self.hp * self.wp,), -1, dtype=torch.long, device=dev)
        self.position[self.targets] = torch.arange(self.targets.numel(), device=dev)
        dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        self.window = (dy * self.wp + dx).flatten().to(dev)
        # Comparisons during the search read every other pixel of the patch (a third of
        # the cost, nearly the same matches); voting reads all of them.
        sparse = ((dy % 2 == r % 2) & (dx % 2 == r % 2)).flatten().to(dev)
        self.sparse = self.window[sparse]
        self.weights = torch.ones(self.hp * self.wp, device=dev)

    def set_confidence(self, falloff: float) -> None:
        """Weight of each pixel in comparisons: 1 where known, ``falloff ** -steps`` into the hole."""
        hole = self.hole.clone()
        steps = torch.zeros(self.hp, self.wp, device=hole.device)
        d = 0
        while bool(hole.any()) and d < self.hp + self.wp:
            d += 1
            reached = hole & dilate(~hole, 1)
            steps[reached] = d
            hole &= ~reached
        self.weights = torch.pow(torch.tensor(falloff, device=steps.device), -steps).flatten()

    def yx(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flat // self.wp, flat % self.wp

    def flat(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return y * self.wp + x

    def table(self, window: torch.Tensor) -> torch.Tensor:
        """(Hp*Wp, P*3): the patch (read at ``window``) of every pixel inside the image,
        made once per search by shifting the image, so a comparison reads one row per
        candidate (four times faster than gathering its values one by one). Rows of the
        padding are zero (never a target or a source)."""
        r, h, w = self.r, self.h, self.w
        img = self.image[:3].view(3, self.hp, self.wp)
        out = self.image.new_zeros(self.hp, self.wp, window.numel(), 3)
        for p, off in enumerate(window.tolist()):
            dy, dx = divmod(off + r * self.wp + r, self.wp)
            dy, dx = dy - r, dx - r
            out[r : r + h, r : r + w, p] = img[:, r + dy : r + dy + h, r + dx : r + dx + w].permute(1, 2, 0)
        return out.view(self.hp * self.wp, window.numel() * 3)

    def patch_weights(self, centres: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """(N, P) weights of the pixels of the patches at ``centres`` in a comparison, summing to 1 per patch."""
        w = self.weights[centres[:, None] + window]
        return w / w.sum(dim=1, keepdim=True)

    def region(self) -> torch.Tensor:
        """The (3, H, W) image without its padding."""
        r = self.r
        return self.image.view(-1, self.hp, self.wp)[:, r : r + self.h, r : r + self.w]


class PatchFill(nn.Module):
    """Multi-scale PatchMatch with patch voting, started from the ``edge`` fill (see the module)."""

    takes_source = True  # the engine may say which known pixels are background (see the module)

    def __init__(self, config: PatchConfig | None = None) -> None:
        super().__init__()
        self.config = config or PatchConfig()
        if self.config.patch % 2 == 0:
            raise ValueError("the patch size must be odd")
        # The edge fill starts the coarsest scale's surroundings, and is what the temporal
        # engine gives frames it only blends lightly with their own fill (``prefill``).
        self.prefill = EdgeFill()

    @torch.no_grad()
    def forward(self, image: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return self._fill(image, mask, source)

    @torch.no_grad()
    def traced(
        self, image: torch.Tensor, mask: torch.Tensor, trace: torch.Tensor, source: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fill, and where it came from: ``trace`` (N, 1, H, W) in [0, 1] marks known
        pixels (the characters, for ``ganime eval``'s copied-character figure); the second
        output is, per pixel, how much of it was copied, voted or mirrored from marked ones.

        The trace rides along as a fourth channel through every copy and vote of the fill
        and never takes part in a comparison, so the fill itself is the same as ``forward``'s.
        """
        out = self._fill(torch.cat([image, trace.to(image.dtype)], dim=1), mask, source)
        return out[:, :3], out[:, 3:].clamp(0, 1)

    def _fill(self, image: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        """``forward`` on (N, C, H, W): channels past the third are carried, never compared."""
        hidden = source < -0.5 if source is not None else None  # characters (see the module)
        # The ``edge`` start, made only if a band's coarsest scale has no patch to copy
        # (the search fills every other hole): a fifth of the fill's time at 1080p.
        made: list[torch.Tensor] = []

        def start(i: int, x0: int, x1: int) -> torch.Tensor:
            if not made:
                made.append(self.prefill(self._closed(image, mask, hidden), mask))
            return made[0][i, :, :, x0:x1].float()

        out = image.clone()
        cfg = self.config
        jobs = []  # (frame, columns, hole, the band's completion)
        for i in range(image.shape[0]):
            hole = mask[i, 0] > 0.5
            if not hole.any():
                continue
            work = hole if hidden is None else hole | hidden[i, 0]  # characters are completed too
            allowed = ~work if source is None else (source[i, 0] > 0.5) & ~work
            for x0, x1 in _bands(hole, cfg.context, cfg.min_context):
                jobs.append(
                    (
                        i,
                        (x0, x1),
                        hole[:, x0:x1],
                        partial(
                            self._complete,
                            image[i, :, :, x0:x1].float(),
                            partial(start, i, x0, x1),
                            work[:, x0:x1],
                            allowed[:, x0:x1],
                        ),
                    )
                )
        # A band alone (the two strips' context ranges meet: 640x480, 1080p) splits its
        # largest steps, the votes and plain costs of its fine scales, over both threads.
        split = len(jobs) == 1 and image.device.type == "cpu"
        runs = [partial(job, split=split) for *_, job in jobs]
        for (i, (x0, x1), hole, _), part in zip(jobs, _run_bands(runs, image.device), strict=True):
            out[i, :, :, x0:x1] = torch.where(hole, part.to(out.dtype), out[i, :, :, x0:x1])
        return out

    @staticmethod
    def _closed(image: torch.Tensor, mask: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        """``image`` with its hidden pixels (characters) closed over from around them, for the
        ``edge`` start: where no patch fits, it mirrors the background, never a character."""
        if hidden is None or not bool(hidden.any()):
            return image
        out = image.clone()
        for i in range(image.shape[0]):
            if not bool(hidden[i].any()):
                continue
            y0, y1, x0, x1 = known_box(mask[i])
            keep = ((mask[i : i + 1, :, y0:y1, x0:x1] < 0.5) & ~hidden[i : i + 1, :, y0:y1, x0:x1]).to(image.dtype)
            if float(keep.sum()) == 0:
                continue  # nothing but character: nothing better to mirror
            out[i : i + 1, :, y0:y1, x0:x1] = close_holes(image[i : i + 1, :, y0:y1, x0:x1], keep)
        return out

    # --------------------------------------------------------------- one band

    def _complete(
        self,
        image: torch.Tensor,
        start: Callable[[], torch.Tensor],
        hole: torch.Tensor,
        allowed: torch.Tensor,
        split: bool = False,
    ) -> torch.Tensor:
        """(3, H, W): ``image`` with ``hole`` completed from patches where ``allowed``;
        ``start()`` gives the start fill, asked for only where the coarsest scale has no
        patch to copy (elsewhere the search replaces every hole pixel it would set)."""
        cfg = self.config
        h = image.shape[-2]
        levels = max(0, math.floor(math.log2(max(1.0, h / cfg.coarse_height))))
        known = (~hole).float()
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        estimate: torch.Tensor | None = None
        nnf: torch.Tensor | None = None
        prev: _Level | None = None
        sizes = {
            k: (max(1, round(image.shape[-2] / 2**k)), max(1, round(image.shape[-1] / 2**k))) for k in range(levels + 1)
        }
        scaled = {}
        if split:
            # A band alone: the other thread is idle while the coarse scales search, and
            # the finer scales' pictures and masks do not depend on what they find: made
            # there meanwhile, coarse to fine (a tenth of a 1080p key frame's time on
            # this thread; the same bits).
            pool = threads.thread(BAND_THREAD)

            def ahead(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, _Level]:
                img, hole_k, allowed_k = self._scaled(image, known, allowed, sizes[k])
                return img, hole_k, allowed_k, _Level.masks_only(hole_k, allowed_k, cfg.patch // 2)

            for k in range(levels - 1, -1, -1):
                scaled[k] = pool.submit(_as_here(partial(ahead, k)))
        for k in range(levels, -1, -1):
            size = sizes[k]
            masks = None
            if k in scaled:
                img, hole_k, allowed_k, masks = scaled[k].result()
            else:
                img, hole_k, allowed_k = self._scaled(image, known, allowed, size)
            if estimate is None:
                # The coarsest scale: its hole is peeled (every pixel set from the known
                # ones, whatever it held) unless no patch may be copied there.
                lvl = _Level(img, hole_k, allowed_k, cfg.patch // 2)
                if lvl.sources.numel() == 0 and lvl.holes.numel() > 0:
                    first = start()
                    estimate = F.interpolate(first[None], size=size, mode="area")[0] if k else first
                    lvl = _Level(torch.where(hole_k, estimate, img), hole_k, allowed_k, cfg.patch // 2)
            else:
                estimate = _upsampled(estimate, size)
                lvl = _Level(torch.where(hole_k, estimate, img), hole_k, allowed_k, cfg.patch // 2, masks)
            if lvl.sources.numel() == 0 or lvl.holes.numel() == 0:
                estimate, prev = lvl.region(), None
                continue
            search = size[0] <= cfg.work_height or prev is None
            if search:  # comparisons in the search weigh generated pixels less with depth
                lvl.set_confidence(cfg.confidence ** (2.0**-k) if levels else cfg.confidence)
            if prev is None:
                self._peel(lvl)
            nnf = self._init_field(lvl, prev, nnf, gen)
            for _ in range(cfg.em_steps if search else 1):
                if search:
                    nnf, cost = self._search(lvl, nnf, gen)
                else:
                    cost = self._plain_cost(lvl, nnf, split=split)
                # Scales above the search vote with every other pixel of each patch: a third
                # of the reads at the sizes that cost most, and no softer.
                self._vote(lvl, nnf, cost, lvl.window if search else lvl.sparse, split=split and not search)
            estimate, prev = lvl.region(), lvl
        assert estimate is not None
        return estimate

    def _peel(self, lvl: _Level, chunk: int = 512) -> None:
        """Fill the coarsest scale's hole from its edge inward (in place), ring by ring.

        Each pixel of the ring next to what is known takes the centre of the patch whose
        known part matches best (an exhaustive search: the coarsest scale is small), then
        counts as known for the next ring. The layout of the sides so follows the picture
        beside them, not a start fill's guess: a mirror would put mirrored characters there.
        """
        known = ~lvl.hole.flatten()
        inner = torch.zeros(lvl.hp, lvl.wp, dtype=torch.bool, device=known.device)
        inner[lvl.r : lvl.r + lvl.h, lvl.r : lvl.r + lvl.w] = True
        inner = inner.flatten()
        src = lvl.sources
        src_patches = self._patches(lvl, src, lvl.window)  # (3, S, P)
        # As matrices, so each ring's comparisons are two matrix products.
        n = lvl.window.numel()
        src_matrix = src_patches.permute(0, 2, 1).reshape(3 * n, -1)  # (3P, S)
        src_squares = src_patches.pow(2).sum(dim=0).t().contiguous()  # (P, S)
        sx = (src % lvl.wp).float()
        scale = max(1.0, float(lvl.w) / (1 + 2 * self.config.context))
        while True:
            grown = dilate(known.view(lvl.hp, lvl.wp), 1).flatten()
            ring = (grown & ~known & inner).nonzero().flatten()
            if ring.numel() == 0:
                break
            for i in range(0, ring.numel(), chunk):
                at = ring[i : i + chunk]
                w = known[at[:, None] + lvl.window].float()  # (R, P): only known pixels compare
                t = self._patches(lvl, at, lvl.window)  # (3, R, P)
                # sum_p w (t - s)^2 = sum w t^2 - 2 sum w t s + sum w s^2, per channel summed
                wt = (w * t.pow(2)).sum(dim=(0, 2))[:, None]
                cross = (t * w).permute(1, 0, 2).reshape(at.numel(), 3 * n) @ src_matrix
                ws = w @ src_squares
                d = (wt - 2 * cross + ws) / w.sum(dim=1, keepdim=True).clamp_min(1) * (255.0**2 / 3)
                d = d + self.config.distance_weight * ((at % lvl.wp).float()[:, None] - sx[None]).abs() / scale
                best = src[d.argmin(dim=1)]
                lvl.image[:, at] = lvl.image[:, best]
            known[ring] = True
        # The padding follows the filled border (it is read by patches at the edge).
        r = lvl.r
        core = lvl.region()
        lvl.image = F.pad(core[None], (r, r, r, r), mode="replicate")[0].flatten(1).contiguous()

    @staticmethod
    def _scaled(
        image: torch.Tensor, known: torch.Tensor, allowed: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image (known pixels averaged), hole and allowed masks at ``size``.

        A coarse pixel is known only if all of it is, and allowed only if all of it is.
        """
        if tuple(image.shape[-2:]) == size:
            return image, known < 0.5, allowed
        k = known[None, None]
        num = F.adaptive_avg_pool2d((image * known)[None], size)[0]
        den = F.adaptive_avg_pool2d(k, size)[0]
        img = num / den.clamp_min(1e-6)
        hole = F.adaptive_avg_pool2d(k, size)[0, 0] < 1 - 1e-6
        ok = F.adaptive_avg_pool2d(allowed[None, None].float(), size)[0, 0] > 1 - 1e-6
        return img, hole, ok

    # -------------------------------------------------------------- the field

    def _init_field(
        self, lvl: _Level, prev: _Level | None, prev_nnf: torch.Tensor | None, gen: torch.Tensor
    ) -> torch.Tensor:
        """Source centre (flat, padded) per target: the coarser field scaled up, else random."""
        rand = lvl.sources[
            torch.searchsorted(lvl.sources, _drawn(gen, 0, lvl.hp * lvl.wp, lvl)).clamp_(max=lvl.sources.numel() - 1)
        ]  # a random position's next source in raster order (``_drawn``)
        if prev is None or prev_nnf is None:
            return rand
        r = lvl.r
        ty, tx = lvl.yx(lvl.targets)
        field = torch.full((prev.hp * prev.wp,), -1, dtype=torch.long, device=lvl.targets.device)
        field[prev.targets] = prev_nnf
        fy = ((ty - r).float() * prev.h / lvl.h).long().clamp(0, prev.h - 1) + prev.r
        fx = ((tx - r).float() * prev.w / lvl.w).long().clamp(0, prev.w - 1) + prev.r
        src = field[prev.flat(fy, fx)]
        sy, sx = prev.yx(src.clamp_min(0))
        # The coarse source scaled up, plus the target's own offset inside its coarse pixel,
        # so a coherent coarse copy stays a coherent copy here.
        oy = (ty - r) - ((fy - prev.r).float() * lvl.h / prev.h).round().long()
        ox = (tx - r) - ((fx - prev.r).float() * lvl.w / prev.w).round().long()
        ny = (((sy - prev.r).float() * lvl.h / prev.h).round().long() + oy).clamp(0, lvl.h - 1) + r
        nx = (((sx - prev.r).float() * lvl.w / prev.w).round().long() + ox).clamp(0, lvl.w - 1) + r
        cand = lvl.flat(ny, nx)
        ok = (src >= 0) & lvl.valid[cand]
        return torch.where(ok, cand, rand)

    @staticmethod
    def _patches(lvl: _Level, centres: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """(3, N, P) colours of the patches at ``centres``, read at ``window`` offsets (what
        comparisons see; copies and votes move every channel)."""
        # index_select reads a third as long as indexing with a 2-D index (CPU torch).
        return lvl.image[:3].index_select(1, (centres[:, None] + window).flatten()).view(3, -1, window.numel())

    def _cost(
        self,
        lvl: _Level,
        target: torch.Tensor,
        source: torch.Tensor,
        weights: torch.Tensor,
        centres: torch.Tensor,
        src: torch.Tensor,
    ) -> torch.Tensor:
        """Confidence-weighted mean squared difference (8-bit levels) of the target patches
        and the source patches at ``src`` (both (N, K) values, ``weights`` (N, K) of each
        value, summing to 1 per channel of a patch), plus the distance cost."""
        d = (target - source).pow_(2).mul_(weights).sum(dim=1) * (255.0**2 / 3)
        if self.config.distance_weight > 0:
            scale = max(1.0, float(lvl.w) / (1 + 2 * self.config.context))  # about a strip's width
            d = d + self.config.distance_weight * ((centres % lvl.wp) - (src % lvl.wp)).abs().float() / scale
        return d

    def _plain_cost(self, lvl: _Level, nnf: torch.Tensor, chunk: int = 16384, split: bool = False) -> torch.Tensor:
        """``_cost`` of every target and its source in ``nnf`` with every pixel weighing the
        same (scales above the search: no confidence there), at ``sparse`` offsets, in
        chunks that stay in the cache (``split``: over two threads)."""
        targets, window = lvl.targets, lvl.sparse
        out = torch.empty(targets.numel(), device=targets.device)

        def part(k: int) -> None:
            i = k * chunk
            t, src = targets[i : i + chunk], nnf[i : i + chunk]
            d = (self._patches(lvl, t, window) - self._patches(lvl, src, window)).pow_(2).sum(dim=0)
            out[i : i + chunk] = d.mean(dim=1) * (255.0**2 / 3)

        _in_two(part, -(-targets.numel() // chunk), split)
        if self.config.distance_weight > 0:
            scale = max(1.0, float(lvl.w) / (1 + 2 * self.config.context))
            out += self.config.distance_weight * ((targets % lvl.wp) - (nnf % lvl.wp)).abs().float() / scale
        return out

    def _search(self, lvl: _Level, nnf: torch.Tensor, gen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PatchMatch sweeps: propagation from the four neighbours, then random search."""
        window = lvl.sparse
        targets = lvl.targets
        table = lvl.table(window)
        target = table.index_select(0, targets)
        w = lvl.patch_weights(targets, window).repeat_interleave(3, dim=1)  # (N, P*3) like the table
        cost = self._cost(lvl, target, table.index_select(0, nnf), w, targets, nnf)
        size = lvl.hp * lvl.wp
        dev = nnf.device

        coherence = self.config.coherence
        neighbours = []  # (step, each target's neighbour at +step as a target index, -1: none)
        if coherence > 0:
            for step in (1, -1, lvl.wp, -lvl.wp):
                neighbours.append((step, lvl.position[(targets + step).clamp(0, size - 1)]))

        def incoherent(idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
            """Share of the targets' neighbours whose source is not ``src`` shifted with them."""
            total = torch.zeros(idx.numel(), device=dev)
            kept = torch.zeros(idx.numel(), device=dev)
            for step, j in neighbours:
                jj = j[idx]
                ok = jj >= 0
                total += ok.float()
                kept += (ok & (nnf[jj.clamp_min(0)] == src + step)).float()
            return 1 - kept / total.clamp_min(1)

        if coherence > 0:
            cost = cost + coherence * incoherent(torch.arange(targets.numel(), device=dev), nnf)

        def attempt(cand: torch.Tensor, ok: torch.Tensor) -> None:
            nonlocal nnf, cost
            cand = cand.clamp(0, size - 1)
            ok = ok & lvl.valid[cand] & (cand != nnf)
            idx = ok.nonzero().flatten()
            if idx.numel() == 0:
                return
            src = cand[idx]
            c = self._cost(lvl, target[idx], table.index_select(0, src), w[idx], targets[idx], src)
            if coherence > 0:
                c = c + coherence * incoherent(idx, cand[idx])
            better = c < cost[idx]
            idx, c = idx[better], c[better]
            nnf[idx] = cand[idx]
            cost[idx] = c

        for it in range(self.config.iterations):
            # Jacobi propagation: a neighbour's source, shifted back by the step to it.
            steps = ((0, 1), (1, 0), (0, -1), (-1, 0)) if it % 2 == 0 else ((0, -1), (-1, 0), (0, 1), (1, 0))
            for dy, dx in steps:
                step = dy * lvl.wp + dx
                j = lvl.position[(targets - step).clamp(0, size - 1)]
                attempt(nnf[j.clamp_min(0)] + step, j >= 0)
            # Random search around the current source, the radius halving down to 1.
            radius = max(lvl.h, lvl.w) // 2
            while radius >= 1:
                sy, sx = lvl.yx(nnf)
                ry = _drawn(gen, -radius, radius + 1, lvl)
                rx = _drawn(gen, -radius, radius + 1, lvl)
                ny = (sy + ry).clamp(lvl.r, lvl.r + lvl.h - 1)
                nx = (sx + rx).clamp(lvl.r, lvl.r + lvl.w - 1)
                attempt(lvl.flat(ny, nx), torch.ones_like(ny, dtype=torch.bool))
                radius //= 2
        return nnf, cost

    def _vote(
        self,
        lvl: _Level,
        nnf: torch.Tensor,
        cost: torch.Tensor,
        window: torch.Tensor,
        chunk: int = 16384,
        split: bool = False,
    ) -> None:
        """Set each hole pixel to the weighted mean of what the patches covering it say (in
        place; ``split``: over two threads)."""
        # Similarity weights (Wexler et al.): the best-matching patches decide, so copies stay
        # sharp. Normalised per pixel in log space: a pixel covered by poor matches only
        # still takes the least poor (plain weights underflow to nothing there).
        sigma2 = cost.quantile(0.25).clamp_min(1.0) if cost.numel() > 1 else cost.new_tensor(1.0)
        logw = -cost / (2 * sigma2)

        # In chunks small enough to stay in the cache (a 1080p side is half a million
        # pixels); the sources are known pixels, which no chunk changes.
        def part(k: int) -> None:
            holes = lvl.holes[k * chunk : (k + 1) * chunk]
            j = lvl.position[holes[:, None] - window]  # (Nh, P): the patch centred d before this pixel
            jj = j.clamp_min(0)
            lw = logw[jj].masked_fill_(j < 0, -torch.inf)
            w = torch.exp_(lw - lw.max(dim=1, keepdim=True).values)
            # (C, Nh, P): what that patch puts here.
            vals = lvl.image.index_select(1, (nnf[jj] + window).flatten()).view(lvl.image.shape[0], *jj.shape)
            lvl.image[:, holes] = vals.mul_(w).sum(dim=2) / w.sum(dim=1).clamp_min(1e-12)

        _in_two(part, -(-lvl.holes.numel() // chunk), split)
