"""Subtitles: text cues between Matroska's forms (SRT, ASS, WebVTT) and MP4 timed text, and
subtitles placed on the frame moved with the picture.

MP4 holds text subtitles only as 3GPP timed text: a sample is a 16-bit big-endian
byte count, that much UTF-8, then optional boxes; its ``styl`` box marks bold, italic
and underline runs in characters. A sample shows until the next one, so cues that
overlap are merged and an empty sample clears the screen between cues. Matroska
cannot hold timed text, which goes the other way as SRT.

``text`` (cues of text subtitles), ``bitmap`` (DVD and PGS pictures), ``ass_canvas``
(ASS on a wider canvas), ``sidecars`` (subtitle files beside an episode).
"""

from .ass_canvas import AssCanvas
from .bitmap import move_pgs, move_spu, vobsub_header
from .text import (
    BOLD,
    DEFAULT_ASS_HEADER,
    ITALIC,
    TEXT_CODECS,
    UNDERLINE,
    Runs,
    TimedTextTrack,
    ass_styles,
    ass_text,
    cue_text,
    default_style,
    movtext_sample,
    movtext_to_srt,
    srt_text,
    webvtt_cue,
)

__all__ = [
    "BOLD",
    "DEFAULT_ASS_HEADER",
    "ITALIC",
    "TEXT_CODECS",
    "UNDERLINE",
    "AssCanvas",
    "Runs",
    "TimedTextTrack",
    "ass_styles",
    "ass_text",
    "cue_text",
    "default_style",
    "move_pgs",
    "move_spu",
    "movtext_sample",
    "movtext_to_srt",
    "srt_text",
    "vobsub_header",
    "webvtt_cue",
]
