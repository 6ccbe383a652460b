"""Encoder choice and settings: codec names, CRF and presets per encoder, pixel formats."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

# name -> (8-bit encoder, high bit depth encoder)
ENCODERS: dict[str, tuple[str, str]] = {
    "x264": ("libx264", "libx264"),
    "x265": ("libx265", "libx265"),
    "av1": ("libsvtav1", "libsvtav1"),
    "nvenc": ("h264_nvenc", "hevc_nvenc"),
}
DEFAULT_CRF = {"x264": 18, "x265": 20, "av1": 28, "nvenc": 20}
DEFAULT_PRESET = {"x264": "medium", "x265": "medium", "av1": "8", "nvenc": "p5"}
# x264-style preset names translated for encoders that number their presets.
_NAMED = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
_SVT = ["12", "11", "10", "9", "8", "7", "5", "4", "3"]
_NVENC = ["p1", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p7"]


# The quality scale each encoder accepts (x264/x265 CRF, SVT-AV1 CRF, NVENC CQ).
CRF_RANGE = {"x264": (0, 51), "x265": (0, 51), "av1": (0, 63), "nvenc": (0, 51)}


class EncoderSettingsError(ValueError):
    """An encoder setting out of range; ``flag`` names the option, for a usage error."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message)
        self.flag = flag


@dataclass(frozen=True)
class EncoderSettings:
    """Which encoder and how hard it works. ``crf``/``preset`` None means the codec default."""

    codec: str = "x264"
    crf: float | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise EncoderSettingsError("--codec", f"unknown codec {self.codec!r} (choose from {', '.join(ENCODERS)})")
        lo, hi = CRF_RANGE[self.codec]
        if self.crf is not None and not lo <= self.crf <= hi:
            raise EncoderSettingsError("--crf", f"{self.crf:g} is out of range for {self.codec}: {lo} to {hi}")
        if self.preset is not None and self.preset not in self.presets:
            raise EncoderSettingsError(
                "--preset", f"unknown {self.codec} preset {self.preset!r} (choose from {', '.join(self.presets)})"
            )

    @property
    def presets(self) -> tuple[str, ...]:
        """The presets this codec takes: x264's names (translated for the others) and the codec's own."""
        own = {
            "x264": ("placebo",),
            "x265": ("placebo",),
            "av1": tuple(str(n) for n in range(14)),
            "nvenc": tuple(f"p{n}" for n in range(1, 8)),
        }
        return tuple(_NAMED) + own.get(self.codec, ())

    @property
    def keeps_interlacing(self) -> bool:
        """Whether this encoder can code an interlaced source as interlaced (x264's MBAFF)."""
        return self.codec == "x264"

    def check_available(self) -> None:
        """Raise EncoderSettingsError (``--codec``) when this codec cannot encode here.

        Found before any file is opened: a software encoder missing from the PyAV build,
        or NVENC without an NVIDIA GPU and driver (it is in the wheel either way, and
        fails only when opened, so it is opened once on a small picture).
        """
        for name in dict.fromkeys(ENCODERS[self.codec]):
            try:
                codec = av.codec.Codec(name, "w")
            except (av.codec.codec.UnknownCodecError, ValueError):
                raise EncoderSettingsError(
                    "--codec", f"{self.codec} ({name}) is not in this build of PyAV; use --codec x264"
                ) from None
            if self.codec != "nvenc":
                continue
            try:
                cc = av.CodecContext.create(codec, "w")
                cc.width, cc.height, cc.pix_fmt = 256, 256, "yuv420p"
                cc.time_base = Fraction(1, 25)
                cc.open()
            except (av.FFmpegError, OSError, ValueError) as e:
                why = getattr(e, "strerror", None) or str(e)
                raise EncoderSettingsError(
                    "--codec",
                    f"nvenc needs an NVIDIA GPU and driver, and {name} could not start here ({why}); use x264",
                ) from None

    def encoder_name(self, bit_depth: int) -> str:
        return ENCODERS[self.codec][1 if bit_depth > 8 else 0]

    def options(self) -> dict[str, str]:
        """FFmpeg encoder options for this codec."""
        crf = self.crf if self.crf is not None else DEFAULT_CRF[self.codec]
        preset = self.preset or DEFAULT_PRESET[self.codec]
        crf_text = f"{crf:g}"
        if self.codec in ("x264", "x265"):
            return {"crf": crf_text, "preset": preset, "tune": "animation"}
        if self.codec == "av1":
            preset = _SVT[_NAMED.index(preset)] if preset in _NAMED else preset
            return {"crf": crf_text, "preset": preset}
        preset = _NVENC[_NAMED.index(preset)] if preset in _NAMED else preset
        return {"rc": "vbr", "cq": crf_text, "preset": preset, "b": "0"}

    def pix_fmt(self, source_fmt: str, bit_depth: int) -> str:
        """Keep the source's chroma layout and bit depth where the encoder can."""
        name = self.encoder_name(bit_depth)
        supported = [f.name for f in av.codec.Codec(name, "w").video_formats or ()]
        if self.codec == "nvenc":
            return "p010le" if bit_depth > 8 else "yuv420p"
        src = source_fmt.replace("yuvj", "yuv")
        if src in supported and src.startswith("yuv"):
            return src
        if bit_depth > 8:
            for cand in ("yuv420p10le",):
                if cand in supported:
                    return cand
        return "yuv420p"
