"""Validation of a training run: the eval's metrics on held-out shots."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import metrics
from .. import perceptual as P


class Validation:
    """Scores a generator on held-out frames (``images``, with the strips to fill
    ``masks``): strip LPIPS where the perceptual weights were found (``lpips``; lower
    is better, and it is the score the kept weights are chosen by), else strip PSNR;
    PSNR, SSIM and sharpness beside it. Owns the held-out frames and the metric."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, device: torch.device, lpips: P.LPIPS | None) -> None:
        self.images, self.masks, self.device, self.lpips = images, masks, device, lpips
        self.score = "lpips" if lpips is not None else "psnr"

    @property
    def worst(self) -> float:
        """A score every real one beats."""
        return math.inf if self.score == "lpips" else -math.inf

    def better(self, val: dict[str, float], best: float) -> bool:
        """Whether the scores ``val`` beat ``best`` (of ``score``)."""
        v = val[self.score]
        return v < best if self.score == "lpips" else v > best

    @torch.inference_mode()
    def __call__(self, g: nn.Module) -> dict[str, float]:
        """Strip LPIPS (where available), PSNR, SSIM and sharpness of the composite on the held-out shots."""
        g.eval()
        outs = []
        for i in range(0, len(self.images), 8):
            x = self.images[i : i + 8].to(self.device)
            m = self.masks[i : i + 8].to(self.device)
            pred = g(x * (1 - m), m).float()
            outs.append((pred * m + x * (1 - m)).cpu())
        out = torch.cat(outs)

        def u8(t: torch.Tensor) -> np.ndarray:
            return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

        mask = self.masks[0, 0].numpy() > 0.5
        o, t = u8(out), u8(self.images)
        scores = {
            "psnr": metrics.psnr(o, t, mask),
            "ssim": metrics.ssim(o, t, mask),
            "sharpness": metrics.sharpness(o, t, mask),
        }
        if self.lpips is not None:
            lpips, dev = self.lpips, self.device
            scores["lpips"] = metrics.strip_lpips(o, t, mask, lambda a, b: lpips.distance(a.to(dev), b.to(dev)).cpu())
        return scores
