"""Text subtitles: SRT/ASS cue text and styles, and cues into back-to-back MP4 timed-text samples."""

from __future__ import annotations

import itertools

from ganime.subtitles import (
    BOLD,
    DEFAULT_ASS_HEADER,
    ITALIC,
    UNDERLINE,
    AssCanvas,
    TimedTextTrack,
    ass_styles,
    ass_text,
    move_pgs,
    move_spu,
    movtext_sample,
    movtext_to_srt,
    srt_text,
    vobsub_header,
    webvtt_cue,
)


def test_srt_tags_become_runs_and_other_tags_go() -> None:
    text, runs = srt_text('<font color="#ff0">{\\an8}Hi</font> <b>big <i>news</i></b> &amp; more')
    assert text == "Hi big news & more"
    assert runs == [(3, 7, BOLD), (7, 11, BOLD | ITALIC)]


def test_ass_event_text_styles_line_breaks_and_drawings() -> None:
    event = "12,0,Default,Kyon,0,0,0,,{\\i1}Well,{\\i0} that\\Nwas {\\b700\\u1}odd{\\r}.{\\p1}m 0 0 l 10 0 10 10{\\p0}"
    text, runs = ass_text(event)
    assert text == "Well, that\nwas odd."  # the commas in the text survive; the drawing does not
    assert runs == [(0, 5, ITALIC), (15, 18, BOLD | UNDERLINE)]
    assert ass_text("3,0,Sign,,0,0,0,,{\\p1}m 0 0 l 5 5{\\p0}") == ("", [])


def test_an_ass_style_gives_the_starting_faces() -> None:
    sign = "Style: Sign,Sans,20,&H0000FFFF,&H000000FF,&H00000000,&H00000000,-1,0,0,0,100,100,0,0,1,2,0,8,10,10,20,1"
    styles = ass_styles(DEFAULT_ASS_HEADER.replace("\n\n[Events]", f"\n{sign}\n\n[Events]"))
    assert styles == {"Default": 0, "Sign": BOLD}
    assert ass_text("1,0,Sign,,0,0,0,,Grand {\\b0}Line{\\r}!", styles) == (
        "Grand Line!",
        [(0, 6, BOLD), (10, 11, BOLD)],
    )


def test_styled_sample_reads_back_as_the_same_srt() -> None:
    text, runs = srt_text("<i>so</i> <b><u>é</u></b>")
    assert movtext_to_srt(movtext_sample(text, runs)) == "<i>so</i> <b><u>é</u></b>"


def test_overlapping_cues_become_back_to_back_samples() -> None:
    track = TimedTextTrack()
    out = []
    out += track.add(1000, 3000, "A", [])
    out += track.add(2000, 2500, "B", [(0, 1, ITALIC)])  # on screen with A
    out += track.add(4000, 5000, "C", [])  # after a gap
    out += track.add(4500, None, "D", [])  # no length: until the next cue
    out += track.add(6000, 6500, "E", [])
    out += track.flush()
    shown = [(s, e, movtext_to_srt(p)) for s, e, p in out]
    assert shown == [
        (1000, 2000, "A"),
        (2000, 2500, "A\n<i>B</i>"),
        (2500, 3000, "A"),
        (3000, 4000, ""),  # cleared
        (4000, 4500, "C"),
        (4500, 5000, "C\nD"),
        (5000, 6000, "D"),
        (6000, 6500, "E"),
    ]
    # Back to back, as a timed-text track must be.
    assert all(a[1] == b[0] for a, b in itertools.pairwise(out))


def test_webvtt_cues_escape_markup_characters() -> None:
    assert webvtt_cue(*srt_text("<b>Tom &amp; Jerry</b> <3")) == "<b>Tom &amp; Jerry</b> &lt;3"


def test_subtitle_files_that_are_not_utf8_are_read_in_their_code_page() -> None:
    from ganime.video import subtitle_as_utf8

    french = "1\n00:00:01,000 --> 00:00:02,000\nÇa va? Très bien — où est la plage?\n"
    assert subtitle_as_utf8(french.encode("utf-8")) == (french.encode("utf-8"), None)
    assert subtitle_as_utf8(b"\xef\xbb\xbf" + french.encode("utf-8")) == (french.encode("utf-8"), None)
    assert subtitle_as_utf8(french.encode("utf-16")) == (french.encode("utf-8"), "utf-16")
    # The file name's language picks the code page...
    assert subtitle_as_utf8(french.encode("cp1252"), "fre") == (french.encode("utf-8"), "cp1252")
    # ...and without one the encoding is detected.
    japanese = "1\n00:00:01,000 --> 00:00:02,000\nルフィは海賊王になる男だ！ゴムゴムの実を食べた。\n" * 3
    text, enc = subtitle_as_utf8(japanese.encode("shift_jis"))
    assert text.decode("utf-8") == japanese and enc in ("shift_jis", "cp932")


