"""Losses per model family, as the papers describe them, adapted where noted.

- Context Encoder (Pathak et al. 2016): masked L2 reconstruction + adversarial,
  weighted 0.999 / 0.001.
- GLCIC (Iizuka et al. 2017): masked MSE + adversarial (alpha = 0.0004) against the
  joint global/local discriminator, in three phases (completion network alone, then
  the discriminator alone, then both).
- LaMa (Suvorov et al. 2022): adversarial (non-saturating, R1 penalty on real images,
  weights 10 and 0.001 as published) + discriminator feature matching (100) + L1 on the
  known pixels (10) + a perceptual loss (30). The paper's perceptual loss runs a
  ResNet50 trained for ADE20k segmentation ("high receptive field"), which cannot be
  downloaded here; it is replaced by the standard VGG16 perceptual loss
  (``PerceptualLoss``: ImageNet VGG16, relu1_2 .. relu5_3, from the folder of perceptual
  weights). Without those weights LaMa falls back to a multi-scale gradient loss, which
  rewards lines and edges where the truth has them (and says so in the training log).
  Deviation: the known pixels of a prefilled model are the input by contract, so its
  L1 on them is zero; a small L1 on the generated pixels (weight 1) anchors colour
  there instead.

The perceptual loss is an option for the Context Encoder and GLCIC too
(``--perceptual-weight``), as is a structural term (``--ssim-weight``, 1 - SSIM over
the generated pixels). Pixel losses alone settle on the blurry mean of what the sides
could hold, which wins PSNR and loses LPIPS and the eye.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import metrics
from ..perceptual import VGGFeatures


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the masked pixels (all channels)."""
    m = mask.expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def masked_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_mean((pred - target) ** 2, mask)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return masked_mean((pred - target).abs(), mask)


def generator_adversarial(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Gradient penalty on real images (Mescheder et al. 2018), as LaMa uses."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator features of the output and of the truth."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats, strict=True)) / len(fake_feats)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM (the eval metric's window) over the masked pixels.

    ``pred`` is the composite (kept pixels exact), so windows that reach across the
    seam judge the join as the viewer sees it.
    """
    return 1 - masked_mean(metrics.ssim_tensor(pred, target, peak=1.0)[:, None], mask)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale L1 between horizontal and vertical image gradients (LaMa's perceptual stand-in)."""
    total = pred.new_zeros(())
    for s in range(scales):
        if s:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        for dim in (-1, -2):
            total = total + F.l1_loss(pred.diff(dim=dim), target.diff(dim=dim))
    return total / scales


def side_span(mask: torch.Tensor, context: int = 16, modulo: int = 8) -> int:
    """Width of the side crops that hold every sample's generated strips plus ``context`` columns.

    A sample's left strip reaches as far as its first column with a known pixel (and the
    right one alike): random holes inside the picture do not widen the crops.
    """
    w = mask.shape[-1]
    known = (mask[:, 0] < 0.5).any(dim=1)  # (N, W): columns holding a known pixel
    cols = torch.arange(w, device=mask.device)
    first = torch.where(known, cols, w).amin(dim=1)
    last = torch.where(known, cols, -1).amax(dim=1)
    reach = int(torch.maximum(first, w - 1 - last).clamp(min=0).max())
    width = -(-(reach + context) // modulo) * modulo
    return min(w, max(modulo, width))


class PerceptualLoss(nn.Module):
    """VGG16 feature distance on the side strips (LaMa's perceptual term; see the module).

    Features at the five taps are unit-normalised along channels (as LPIPS does, so each
    layer weighs alike) and compared by mean squared difference; the mean over the taps
    is the loss. Only the side crops (``side_span``) go through the network: on a
    144x256 sample the strips and their context are a quarter of the columns each,
    which halves the cost of the heaviest part of a training step.
    """

    def __init__(self, vgg: VGGFeatures, context: int = 16) -> None:
        super().__init__()
        self.vgg = vgg
        self.context = context

    @staticmethod
    def _unit(f: torch.Tensor) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).add(1e-10).sqrt())

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        span = side_span(mask, self.context)
        w = pred.shape[-1]
        if 2 * span >= w:
            crops_p, crops_t = pred, target
        else:
            crops_p = torch.cat([pred[..., :span], pred[..., w - span :]])
            crops_t = torch.cat([target[..., :span], target[..., w - span :]])
        with torch.no_grad():
            feats_t = self.vgg(crops_t)
        feats_p = self.vgg(crops_p)
        total = pred.new_zeros(())
        for fp, ft in zip(feats_p, feats_t, strict=True):
            total = total + (self._unit(fp) - self._unit(ft)).pow(2).sum(dim=1).mean()
        return total / len(feats_p)
