"""Text subtitles cue by cue: SRT, ASS, WebVTT and MP4 timed text, with bold, italic and underline."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

# 3GPP timed text face-style flags and the SRT tags that say the same.
BOLD, ITALIC, UNDERLINE = 1, 2, 4
_FACE_TAGS = ((BOLD, "b"), (ITALIC, "i"), (UNDERLINE, "u"))

# Subtitle codecs whose packets are text this module reads.
TEXT_CODECS = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text"})

# An ASS header for the timed-text encoder's sample description when the source has
# none of its own (SRT, WebVTT): white text, centred at the bottom.
DEFAULT_ASS_HEADER = """[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, \
Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, \
Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Sans,18,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""

Runs = list[tuple[int, int, int]]  # (first character, end character, face flags)


def movtext_to_srt(sample: bytes) -> str:
    """The text of one mov_text sample as an SRT cue (bold, italic, underline as tags).

    Fonts, sizes and colours are dropped: SRT players ignore most of them anyway.
    An empty string is a sample that clears the screen.
    """
    if len(sample) < 2:
        return ""
    n = int.from_bytes(sample[:2], "big")
    text = sample[2 : 2 + n].decode("utf-8", errors="replace")
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    pos = 2 + n
    while pos + 8 <= len(sample):
        size = int.from_bytes(sample[pos : pos + 4], "big")
        if size < 8 or pos + size > len(sample):
            break  # damaged: keep the text
        if sample[pos + 4 : pos + 8] == b"styl" and size >= 10:
            count = int.from_bytes(sample[pos + 8 : pos + 10], "big")
            for k in range(count):
                rec = sample[pos + 10 + 12 * k : pos + 22 + 12 * k]
                if len(rec) < 12:
                    break
                start = min(int.from_bytes(rec[0:2], "big"), len(text))
                end = min(int.from_bytes(rec[2:4], "big"), len(text))
                if end <= start:
                    continue
                tags = [tag for flag, tag in _FACE_TAGS if rec[6] & flag]
                opens.setdefault(start, []).extend(tags)
                closes.setdefault(end, []).extend(reversed(tags))
        pos += size
    return _with_tags(text, opens, closes)


def _with_tags(text: str, opens: dict[int, list[str]], closes: dict[int, list[str]], escape: bool = False) -> str:
    if not opens and not escape:
        return text
    out = []
    for i in range(len(text) + 1):
        out.extend(f"</{t}>" for t in closes.get(i, []))
        out.extend(f"<{t}>" for t in opens.get(i, []))
        if i < len(text):
            c = text[i]
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(c, c) if escape else c)
    return "".join(out)


def webvtt_cue(text: str, runs: Runs) -> str:
    """A WebVTT cue's text: bold, italic and underline as its tags, ``&`` and ``<`` escaped."""
    opens: dict[int, list[str]] = {}
    closes: dict[int, list[str]] = {}
    for start, end, flags in runs:
        tags = [tag for flag, tag in _FACE_TAGS if flags & flag]
        opens.setdefault(start, []).extend(tags)
        closes.setdefault(end, []).extend(reversed(tags))
    return _with_tags(text, opens, closes, escape=True)


