"""GLCIC completion network (Iizuka, Simo-Serra, Ishikawa, "Globally and Locally
Consistent Image Completion", SIGGRAPH 2017).

Fully convolutional: RGB + mask in, two stride-2 stages down to 1/4 size, a stack of
dilated 3x3 convolutions (dilation 2, 4, 8, 16) that widens the receptive field to
most of the frame without losing resolution, two up-convolutions back, sigmoid out.
The layer table follows the paper (its Table 1); ``width`` scales every channel
count (1.0 = the paper's 64/128/256) so small models fit small machines. The global
and local discriminators belong to training (``ganime train``), not here. Any size
that is a multiple of 4 runs as is; others are padded by reflection and cropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .start import OUTPUTS, Started, run_padded, working_size, zero_output


@dataclass
class GlcicConfig:
    """Args:
    width: channel multiplier (1.0 = the paper).
    dilations: the dilated middle layers.
    working_height: frames taller than this are shrunk to it, completed, and the
        prediction enlarged back: a network trained on small crops then fills strips
        at the scale it learned (and runs far faster). None runs every size as is.
    prefill: None (the paper) or a fill the network corrects (see ``models.start``).
    detail: channels of the full-resolution branch over a prefill (0: none; ``models.start.Detail``).
    """

    width: float = 1.0
    dilations: tuple[int, ...] = (2, 4, 8, 16)
    working_height: int | None = None  # run taller frames at this height (the training scale)
    prefill: str | None = None
    detail: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d


def _conv(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    pad = dilation * (k - 1) // 2
    return [nn.Conv2d(cin, cout, k, stride, pad, dilation), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CompletionNetwork(Started):
    """The completion network under the model contract."""

    modulo = 4

    def __init__(self, config: GlcicConfig | None = None) -> None:
        c = config or GlcicConfig()
        super().__init__(c.prefill, c.detail)
        self.config = c
        a, b, d = (max(4, round(n * c.width)) for n in (64, 128, 256))
        layers: list[nn.Module] = []
        layers += _conv(4, a, 5)
        layers += _conv(a, b, 3, stride=2)
        layers += _conv(b, b, 3)
        layers += _conv(b, d, 3, stride=2)
        layers += _conv(d, d, 3)
        layers += _conv(d, d, 3)
        for dil in c.dilations:
            layers += _conv(d, d, 3, dilation=dil)
        layers += _conv(d, d, 3)
        layers += _conv(d, d, 3)
        layers += [nn.ConvTranspose2d(d, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        layers += _conv(b, b, 3)
        layers += [nn.ConvTranspose2d(b, a, 4, 2, 1), nn.BatchNorm2d(a), nn.ReLU(inplace=True)]
        layers += _conv(a, max(4, a // 2), 3)
        out = nn.Conv2d(max(4, a // 2), OUTPUTS, 3, padding=1)
        if c.prefill:  # a residual over the fill: linear, starting at zero
            zero_output(out)
        layers += [out, nn.Identity() if c.prefill else nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int | None:
        """Radius in pixels beyond which an input pixel cannot change an output pixel.

        Lets the engine run the network on each side strip plus this much picture
        instead of the whole canvas, with the same result (an upper bound, padded).
        """
        if self.config.working_height or self.prefill is not None:
            return None  # measured at the working scale, not the frame's: take the whole canvas
        span, jump = 1.0, 1.0
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):
                span += (layer.kernel_size[0] - 1) * layer.dilation[0] * jump
                jump *= layer.stride[0]
            elif isinstance(layer, nn.ConvTranspose2d):
                jump /= layer.stride[0]
                span += (layer.kernel_size[0] - 1) * jump
        return int(span // 2) + 2 * self.modulo

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        wh = self.config.working_height
        return self.complete(image, mask, self._complete, lambda h, w: working_size(h, w, wh), source)

    def _complete(self, x: torch.Tensor) -> torch.Tensor:
        return run_padded(self.net, x, self.modulo)
