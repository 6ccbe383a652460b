"""Context Encoder (Pathak et al., "Context Encoders: Feature Learning by Inpainting", CVPR 2016).

Encoder of stride-2 4x4 convolutions down to a small bottleneck, a channel-wise fully
connected layer (each channel's map connected to itself, no cross-channel weights:
the paper's way to give every output position a view of the whole image cheaply), a
1x1 convolution to mix channels, and a decoder of stride-2 up-convolutions.

Adapted to side strips:
- the input carries the mask as a fourth channel (the paper fed only the masked
  image; with strips of varying width the model must know where the hole is);
- the channel-wise FC needs a fixed bottleneck, so the network has a fixed working
  resolution (default 128x224, near 16:9): ``forward`` resizes any frame to it and
  the prediction back, and the compositor keeps the known pixels at full resolution;
- the decoder predicts the whole frame (not only a centre square) through a sigmoid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .start import OUTPUTS, Started, zero_output


@dataclass
class ContextEncoderConfig:
    """Args:
    height, width: working resolution (multiples of 2**depth).
    base: channels of the first convolution; doubled per level up to ``max_channels``.
    depth: stride-2 levels (bottleneck is height/2**depth x width/2**depth).
    """

    height: int = 128
    width: int = 224
    base: int = 64
    depth: int = 5
    max_channels: int = 512
    prefill: str | None = None  # None (the paper) or a fill the network corrects (models.start)
    detail: int = 0  # channels of the full-resolution branch over a prefill (models.start.Detail)

    def to_dict(self) -> dict:
        return asdict(self)


class ChannelwiseFC(nn.Module):
    """Per-channel fully connected layer over the bottleneck map: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, positions: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, positions, positions) / positions**0.5)
        self.bias = nn.Parameter(torch.zeros(channels, positions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, 1, h * w)  # (B, C, 1, P)
        out = torch.matmul(flat, self.weight).squeeze(2) + self.bias  # (B, C, P)
        return out.view(b, c, h, w)


class ContextEncoder(Started):
    """The generator under the model contract, at a fixed working resolution."""

    def __init__(self, config: ContextEncoderConfig | None = None) -> None:
        c = config or ContextEncoderConfig()
        super().__init__(c.prefill, c.detail)
        self.config = c
        if c.height % 2**c.depth or c.width % 2**c.depth:
            raise ValueError(f"working size {c.height}x{c.width} must be a multiple of {2**c.depth}")
        chans = [min(c.max_channels, c.base * 2**i) for i in range(c.depth)]
        enc: list[nn.Module] = []
        cin = 4
        for i, cout in enumerate(chans):
            enc += [nn.Conv2d(cin, cout, 4, stride=2, padding=1)]
            if i:  # no normalisation on the first layer, as in DCGAN-style encoders
                enc += [nn.BatchNorm2d(cout)]
            enc += [nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.encoder = nn.Sequential(*enc)
        positions = (c.height >> c.depth) * (c.width >> c.depth)
        self.channelwise = ChannelwiseFC(cin, positions)
        self.mix = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(cin, cin, 1), nn.ReLU(inplace=True))
        dec: list[nn.Module] = []
        for cout in [*reversed(chans[:-1]), c.base // 2]:
            dec += [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        out = nn.Conv2d(cin, OUTPUTS, 3, padding=1)
        if c.prefill:  # a residual over the fill: linear, starting at zero
            zero_output(out)
        dec += [out, nn.Identity() if c.prefill else nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        size = (self.config.height, self.config.width)
        return self.complete(image, mask, self._core, lambda h, w: size, source)

    def _core(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.mix(self.channelwise(self.encoder(x))))
