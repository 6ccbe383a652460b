"""Tiny test clips, generated in code with PyAV: nothing is downloaded or read from outside."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from ganime import EncoderSettings, synthetic
from ganime.pipeline import ConvertOptions, convert_file

SRT = """1
00:00:00,100 --> 00:00:00,300
Hello

2
00:00:00,300 --> 00:00:00,450
World
"""


def cartoon_frames(n: int, width: int = 64, height: int = 48, seed: int = 0, pan: float = 0.5) -> list[np.ndarray]:
    """``n`` frames of a panning cartoon, cut to ``width`` x ``height`` from a 16:9 view."""
    wide = round(height * 16 / 9 / 2) * 2
    scene = synthetic.Scene(width=max(wide, width), height=height, frames=n, pan=pan, seed=seed)
    return [synthetic.centre_crop(f, Fraction(width, height)) for f in synthetic.render(scene)]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    err = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else 10 * np.log10(peak**2 / err)


def make_rich_source(
    path: Path,
    frames: list[np.ndarray],
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    fps: Fraction = Fraction(24),
    sar: Fraction | None = None,
    crf: int = 18,
) -> Path:
    """An MKV with everything a real episode carries around its video.

    Two AAC tracks (Japanese default, English commentary), an SRT subtitle track
    (forced, with language and title), a font attachment, two chapters and
    container tags; the video uses ``pts`` (in ``time_base``) when given.
    """
    srt_path = path.with_suffix(".srt")
    srt_path.write_text(SRT)
    pts = pts if pts is not None else [round(i / fps / time_base) for i in range(len(frames))]
    with av.open(str(srt_path)) as srt, av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "ultrafast"})
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = time_base
        if sar:
            vs.codec_context.sample_aspect_ratio = sar
        vs.metadata["title"] = "Episode 1"
        audio = []
        for lang, title, disp in (("jpn", "Stereo", "default"), ("eng", "Commentary", "comment")):
            a = out.add_stream("aac", rate=48000, layout="stereo")
            a.metadata["language"] = lang
            a.metadata["title"] = title
            a.disposition = getattr(av.stream.Disposition, disp)
            audio.append(a)
        sub = out.add_stream_from_template(srt.streams[0])
        sub.metadata["language"] = "eng"
        sub.metadata["title"] = "Signs"
        sub.disposition = av.stream.Disposition.forced
        out.add_attachment("font.ttf", "application/x-truetype-font", b"\x00\x01\x00\x00fake-font" * 64)
        out.metadata["title"] = "Test Show"
        out.metadata["comment"] = "made by the tests"
        end = round(pts[-1] * time_base * 1000) + 100
        out.set_chapters(
            [
                {"id": 1, "start": 0, "end": end // 2, "time_base": Fraction(1, 1000), "metadata": {"title": "Part A"}},
                {"id": 2, "start": end // 2, "end": end, "time_base": Fraction(1, 1000), "metadata": {"title": "B"}},
            ]
        )
        for img, p in zip(frames, pts, strict=True):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = p, time_base
            for pkt in vs.encode(f):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        seconds = float(pts[-1] * time_base) + 0.1
        tone = synthetic.melody(seconds)
        for k, a in enumerate(audio):
            for i in range(0, tone.shape[1] - 1024 + 1, 1024):
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, i : i + 1024] * (k + 1) / 2), "fltp", "stereo"
                )
                af.sample_rate, af.pts, af.time_base = 48000, i, Fraction(1, 48000)
                for pkt in a.encode(af):
                    out.mux(pkt)
            for pkt in a.encode():
                out.mux(pkt)
        for pkt in srt.demux():
            if pkt.size:
                pkt.stream = sub
                out.mux(pkt)
    srt_path.unlink()
    return path


def packets(path: Path) -> dict[int, list[tuple[int | None, int | None, bytes]]]:
    """Every packet of every stream: (pts, dts, payload), in file order."""
    got: dict[int, list[tuple[int | None, int | None, bytes]]] = {}
    with av.open(str(path)) as c:
        for p in c.demux():
            if p.size:
                got.setdefault(p.stream.index, []).append((p.pts, p.dts, bytes(p)))
    return got


def decoded_frames(path: Path) -> list[tuple[int, np.ndarray]]:
    """(pts, RGB array) of every video frame."""
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


@pytest.fixture(scope="session")
def rich_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x48 4:3 MKV with two audio tracks, subtitles, a font, chapters and tags."""
    d = tmp_path_factory.mktemp("src")
    return make_rich_source(d / "episode.mkv", cartoon_frames(12))


@pytest.fixture(scope="session")
def plain_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x48 4:3 clip with one audio track."""
    d = tmp_path_factory.mktemp("plain")
    frames = cartoon_frames(8, seed=3)
    return synthetic.write_clip(d / "clip.mp4", frames, Fraction(24), synthetic.melody(0.4))


@pytest.fixture(autouse=True)
def private_weight_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see (or write) the user's installed weights."""
    monkeypatch.setenv("GANIME_HOME", str(tmp_path_factory.mktemp("ganime-home")))
    # Nothing is downloaded in tests: LPIPS comes from the shared folder or is not measured.
    monkeypatch.setenv("GANIME_OFFLINE", "1")
    monkeypatch.delenv("GANIME_PERCEPTUAL", raising=False)


# The perceptual weights kept beside the project (a development checkout and CI have
# them; a user's checkout does not, and the tests that need them skip).
PERCEPTUAL = Path(__file__).resolve().parents[2] / "shared" / "weights" / "perceptual"


@pytest.fixture
def perceptual_dir() -> Path:
    """The folder of LPIPS weights, or a skip saying where it was looked for."""
    if not (PERCEPTUAL / "alexnet_features_imagenet.safetensors").is_file():
        pytest.skip(f"perceptual weights not found at {PERCEPTUAL}")
    return PERCEPTUAL


def view(scale: float) -> np.ndarray:
    """A 160x120 window on a painted world whose pixels are ``scale`` world pixels (a zoom)."""
    world = torch.from_numpy(synthetic.paint_background(300, 160, seed=4)).permute(2, 0, 1)[None].float()
    h, w = 120, 160
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    gx, gy = 70 + (xs - (w - 1) / 2) * scale + (w - 1) / 2, 20 + (ys - (h - 1) / 2) * scale + (h - 1) / 2
    grid = torch.stack([(2 * gx + 1) / 300 - 1, (2 * gy + 1) / 160 - 1], -1)[None]
    img = torch.nn.functional.grid_sample(world, grid, align_corners=False)
    return img[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


LOSSLESS = EncoderSettings(codec="x264", crf=0, preset="ultrafast")


def run(src: Path, dst: Path, **kw: object) -> Path:
    """Convert ``src`` (losslessly unless told) and check the output is whole and alone."""
    opts = ConvertOptions(encoder=kw.pop("encoder", LOSSLESS), device="cpu", **kw)  # type: ignore[arg-type]
    result = convert_file(src, dst, opts)
    assert result.status == "converted", result.message
    assert dst.exists()
    assert not list(dst.parent.glob("*.partial*"))
    return dst


def load_benchmark(name: str) -> object:
    """A script of ``benchmarks/`` as a module (they are scripts, not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
