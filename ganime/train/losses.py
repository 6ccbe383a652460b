"""Losses per model family, as the papers describe them, adapted where noted.

- Context Encoder (Pathak et al. 2016): masked L2 reconstruction + adversarial,
  weighted 0.999 / 0.001.
- GLCIC (Iizuka et al. 2017): masked MSE + adversarial (alpha = 0.0004) against the
  joint global/local discriminator, in three phases (completion network alone, then
  the discriminator alone, then both).
- LaMa (Suvorov et al. 2022): adversarial (non-saturating, R1 penalty on real images,
  weight 10 and 0.001 as published) + discriminator feature matching (100) + L1. The
  paper's high-receptive-field perceptual loss needs a ResNet50 trained on ADE20k
  segmentation, which cannot be downloaded here; it is replaced by a multi-scale
  gradient loss (L1 between image gradients at 1, 1/2 and 1/4 scale, weight 30),
  which rewards the same thing in flat-coloured animation: lines and edges where the
  truth has them.

Optional for every family (``--ssim-weight``, off by default): a structural term,
1 - SSIM over the generated pixels. Pixel losses alone settle on the blurry mean of
what the sides could hold, which wins PSNR and gives away SSIM; a weight-free fill that
keeps the picture's structure next to the seam then stays ahead on SSIM. The shipped
weights were trained without it (their model cards give the exact commands).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import metrics


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
