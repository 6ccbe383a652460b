"""Text subtitles between Matroska's forms (SRT, ASS, WebVTT) and MP4 timed text (mov_text).

MP4 holds text subtitles only as 3GPP timed text: a sample is a 16-bit big-endian
byte count, that much UTF-8, then optional boxes; its ``styl`` box marks bold, italic
and underline runs in characters. A sample shows until the next one, so cues that
overlap are merged and an empty sample clears the screen between cues. Matroska
cannot hold timed text, which goes the other way as SRT.
"""

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


# --------------------------------------------------------------- bitmap subtitles
#
# DVD (VobSub) and Blu-ray (PGS) subtitles are pictures placed at pixel positions on
# the source frame. On the wider canvas they must move with the picture, and the
# canvas size they are scaled from must be the new one, or players stretch them to
# 16:9 and set them off-centre.


def _shift_span(a: int, b: int, d: int, limit: int, top: int = 4095) -> tuple[int, int]:
    """Move the span [a, b] by ``d``, then back inside [0, limit) keeping its length."""
    a, b = a + d, b + d
    if b >= limit:
        a, b = a - (b - limit + 1), limit - 1
    if a < 0:
        a, b = 0, b - a
    return a, min(b, top)


def vobsub_header(header: bytes, grow_width: int, grow_height: int) -> bytes:
    """A VobSub (.idx) header whose ``size:`` is ``grow_width`` by ``grow_height`` larger."""
    text = header.decode("latin-1")

    def size(m: re.Match[str]) -> str:
        return f"size: {int(m[1]) + grow_width}x{int(m[2]) + grow_height}"

    return re.sub(r"size:\s*(\d+)\s*x\s*(\d+)", size, text, count=1).encode("latin-1")


def _two_spans(a: int, b: int) -> bytes:
    """Two 12-bit numbers in three bytes, as a DVD subtitle's display area stores them."""
    return bytes([a >> 4, ((a & 0xF) << 4) | (b >> 8), b & 0xFF])


def move_spu(packet: bytes, dx: int, dy: int, width: int, height: int) -> bytes:
    """A DVD subtitle (SPU) packet with its display area moved by (dx, dy), kept inside width x height.

    The control sequences after the pixel data carry the area as four 12-bit numbers
    (command 0x05); they are rewritten in place, so the packet keeps its size.
    """
    data = bytearray(packet)
    if len(data) < 4:
        return packet
    ctrl = int.from_bytes(data[2:4], "big")
    seen: set[int] = set()
    while ctrl + 4 <= len(data) and ctrl not in seen:
        seen.add(ctrl)
        following = int.from_bytes(data[ctrl + 2 : ctrl + 4], "big")
        i = ctrl + 4
        while i < len(data):
            cmd = data[i]
            i += 1
            if cmd == 0xFF:
                break
            if cmd in (0x00, 0x01, 0x02):
                continue
            if cmd in (0x03, 0x04):
                i += 2
            elif cmd == 0x05 and i + 6 <= len(data):
                b = data[i : i + 6]
                x1, x2 = (b[0] << 4) | (b[1] >> 4), ((b[1] & 0xF) << 8) | b[2]
                y1, y2 = (b[3] << 4) | (b[4] >> 4), ((b[4] & 0xF) << 8) | b[5]
                x1, x2 = _shift_span(x1, x2, dx, width)
                y1, y2 = _shift_span(y1, y2, dy, height)
                data[i : i + 6] = _two_spans(x1, x2) + _two_spans(y1, y2)
                i += 6
            elif cmd == 0x06:
                i += 4
            else:
                return bytes(data)  # a command this does not know: leave the rest as it is
        if following == ctrl:
            break
        ctrl = following
    return bytes(data)


