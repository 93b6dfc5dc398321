"""The file-wide frame grid: aggregation, hysteresis binarisation, segments with overlap, RTTM I/O.

Global frame ``j`` is centred on sample ``270 * j + 495`` (the segmentation model's frame grid,
see :mod:`pipeline.diarization.segmentation`) and spans ``[270 j + 360, 270 j + 630)`` samples,
so consecutive frames tile the time axis without gaps.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.diarization.segmentation import FRAME_SIZE_SAMPLES, FRAME_STEP_SAMPLES, SAMPLE_RATE
from pipeline.records import SpeakerSegment

logger = logging.getLogger(__name__)

_FRAME_START_OFFSET = FRAME_SIZE_SAMPLES // 2 - FRAME_STEP_SAMPLES // 2  # 360 samples


def frame_start_s(frame: np.ndarray | int) -> np.ndarray | float:
    """Start time of global frame(s) ``frame``, in seconds."""
    return (FRAME_STEP_SAMPLES * np.asarray(frame) + _FRAME_START_OFFSET) / SAMPLE_RATE


def frame_end_s(frame: np.ndarray | int) -> np.ndarray | float:
    """End time of global frame(s) ``frame`` (exclusive), in seconds."""
    return frame_start_s(np.asarray(frame) + 1)


def time_to_frame(time_s: float) -> int:
    """The global frame whose span contains ``time_s`` (clipped at 0)."""
    return max(0, int(np.floor((time_s * SAMPLE_RATE - _FRAME_START_OFFSET) / FRAME_STEP_SAMPLES)))


def frame_span_samples(first: int, stop: int) -> tuple[int, int]:
    """Sample range ``[start, end)`` covered by global frames ``first .. stop-1``."""
    return (
        FRAME_STEP_SAMPLES * first + _FRAME_START_OFFSET,
        FRAME_STEP_SAMPLES * stop + _FRAME_START_OFFSET,
    )


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of ``True`` in a 1-D boolean array as ``[(first, stop), ...]`` (stop exclusive)."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def hysteresis(score: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """Binarise a 1-D score: switch on above ``onset``, stay on until it falls below ``offset``.

    Args:
        score: shape ``(frames,)``.
        onset: threshold to become active.
        offset: threshold to stay active (``offset <= onset``).

    Returns:
        boolean array, shape ``(frames,)``.
    """
    high = score > onset
    if onset == offset:
        return high
    low = score > offset
    active = np.zeros(len(score), dtype=bool)
    # a run of `low` is active from its first `high` frame to its end
    for first, stop in runs(low):
        hits = np.flatnonzero(high[first:stop])
        if len(hits):
            active[first + hits[0] : stop] = True
    return active


def fill_gaps(mask: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """Close inactive gaps of at most ``max_gap_frames`` between two active runs."""
    mask = np.asarray(mask, dtype=bool).copy()
    if max_gap_frames <= 0:
        return mask
    active = runs(mask)
    for (_, stop), (nxt, _) in itertools.pairwise(active):
        if nxt - stop <= max_gap_frames:
            mask[stop:nxt] = True
    return mask


def drop_short(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """Remove active runs shorter than ``min_frames``."""
    mask = np.asarray(mask, dtype=bool).copy()
    for first, stop in runs(mask):
        if stop - first < min_frames:
            mask[first:stop] = False
    return mask


def activity_to_segments(
    recording_id: str,
    activity: np.ndarray,
    labels: Sequence[str],
    split_overlap: bool = True,
    channels: Sequence[int] | None = None,
) -> list[SpeakerSegment]:
    """Speaker segments from a binary ``(frames, speakers)`` activity matrix.

    Args:
        recording_id: goes into every segment.
        activity: boolean, shape ``(frames, speakers)`` on the global frame grid.
        labels: one label per column.
        split_overlap: cut each speaker run where another speaker starts or stops talking, so
            ``overlap`` is exact per sub-segment (contiguous sub-segments of one speaker then
            share an end/start time); otherwise a run is flagged if any of it overlaps.
        channels: channel of each column (default 0 for all).

    Returns:
        segments sorted by start, then speaker.
    """
    activity = np.asarray(activity, dtype=bool)
    if activity.ndim != 2 or activity.shape[1] != len(labels):
        raise ValueError(f"activity shape {activity.shape} does not match {len(labels)} labels")
    total = activity.sum(axis=1)
    segments = []
    for k, label in enumerate(labels):
        others = (total - activity[:, k]) > 0
        for first, stop in runs(activity[:, k]):
            if split_overlap:
                flags = others[first:stop]
                cuts = np.flatnonzero(flags[1:] != flags[:-1]) + 1
                bounds = [0, *cuts.tolist(), stop - first]
                pieces = [
                    (first + a, first + b, bool(flags[a])) for a, b in itertools.pairwise(bounds)
                ]
            else:
                pieces = [(first, stop, bool(others[first:stop].any()))]
            for a, b, overlap in pieces:
                segments.append(
                    SpeakerSegment(
                        recording_id=recording_id,
                        speaker=label,
                        start=round(float(frame_start_s(a)), 3),
                        end=round(float(frame_end_s(b - 1)), 3),
                        overlap=overlap,
                        channel=channels[k] if channels else 0,
                    )
                )
    segments.sort(key=lambda s: (s.start, s.speaker))
    return segments


def mark_overlap(segments: Iterable[SpeakerSegment]) -> list[SpeakerSegment]:
    """Set ``overlap`` on segments whose span intersects another speaker's segment (no splitting).

    Used for segments that do not come from one frame grid (e.g. two channels, other backends).
    """
    from dataclasses import replace

    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    if not ordered:
        return []
    starts = np.array([s.start for s in ordered])
    ends = np.array([s.end for s in ordered])
    speakers = np.array([s.speaker for s in ordered])
    out = []
    for seg in ordered:
        hit = (starts < seg.end) & (ends > seg.start) & (speakers != seg.speaker)
        out.append(replace(seg, overlap=bool(hit.any())))
    return out


def relabel_by_first_appearance(
    segments: Sequence[SpeakerSegment], prefix: str = "SPK"
) -> tuple[list[SpeakerSegment], dict[str, str]]:
    """Rename speakers ``SPK0, SPK1, ...`` in order of their first segment.

    Returns:
        ``(renamed segments, {old label: new label})``.
    """
    from dataclasses import replace

    mapping: dict[str, str] = {}
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        if seg.speaker not in mapping:
            mapping[seg.speaker] = f"{prefix}{len(mapping)}"
    return [replace(s, speaker=mapping[s.speaker]) for s in segments], mapping


def to_rttm(recording_id: str, segments: Iterable[SpeakerSegment]) -> str:
    """RTTM text (one ``SPEAKER`` line per segment, channel 1-based as in NIST RTTM).

    Contiguous overlap sub-segments are written as they are; DER scoring is unaffected.
    """
    lines = []
    for seg in sorted(segments, key=lambda s: (s.start, s.speaker)):
        lines.append(
            f"SPEAKER {recording_id} {seg.channel + 1} {seg.start:.3f} "
            f"{seg.duration:.3f} <NA> <NA> {seg.speaker} <NA> <NA>"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def parse_rttm(text: str) -> dict[str, list[SpeakerSegment]]:
    """Parse RTTM text into segments per file id (``overlap`` is recomputed per file).

    Raises:
        ValueError: a ``SPEAKER`` line with too few fields or non-numeric times.
    """
    by_file: dict[str, list[SpeakerSegment]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(
                f"RTTM line {number} has {len(fields)} fields, expected >= 8: {line!r}"
            )
        try:
            channel = int(fields[2]) - 1 if fields[2].isdigit() else 0
            start, duration = float(fields[3]), float(fields[4])
        except ValueError as exc:
            raise ValueError(f"RTTM line {number} is not numeric: {line!r}") from exc
        by_file.setdefault(fields[1], []).append(
            SpeakerSegment(
                recording_id=fields[1],
                speaker=fields[7],
                start=start,
                end=start + duration,
                channel=max(0, channel),
            )
        )
    return {rid: mark_overlap(segs) for rid, segs in by_file.items()}


def read_rttm(path: str) -> dict[str, list[SpeakerSegment]]:
    """Read an RTTM file (any Beam filesystem path) into segments per file id."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return parse_rttm(handle.read().decode("utf-8"))
