"""Character masks: U²-Net (Qin et al., Pattern Recognition 2020), salient-object segmentation.

Anime characters are what a salient-object segmenter marks: the fill must never copy,
mirror or smear them into a side. This is the network written in torch, with the
batch norms of the released weights folded into the convolutions (as in the ONNX
files the weights come in), and ``Segmenter`` runs it with the released
pre-processing: the picture scaled by its brightest value, resized to 320x320,
normalised with the ImageNet mean and deviation; the fused side output, min-max
normalised per picture, resized back.

``import_onnx`` turns a released ONNX file (``u2netp.onnx``, ``u2net.onnx``) into a
ganime weight file; it needs the ``onnx`` package (``pip install 'ganime[onnx]'``),
which nothing else does. U²-Net-p (1.13 M parameters) ships in ``weights/``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import weights as W

ARCH = "u2net"
SIZE = 320  # the square the released networks were trained at
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class RSU(nn.Module):
    """A residual U-block: a small U-Net whose output is added to its input convolution.

    ``height`` levels, each halving the size (RSU-7 ... RSU-4); ``flat`` (RSU-4F) keeps
    the size and widens the dilation instead (1, 2, 4, and 8 at the bottom). Every
    convolution is followed by a ReLU (its batch norm folded into it).
    """

    def __init__(self, height: int, cin: int, mid: int, cout: int, flat: bool = False) -> None:
        super().__init__()
        self.flat = flat
        dilations = [1, 2, 4] if flat else [1] * (height - 1)
        self.conv_in = _conv(cin, cout)
        self.down = nn.ModuleList(_conv(cout if i == 0 else mid, mid, d) for i, d in enumerate(dilations))
        self.bottom = _conv(mid, mid, 8 if flat else 2)
        ups = list(reversed(dilations))
        self.up = nn.ModuleList(_conv(2 * mid, cout if i == len(ups) - 1 else mid, d) for i, d in enumerate(ups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each ReLU and the residual sum in place, on the convolution's own new output:
        # the same values without a pass to a new tensor each (0.26 -> 0.22 s a 224x224
        # half of U²-Net-p on one core).
        top = F.relu(self.conv_in(x), inplace=True)
        h, skips = top, []
        for i, conv in enumerate(self.down):
            h = F.relu(conv(h), inplace=True)
            skips.append(h)
            if not self.flat and i < len(self.down) - 1:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        h = F.relu(self.bottom(h), inplace=True)
        for conv, skip in zip(self.up, reversed(skips), strict=True):
            if h.shape[-2:] != skip.shape[-2:]:
                h = _resize(h, skip)
            h = F.relu(conv(torch.cat((h, skip), 1)), inplace=True)
        return h.add_(top)


@dataclass(frozen=True)
class U2NetConfig:
    """``small``: U²-Net-p (16 middle channels throughout); else the full U²-Net."""

    small: bool = True

    def to_dict(self) -> dict:
        return {"small": self.small}


# (height, in, mid, out, flat) of the six encoder and five decoder stages
_FULL = (
    [(7, 3, 32, 64, False), (6, 64, 32, 128, False), (5, 128, 64, 256, False), (4, 256, 128, 512, False),
     (4, 512, 256, 512, True), (4, 512, 256, 512, True)],
    [(4, 1024, 256, 512, True), (4, 1024, 128, 256, False), (5, 512, 64, 128, False), (6, 256, 32, 64, False),
     (7, 128, 16, 64, False)],
)  # fmt: skip
_SMALL = (
    [(7, 3, 16, 64, False), (6, 64, 16, 64, False), (5, 64, 16, 64, False), (4, 64, 16, 64, False),
     (4, 64, 16, 64, True), (4, 64, 16, 64, True)],
    [(4, 128, 16, 64, True), (4, 128, 16, 64, False), (5, 128, 16, 64, False), (6, 128, 16, 64, False),
     (7, 128, 16, 64, False)],
)  # fmt: skip


class U2Net(nn.Module):
    """U²-Net: six RSU stages down, five up, a side output per stage, fused by a 1x1 convolution.

    ``forward`` gives the fused output's logits (N, 1, H, W); the released networks
    were trained on its sigmoid.
    """

    def __init__(self, config: dict | U2NetConfig | None = None) -> None:
        super().__init__()
        cfg = config if isinstance(config, U2NetConfig) else U2NetConfig(**(config or {}))
        self.config = cfg
        enc, dec = _SMALL if cfg.small else _FULL
        self.encoder = nn.ModuleList(RSU(h, i, m, o, f) for h, i, m, o, f in enc)
        self.decoder = nn.ModuleList(RSU(h, i, m, o, f) for h, i, m, o, f in dec)
        # Side outputs from the decoder stages (finest first) and the last encoder stage.
        widths = [dec[-1][3], *(d[3] for d in reversed(dec[:-1])), enc[-1][3]]
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for c in widths)
        self.fuse = nn.Conv2d(len(widths), 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Stages run in bfloat16 (``_bf16_stages``) hand their outputs on as they are: the
        # pooling and the concatenations give the values they would in float32, and what
        # is computed between stages (the upsampling, the side outputs) is computed in
        # float32 and rounded where the next stage takes it, as it was when each stage's
        # output went back to float32 first (the same bits; 45 dtype copies a half fewer).
        skips = []
        h = x
        for i, stage in enumerate(self.encoder):
            h = stage(h)
            skips.append(h)
            if i < len(self.encoder) - 1:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        decoded = [h]  # the deepest stage's output is a side output too
        for stage, skip in zip(self.decoder, reversed(skips[:-1]), strict=True):
            dtype = getattr(stage, "dtype", torch.float32)
            h = stage(torch.cat((_resize(h.float(), skip).to(dtype), skip.to(dtype)), 1))
            decoded.append(h)
        feats = list(reversed(decoded))  # finest first, as the side convolutions are
        sides = [conv(f.float()) for conv, f in zip(self.sides, feats, strict=True)]
        sides = [sides[0], *(_resize(s, sides[0]) for s in sides[1:])]
        return self.fuse(torch.cat(sides, 1))


class _BF16(nn.Module):
    """A stage run in bfloat16: its input rounded to it, its output left in it (``U2Net.forward``)."""

    dtype = torch.bfloat16

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage.to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(x.to(torch.bfloat16))


# The decoder stage kept in float32 (second-finest, RSU-6): in bfloat16 it alone moved
# U²-Net-p's masks (probability > 0.5, 224x224 halves of 66 eval frames) to a mean IoU of
# 0.87 against float32's; every other stage in bfloat16 keeps 0.97 (10th percentile
# 0.96), where resizing the half to 216 or 232 instead of 224 gives 0.75.
_FLOAT_DECODER = 3


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 (AVX-512 BF16 or AMX): elsewhere oneDNN
    emulates it, slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _bf16_stages(net: U2Net) -> None:
    """Run a U²-Net's RSU stages in bfloat16, but ``_FLOAT_DECODER``; the side outputs
    and their fusion (little work) stay float32. 0.24 -> 0.14 s a 224x224 half of
    U²-Net-p on one core of an AVX-512 BF16 CPU, and 19 % less again with the stages'
    outputs handed on in bfloat16 (``U2Net.forward``)."""
    for i, stage in enumerate(net.encoder):
        net.encoder[i] = _BF16(stage)
    for i, stage in enumerate(net.decoder):
        if i != _FLOAT_DECODER:
            net.decoder[i] = _BF16(stage)


class Segmenter:
    """Character (salient object) masks of RGB pictures with a U²-Net."""

    def __init__(self, net: U2Net, device: torch.device | str = "cpu", size: int = SIZE) -> None:
        self.device = torch.device(device)
        self.size = size  # the square the network sees (it is fully convolutional; trained at 320)
        self.net = net.to(self.device).eval()  # float32, as released
        # What runs: the same weights channels-last, the layout oneDNN convolves in
        # (0.55 s instead of 0.74 s for two 224x224 halves on one core; outputs equal to
        # 1e-7), and in bfloat16 on CPUs that compute in it (``_bf16_stages``).
        self._run = copy.deepcopy(self.net).to(memory_format=torch.channels_last)
        self.bf16 = self.device.type == "cpu" and cpu_has_bf16()
        if self.bf16:
            _bf16_stages(self._run)
        self._mean = torch.tensor(_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(_STD, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, stretch: bool = True) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) in [0, 1], 1 = character.

        ``stretch``: as released, each mask is stretched to span [0, 1], so the most
        salient thing in any picture reads as 1; without it the network's own
        probabilities are kept, which stay low where nothing stands out.
        """
        x = images.to(self.device, torch.float32)
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        # Never enlarged past the picture (rounded up to the network's stride of 32): a
        # thumbnail-sized picture has no more to show at 320, and costs 10x less.
        side = min(self.size, -(-max(images.shape[-2:]) // 32) * 32)
        x = F.interpolate(x / peak, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        p = torch.sigmoid(self._run(x))
        if stretch:
            lo = p.amin(dim=(1, 2, 3), keepdim=True)
            hi = p.amax(dim=(1, 2, 3), keepdim=True)
            p = (p - lo) / (hi - lo).clamp_min(1e-6)
        return F.interpolate(p, size=images.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)


def find_weights() -> Path | None:
    """The segmenter's weight file: an imported full U²-Net first, then the shipped U²-Net-p."""
    for path in (W.store_dir() / "u2net.safetensors", W.shipped_dir() / "u2netp.safetensors"):
        if path.is_file():
            return path
    return None


def load(path: str | Path | None = None, device: torch.device | str = "cpu") -> Segmenter:
    """A ``Segmenter`` from a ganime weight file (default: ``find_weights``); raises WeightsError."""
    path = Path(path) if path is not None else find_weights()
    if path is None:
        raise W.WeightsError("no segmenter weights: weights/u2netp.safetensors is missing from this install")
    arch, config, state, _ = W.read(path)
    if arch != ARCH:
        raise W.WeightsError(f"{path}: holds a {arch} model, not a {ARCH} segmenter")
    net = U2Net(config)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise W.WeightsError(f"{path}: tensors do not fit U²-Net ({str(e).splitlines()[0]})") from e
    return Segmenter(net, device)


def _convs_in_call_order(net: nn.Module) -> list[nn.Conv2d]:
    """The network's convolutions in the order a forward pass runs them (the ONNX graph's order)."""
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m)) for m in net.modules() if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    return order


def import_onnx(src: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write a released U²-Net / U²-Net-p ONNX file's weights as a ganime weight file.

    The ONNX graph holds each convolution's weight and bias (batch norms folded) as
    initializers; they are taken in the order the graph runs its convolutions, which
    is the order this module's forward pass runs its own, and every shape is checked.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise W.WeightsError("importing an ONNX file needs the onnx package: pip install 'ganime[onnx]'") from None
    src = Path(src)
    try:
        graph = onnx.load(str(src)).graph
    except Exception as e:
        raise W.WeightsError(f"{src}: not an ONNX file ({e})") from e
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # The two released networks differ in width: U²-Net-p's first stage works with 16 channels.
    second = inits.get(convs[1].input[1]) if len(convs) > 1 else None
    small = second is not None and int(second.dims[0]) == 16
    net = U2Net(U2NetConfig(small=small))
    mine = _convs_in_call_order(net)
    if len(mine) != len(convs):
        raise W.WeightsError(f"{src}: {len(convs)} convolutions, not U²-Net's {len(mine)}")
    for conv, node in zip(mine, convs, strict=True):
        weight = torch.from_numpy(numpy_helper.to_array(inits[node.input[1]]).copy())
        bias = torch.from_numpy(numpy_helper.to_array(inits[node.input[2]]).copy())
        if weight.shape != conv.weight.shape or bias.shape != conv.bias.shape:
            raise W.WeightsError(f"{src}: {node.input[1]} is {tuple(weight.shape)}, not {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
    meta = {"source": src.name, "source_sha256": W.sha256(src), "model": "u2netp" if small else "u2net"}
    return W.save(net, out, ARCH, net.config.to_dict(), meta, half=half)