def move_pgs(packet: bytes, dx: int, dy: int, grow_width: int, grow_height: int) -> bytes:
    """A PGS (Blu-ray) subtitle packet for a canvas grown by the given amounts, its pictures moved by (dx, dy).

    The presentation segment (0x16) carries the video size and each object's
    position; the window segment (0x17) each window's. All are rewritten in place.
    """
    data = bytearray(packet)
    width = height = None
    i = 0
    while i + 3 <= len(data):
        kind, size = data[i], int.from_bytes(data[i + 1 : i + 3], "big")
        seg = i + 3
        if seg + size > len(data):
            break
        if kind == 0x16 and size >= 11:
            width = int.from_bytes(data[seg : seg + 2], "big") + grow_width
            height = int.from_bytes(data[seg + 2 : seg + 4], "big") + grow_height
            data[seg : seg + 4] = width.to_bytes(2, "big") + height.to_bytes(2, "big")
            j = seg + 11
            for _ in range(data[seg + 10]):
                if j + 8 > seg + size:
                    break
                x = max(0, int.from_bytes(data[j + 4 : j + 6], "big") + dx)
                y = max(0, int.from_bytes(data[j + 6 : j + 8], "big") + dy)
                data[j + 4 : j + 8] = x.to_bytes(2, "big") + y.to_bytes(2, "big")
                j += 16 if data[j + 3] & 0x80 else 8  # a cropped object carries its crop
        elif kind == 0x17 and size >= 1:
            j = seg + 1
            for _ in range(data[seg]):
                if j + 9 > seg + size:
                    break
                x, y, w, h = (int.from_bytes(data[j + k : j + k + 2], "big") for k in (1, 3, 5, 7))
                if width is not None and height is not None:
                    x = _shift_span(x, x + w - 1, dx, width, 65535)[0]
                    y = _shift_span(y, y + h - 1, dy, height, 65535)[0]
                else:
                    x, y = max(0, x + dx), max(0, y + dy)
                data[j + 1 : j + 5] = x.to_bytes(2, "big") + y.to_bytes(2, "big")
                j += 9
        i = seg + size
    return bytes(data)


# ----------------------------------------------------------------- ASS on the canvas
#
# An ASS script positions text in its own PlayResX x PlayResY space, stretched over
# the video frame. On the wider canvas that space must widen with it (or renderers
# stretch the glyphs) and every position move with the picture (or signs typeset
# onto the picture land beside it).

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_POS_LIKE = re.compile(r"\\(pos|org)\(" + _NUM + "," + _NUM + r"\)")
_MOVE = re.compile(r"\\move\(" + _NUM + "," + _NUM + "," + _NUM + "," + _NUM + r"((?:,\s*-?\d+\s*){0,2})\)")
_RECT_CLIP = re.compile(r"\\(i?clip)\(" + _NUM + "," + _NUM + "," + _NUM + "," + _NUM + r"\)")
_VECTOR_CLIP = re.compile(r"\\(i?clip)\(([mnlbspc][^)]*)\)")
_BLOCK = re.compile(r"\{[^}]*\}")


