"""Decode stage: URI → :class:`RecordingWork` (16 kHz float32, channels kept) or a file-level reject.

Input: URIs. Output: ``RecordingWork`` with its :class:`Recording` row; rejects (file level):
``unreadable``, ``decoder_crash``, ``empty``, ``too_short``, ``too_long``, ``bad_channels``,
``non_finite``, ``silent``. Decoding runs in a child process by default, so a native crash in
FFmpeg costs one file, not the run. No model is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from core.audio_io import DecodedAudio, content_sha1, decode_audio, decode_isolated
from core.options import opt
from pipeline import errors
from pipeline.errors import DecodeError
from pipeline.records import ANALYSIS_SAMPLE_RATE, Recording, RecordingWork, Reject
from pipeline.stage import REJECTS, StageCounters, StageFn, StageOutputs

logger = logging.getLogger(__name__)

STAGE = "decode"


@dataclass(frozen=True)
class DecodeOptions:
    """What counts as a usable input file."""

    min_duration_s: float = opt(1.0, "reject files shorter than this many seconds")
    max_duration_s: float = opt(6 * 3600.0, "reject files longer than this many seconds")
    max_channels: int = opt(8, "reject files with more channels than this")
    silence_dbfs: float = opt(-60.0, "reject files whose peak level is below this (dBFS)")
    decode_isolation: str = opt(
        "subprocess",
        "decode in a child process (contains native decoder crashes) or inline",
        choices=("subprocess", "inline"),
    )
    decode_timeout_s: float = opt(1800.0, "give up on a file whose decoding takes longer")

    def __post_init__(self):
        if self.min_duration_s < 0 or self.max_duration_s <= self.min_duration_s:
            raise ValueError(
                f"need 0 <= min_duration_s < max_duration_s, got "
                f"{self.min_duration_s}, {self.max_duration_s}"
            )
        if self.max_channels < 1:
            raise ValueError(f"max_channels must be >= 1, got {self.max_channels}")


def recording_id_for(uri: str) -> str:
    """Deterministic id: the file stem plus 8 hex digits of the URI's sha1 (unique per URI)."""
    stem = os.path.splitext(os.path.basename(uri.rstrip("/")))[0] or "audio"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return f"{stem}-{hashlib.sha1(uri.encode()).hexdigest()[:8]}"


def check_audio(decoded: DecodedAudio, opts: DecodeOptions) -> None:
    """Raise :class:`DecodeError` when decoded audio is unusable (empty, NaN, silent, length)."""
    samples = decoded.samples
    if samples.size == 0:
        raise DecodeError(errors.EMPTY, "no audio samples")
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise DecodeError(errors.NON_FINITE, f"{bad} NaN/inf samples")
    duration = decoded.duration_s
    if duration < opts.min_duration_s:
        raise DecodeError(
            errors.TOO_SHORT, f"{duration:.2f} s < min_duration_s {opts.min_duration_s}"
        )
    if duration > opts.max_duration_s:
        raise DecodeError(
            errors.TOO_LONG, f"{duration:.0f} s > max_duration_s {opts.max_duration_s}"
        )
    peak = float(np.max(np.abs(samples)))
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_dbfs < opts.silence_dbfs:
        raise DecodeError(
            errors.SILENT, f"peak {peak_dbfs:.1f} dBFS < silence_dbfs {opts.silence_dbfs}"
        )


def decode_recording(uri: str, opts: DecodeOptions) -> RecordingWork:
    """Decode and check one file (the pure function behind :class:`DecodeFn`)."""
    if opts.decode_isolation == "subprocess":
        decoded = decode_isolated(
            uri, ANALYSIS_SAMPLE_RATE, opts.max_channels, opts.decode_timeout_s
        )
    else:
        decoded = decode_audio(uri, ANALYSIS_SAMPLE_RATE, opts.max_channels)
    check_audio(decoded, opts)
    recording = Recording(
        recording_id=recording_id_for(uri),
        uri=uri,
        sample_rate=decoded.sample_rate,
        num_channels=decoded.num_channels,
        duration_s=round(decoded.duration_s, 4),
        codec=decoded.codec,
        content_sha1=content_sha1(decoded.samples),
        bandwidth_hz=round(decoded.bandwidth_hz, 1),
    )
    return RecordingWork(recording=recording, audio=decoded.samples)


class DecodeFn(StageFn):
    """URI → RecordingWork, or a file-level Reject on the ``rejects`` output (its input is a URI,
    not a recording's work, so it has its own :meth:`process` on the stage base)."""

    stage = STAGE

    def __init__(self, opts: DecodeOptions):
        super().__init__()
        self.opts = opts

    def process(self, uri: str) -> Iterable:
        counters = self.counters or StageCounters(STAGE)
        counters.items_in.inc()
        started = time.perf_counter()
        try:
            work = decode_recording(uri, self.opts)
        except Exception as exc:  # an unexpected failure loses this file only
            if isinstance(exc, DecodeError):
                reason, message = exc.reason, str(exc)
            else:
                logger.exception("decoding %s failed", uri)
                reason, message = errors.STAGE_ERROR, f"{type(exc).__name__}: {exc}"
            counters.dropped(reason)
            reject = Reject(
                uri=uri,
                recording_id=recording_id_for(uri),
                stage=STAGE,
                reason=reason,
                message=message,
            )
            yield beam.pvalue.TaggedOutput(REJECTS, reject)
            return
        finally:
            counters.millis.inc(int((time.perf_counter() - started) * 1000))
        counters.audio_ms_in.inc(int(work.recording.duration_s * 1000))
        counters.items_out.inc()
        yield work


class DecodeAudio(beam.PTransform):
    """URIs → decoded recordings (main) and file-level rejects."""

    def __init__(self, opts: DecodeOptions):
        super().__init__()
        self.opts = opts

    def expand(self, uris):
        results = uris | "DecodeFiles" >> beam.ParDo(DecodeFn(self.opts)).with_outputs(
            REJECTS, main="main"
        )
        return StageOutputs(results.main, results[REJECTS])
