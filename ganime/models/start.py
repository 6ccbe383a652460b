"""Starting the neural models from a weight-free fill, and running them at a working scale.

The papers show the network the holes as zeros (LaMa) or the dataset mean (Context
Encoder, GLCIC) and ask it for every pixel. For 4:3 -> 16:9 strips that wastes most of
a small network on rediscovering what a cheap fill already gets right: the colours and
lines that continue across the seam. With ``prefill="edge"`` the holes are first
filled by ``EdgeFill`` at full resolution, the network sees that canvas plus the mask,
and predicts a *correction* to it: a brightness shift (one channel, added alike to R, G
and B) and a second channel that shifts, pixel by pixel, how much of the fill's sharp
mirror is kept against its blur (the fill itself fades from one to the other with
distance from the seam). Its output layer starts at zero, so an untrained network is
exactly the edge fill and training moves it only where the data says.

Why brightness and not colour: animation is painted in flat colours, and the fill
already continues the right hue across the seam; a per-channel correction learns small
hue shifts that read as a wrong colour on a flat area. Measured on the evaluation
clips with the temporal engine, the earlier three-channel correction of GLCIC cost
0.0004 SSIM against the plain fill while its mean over the channels, the same weights
otherwise, gained 0.0001 SSIM and 0.015 dB more than it. Brightness corrections fade
out next to black (``DARK``), so fades keep their blacks. The correction is computed at
the network's working scale and enlarged; the mirror and blur it mixes keep full
resolution, so detail next to the seam stays sharp and can be dropped where it misleads.

``prefill=None`` is the papers' contract (and the one imported LaMa checkpoints need).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .classical import EdgeFill, upsample_columns

PREFILLS: dict[str, Callable[[], EdgeFill]] = {"edge": EdgeFill}
OUTPUTS = {None: 3, "edge": 2}  # channels the core network predicts
# Below this level (of 1) the brightness correction fades out linearly (per channel): next to black
# a shift of one or two 8-bit levels is a large relative change (SSIM's luminance term,
# and the eye, judge it so), and a correction learnt on full-brightness frames must not
# lift or crush the sides of a fade.
DARK = 0.1


def check_prefill(name: str | None) -> None:
    if name is not None and name not in PREFILLS:
        raise ValueError(f"unknown prefill {name!r} (choose from {', '.join(PREFILLS)} or none)")


def zero_output(layer: nn.Module) -> None:
    """Start a residual output layer at zero, so the untrained model is its prefill."""
    for p in layer.parameters():
        nn.init.zeros_(p)


def shrink_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def enlarge_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def run_padded(net: nn.Module, x: torch.Tensor, modulo: int) -> torch.Tensor:
    """``net(x)`` for any size: padded by reflection to a multiple of ``modulo``, cropped back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % modulo, (-w) % modulo
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return net(x)[:, :, :h, :w]


def fuse_batch_norms(module: nn.Module) -> nn.Module:
    """Fold each BatchNorm that directly follows a convolution in a Sequential into it.

    For inference only (the running statistics become part of the weights): one layer
    less per block, the same output to float rounding.
    """
    for child in module.children():
        fuse_batch_norms(child)
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                module[i + 1] = nn.Identity()
    return module


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """``model`` in eval mode, batch norms folded, convolutions channels-last.

    On one CPU thread this takes the default model's network from 27 to 18 ms at
    480p (folding ~2 ms; oneDNN's convolutions run faster on channels-last input).
    Changes ``model`` in place; never for a model that is still to be trained.
    """
    model.eval()
    if any(True for _ in model.parameters()):
        fuse_batch_norms(model)
        model.to(memory_format=torch.channels_last)
        for m in model.modules():
            if isinstance(m, Started):
                m.channels_last = True
    return model


def working_size(h: int, w: int, height: int | None) -> tuple[int, int]:
    """(h, w) shrunk to ``height`` lines keeping the shape; never enlarged."""
    if not height or h <= height:
        return h, w
    return height, max(4, round(w * height / h))


class Started(nn.Module):
    """Base of the neural models: runs a core network on the zeroed or prefilled canvas.

    Args:
        prefill: ``None`` (the paper: holes zeroed, the core's output is the image) or
            a ``PREFILLS`` name (the core's output is a correction added to that fill).
    """

    def __init__(self, prefill: str | None) -> None:
        super().__init__()
        check_prefill(prefill)
        self.prefill = PREFILLS[prefill]() if prefill else None
        self.channels_last = False  # feed the core channels-last (set by prepare_for_inference)

    def _core_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def complete(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        core: Callable[[torch.Tensor], torch.Tensor],
        size: Callable[[int, int], tuple[int, int]],
    ) -> torch.Tensor:
        """The prediction: ``core`` (4 channels in; 3 out, or 2 with a prefill) runs at ``size(h, w)``."""
        h, w = image.shape[-2:]
        holes = mask > 0.5
        mask = holes.to(image.dtype)
        small = size(h, w)
        if self.prefill is None:
            x = torch.cat([image * (1 - mask), mask], dim=1)
            return enlarge_to(core(self._core_input(shrink_to(x, small))), (h, w))
        # Full-resolution work is done on the generated pixels only (the columns of a
        # 4:3 -> 16:9 canvas's strips, PictureFill.regions): known pixels are returned as
        # given, which is what every caller keeps anyway (the engine's compositor, the
        # trainer's composite).
        # The network sees the canvas shrunk, so the fill is written into the zeroed
        # picture itself and the picture and the mask are shrunk apart: no full-size
        # copy of the canvas is made. The fill's ingredients are all read first.
        out = image.masked_fill(holes, 0.0)
        with torch.no_grad():  # the fill has no parameters; nothing to learn through it
            parts = [
                (idx, rows, cols, *self.prefill.column_parts(img, box, cols, rows))
                for idx, gen, box, img in self.prefill.groups(out, mask)
                for rows, cols in self.prefill.regions(mask[idx], box, gen)
            ]
            for idx, rows, cols, sharp, blurred, t in parts:
                out[idx][:, :, rows].index_copy_(3, cols, torch.lerp(sharp, blurred, t))
        x = torch.cat([shrink_to(out, small), shrink_to(mask, small)], dim=1)
        small_y = core(self._core_input(x))
        for idx, rows, cols, sharp, blurred, t in parts:
            # The correction at full resolution, for the generated pixels only.
            if small_y.shape[-2:] != (h, w):
                yg = upsample_columns(small_y[idx], h, w, cols, rows)
            else:
                yg = small_y[idx][:, :, rows][..., cols]
            # Channel 0 shifts the brightness, the same on R, G and B; channel 1 moves each
            # pixel between the sharp mirror and the blur (at full resolution, where a small
            # correction cannot reach).
            keep = (1 - t + yg[:, 1:2]).clamp(0, 1)
            shift = (blurred * (1 / DARK)).clamp_(max=1).mul_(yg[:, :1])
            out[idx][:, :, rows].index_copy_(3, cols, torch.lerp(blurred, sharp, keep).add_(shift).clamp_(0, 1))
        return out
