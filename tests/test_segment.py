"""The character segmenter: U²-Net written here, the released weights converted from ONNX."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from ganime import segment, synthetic, weights
from ganime.cli import app

ONNX = Path(__file__).resolve().parents[2] / "shared" / "weights" / "segment" / "u2netp.onnx"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]


def figure() -> np.ndarray:
    """A normalised 320x320 input: an outlined oval (the salient object) on a soft gradient."""
    yy, xx = np.mgrid[0:320, 0:320].astype(np.float32) / 320
    img = np.stack([0.3 + 0.4 * yy, 0.6 - 0.2 * xx, 0.5 + 0.1 * np.sin(9 * xx)])
    inside = ((xx - 0.55) / 0.18) ** 2 + ((yy - 0.5) / 0.3) ** 2 <= 1
    ring = (((xx - 0.55) / 0.2) ** 2 + ((yy - 0.5) / 0.32) ** 2 <= 1) & ~inside
    img[:, ring] = 0.1
    img[0, inside], img[1, inside], img[2, inside] = 0.95, 0.55, 0.6
    return ((img - _MEAN) / _STD)[None].astype(np.float32)


def test_the_shipped_segmenter_gives_the_released_network_s_output() -> None:
    """Reference values from onnxruntime running the released u2netp.onnx on the same input."""
    path = segment.find_weights()
    assert path is not None and path.name == "u2netp.safetensors"
    net = segment.load(path).net
    assert sum(p.numel() for p in net.parameters()) == 1_125_485  # U²-Net-p, "1.13 M"
    with torch.no_grad():
        out = torch.sigmoid(net(torch.from_numpy(figure())))[0, 0].numpy()
    assert abs(float(out.mean()) - 0.20173435) < 2e-5
    for (y, x), want in zip(
        ((160, 176), (100, 170), (160, 20), (20, 300), (300, 300)),
        (0.99997, 0.999999, 1.2e-05, 1.1e-05, 3e-06),
        strict=True,
    ):
        assert abs(float(out[y, x]) - want) < 1e-4, (y, x)


def test_the_full_u2net_has_the_released_shape() -> None:
    net = segment.U2Net({"small": False})
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 44.0
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 96)).shape == (1, 1, 64, 96)  # any size, not only 320


@pytest.mark.skipif(not ONNX.is_file(), reason="needs ../shared/weights/segment/u2netp.onnx")
@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the onnx package (ganime[onnx])")
def test_importing_the_onnx_file_reproduces_it(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["models", "import-segmenter", str(ONNX), str(tmp_path / "u.safetensors")])
    assert r.exit_code == 0, r.output
    arch, config, state, meta = weights.read(tmp_path / "u.safetensors")
    assert arch == "u2net" and config == {"small": True} and meta["source_sha256"].startswith("309c8469")
    shipped = weights.read(segment.find_weights())[2]  # type: ignore[arg-type]
    assert all(torch.equal(state[k], shipped[k]) for k in shipped)  # the shipped file is this conversion
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed: the comparison with the released network is left out")
    import onnxruntime

    x = np.random.default_rng(0).standard_normal((1, 3, 320, 320)).astype(np.float32)
    ref = onnxruntime.InferenceSession(str(ONNX)).run(None, {"input.1": x})[0]
    with torch.no_grad():
        mine = torch.sigmoid(segment.load(tmp_path / "u.safetensors").net(torch.from_numpy(x))).numpy()
    assert np.abs(ref - mine).max() < 1e-4


def test_a_file_that_is_not_onnx_is_one_line(tmp_path: Path) -> None:
    if importlib.util.find_spec("onnx") is None:
        pytest.skip("needs the onnx package")
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    r = CliRunner().invoke(app, ["models", "import-segmenter", str(bad), str(tmp_path / "o.safetensors")])
    assert r.exit_code == 1 and "x.onnx" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("seed", range(4))
def test_a_cartoon_character_is_found(seed: int) -> None:
    """The walking character of a synthetic scene: marked, its background not."""
    scene = synthetic.Scene(width=428, height=240, frames=4, pan=0.3, seed=seed)
    drawn = list(synthetic.render(scene, character=True))[2]
    empty = list(synthetic.render(scene, character=False))[2]
    truth = np.abs(drawn.astype(int) - empty.astype(int)).sum(-1) > 0
    mask = segment.load()(torch.from_numpy(drawn).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
    assert mask.shape == truth.shape
    assert mask[truth].mean() > 0.8 and mask[~truth].mean() < 0.2


def test_bfloat16_stages_hand_on_what_each_stage_would_round_to() -> None:
    """Stages in bfloat16 pass their outputs on without a round trip through float32:
    the output is the one of every stage taking float32 in and giving float32 out,
    to the bit (the upsampling between stages still computed in float32)."""
    torch.manual_seed(0)
    net = segment.U2Net().eval()
    for p in net.parameters():  # weights of a trained net's size, not the init's
        p.data.normal_(0, 0.05)
    fast = segment.U2Net().eval()
    fast.load_state_dict(net.state_dict())
    segment._bf16_stages(fast)
    stages = [copy.deepcopy(s) for s in (*net.encoder, *net.decoder)]
    low = [i != len(net.encoder) + segment._FLOAT_DECODER for i in range(len(stages))]
    # The same stages, rounded as the segmenter rounds them.
    bf16 = [s.to(torch.bfloat16) if lo else s for s, lo in zip(stages, low, strict=True)]

    def stage(k: int, x: torch.Tensor) -> torch.Tensor:
        return bf16[k](x.to(torch.bfloat16)).float() if low[k] else bf16[k](x)

    x = torch.rand(1, 3, 96, 80)
    with torch.no_grad():
        skips, h = [], x
        for i in range(len(net.encoder)):
            h = stage(i, h)
            skips.append(h)
            if i < len(net.encoder) - 1:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        decoded = [h]
        for j, skip in enumerate(reversed(skips[:-1])):
            h = stage(len(net.encoder) + j, torch.cat((segment._resize(h, skip), skip), 1))
            decoded.append(h)
        sides = [conv(f) for conv, f in zip(net.sides, reversed(decoded), strict=True)]
        want = net.fuse(torch.cat([sides[0], *(segment._resize(s, sides[0]) for s in sides[1:])], 1))
        got = fast(x)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert fast.encoder[0](x).dtype == torch.bfloat16  # handed on as it is, no copy to float32


def test_the_bfloat16_stages_keep_the_float32_masks() -> None:
    """Where the CPU computes in bfloat16 the segmenter runs most stages in it: its
    masks of a figure match the float32 network's, and the released net stays float32."""
    seg = segment.load()
    if not seg.bf16:
        pytest.skip("this CPU has no bfloat16 arithmetic: the segmenter runs in float32")
    assert all(p.dtype == torch.float32 for p in seg.net.parameters())
    stages = [*seg._run.encoder, *seg._run.decoder]
    low = [next(s.parameters()).dtype == torch.bfloat16 for s in stages]
    assert sum(low) == len(stages) - 1 and not low[len(seg._run.encoder) + 3]  # all but one decoder stage
    image = torch.from_numpy(figure() * _STD + _MEAN).float().clamp(0, 1)
    image = F.interpolate(image, size=(240, 200), mode="bilinear", align_corners=False)
    seg.size = 224
    fast = seg(image, stretch=False)[0, 0] > 0.5
    ref = segment.Segmenter(segment.load().net, "cpu")
    ref._run = ref.net  # float32 throughout
    ref.size = 224
    slow = ref(image, stretch=False)[0, 0] > 0.5
    assert slow.float().mean() > 0.1  # the figure is found
    assert (fast & slow).sum() / (fast | slow).sum() > 0.97
