"""LaMa: the FFC ResNet generator of Suvorov et al., "Resolution-robust Large Mask
Inpainting with Fourier Convolutions" (WACV 2022).

Built layer for layer like the official generator (advimman/lama,
``saicinpainting/training/modules/ffc.py``) so that its checkpoints load with every
tensor in place: the state dict of ``Lama`` is the official one under ``generator.``.
Two published configurations: ``big-lama`` (18 residual blocks, ~51 M parameters) and
``lama-fourier`` (9 blocks, ~27 M).

Input contract of the official model: the image (RGB in [0, 1]) with the holes zeroed,
concatenated with the mask (1 = hole), height and width padded to a multiple of 8;
the output goes through a sigmoid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .start import OUTPUTS, Started, run_padded, working_size, zero_output


@dataclass
class LamaConfig:
    """Generator hyper-parameters (defaults: big-lama).

    Args:
        n_blocks: residual FFC blocks at the bottleneck (18 big-lama, 9 lama-fourier).
        ngf: channels after the first convolution; doubled at each downsampling.
        n_downsampling: stride-2 stages (the bottleneck works at 1/8 size).
        max_features: cap on channels.
        ratio_global: share of bottleneck channels in the spectral (global) branch.
        working_height: taller frames run at this height and the prediction is
            enlarged (a small model trained on small crops); None: every size as is.
        prefill: None (the official contract) or a fill the network corrects (models.start).
        detail: channels of the full-resolution branch over a prefill (0: none; models.start.Detail).
    """

    n_blocks: int = 18
    ngf: int = 64
    n_downsampling: int = 3
    max_features: int = 1024
    ratio_global: float = 0.75
    working_height: int | None = None
    prefill: str | None = None
    detail: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class FourierUnit(nn.Module):
    """1x1 convolution in the frequency domain: every output sees the whole image.

    The FFT runs in float32 even under autocast: cuFFT in half precision only takes
    power-of-two sizes, and video frames are not.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # Real and imaginary parts are stacked as channels (re0, im0, re1, im1, ...).
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.fft.rfftn(x.float(), dim=(-2, -1), norm="ortho")  # (B, C, H, W/2+1) complex
            spec = torch.stack((spec.real, spec.imag), dim=2).reshape(b, -1, h, spec.shape[-1])  # (B, 2C, H, W')
            spec = self.relu(self.bn(self.conv_layer(spec)))
            spec = spec.view(b, -1, 2, h, spec.shape[-1])
            out = torch.fft.irfftn(torch.complex(spec[:, :, 0], spec[:, :, 1]), s=(h, w), dim=(-2, -1), norm="ortho")
        return out.to(x.dtype)


