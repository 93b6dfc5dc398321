"""Turn planning for ASR: diarization segments -> speaker turns of at most one ASR window each.

Pure functions on records, no models. The rules, in order:

1. **Merge**: consecutive segments of the same speaker (and channel) join into one turn when the
   pause between them is shorter than ``max_gap_s`` and nobody else speaks in that pause (a
   backchannel of the other speaker *inside* a turn does not break it; a reply in the pause does).
2. **Split**: a turn longer than ``max_chunk_s`` (Whisper sees 30 s at most) is cut at its
   largest internal pause (merge gaps and VAD gaps on its channel), recursively, preferring
   pauses that leave at least :data:`MIN_PIECE_S` on each side; a stretch with no pause at all
   is cut into equal pieces. Every piece becomes a turn of its own, so a turn's text always
   matches its ``[start, end]`` audio.
3. **Overlap**: each turn records how many of its seconds another speaker also speaks (or a
   segment of its own is flagged ``overlap``). Overlapped turns are kept; the dialogue stage
   decides what to do with them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.records import SpeakerSegment, SpeechRegion

__all__ = ["MIN_PIECE_S", "TurnSpan", "merge_segments", "plan_turns", "split_span"]

MIN_PIECE_S = 1.0  # a split should not leave a sliver shorter than this, when it can avoid it
_EPS = 1e-6


@dataclass(frozen=True)
class TurnSpan:
    """A planned turn: one speaker, one channel, one ASR call.

    Attributes:
        speaker: file-wide speaker label from the diarization.
        channel: the channel the speaker was found on (0 unless one speaker per channel).
        start: seconds from the start of the recording.
        end: seconds from the start of the recording.
        pauses: internal pauses ``(start, end)`` between merged segments.
        overlap_s: seconds of the span during which someone else speaks too.
    """

    speaker: str
    channel: int
    start: float
    end: float
    pauses: tuple[tuple[float, float], ...] = ()
    overlap_s: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def overlap_ratio(self) -> float:
        return self.overlap_s / self.duration if self.duration > 0 else 0.0


class _SpeakerIndex:
    """Per-speaker segments sorted by start, with running max of ends, for interval queries."""

    def __init__(self, segments: Sequence[SpeakerSegment]):
        self._starts: dict[str, list[float]] = {}
        self._max_ends: dict[str, list[float]] = {}
        for seg in sorted(segments, key=lambda s: (s.start, s.end)):
            starts = self._starts.setdefault(seg.speaker, [])
            ends = self._max_ends.setdefault(seg.speaker, [])
            starts.append(seg.start)
            ends.append(max(seg.end, ends[-1]) if ends else seg.end)

    def other_speaks_in(self, speaker: str, start: float, end: float) -> bool:
        """Whether a speaker other than ``speaker`` has speech inside the open ``(start, end)``."""
        for other, starts in self._starts.items():
            if other == speaker:
                continue
            idx = bisect.bisect_left(starts, end - _EPS)  # segments starting before ``end``
            if idx and self._max_ends[other][idx - 1] > start + _EPS:
                return True
        return False


def merge_segments(segments: Sequence[SpeakerSegment], max_gap_s: float) -> list[TurnSpan]:
    """Rule 1: join consecutive same-speaker segments across short pauses nobody else fills.

    Args:
        segments: the recording's diarization (any order).
        max_gap_s: pauses shorter than this are bridged.

    Returns:
        Turns sorted by (start, channel, speaker), with ``pauses`` set and ``overlap_s`` zero.
    """
    index = _SpeakerIndex(segments)
    by_key: dict[tuple[str, int], list[SpeakerSegment]] = {}
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        if seg.end - seg.start > 0:
            by_key.setdefault((seg.speaker, seg.channel), []).append(seg)
    spans: list[TurnSpan] = []
    for (speaker, channel), segs in by_key.items():
        start, end, pauses = segs[0].start, segs[0].end, []
        for seg in segs[1:]:
            gap = seg.start - end
            if gap < max_gap_s and (gap <= 0 or not index.other_speaks_in(speaker, end, seg.start)):
                if gap > 0:
                    pauses.append((end, seg.start))
                end = max(end, seg.end)
                continue
            spans.append(TurnSpan(speaker, channel, start, end, tuple(pauses)))
            start, end, pauses = seg.start, seg.end, []
        spans.append(TurnSpan(speaker, channel, start, end, tuple(pauses)))
    return sorted(spans, key=lambda s: (s.start, s.channel, s.speaker))


def _vad_gaps(
    speech: Sequence[SpeechRegion], channel: int, start: float, end: float
) -> list[tuple[float, float]]:
    """Silences between VAD regions strictly inside ``(start, end)`` on ``channel``.

    Uses the channel's own regions when VAD ran per channel, else the regions of the mix.
    """
    regions = [r for r in speech if r.channel == channel] or list(speech)
    regions = sorted((r.start, r.end) for r in regions if r.end > start and r.start < end)
    gaps = []
    cursor = None
    for r_start, r_end in regions:
        if cursor is not None and r_start > cursor:
            gaps.append((cursor, r_start))
        cursor = r_end if cursor is None else max(cursor, r_end)
    return [(a, b) for a, b in gaps if a > start + _EPS and b < end - _EPS]


def split_span(
    start: float, end: float, pauses: Iterable[tuple[float, float]], max_chunk_s: float
) -> list[tuple[float, float]]:
    """Rule 2: cut ``[start, end]`` into pieces of at most ``max_chunk_s`` at its largest pauses.

    Args:
        start: span start in seconds.
        end: span end in seconds.
        pauses: candidate pauses ``(start, end)``; the pause itself is left out of both pieces.
        max_chunk_s: the longest piece allowed.

    Returns:
        Pieces ``(start, end)`` in time order, each at most ``max_chunk_s`` long.

    >>> split_span(0.0, 40.0, [(10.0, 10.5), (25.0, 25.2)], 30.0)
    [(0.0, 10.0), (10.5, 40.0)]
    """
    if end - start <= max_chunk_s + _EPS:
        return [(start, end)]
    inside = [(a, b) for a, b in pauses if start + _EPS < a < b < end - _EPS]
    if not inside:
        pieces = math.ceil((end - start) / max_chunk_s - _EPS)
        step = (end - start) / pieces
        bounds = [start + k * step for k in range(pieces)] + [end]
        return [(bounds[k], bounds[k + 1]) for k in range(pieces)]
    roomy = [(a, b) for a, b in inside if a - start >= MIN_PIECE_S and end - b >= MIN_PIECE_S]
    middle = (start + end) / 2
    # largest pause first; among equals, the one nearest the middle
    a, b = max(
        roomy or inside, key=lambda p: (round(p[1] - p[0], 6), -abs((p[0] + p[1]) / 2 - middle))
    )
    return split_span(start, a, inside, max_chunk_s) + split_span(b, end, inside, max_chunk_s)


def _overlap_s(
    span_start: float, span_end: float, speaker: str, segments: Sequence[SpeakerSegment]
) -> float:
    """Seconds of ``[span_start, span_end]`` covered by other speakers or flagged-overlap speech."""
    covered = sorted(
        (max(s.start, span_start), min(s.end, span_end))
        for s in segments
        if (s.speaker != speaker or s.overlap) and s.start < span_end and s.end > span_start
    )
    total, cursor = 0.0, span_start
    for a, b in covered:
        a = max(a, cursor)
        if b > a:
            total += b - a
            cursor = b
    return total


def plan_turns(
    segments: Sequence[SpeakerSegment],
    speech: Sequence[SpeechRegion],
    max_gap_s: float,
    max_chunk_s: float,
) -> list[TurnSpan]:
    """All three rules: the turns to transcribe, in (start, channel, speaker) order.

    Args:
        segments: the recording's diarization.
        speech: the recording's VAD regions (their gaps are split candidates).
        max_gap_s: see :func:`merge_segments`.
        max_chunk_s: see :func:`split_span`.

    Returns:
        Turn spans, none longer than ``max_chunk_s``; empty when ``segments`` is empty.
    """
    turns: list[TurnSpan] = []
    by_start = sorted(segments, key=lambda s: s.start)
    starts = [s.start for s in by_start]
    longest = max((s.end - s.start for s in by_start), default=0.0)
    for span in merge_segments(segments, max_gap_s):
        pauses = list(span.pauses) + _vad_gaps(speech, span.channel, span.start, span.end)
        for start, end in split_span(span.start, span.end, pauses, max_chunk_s):
            lo = bisect.bisect_left(starts, start - longest)
            hi = bisect.bisect_left(starts, end)
            near = by_start[lo:hi]
            inner = tuple((a, b) for a, b in span.pauses if start <= a and b <= end)
            turns.append(
                TurnSpan(
                    span.speaker,
                    span.channel,
                    start,
                    end,
                    inner,
                    _overlap_s(start, end, span.speaker, near),
                )
            )
    return sorted(turns, key=lambda t: (t.start, t.channel, t.speaker))
