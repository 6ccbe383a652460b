"""Video I/O with PyAV: probe, decode to RGB arrays, encode with the source timestamps.

``probe`` (what a file holds), ``reader`` (decode), ``writer`` (encode and mux),
``streams`` (what becomes of each copied stream), ``encoder`` (codec settings).
Rules this package keeps (each one a bug class in the tools users run today):

- every frame carries the ``pts`` and ``time_base`` it was decoded with, and the
  encoder gets exactly those back; nothing is renumbered from a frame counter, so
  variable frame rate and start offsets survive;
- audio, subtitle, attachment and data streams are copied packet for packet, with
  their language, title and disposition, plus chapters and container tags; what
  Matroska has no form for is converted, not lost (MP4 timed text to SRT, cover art
  to an attachment), and packets an MP4 edit list trims stay trimmed;
- the output is written to ``NAME.partial.EXT`` and renamed only when complete; the
  input is only ever opened for reading.
"""

from ..subtitles.sidecars import SIDECAR_EXTENSIONS, Sidecar, find_sidecars, open_sidecar, subtitle_as_utf8
from .encoder import CRF_RANGE, DEFAULT_CRF, DEFAULT_PRESET, ENCODERS, EncoderSettings, EncoderSettingsError
from .fields import KINDS as FIELD_CHOICES
from .fields import FieldPlan, plan_fields
from .probe import (
    COPY_TYPES,
    OWN_TAG,
    VIDEO_EXTENSIONS,
    ColorSpec,
    DamagedSource,
    StreamInfo,
    VideoError,
    VideoInfo,
    even_size,
    probe,
    rgb_format,
    to_rgb,
    written_by_ganime,
    yuv_planes,
)
from .reader import Frame, Reader, sample_frames
from .streams import AudioTranscoder, Route, refusal, route, stream_changes
from .writer import Carried, Picture, Writer, output_format, partial_path

__all__ = [
    "COPY_TYPES",
    "CRF_RANGE",
    "DEFAULT_CRF",
    "DEFAULT_PRESET",
    "ENCODERS",
    "FIELD_CHOICES",
    "OWN_TAG",
    "SIDECAR_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AudioTranscoder",
    "Carried",
    "ColorSpec",
    "DamagedSource",
    "EncoderSettings",
    "EncoderSettingsError",
    "FieldPlan",
    "Frame",
    "Picture",
    "Reader",
    "Route",
    "Sidecar",
    "StreamInfo",
    "VideoError",
    "VideoInfo",
    "Writer",
    "even_size",
    "find_sidecars",
    "open_sidecar",
    "output_format",
    "partial_path",
    "plan_fields",
    "probe",
    "refusal",
    "rgb_format",
    "route",
    "sample_frames",
    "stream_changes",
    "subtitle_as_utf8",
    "to_rgb",
    "written_by_ganime",
    "yuv_planes",
]