def _fmt(v: float) -> str:
    return str(round(v)) if abs(v - round(v)) < 1e-6 else f"{v:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class AssCanvas:
    """How an ASS script maps onto the new canvas: its new PlayRes and the shift in script units."""

    play_x: int
    play_y: int
    new_x: int
    new_y: int
    dx: float
    dy: float

    @classmethod
    def for_script(
        cls, header: bytes, src: tuple[int, int], canvas: tuple[int, int], picture_at: tuple[int, int, int]
    ) -> AssCanvas:
        """``src``, ``canvas``: sizes in pixels; ``picture_at``: the picture's x, y in the source, x on the canvas."""
        text = header.decode("utf-8", errors="replace")
        px = re.search(r"^PlayResX:\s*(\d+)", text, re.M | re.I)
        py = re.search(r"^PlayResY:\s*(\d+)", text, re.M | re.I)
        # As renderers fill in what a script leaves out.
        x, y = (int(px[1]) if px else 0), (int(py[1]) if py else 0)
        if not x and not y:
            x, y = 384, 288
        elif not y:
            y = 1024 if x == 1280 else round(x * 3 / 4)
        elif not x:
            x = 1280 if y == 1024 else round(y * 4 / 3)
        sx, sy, left = picture_at
        return cls(
            x, y, round(x * canvas[0] / src[0]), round(y * canvas[1] / src[1]),
            (left - sx) * x / src[0], -sy * y / src[1],
        )  # fmt: skip

    def header(self, header: bytes) -> bytes:
        """The script header on the canvas: PlayRes widened, style side margins moved."""
        text = header.decode("utf-8", errors="replace")
        out, fields, section = [], [], ""
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            end = line[len(body) :]
            low = body.strip().lower()
            if low.startswith("["):
                section = low
            if section == "[script info]" and low.startswith("playresx:"):
                body = f"PlayResX: {self.new_x}"
            elif section == "[script info]" and low.startswith("playresy:"):
                body = f"PlayResY: {self.new_y}"
            elif section in ("[v4+ styles]", "[v4 styles]") and ":" in body:
                key, value = body.split(":", 1)
                if key.strip().lower() == "format":
                    fields = [f.strip().lower() for f in value.split(",")]
                elif key.strip().lower() == "style" and fields:
                    values = value.split(",")
                    body = f"{key}:{','.join(self._margins(fields, values))}"
            out.append(body + end)
        result = "".join(out)
        if not re.search(r"^PlayResX:", result, re.M | re.I):  # left out: now it must be said
            result = re.sub(
                r"^\[Script Info\][^\n]*\n",
                lambda m: f"{m[0]}PlayResX: {self.new_x}\nPlayResY: {self.new_y}\n",
                result,
                count=1,
                flags=re.M | re.I,
            )
        return result.encode("utf-8")

    def _margins(self, fields: list[str], values: list[str], keep_zero: bool = False) -> list[str]:
        values = list(values)
        grow = self.new_x - self.play_x
        for name, add in (("marginl", self.dx), ("marginr", grow - self.dx)):
            if name in fields and fields.index(name) < len(values):
                i = fields.index(name)
                try:
                    v = int(values[i].strip())
                except ValueError:
                    continue
                if v or not keep_zero:
                    values[i] = str(max(0, round(v + add)))
        return values

    def event(self, payload: bytes) -> bytes:
        """One Matroska ASS packet (``ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text``) moved."""
        parts = payload.decode("utf-8", errors="replace").split(",", 8)
        if len(parts) != 9:
            return payload
        fields = ["readorder", "layer", "style", "name", "marginl", "marginr", "marginv", "effect"]
        # An event margin of 0 means "the style's": left as it is.
        parts[:8] = self._margins(fields, parts[:8], keep_zero=True)
        parts[8] = _BLOCK.sub(lambda m: self._block(m[0]), parts[8])
        return ",".join(parts).encode("utf-8")

    def _block(self, block: str) -> str:
        dx, dy = self.dx, self.dy
        block = _POS_LIKE.sub(lambda m: f"\\{m[1]}({_fmt(float(m[2]) + dx)},{_fmt(float(m[3]) + dy)})", block)
        block = _MOVE.sub(
            lambda m: (
                f"\\move({_fmt(float(m[1]) + dx)},{_fmt(float(m[2]) + dy)},"
                f"{_fmt(float(m[3]) + dx)},{_fmt(float(m[4]) + dy)}{m[5]})"
            ),
            block,
        )
        block = _RECT_CLIP.sub(
            lambda m: (
                f"\\{m[1]}({_fmt(float(m[2]) + dx)},{_fmt(float(m[3]) + dy)},"
                f"{_fmt(float(m[4]) + dx)},{_fmt(float(m[5]) + dy)})"
            ),
            block,
        )
        return _VECTOR_CLIP.sub(lambda m: f"\\{m[1]}({self._drawing(m[2])})", block)

    def _drawing(self, drawing: str) -> str:
        """A vector clip's points moved (its numbers come in x, y pairs)."""
        out, pair = [], 0
        for token in drawing.split():
            try:
                v = float(token)
            except ValueError:
                out.append(token)
                continue
            out.append(_fmt(v + (self.dx if pair % 2 == 0 else self.dy)))
            pair += 1
        return " ".join(out)
