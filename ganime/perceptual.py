"""LPIPS (Zhang et al. 2018, v0.1, AlexNet): the perceptual distance ``ganime eval`` leads with.

PSNR and SSIM reward a soft average of what a side strip might hold; LPIPS compares
deep features, so a blur or a smear scores as far from the show as it looks. The
network is torchvision's ImageNet AlexNet (five ReLU taps) with the official v0.1
linear layers. Weights come from, in this order: a folder given by the caller or by
``GANIME_PERCEPTUAL`` (safetensors: ``alexnet_features_imagenet.safetensors`` and
``lpips_v0.1_alex_lin.safetensors``), else torchvision's download of AlexNet and the
official linear layers from the LPIPS repository, unless ``GANIME_OFFLINE`` is set.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ENV = "GANIME_PERCEPTUAL"
ALEX_FILE = "alexnet_features_imagenet.safetensors"
VGG_FILE = "vgg16_features_imagenet.safetensors"
LIN_FILE = "lpips_v0.1_alex_lin.safetensors"
# The v0.1 linear layers as the LPIPS authors publish them.
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs in torchvision's alexnet().features
CHANNELS = (64, 192, 384, 256, 256)
# LPIPS's input normalisation, applied after scaling [0, 1] to [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIDE = 64  # AlexNet's deepest tap needs about this many pixels each way


class PerceptualError(RuntimeError):
    """No LPIPS weights could be found or downloaded."""


def _alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet ``features`` layout (weights loaded separately)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(inplace=True),
    )


def run_taps(layers: nn.Sequential, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    """``x`` through ``layers``, keeping the outputs of the layers at ``taps`` (up to the last one)."""
    out = []
    for i, layer in enumerate(layers[: max(taps) + 1]):
        x = layer(x)
        if i in taps:
            out.append(x)
    return out


class LPIPS(nn.Module):
    """LPIPS v0.1 with AlexNet: ``forward(x, y)`` of (N, 3, H, W) in [0, 1] -> (N,) distances."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def load(self, features: dict[str, torch.Tensor], lins: dict[str, torch.Tensor]) -> LPIPS:
        """Load torchvision-named AlexNet features (``features.N.*`` or ``N.*``) and ``linK.model.1.weight``."""
        feats = {k.removeprefix("features."): v.float() for k, v in features.items()}
        self.features.load_state_dict(feats, strict=True)
        for i, lin in enumerate(self.lins):
            lin.weight.data.copy_(lins[f"lin{i}.model.1.weight"].float())
        return self

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return run_taps(self.features, (x * 2 - 1 - self.shift) / self.scale, TAPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x.shape[0], device=x.device)
        for fx, fy, lin in zip(self._taps(x), self._taps(y), self.lins, strict=True):
            # Unit-normalised along channels (the epsilon is LPIPS's own).
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny) ** 2).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def distance(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """Distances of image pairs of any size, a few at a time.

        Images smaller than AlexNet's reach (``MIN_SIDE``) are enlarged, both alike,
        so tiny test clips still get a figure.
        """
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SIDE:
            s = MIN_SIDE / min(h, w)
            size = (max(MIN_SIDE, round(h * s)), max(MIN_SIDE, round(w * s)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return torch.cat([self(x[i : i + chunk], y[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


def perceptual_dir(folder: str | Path | None = None) -> Path | None:
    """The folder of perceptual weights: ``folder``, else ``$GANIME_PERCEPTUAL``, else None."""
    chosen = folder or os.environ.get(ENV)
    return Path(chosen) if chosen else None


def load_lpips(folder: str | Path | None = None, device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS with weights from ``folder`` / ``$GANIME_PERCEPTUAL``, else downloaded (see the module)."""
    from safetensors.torch import load_file

    where = perceptual_dir(folder)
    model = LPIPS()
    if where is not None:
        alex, lin = where / ALEX_FILE, where / LIN_FILE
        for p in (alex, lin):
            if not p.is_file():
                need = f"the perceptual weights folder needs {ALEX_FILE} and {LIN_FILE}"
                raise PerceptualError(f"{p}: no such file ({need})")
        try:
            model.load(load_file(str(alex)), load_file(str(lin)))
        except (RuntimeError, KeyError, OSError) as e:
            raise PerceptualError(f"{where}: not LPIPS/AlexNet weights ({str(e).splitlines()[0]})") from None
        return model.to(device)
    if os.environ.get("GANIME_OFFLINE"):
        raise PerceptualError(f"no perceptual weights: pass --perceptual DIR or set {ENV} (GANIME_OFFLINE is set)")
    try:
        from torchvision.models import AlexNet_Weights, alexnet

        features = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1).features.state_dict()
        lins = torch.hub.load_state_dict_from_url(LIN_URL, map_location="cpu", progress=False)
    except (OSError, RuntimeError, ValueError) as e:
        raise PerceptualError(
            f"cannot download the LPIPS weights ({str(e).splitlines()[0]}); pass --perceptual DIR or set {ENV}"
        ) from None
    return model.load(features, lins).to(device)


# torchvision's vgg16().features up to relu5_3, and the indices of the ReLUs the losses tap
# (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
VGG_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG_TAPS = (3, 8, 15, 22, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """ImageNet VGG16 (frozen) returning the five ReLU taps of (N, 3, H, W) images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in VGG_LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return run_taps(self.features, (x - self.mean) / self.std, VGG_TAPS)


def load_vgg16(folder: str | Path | None = None, device: str | torch.device = "cpu") -> VGGFeatures:
    """ImageNet VGG16 features from ``folder`` / ``$GANIME_PERCEPTUAL``, else torchvision's download."""
    from safetensors.torch import load_file

    model = VGGFeatures()
    where = perceptual_dir(folder)
    if where is not None:
        path = where / VGG_FILE
        if not path.is_file():
            raise PerceptualError(f"{path}: no such file (the perceptual loss needs ImageNet VGG16 features)")
        state = {k.removeprefix("features."): v.float() for k, v in load_file(str(path)).items()}
    elif os.environ.get("GANIME_OFFLINE"):
        raise PerceptualError(f"no VGG16 weights: pass --perceptual DIR or set {ENV} (GANIME_OFFLINE is set)")
    else:
        try:
            from torchvision.models import VGG16_Weights, vgg16

            state = vgg16(weights=VGG16_Weights.IMAGENET1K_V1).features.state_dict()
        except (OSError, RuntimeError, ValueError) as e:
            raise PerceptualError(
                f"cannot download VGG16 ({str(e).splitlines()[0]}); pass --perceptual DIR or set {ENV}"
            ) from None
    try:
        model.features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < 30}, strict=True)
    except (RuntimeError, ValueError) as e:
        raise PerceptualError(f"{where}: not VGG16 features ({str(e).splitlines()[0]})") from None
    return model.to(device)
