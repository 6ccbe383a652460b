"""Subtitle files beside a video (``ep01.en.forced.srt``): discovery, language and flags, charset."""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import av
import langcodes

SIDECAR_EXTENSIONS = frozenset({".srt", ".ass", ".ssa", ".vtt"})
_SIDECAR_FLAGS = {"forced": "forced", "sdh": "hearing_impaired", "cc": "hearing_impaired", "hi": "hearing_impaired"}
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$", re.I)


def _matroska_language(tag: str) -> str:
    """The ISO 639-2/B code Matroska names a language tag's language by (``fr``, ``fra``,
    ``fr-CA`` -> ``fre``; ``pt-BR`` -> ``por``); an unknown tag as it is, lower case."""
    try:
        return langcodes.Language.get(tag).to_alpha3(variant="B")
    except (LookupError, ValueError):
        return tag.lower()


@dataclass(frozen=True)
class Sidecar:
    """A subtitle file beside a video that belongs to it (``ep01.srt``, ``ep01.en.forced.ass``)."""

    path: Path
    language: str | None = None
    forced: bool = False
    hearing_impaired: bool = False

    def describe(self) -> str:
        bits = [self.path.name]
        if self.language:
            bits.append(f"[{self.language}]")
        bits += [flag for flag, on in (("forced", self.forced), ("SDH", self.hearing_impaired)) if on]
        return " ".join(bits)


# Single-byte Western encodings a detector cannot tell apart on a few lines of
# dialogue; subtitle files in any of them are nearly always Windows-1252.
_WESTERN = {"latin_1", "iso8859_1", "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13",
            "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman", "mac_iceland", "cp850", "cp1252"}  # fmt: skip
_SUBTITLE_FORMAT = {".srt": "srt", ".ass": "ass", ".ssa": "ass", ".vtt": "webvtt"}


# The legacy Windows code page of a language's subtitle files (ISO 639-2).
_CODE_PAGE = {
    **dict.fromkeys("eng fre fra ger deu spa ita por dut nld swe fin nor nob dan cat may ind".split(), "cp1252"),
    "tgl": "cp1252", "fil": "cp1252",
    **dict.fromkeys("pol cze ces hun hrv slo slk slv rum ron".split(), "cp1250"),
    **dict.fromkeys("rus ukr bul srp".split(), "cp1251"),
    "gre": "cp1253", "ell": "cp1253", "tur": "cp1254", "heb": "cp1255", "ara": "cp1256", "per": "cp1256",
    "jpn": "cp932", "kor": "cp949", "tha": "cp874", "vie": "cp1258",
}  # fmt: skip


def subtitle_as_utf8(data: bytes, language: str | None = None) -> tuple[bytes, str | None]:
    """A subtitle file's bytes as UTF-8, and the encoding they were read from (None: UTF-8 already).

    Matroska stores text subtitles as UTF-8; old fansubs are often Windows-1252,
    Shift-JIS, Big5 or Windows-1251, which would show as garbage if copied as they are.
    The language the file name gives picks the code page; without one, it is detected.
    """
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(enc, errors="replace").encode("utf-8"), None if enc == "utf-8-sig" else enc
    try:
        data.decode("utf-8")
        return data, None
    except UnicodeDecodeError:
        pass
    page = _CODE_PAGE.get(language or "")
    if page is not None:
        try:
            return data.decode(page).encode("utf-8"), page
        except UnicodeDecodeError:
            pass  # not that code page after all: detect
    from charset_normalizer import from_bytes  # only for files that are not UTF-8

    best = from_bytes(data).best()
    enc = best.encoding if best is not None else "cp1252"
    if enc in _WESTERN:
        enc = "cp1252"
    return data.decode(enc, errors="replace").encode("utf-8"), enc


def open_sidecar(sidecar: Sidecar) -> tuple[av.container.InputContainer, str | None]:
    """A sidecar opened for demuxing (its text as UTF-8), and the encoding it was read from."""
    data, enc = subtitle_as_utf8(sidecar.path.read_bytes(), sidecar.language)
    return av.open(io.BytesIO(data), format=_SUBTITLE_FORMAT[sidecar.path.suffix.lower()]), enc


def find_sidecars(video_path: str | os.PathLike[str]) -> list[Sidecar]:
    """The subtitle files named after ``video_path``: its stem, then language and flag tags.

    Only short tags count (``eng``, ``pt-BR``, ``forced``, ``sdh``), so ``ep01.5.srt``
    belongs to ``ep01.5.mkv``, not to ``ep01.mkv``.
    """
    video_path = Path(video_path)
    stem = video_path.stem
    found = []
    try:
        entries = sorted(video_path.parent.iterdir())
    except OSError:
        return []
    for f in entries:
        if f.suffix.lower() not in SIDECAR_EXTENSIONS or not f.is_file():
            continue
        if f.stem != stem and not f.stem.startswith(stem + "."):
            continue
        tags = f.stem[len(stem) :].split(".")[1:]
        language, flags = None, set()
        for tag in tags:
            if tag.lower() in _SIDECAR_FLAGS:
                flags.add(_SIDECAR_FLAGS[tag.lower()])
            elif language is None and _LANGUAGE_TAG.match(tag):
                language = _matroska_language(tag)
            else:
                break  # not a tag: the file belongs to another video
        else:
            found.append(Sidecar(f, language, "forced" in flags, "hearing_impaired" in flags))
    return found
