"""CUDA variants of the engine's guarantees; skipped without a GPU (``benchmarks/gpu_check.py`` runs them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import cartoon_frames

from ganime.engine import Filler
from ganime.geometry import compute_layout
from ganime.models import ARCHS

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
CUDA = torch.device("cuda", 0)


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    model = ARCHS["glcic"]({"width": 0.25, "prefill": "edge"}).eval()
    with torch.no_grad():  # away from the zero start, so the network's output counts
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def test_cuda_fill_is_batch_invariant_and_keeps_known_pixels() -> None:
    frames = cartoon_frames(6, 128, 96)
    layout = compute_layout(128, 96)
    outs = [Filler(_network().to(CUDA), layout, CUDA, batch_size=b).fill(frames) for b in (1, 3, 6)]
    for a, b in zip(outs[0], outs[2], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # bf16 kernels may differ by a level
    for f, out in zip(frames, outs[1], strict=True):
        assert np.array_equal(out[:, layout.left : layout.left + 128], f)


def test_cuda_autocast_is_close_to_float32() -> None:
    model = _network().to(CUDA)
    image = torch.rand(2, 3, 96, 172, device=CUDA)
    mask = torch.zeros(2, 1, 96, 172, device=CUDA)
    mask[..., :22] = 1
    mask[..., 150:] = 1
    with torch.inference_mode():
        full = model(image * (1 - mask), mask)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(image * (1 - mask), mask).float()
    assert (full - half).abs().mean() < 0.01 and (full - half).abs().max() < 0.15


def test_cuda_out_of_memory_backs_off_under_a_real_memory_cap() -> None:
    """A real allocation failure: the process may use a sliver of the GPU, the batch asks for more."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(CUDA).total_memory
    frames = cartoon_frames(8, 1440, 1080)
    layout = compute_layout(1440, 1080)
    model = ARCHS["lama"]({"n_blocks": 2, "ngf": 32, "max_features": 256}).eval().to(CUDA)
    per_frame = 3 * 1080 * layout.canvas_width * 4 * 40  # a rough upper bound of one frame's activations
    torch.cuda.set_per_process_memory_fraction(min(0.9, 3 * per_frame / total), CUDA)
    try:
        filler = Filler(model, layout, CUDA, batch_size=8)
        out = filler.fill(frames)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
        torch.cuda.empty_cache()
    assert len(out) == 8 and filler.stats.oom_retries >= 1 and filler.batch_size < 8