def test_vobsub_canvas_grows_and_areas_stay_inside_it() -> None:
    assert vobsub_header(b"size: 720x480\norg: 0, 0\npalette: 000000\n", 236, -2) == (
        b"size: 956x478\norg: 0, 0\npalette: 000000\n"
    )

    def area(x1: int, x2: int, y1: int, y2: int) -> bytes:
        three = lambda a, b: bytes([a >> 4, ((a & 15) << 4) | (b >> 8), b & 255])  # noqa: E731
        return b"\x00\x10\x00\x04" + b"\x00\x00\x00\x04" + b"\x01\x05" + three(x1, x2) + three(y1, y2) + b"\xff"

    assert move_spu(area(100, 299, 400, 449), 118, 0, 956, 480) == area(218, 417, 400, 449)
    # Bars cropped away above: moved up, and one that would leave the canvas stays on it.
    assert move_spu(area(100, 299, 400, 449), 0, -60, 720, 420) == area(100, 299, 340, 389)
    assert move_spu(area(100, 299, 430, 479), 0, -20, 720, 420) == area(100, 299, 370, 419)


def test_pgs_video_size_objects_and_windows_move() -> None:
    pcs = (1920).to_bytes(2, "big") + (1080).to_bytes(2, "big") + b"\x10\x00\x01\x80\x00\x00\x01"
    pcs += b"\x00\x00\x00\x00" + (700).to_bytes(2, "big") + (900).to_bytes(2, "big")
    wds = b"\x01\x00" + (690).to_bytes(2, "big") + (890).to_bytes(2, "big") + (500).to_bytes(2, "big")
    wds += (100).to_bytes(2, "big")
    packet = b"\x16" + len(pcs).to_bytes(2, "big") + pcs + b"\x17" + len(wds).to_bytes(2, "big") + wds + b"\x80\x00\x00"
    moved = move_pgs(packet, 240, 0, 480, 0)
    assert moved[3:7] == (2400).to_bytes(2, "big") + (1080).to_bytes(2, "big")  # the canvas
    assert moved[18:22] == (940).to_bytes(2, "big") + (900).to_bytes(2, "big")  # the object
    assert moved[len(pcs) + 8 : len(pcs) + 12] == (930).to_bytes(2, "big") + (890).to_bytes(2, "big")  # the window
    assert len(moved) == len(packet) and moved[-3:] == b"\x80\x00\x00"


SCRIPT = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 640
PlayResY: 480

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Arial,28,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,2,10,20,20,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
""".replace(b"\\\n", b"")


def test_an_ass_script_widens_with_the_canvas_and_moves_with_the_picture() -> None:
    # 640x480 picture centred on an 856x480 canvas: 108 px each side, in script units too.
    plan = AssCanvas.for_script(SCRIPT, (640, 480), (856, 480), (0, 0, 108))
    assert (plan.new_x, plan.new_y, plan.dx, plan.dy) == (856, 480, 108, 0)
    header = plan.header(SCRIPT).decode()
    assert "PlayResX: 856\nPlayResY: 480\n" in header
    assert (
        "Style: Default,Arial,28,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,2,118,128,20,1"
        in header
    )
    event = b"7,0,Default,,0,5,0,,{\\pos(320,40)\\clip(0,0,320,240)}Sign"
    event += b"{\\move(10,20,30,40,0,500)\\iclip(m 0 0 l 10 0 10 10)}, too"
    assert plan.event(event) == (
        b"7,0,Default,,0,113,0,,{\\pos(428,40)\\clip(108,0,428,240)}Sign{\\move(118,20,138,40,0,500)"
        b"\\iclip(m 108 0 l 118 0 118 10)}, too"
    )


def test_a_script_without_playres_gets_the_renderers_default_widened() -> None:
    bare = SCRIPT.replace(b"PlayResX: 640\nPlayResY: 480\n", b"")
    plan = AssCanvas.for_script(bare, (720, 480), (960, 480), (0, 0, 120))
    assert (plan.play_x, plan.play_y, plan.new_x, plan.dx) == (384, 288, 512, 64)
    assert b"[Script Info]\nPlayResX: 512\nPlayResY: 288\n" in plan.header(bare)
