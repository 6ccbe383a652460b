"""DVD (VobSub) and Blu-ray (PGS) subtitle pictures moved with the picture onto a wider canvas."""

from __future__ import annotations

import re

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
