"""Starting the neural models from a weight-free fill, and running them at a working scale.

The papers show the network the holes as zeros (LaMa) or the dataset mean (Context
Encoder, GLCIC) and ask it for every pixel. For 4:3 -> 16:9 strips that wastes most of
a small network on rediscovering what a cheap fill already gets right: the colours and
lines that continue across the seam. With a ``prefill`` the holes are first filled at
full resolution by a weight-free fill (``edge``: the mirror fading into a blur;
``patch``: patches of the picture itself), the network sees that canvas plus the mask,
and paints a full-colour residual over it: three unbounded channels added to R, G and
B, so it can draw lines, edges and texture the fill does not have, and remove what the
fill got wrong. Its output layer starts at zero, so an untrained network is exactly its
fill, and training moves it only where the data says.

The residual is computed at the network's working scale and enlarged; the fill it is
added to keeps full resolution, so the detail of ``patch`` stays sharp and the network
corrects layout, colour and seams. It fades out next to black (``DARK``, on the fill's
brightest channel), so the sides of a fade keep their blacks. Models whose fill takes a
``source`` (which known pixels may be copied, see ``models.patch``) take it too.

``prefill=None`` is the papers' contract (and the one imported LaMa checkpoints need).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .classical import EdgeFill, generated_columns, upsample_columns
from .patch import PatchFill

PREFILLS: dict[str, Callable[[], nn.Module]] = {"edge": EdgeFill, "patch": PatchFill}
OUTPUTS = 3  # channels the core network predicts: the image, or an RGB residual over the fill
# Below this level (of 1, the fill's brightest channel) the residual fades out linearly: next
# to black a change of one or two 8-bit levels is a large relative change (SSIM's luminance
# term, and the eye, judge it so), and a residual learnt on full-brightness frames must not
# lift the sides of a fade.
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


class Detail(nn.Module):
    """A shallow full-resolution branch beside the core network of a prefilled model.

    The papers' generators reach the output through a bottleneck at 1/4 (GLCIC) or 1/8
    (LaMa) of the size with no skip connection: a residual that sharpens a line or
    continues one across the seam must be rebuilt pixel by pixel from there. This
    branch sees the fill, the mask and the core's residual at the working scale through
    four 3x3 layers (dilated 1, 2, 4, 1: a 17-pixel window) and adds a local correction.
    Its last layer starts at zero, so a model that gains the branch keeps its output
    until training moves it. On the 2-core CPU it has not yet lowered validation LPIPS
    (``benchmarks/results/issue21/probes.md``); the shipped weights do not have it.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        out = nn.Conv2d(c, OUTPUTS, 3, padding=1)
        zero_output(out)
        self.net = nn.Sequential(
            nn.Conv2d(4 + OUTPUTS, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=2, dilation=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=4, dilation=4),
            nn.ReLU(inplace=True),
            out,
        )

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return residual + self.net(torch.cat([x, residual], dim=1))


class Started(nn.Module):
    """Base of the neural models: runs a core network on the zeroed or prefilled canvas.

    Args:
        prefill: ``None`` (the paper: holes zeroed, the core's output is the image) or
            a ``PREFILLS`` name (the core's output is a correction added to that fill).
        detail: channels of the full-resolution ``Detail`` branch (0: none; prefilled
            models only).
    """

    def __init__(self, prefill: str | None, detail: int = 0) -> None:
        super().__init__()
        check_prefill(prefill)
        self.prefill = PREFILLS[prefill]() if prefill else None
        self.detail = Detail(detail) if detail and prefill else None
        self.channels_last = False  # feed the core channels-last (set by prepare_for_inference)

    def _core_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @property
    def takes_source(self) -> bool:
        """Whether the fill under the network takes the engine's map of copyable pixels."""
        return bool(getattr(self.prefill, "takes_source", False))

    def complete(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        core: Callable[[torch.Tensor], torch.Tensor],
        size: Callable[[int, int], tuple[int, int]],
        source: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The prediction: ``core`` (4 channels in, 3 out) runs at ``size(h, w)``."""
        h, w = image.shape[-2:]
        holes = mask > 0.5
        mask = holes.to(image.dtype)
        small = size(h, w)
        if self.prefill is None:
            x = torch.cat([image * (1 - mask), mask], dim=1)
            return enlarge_to(core(self._core_input(shrink_to(x, small))), (h, w))
        with torch.no_grad():  # the fill has no parameters; nothing to learn through it
            known = image.masked_fill(holes, 0.0)
            if self.takes_source and source is not None:
                fill = self.prefill(known, mask, source)
            else:
                fill = self.prefill(known, mask)
            fill = fill.to(image.dtype).clamp_(0, 1)
        x = self._core_input(torch.cat([shrink_to(fill, small), shrink_to(mask, small)], dim=1))
        residual = core(x)
        if self.detail is not None:
            residual = self.detail(x, residual)
        # Known pixels are returned as given; the residual is enlarged for the generated
        # columns only (the strips of a 4:3 -> 16:9 canvas), not the whole canvas.
        samples = []
        for i in range(image.shape[0]):
            cols = generated_columns(mask[i])
            if cols.numel() == 0:
                samples.append(image[i : i + 1])
                continue
            if residual.shape[-2:] != (h, w):
                r = upsample_columns(residual[i : i + 1], h, w, cols)
            else:
                r = residual[i : i + 1][..., cols]
            base = fill[i : i + 1][..., cols]
            gain = (base.amax(dim=1, keepdim=True) * (1 / DARK)).clamp(max=1)
            painted = torch.where(holes[i : i + 1][..., cols], (base + gain * r).clamp(0, 1), base)
            samples.append(fill[i : i + 1].index_copy(3, cols, painted))
        return torch.cat(samples)