class SpectralTransform(nn.Module):
    """Global branch: 1x1 down to half the channels, Fourier unit with a residual, 1x1 back up."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels // 2),
            nn.ReLU(inplace=True),
        )
        self.fu = FourierUnit(out_channels // 2, out_channels // 2)
        self.conv2 = nn.Conv2d(out_channels // 2, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))
        return self.conv2(x + self.fu(x))


def _conv_or_none(cin: int, cout: int, **kw: object) -> nn.Module | None:
    return nn.Conv2d(cin, cout, bias=False, padding_mode="reflect", **kw) if cin and cout else None  # type: ignore[arg-type]


class FFC(nn.Module):
    """Fast Fourier convolution: local (spatial) and global (spectral) channel groups exchanging information.

    Inputs and outputs are (local, global) pairs; a group of zero channels is None.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        in_g = int(in_channels * ratio_gin)
        in_l = in_channels - in_g
        out_g = int(out_channels * ratio_gout)
        out_l = out_channels - out_g
        kw = {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation}
        self.convl2l = _conv_or_none(in_l, out_l, **kw)
        self.convl2g = _conv_or_none(in_l, out_g, **kw)
        self.convg2l = _conv_or_none(in_g, out_l, **kw)
        self.convg2g = SpectralTransform(in_g, out_g, stride) if in_g and out_g else None

    @staticmethod
    def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None:
            return b
        return a if b is None else a + b

    def forward(
        self, x: tuple[torch.Tensor | None, torch.Tensor | None]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x_l, x_g = x

        def run(conv: nn.Module | None, t: torch.Tensor | None) -> torch.Tensor | None:
            return conv(t) if conv is not None and t is not None else None

        out_l = self._add(run(self.convl2l, x_l), run(self.convg2l, x_g))
        out_g = self._add(run(self.convl2g, x_l), run(self.convg2g, x_g))
        return out_l, out_g


class FFCBnAct(nn.Module):
    """FFC, then BatchNorm and ReLU on each group (``FFC_BN_ACT`` in the official code)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation)
        out_g = int(out_channels * ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_channels - out_g) if out_channels - out_g else nn.Identity()
        self.bn_g = nn.BatchNorm2d(out_g) if out_g else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(
        self, x: tuple[torch.Tensor | None, torch.Tensor | None]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x_l, x_g = self.ffc(x)
        x_l = self.act(self.bn_l(x_l)) if x_l is not None else None
        x_g = self.act(self.bn_g(x_g)) if x_g is not None else None
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Two 3x3 FFC layers with a residual connection on each group."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        self.conv1 = FFCBnAct(dim, dim, 3, ratio, ratio, padding=1)
        self.conv2 = FFCBnAct(dim, dim, 3, ratio, ratio, padding=1)

    def forward(
        self, x: tuple[torch.Tensor | None, torch.Tensor | None]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x_l, x_g = x
        y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
        return (x_l + y_l if x_l is not None else y_l), (x_g + y_g if x_g is not None else y_g)


class ConcatTuple(nn.Module):
    """(local, global) -> one tensor, local channels first."""

    def forward(self, x: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor:
        x_l, x_g = x
        if x_g is None:
            return x_l  # type: ignore[return-value]
        return x_g if x_l is None else torch.cat([x_l, x_g], dim=1)


class FFCResNetGenerator(nn.Module):
    """The generator network; ``model.N`` indices match the official checkpoint."""

    def __init__(self, config: LamaConfig) -> None:
        super().__init__()
        c = config
        feats = [min(c.max_features, c.ngf * 2**i) for i in range(c.n_downsampling + 1)]
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), _FirstFFC(4, c.ngf)]
        for i in range(c.n_downsampling):
            last = i == c.n_downsampling - 1
            layers.append(FFCBnAct(feats[i], feats[i + 1], 3, 0.0, c.ratio_global if last else 0.0, 2, 1))
        layers += [FFCResnetBlock(feats[-1], c.ratio_global) for _ in range(c.n_blocks)]
        layers.append(ConcatTuple())
        for i in range(c.n_downsampling, 0, -1):
            cin, cout = feats[i], feats[i - 1]
            layers += [
                nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        out = nn.Conv2d(c.ngf, OUTPUTS, kernel_size=7)
        if c.prefill:  # a residual over the fill: linear, starting at zero
            zero_output(out)
        layers += [nn.ReflectionPad2d(3), out, nn.Identity() if c.prefill else nn.Sigmoid()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _FirstFFC(FFCBnAct):
    """The 7x7 input layer: an all-local FFC that takes a plain tensor."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 7, 0.0, 0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:  # type: ignore[override]
        return super().forward((x, None))


class Lama(Started):
    """LaMa under the model contract: ``forward(image, mask) -> image``.

    Pads to a multiple of 8 (reflect, as the official predictor does), zeroes the
    holes, appends the mask, and crops the prediction back.
    """

    modulo = 8

    def __init__(self, config: LamaConfig | None = None) -> None:
        c = config or LamaConfig()
        super().__init__(c.prefill, c.detail)
        self.config = c
        self.generator = FFCResNetGenerator(c)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        wh = self.config.working_height
        return self.complete(image, mask, self._core, lambda h, w: working_size(h, w, wh), source)

    def _core(self, x: torch.Tensor) -> torch.Tensor:
        return run_padded(self.generator, x, self.modulo)
