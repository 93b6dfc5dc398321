"""Reject reason codes (a closed set per stage) and the exceptions that carry them.

A reason code is what the ``rejects`` table's ``reason`` column holds and what the
``dropped_<reason>`` Beam counters are named after. The README lists them with their meaning.
"""

from __future__ import annotations

# ingest / decode (file level): unreadable, decoder_crash, bad_channels come from the decoder
from core.audio_io import BAD_CHANNELS, DECODER_CRASH, UNREADABLE, DecodeError

EMPTY = "empty"  # no audio samples
TOO_SHORT = "too_short"  # shorter than --min_duration_s
TOO_LONG = "too_long"  # longer than --max_duration_s
NON_FINITE = "non_finite"  # NaN or infinite samples
SILENT = "silent"  # peak level below --silence_dbfs
DUPLICATE = "duplicate"  # same decoded audio as another input (kept once)

# vad
NO_SPEECH = "no_speech"  # VAD found no speech

# any stage
STAGE_ERROR = "stage_error"  # an unexpected exception while processing this recording


class StageReject(Exception):
    """An expected data problem that drops a whole recording from a stage's output.

    Args:
        reason: a reason code from this module (or a stage module's own set).
        message: a one-line explanation for the ``rejects`` table.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


__all__ = [
    "BAD_CHANNELS",
    "DECODER_CRASH",
    "DUPLICATE",
    "EMPTY",
    "NON_FINITE",
    "NO_SPEECH",
    "SILENT",
    "STAGE_ERROR",
    "TOO_LONG",
    "TOO_SHORT",
    "UNREADABLE",
    "DecodeError",
    "StageReject",
]