class _Styled:
    """Plain text built piece by piece, with the face flags of every character."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.flags: list[int] = []

    def add(self, text: str, flags: int) -> None:
        self.chars.extend(text)
        self.flags.extend([flags] * len(text))

    def result(self) -> tuple[str, Runs]:
        # Trailing and leading blank lines (left by removed drawings or tags) go.
        text = "".join(self.chars)
        lead = len(text) - len(text.lstrip("\n "))
        text = text.strip("\n ")
        flags = self.flags[lead : lead + len(text)]
        runs: Runs = []
        for i, f in enumerate(flags):
            if runs and runs[-1][2] == f and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1, f)
            elif f:
                runs.append((i, i + 1, f))
        return text, [r for r in runs if r[2]]


_HTML_TAG = re.compile(r"<(/?)([a-zA-Z]+)[^>]*>")
_ASS_BLOCK = re.compile(r"\{[^}]*\}")
_ASS_TAG = re.compile(r"\\(b|i|u|p|r)(\d*)")


def srt_text(payload: str) -> tuple[str, Runs]:
    """Plain text and face runs of an SRT or WebVTT cue (``<b>``, ``<i>``, ``<u>``; other tags dropped)."""
    payload = _ASS_BLOCK.sub("", payload.replace("\r\n", "\n"))  # {\an8} and the like
    out = _Styled()
    flags = 0
    pos = 0
    for m in _HTML_TAG.finditer(payload):
        out.add(_unescape(payload[pos : m.start()]), flags)
        pos = m.end()
        bit = {"b": BOLD, "i": ITALIC, "u": UNDERLINE}.get(m.group(2).lower(), 0)
        flags = flags & ~bit if m.group(1) else flags | bit
    out.add(_unescape(payload[pos:]), flags)
    return out.result()


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", "\u00a0").replace("&amp;", "&")


def ass_styles(header: bytes | str | None) -> dict[str, int]:
    """Face flags (bold, italic, underline) of each style an ASS header defines."""
    if isinstance(header, bytes):
        header = header.decode("utf-8", errors="replace")
    fields: list[str] = []
    styles: dict[str, int] = {}
    section = ""
    for line in (header or "").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.lower()
        elif section in ("[v4+ styles]", "[v4 styles]") and ":" in line:
            key, value = (x.strip() for x in line.split(":", 1))
            values = [v.strip() for v in value.split(",")]
            if key.lower() == "format":
                fields = [f.lower() for f in values]
            elif key.lower() == "style" and fields and len(values) >= len(fields):
                row = dict(zip(fields, values, strict=False))
                flags = 0
                for name, bit in (("bold", BOLD), ("italic", ITALIC), ("underline", UNDERLINE)):
                    if row.get(name, "0") not in ("0", ""):
                        flags |= bit
                styles[row.get("name", "")] = flags
    return styles


def ass_text(payload: str, styles: dict[str, int] | None = None) -> tuple[str, Runs]:
    """Plain text and face runs of one ASS event as Matroska stores it.

    The packet is ``ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text``;
    the event's style (from ``styles``, see ``ass_styles``) gives the starting faces,
    override blocks change them (``\\b1``, ``\\i0``, ``\\r``) and are otherwise
    dropped, as are vector drawings (``\\p1``), which would read as numbers.
    """
    parts = payload.split(",", 8)
    text = parts[8] if len(parts) == 9 else payload
    base = (styles or {}).get(parts[2].strip(), 0) if len(parts) == 9 else 0
    out = _Styled()
    flags, drawing = base, False
    pos = 0
    for m in _ASS_BLOCK.finditer(text):
        if not drawing:
            out.add(_ass_plain(text[pos : m.start()]), flags)
        pos = m.end()
        for tag, value in _ASS_TAG.findall(m.group(0)):
            if tag == "r":
                flags = base
                continue
            if tag == "p":
                drawing = bool(value) and int(value) > 0
                continue
            if not value:
                continue
            on = int(value) not in (0, 400)  # \b400 is the normal weight
            bit = {"b": BOLD, "i": ITALIC, "u": UNDERLINE}[tag]
            flags = flags | bit if on else flags & ~bit
    if not drawing:
        out.add(_ass_plain(text[pos:]), flags)
    return out.result()


def _ass_plain(text: str) -> str:
    return text.replace("\\N", "\n").replace("\\n", "\n").replace("\\h", "\u00a0")


def cue_text(codec: str, payload: bytes, styles: dict[str, int] | None = None) -> tuple[str, Runs]:
    """Plain text and face runs of one text subtitle packet of ``codec``."""
    text = payload.decode("utf-8", errors="replace").rstrip("\x00")
    return ass_text(text, styles) if codec in ("ass", "ssa") else srt_text(text)


def default_style(description: bytes | None) -> tuple[int, int]:
    """Font size and colour (RGBA) of a timed-text sample description's default style."""
    # displayFlags(4) justification(2) background(4) box(8), then the style record:
    # start(2) end(2) font(2) face(1) size(1) colour(4).
    if description and len(description) >= 30:
        return description[25], int.from_bytes(description[26:30], "big")
    return 18, 0xFFFFFFFF


