"""The characters of a key frame's picture (``ganime.segment``), for the fill to leave out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import segment
from ..geometry import Rect
from ..models.classical import close_holes
from .options import TemporalOptions


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


class CharacterMasks:
    """Finds the characters of pictures with the shipped segmenter (loaded on first use).

    A salient-object network marks the one thing a picture is about: on a whole frame
    of `anime_static` it marks the girl in the middle and nothing of the man at the
    left seam, who is copied into the side as a second head. What matters to the sides
    is what stands by the seams, so the segmenter looks at each half of the picture on
    its own (60 % of its width each, as far as ``patch`` takes sources and more), and
    keeps its own probabilities (``stretch=False``): a half with nothing in front stays
    low (under 0.1 on the backgrounds of the eval clips) instead of being stretched
    until a table edge reads as a character.

    A mask is worked out once a shot (at its key frame, or the first frame that leans on
    its own fill), never per frame in a conversion: U²-Net-p costs about 0.37 s a half
    at 224 on the one core the engine has beside the encoder.
    """

    OVERLAP = 0.6  # each "half" is this share of the picture's width
    # The square each half is seen at: at 224 the masks of the eval clips' anime frames
    # match those at the released 320 (IoU 0.88-0.99; 0.54 on anime_cammove's sail) for
    # 0.4 of the cost (0.73 s for both halves on one core, 1.9 s at 320); at 192 and 160
    # they fall apart (IoU down to 0.72 and 0.31).
    SIZE = 224

    def __init__(self, options: TemporalOptions, device: torch.device) -> None:
        self.level = options.character_level
        self.grow = options.character_grow
        self.device = device
        self._segmenter: segment.Segmenter | None = None

    def __call__(self, picture: torch.Tensor, scale: float) -> torch.Tensor | None:
        """(h, w) bool, True on characters, for a (h, w, 3) picture of samples up to ``scale``;
        None where there are none."""
        if self._segmenter is None:
            self._segmenter = segment.load(device=self.device)
            self._segmenter.size = self.SIZE
        image = picture.permute(2, 0, 1)[None].float().div_(scale)
        w = image.shape[-1]
        half = max(1, round(w * self.OVERLAP))  # overlapping: a character in the middle is whole in one
        p = self._segmenter(torch.cat([image[..., :half], image[..., w - half :]]), stretch=False)
        prob = torch.zeros(image.shape[-2:], device=p.device)
        prob[:, :half] = p[0, 0]
        prob[:, w - half :] = torch.maximum(prob[:, w - half :], p[1, 0])
        found = prob > self.level
        if not bool(found.any()):
            return None
        if self.grow > 0:  # the outline and the mask's soft edge go with the character
            k = 2 * self.grow + 1
            found = F.max_pool2d(found[None, None].float(), k, 1, self.grow)[0, 0] > 0.5
        return found.cpu()
