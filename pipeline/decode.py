"""Decode stage: URI → :class:`RecordingWork` (16 kHz float32, channels kept) or a file-level reject.

Input: URIs. Output: ``RecordingWork`` with its :class:`Recording` row; rejects (file level):
``unreadable``, ``decoder_crash``, ``empty``, ``too_short``, ``too_long``, ``bad_channels``,
``non_finite``, ``silent``. Decoding runs in a child process by default, so a native crash in
FFmpeg costs one file, not the run. The decoded audio is streamed into the recording's scratch
file (:mod:`pipeline.audio`), checked and hashed in one pass over it, and never held whole.
No model is loaded.
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

from core.audio_io import (
    ContentHash,
    DecodedAudio,
    DecodeInfo,
    decode_audio,
    decode_isolated,
    decode_isolated_to_file,
    decode_to_file,
)
from core.options import opt
from pipeline import errors
from pipeline.audio import RecordingAudio, scratch_path
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
    audio_scratch_dir: str = opt(
        "",
        "a local folder where each recording's decoded 16 kHz audio waits for the stages "
        "(default: <output>/_scratch for a local output, else the worker's temp dir); on disk, "
        "not tmpfs, or the audio is held in memory after all",
    )

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


@dataclass(frozen=True)
class AudioScan:
    """What one pass over decoded audio finds (:func:`scan_audio`)."""

    duration_s: float
    num_samples: int
    non_finite: int  # NaN or infinite samples
    peak: float  # largest absolute finite sample
    content_sha1: str  # core.audio_io.content_sha1 of the samples


def scan_audio(audio: RecordingAudio) -> AudioScan:
    """One pass over the audio a block at a time (per channel for the hash, whose bytes run
    channel after channel): memory flat in the recording's length."""
    content = ContentHash()
    non_finite, peak = 0, 0.0
    for channel in range(audio.num_channels):
        for _, block in audio.blocks():
            samples = block[channel]
            finite = np.isfinite(samples)
            if not finite.all():
                non_finite += int(np.count_nonzero(~finite))
                samples = np.where(finite, samples, np.float32(0.0))
            if samples.size:
                peak = max(peak, float(np.max(np.abs(samples))))
            content.update(samples)
    return AudioScan(audio.duration_s, audio.num_samples, non_finite, peak, content.hexdigest())


def check_audio(scan: AudioScan, opts: DecodeOptions) -> None:
    """Raise :class:`DecodeError` when decoded audio is unusable (empty, NaN, silent, length)."""
    if scan.num_samples == 0:
        raise DecodeError(errors.EMPTY, "no audio samples")
    if scan.non_finite:
        raise DecodeError(errors.NON_FINITE, f"{scan.non_finite} NaN/inf samples")
    duration = scan.duration_s
    if duration < opts.min_duration_s:
        raise DecodeError(
            errors.TOO_SHORT, f"{duration:.2f} s < min_duration_s {opts.min_duration_s}"
        )
    if duration > opts.max_duration_s:
        raise DecodeError(
            errors.TOO_LONG, f"{duration:.0f} s > max_duration_s {opts.max_duration_s}"
        )
    peak_dbfs = 20 * np.log10(scan.peak) if scan.peak > 0 else -np.inf
    if peak_dbfs < opts.silence_dbfs:
        raise DecodeError(
            errors.SILENT, f"peak {peak_dbfs:.1f} dBFS < silence_dbfs {opts.silence_dbfs}"
        )


def decode_recording(
    uri: str, opts: DecodeOptions, scratch_dir: str | None = None
) -> RecordingWork:
    """Decode and check one file (the pure function behind :class:`DecodeFn`).

    Args:
        uri: the file.
        opts: the checks and how to decode.
        scratch_dir: where the decoded audio is written (:mod:`pipeline.audio`); None holds
            it in memory instead (library use, tests).
    """
    recording_id = recording_id_for(uri)
    path = None
    try:
        if scratch_dir is not None:
            os.makedirs(scratch_dir, exist_ok=True)
            path = scratch_path(scratch_dir, recording_id)
            info = _decode_to_file(uri, path, opts)
            audio = RecordingAudio.from_file(path, info.num_channels, info.num_samples, uri)
        else:
            info, audio = _decode_in_memory(uri, opts)
        scan = scan_audio(audio)
        check_audio(scan, opts)
    except BaseException:
        if path is not None and os.path.exists(path):
            os.unlink(path)
        raise
    audio.content_sha1 = scan.content_sha1
    recording = Recording(
        recording_id=recording_id,
        uri=uri,
        sample_rate=info.sample_rate,
        num_channels=info.num_channels,
        duration_s=round(scan.duration_s, 4),
        codec=info.codec,
        content_sha1=scan.content_sha1,
        bandwidth_hz=round(info.bandwidth_hz, 1),
    )
    return RecordingWork(recording=recording, audio=audio)


def _decode_to_file(uri: str, path: str, opts: DecodeOptions) -> DecodeInfo:
    if opts.decode_isolation == "subprocess":
        return decode_isolated_to_file(
            uri, path, ANALYSIS_SAMPLE_RATE, opts.max_channels, opts.decode_timeout_s
        )
    return decode_to_file(uri, path, ANALYSIS_SAMPLE_RATE, opts.max_channels)


def _decode_in_memory(uri: str, opts: DecodeOptions) -> tuple[DecodeInfo, RecordingAudio]:
    decoded: DecodedAudio
    if opts.decode_isolation == "subprocess":
        decoded = decode_isolated(
            uri, ANALYSIS_SAMPLE_RATE, opts.max_channels, opts.decode_timeout_s
        )
    else:
        decoded = decode_audio(uri, ANALYSIS_SAMPLE_RATE, opts.max_channels)
    info = DecodeInfo(
        ANALYSIS_SAMPLE_RATE,
        decoded.sample_rate,
        decoded.num_channels,
        decoded.codec,
        decoded.bandwidth_hz,
        decoded.samples.shape[1],
    )
    return info, RecordingAudio.from_array(decoded.samples)


class DecodeFn(StageFn):
    """URI → RecordingWork, or a file-level Reject on the ``rejects`` output (its input is a URI,
    not a recording's work, so it has its own :meth:`process` on the stage base)."""

    stage = STAGE

    def __init__(self, opts: DecodeOptions, scratch_dir: str | None = None):
        super().__init__()
        self.opts = opts
        self.scratch_dir = scratch_dir

    def process(self, uri: str) -> Iterable:
        counters = self.counters or StageCounters(STAGE)
        counters.items_in.inc()
        started = time.perf_counter()
        try:
            work = decode_recording(uri, self.opts, self.scratch_dir)
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
    """URIs → decoded recordings (main) and file-level rejects; ``scratch_dir``: where the
    decoded audio is written (:func:`pipeline.audio.scratch_dir_for`), None: held in memory."""

    def __init__(self, opts: DecodeOptions, scratch_dir: str | None = None):
        super().__init__()
        self.opts = opts
        self.scratch_dir = scratch_dir

    def expand(self, uris):
        fn = DecodeFn(self.opts, self.scratch_dir)
        results = uris | "DecodeFiles" >> beam.ParDo(fn).with_outputs(REJECTS, main="main")
        return StageOutputs(results.main, results[REJECTS])