def movtext_sample(text: str, runs: Runs = (), size: int = 18, color: int = 0xFFFFFFFF) -> bytes:
    """One mov_text sample: the text, and a ``styl`` box when it has styled runs.

    ``size`` and ``color`` should be the track's default style, so that a run changes
    only its faces.
    """
    data = text.encode("utf-8")[:65535]
    sample = struct.pack(">H", len(data)) + data
    if runs:
        # Each record: first and end character, font 1, face flags, size, colour.
        recs = b"".join(struct.pack(">HHHBBI", s, e, 1, f, size, color) for s, e, f in runs)
        sample += struct.pack(">I4sH", 10 + len(recs), b"styl", len(runs)) + recs
    return sample


@dataclass
class _Cue:
    end: int | None  # ms; None: until the next cue starts
    order: int
    text: str
    runs: Runs


@dataclass
class TimedTextTrack:
    """Turns cues that may overlap into the back-to-back samples MP4 timed text needs.

    Cues arrive in order of start (as demuxed); ``add`` returns the samples that are
    settled by then as (start ms, end ms, payload), the screen cleared by an empty
    sample between cues, and cues on screen together shown together.
    """

    size: int = 18  # the default style's font size and colour, repeated in styled runs
    color: int = 0xFFFFFFFF
    _active: list[_Cue] = field(default_factory=list)
    _t: int | None = None  # start of what is on screen now and not yet returned
    _order: int = 0

    def add(self, start: int, end: int | None, text: str, runs: Runs) -> list[tuple[int, int, bytes]]:
        if not text:
            return []
        if self._t is not None:
            start = max(start, self._t)
        for c in self._active:
            if c.end is None:
                c.end = start  # a cue without a length shows until the next
        out = self._advance(start) if self._t is not None else []
        self._t = start
        if end is not None and end <= start:
            return out
        self._order += 1
        self._active.append(_Cue(end, self._order, text, list(runs)))
        return out

    def flush(self) -> list[tuple[int, int, bytes]]:
        """The samples still held, the last cue shown to its end."""
        if self._t is None:
            return []
        for c in self._active:
            if c.end is None:
                c.end = self._t + 5000  # no length and nothing after: five seconds
        ends = [c.end for c in self._active if c.end is not None]
        out = self._advance(max(ends), clear=False) if ends else []
        self._active = []
        return out

    def _advance(self, until: int, clear: bool = True) -> list[tuple[int, int, bytes]]:
        out: list[tuple[int, int, bytes]] = []
        assert self._t is not None
        while self._active:
            e = min(c.end for c in self._active if c.end is not None)
            if e > until:
                break
            if self._t < e:
                out.append((self._t, e, self._compose()))
            self._t = max(self._t, e)
            self._active = [c for c in self._active if c.end is not None and c.end > e]
        if self._active:
            if self._t < until:
                out.append((self._t, until, self._compose()))
        elif clear and self._t < until:
            out.append((self._t, until, movtext_sample("")))
        self._t = max(self._t, until)
        return out

    def _compose(self) -> bytes:
        text, runs, offset = [], [], 0
        for c in sorted(self._active, key=lambda c: c.order):
            text.append(c.text)
            runs.extend((s + offset, e + offset, f) for s, e, f in c.runs)
            offset += len(c.text) + 1  # and the line break
        return movtext_sample("\n".join(text), runs, self.size, self.color)
