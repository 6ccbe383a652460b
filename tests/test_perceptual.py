"""LPIPS and the position-free strip measures of ganime eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganime import metrics, perceptual


def _image(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def test_lpips_reproduces_the_published_values(perceptual_dir: Path) -> None:
    lpips = perceptual.load_lpips(perceptual_dir)
    ref = _image(perceptual_dir / "ex_ref.png")
    d0 = float(lpips.distance(ref, _image(perceptual_dir / "ex_p0.png")))
    d1 = float(lpips.distance(ref, _image(perceptual_dir / "ex_p1.png")))
    assert d0 == pytest.approx(0.722, abs=5e-4) and d1 == pytest.approx(0.138, abs=5e-4)
    assert float(lpips.distance(ref, ref)) == pytest.approx(0.0, abs=1e-6)


def test_a_folder_without_the_weights_is_named(tmp_path: Path) -> None:
    with pytest.raises(perceptual.PerceptualError, match=r"alexnet_features_imagenet\.safetensors: no such file"):
        perceptual.load_lpips(tmp_path)


def test_offline_without_a_folder_says_how() -> None:
    # conftest sets GANIME_OFFLINE and clears GANIME_PERCEPTUAL for every test
    with pytest.raises(perceptual.PerceptualError, match="--perceptual DIR"):
        perceptual.load_lpips(None)


def _strips_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textured truth (T, 64, 160, 3) with 32-px generated strips."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (3, 16, 40, 3)).astype(np.uint8)
    truth = base.repeat(4, axis=1).repeat(4, axis=2)  # 4x4 blocks: sharp edges, flat insides
    mask = np.zeros((64, 160), bool)
    mask[:, :32] = mask[:, -32:] = True
    return truth, np.ascontiguousarray(truth), mask


def test_blur_is_further_than_a_shifted_copy_in_lpips(perceptual_dir: Path) -> None:
    truth, _, mask = _strips_case()
    lpips = perceptual.load_lpips(perceptual_dir)
    blurred = truth.copy()
    t = torch.from_numpy(truth).permute(0, 3, 1, 2).float()
    soft = torch.nn.functional.avg_pool2d(t, 9, 1, 4, count_include_pad=False)
    blurred[:, mask] = soft.permute(0, 2, 3, 1).round().byte().numpy()[:, mask]
    same = metrics.strip_lpips(truth, truth, mask, lpips.distance)
    soft_d = metrics.strip_lpips(blurred, truth, mask, lpips.distance)
    assert same == pytest.approx(0.0, abs=1e-6) and soft_d > 0.1


def test_sharpness_ratio_and_patch_distance() -> None:
    truth, _, mask = _strips_case()
    assert metrics.sharpness(truth, truth, mask) == pytest.approx(1.0)
    assert metrics.patch_distance(truth, truth, mask) == pytest.approx(0.0, abs=1e-3)
    flat = truth.copy()
    flat[:, mask] = 128
    assert metrics.sharpness(flat, truth, mask) == 0.0
    # A texture repeating every 8 columns, moved by half that: patch for patch the same
    # texture, though every pixel is off. PSNR punishes it, the patch distance does not
    # (the shift is even: patches are looked up among those on a 2-px grid).
    rng = np.random.default_rng(1)
    period = rng.integers(0, 256, (3, 16, 2, 3)).astype(np.uint8).repeat(4, axis=1).repeat(4, axis=2)
    stripes = np.tile(period, (1, 1, 20, 1))  # (3, 64, 160, 3)
    moved = np.roll(stripes, 4, axis=2)
    assert metrics.psnr(moved, stripes, mask) < 15
    assert metrics.patch_distance(moved, stripes, mask) == pytest.approx(0.0, abs=1e-3)
    assert metrics.patch_distance(flat, truth, mask) > 20
    assert metrics.sharpness(moved, stripes, mask) == pytest.approx(1.0, abs=0.05)
