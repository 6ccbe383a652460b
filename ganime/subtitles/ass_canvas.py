"""ASS scripts on a wider canvas: script space, typeset positions and margins moved with the picture."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
