"""Discriminators for training; they never ship and never run at conversion time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """PatchGAN (stride-2 4x4 convolutions): a realism logit per patch, and its features.

    Used adversarially for the Context Encoder and LaMa; its intermediate features also
    give LaMa's feature-matching loss.
    """

    def __init__(self, base: int = 32, layers: int = 4) -> None:
        super().__init__()
        blocks = []
        cin = 3
        for i in range(layers):
            cout = base * 2 ** min(i, 3)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(cin, cout, 4, stride=2 if i < layers - 1 else 1, padding=1),
                    nn.InstanceNorm2d(cout, affine=True) if i else nn.Identity(),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return self.head(x), feats


def _conv_stack(cin: int, widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cout in widths:
        layers += [nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers)


class GlcicDiscriminator(nn.Module):
    """GLCIC's two discriminators joined by a fully connected layer (Iizuka et al. 2017).

    The global one sees the whole image, the local one a square patch centred on the
    generated area; each ends in a 1024-d vector, concatenated into one logit. ``width``
    scales the channels like the completion network's.
    """

    def __init__(self, image_size: tuple[int, int], width: float = 1.0, local_size: int = 64) -> None:
        super().__init__()
        c = [max(8, round(n * width)) for n in (64, 128, 256, 512)]
        self.local_size = local_size
        self.global_net = _conv_stack(3, [c[0], c[1], c[2], c[3], c[3]])
        self.local_net = _conv_stack(3, [c[0], c[1], c[2], c[3]])
        self.eval()
        with torch.no_grad():  # the flattened sizes follow from the training resolution
            g = self.global_net(torch.zeros(1, 3, *image_size)).numel()
            loc = self.local_net(torch.zeros(1, 3, local_size, local_size)).numel()
        self.train()
        self.global_fc = nn.Linear(g, 1024)
        self.local_fc = nn.Linear(loc, 1024)
        self.out = nn.Linear(2048, 1)

    @staticmethod
    def local_patch(image: torch.Tensor, mask: torch.Tensor, size: int) -> torch.Tensor:
        """A square around the centre of each sample's generated area, resized to ``size``."""
        n, _, h, w = image.shape
        side = min(h, w)
        patches = []
        for i in range(n):
            ys, xs = torch.nonzero(mask[i, 0] > 0.5, as_tuple=True)
            cy = int(ys.float().mean()) if ys.numel() else h // 2
            # For side strips the centroid is the middle of the frame: take one strip.
            cx = int(xs.float().mean()) if xs.numel() else w // 2
            if xs.numel() and (xs < w // 2).any() and (xs >= w // 2).any():
                cx = int(xs[xs < w // 2].float().mean())
            y0 = min(max(0, cy - side // 2), h - side)
            x0 = min(max(0, cx - side // 2), w - side)
            patches.append(image[i : i + 1, :, y0 : y0 + side, x0 : x0 + side])
        return F.interpolate(torch.cat(patches), size=(size, size), mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g = self.global_fc(self.global_net(image).flatten(1))
        local = self.local_net(self.local_patch(image, mask, self.local_size))
        loc = self.local_fc(local.flatten(1))
        return self.out(torch.cat([g, loc], dim=1))
