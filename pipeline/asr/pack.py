"""Turn packing for ASR: many short turns share one 30 s Whisper window.

Whisper always encodes a 30 s window, so a 3 s turn decoded on its own pays for 27 s of zero
padding. In packed mode the turns' audio is laid out one piece after another in windows and each
window is decoded once:

1. **Pad**: each turn is widened by the ASR padding into the silence around it, never past the
   middle of the pause to the next turn of the same source (:func:`padded_extents`).
2. **Group**: turns whose padded extents overlap or touch (overlapped speech, backchannels, quick
   replies) form one *group*, read once as the recording's continuous audio, so no speech is
   heard twice in a window (a repeat makes Whisper drop or misplace words). A group stops before
   it would pass the window (:func:`group_extents`).
3. **Pack**: groups, in time order, fill windows greedily with ``gap`` of silence between two
   groups (:func:`pack_pieces`).
4. **Split**: a word goes to the piece (group) holding its midpoint, else to the nearest one
   (words in a silence gap); inside the group, to the turn whose extent holds the midpoint (the
   one it lies deepest inside when turns overlap), else to the nearest turn
   (:func:`turn_for_time`). Its times move back to recording time.

Per-turn fields in packed mode (:func:`split_window`): ``text`` is the turn's words joined as
Whisper spelled them (so scripts without spaces stay unspaced); ``avg_logprob`` is the mean log
probability of its words (Whisper scores a whole window, not a turn; word probabilities come from
the alignment pass); ``no_speech_prob``, ``language`` and ``language_prob`` are the window's
(language ID is per window, not per turn); ``compression_ratio`` is of the turn's own text.

Pure functions over sample counts, arrays and word records; no models.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.asr.whisper import ChunkTranscript, clamp_words, compression_ratio
from pipeline.records import Word

__all__ = [
    "PackedPiece",
    "PackedWindow",
    "TurnGroup",
    "assemble_window",
    "group_extents",
    "pack_pieces",
    "padded_extents",
    "split_window",
    "stitch_group",
    "turn_for_time",
]

_MIN_WORD_PROB = 1e-6  # floor before log() so a zero probability does not give -inf
_TOUCH_S = 1e-3  # extents this close count as touching (chunks are cut at whole samples)


@dataclass(frozen=True)
class PackedPiece:
    """One piece of audio placed in a window.

    Attributes:
        index: position of the piece in the list given to :func:`pack_pieces`.
        offset: first sample of the piece in the window.
        length: samples of the piece.
    """

    index: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        """One past the last sample of the piece in the window."""
        return self.offset + self.length


@dataclass(frozen=True)
class PackedWindow:
    """The pieces of one window, in placement order (silence between consecutive pieces)."""

    pieces: tuple[PackedPiece, ...]

    @property
    def length(self) -> int:
        """Samples from the window's start to the end of its last piece."""
        return self.pieces[-1].end if self.pieces else 0


@dataclass(frozen=True)
class TurnGroup:
    """Turns read as one stretch of continuous audio.

    Attributes:
        source: where the audio is read (a channel, or 0 for the mix).
        start: recording time of the stretch's first sample.
        end: recording time of its end.
        members: positions of its turns in the list given to :func:`group_extents`.
    """

    source: int
    start: float
    end: float
    members: tuple[int, ...]


def padded_extents(
    spans: Sequence[tuple[int, float, float]], pad_s: float
) -> list[tuple[float, float]]:
    """Each span widened by up to ``pad_s`` into the silence around it, never past the middle
    of the pause to the nearest other span of the same source (spans that overlap it do not
    limit it): neighbouring turns then share no padding audio.

    Args:
        spans: ``(source, start_s, end_s)`` of every turn (any order).
        pad_s: the widening wanted on each side.

    Returns:
        ``(start_s, end_s)`` per span, in the order given.
    """
    by_source: dict[int, tuple[list[float], list[float]]] = {}
    for source in {s for s, _, _ in spans}:
        mine = [(a, b) for s, a, b in spans if s == source]
        by_source[source] = (sorted(a for a, _ in mine), sorted(b for _, b in mine))
    out = []
    for source, start, end in spans:
        starts, ends = by_source[source]
        before = bisect.bisect_right(ends, start)  # spans ending at or before this start
        after = bisect.bisect_left(starts, end)  # spans starting at or after this end
        lo = start - pad_s if before == 0 else max(start - pad_s, (ends[before - 1] + start) / 2)
        hi = end + pad_s if after == len(starts) else min(end + pad_s, (end + starts[after]) / 2)
        out.append((lo, hi))
    return out


def group_extents(extents: Sequence[tuple[int, float, float]], max_s: float) -> list[TurnGroup]:
    """Runs of same-source turns whose extents overlap or touch, each at most ``max_s`` long.

    Args:
        extents: ``(source, start_s, end_s)`` of each turn's audio, ordered by start.
        max_s: longest group; the turn that would make a group longer starts a new one (its
            audio may then repeat the end of the previous group: a rare, accepted cost).

    Returns:
        Groups ordered by their first member; every turn in exactly one.
    """
    groups: list[TurnGroup] = []
    current: dict[int, TurnGroup] = {}  # the open group of each source
    for index, (source, start, end) in enumerate(extents):
        group = current.get(source)
        if (
            group is not None
            and start <= group.end + _TOUCH_S
            and max(group.end, end) - group.start <= max_s
        ):
            current[source] = TurnGroup(
                source, group.start, max(group.end, end), (*group.members, index)
            )
            continue
        if group is not None:
            groups.append(group)
        current[source] = TurnGroup(source, start, end, (index,))
    groups.extend(current.values())
    return sorted(groups, key=lambda g: g.members[0])


def group_length(
    group: TurnGroup,
    lengths: Sequence[int] | Mapping[int, int],
    offsets_s: Sequence[float],
    sample_rate: int,
) -> int:
    """Samples of the group's continuous audio (:func:`stitch_group`), from its members'
    lengths alone."""
    return max(
        round((offsets_s[i] - group.start) * sample_rate) + lengths[i] for i in group.members
    )


def stitch_group(
    group: TurnGroup, chunks: Sequence[np.ndarray], offsets_s: Sequence[float], sample_rate: int
) -> np.ndarray:
    """The group's continuous audio rebuilt from its members' chunks (same source: where they
    overlap they hold the same samples, so later chunks simply overwrite). ``chunks`` may read
    each chunk when indexed (:class:`pipeline.audio.Clips`): each member is read once."""
    members = {i: chunks[i] for i in group.members}
    lengths = {i: len(c) for i, c in members.items()}
    audio = np.zeros(group_length(group, lengths, offsets_s, sample_rate), dtype=np.float32)
    for i, chunk in members.items():
        at = round((offsets_s[i] - group.start) * sample_rate)
        audio[at : at + len(chunk)] = chunk
    return audio


def pack_pieces(
    lengths: Sequence[int], gap: int, window: int, longest: int | None = None
) -> list[PackedWindow]:
    """Greedy packing, in the given order, of pieces of ``lengths`` samples into windows.

    Args:
        lengths: samples of each piece.
        gap: samples of silence between two pieces of a window.
        window: samples one window may hold; a longer piece gets a window of its own.
        longest: samples of the longest window (Whisper's 30 s): longer pieces are truncated to
            it, as Whisper would; default ``window``.

    Returns:
        Windows covering every piece exactly once, order kept; a window of several pieces never
        exceeds ``window``.
    """
    longest = window if longest is None else longest
    if gap < 0 or not 0 < window <= longest:
        raise ValueError(
            f"need gap >= 0 and 0 < window <= longest, got gap {gap}, window "
            f"{window}, longest {longest}"
        )
    windows: list[PackedWindow] = []
    current: list[PackedPiece] = []
    for index, length in enumerate(lengths):
        length = min(int(length), longest)
        offset = current[-1].end + gap if current else 0
        if current and offset + length > window:
            windows.append(PackedWindow(tuple(current)))
            current, offset = [], 0
        current.append(PackedPiece(index, offset, length))
    if current:
        windows.append(PackedWindow(tuple(current)))
    return windows


def assemble_window(window: PackedWindow, pieces: Sequence[np.ndarray]) -> np.ndarray:
    """The window's audio: each piece at its offset, zeros (silence) in the gaps."""
    audio = np.zeros(window.length, dtype=np.float32)
    for piece in window.pieces:
        audio[piece.offset : piece.end] = pieces[piece.index][: piece.length]
    return audio


def turn_for_time(time_s: float, extents: Sequence[tuple[float, float]]) -> int:
    """Position in ``extents`` of the one holding ``time_s`` (the one it is deepest inside when
    several do), else of the nearest one."""
    best, best_key = 0, (math.inf, math.inf)
    for k, (start, end) in enumerate(extents):
        outside = max(start - time_s, time_s - end, 0.0)
        depth = min(time_s - start, end - time_s)
        key = (outside, -depth)
        if key < best_key:
            best, best_key = k, key
    return best


def _turn_transcript(
    words: Sequence[Word], extent: tuple[float, float], window: ChunkTranscript
) -> ChunkTranscript:
    """One turn's transcript from its share of a window's words (already in recording time,
    Whisper's spelling); words are clipped to the turn's ``extent``."""
    text = "".join(w.text for w in words).strip()
    kept = [
        Word(
            start=w.start,
            end=w.end,
            text=w.text.strip(),
            probability=round(float(w.probability), 4),
        )
        for w in words
        if w.text.strip()
    ]
    logprobs = [math.log(max(float(w.probability), _MIN_WORD_PROB)) for w in kept]
    return ChunkTranscript(
        text=text,
        language=window.language,
        language_prob=window.language_prob,
        avg_logprob=float(np.mean(logprobs)) if logprobs else math.nan,
        no_speech_prob=window.no_speech_prob,
        compression_ratio=compression_ratio(text),
        words=clamp_words(kept, extent[0], extent[1]),
        decoded=window.decoded,
    )


def split_window(
    window: PackedWindow,
    transcript: ChunkTranscript,
    groups: Sequence[TurnGroup],
    extents: Sequence[tuple[float, float]],
    sample_rate: int,
) -> dict[int, ChunkTranscript]:
    """Hand a decoded window's words back to its turns (rule 4 of the module notes).

    Args:
        window: the packing of the window; piece ``index`` = position in ``groups``.
        transcript: the window's transcript, words in window time with Whisper's own spelling
            (leading spaces kept), as :meth:`WhisperBatchTranscriber.transcribe_windows` gives.
        groups: all groups of the recording.
        extents: recording time ``(start, end)`` of each turn's audio (by turn position).
        sample_rate: samples per second of the window.

    Returns:
        ``{turn position: transcript}`` for every turn of the window, words in recording time;
        a turn that got no words has empty text.
    """
    bounds = [(p.offset / sample_rate, p.end / sample_rate) for p in window.pieces]
    shares: dict[int, list[Word]] = {i: [] for p in window.pieces for i in groups[p.index].members}
    for word in transcript.words:
        piece = window.pieces[turn_for_time((word.start + word.end) / 2, bounds)]
        group = groups[piece.index]
        shift = group.start - piece.offset / sample_rate
        moved = Word(
            start=word.start + shift,
            end=word.end + shift,
            text=word.text,
            probability=word.probability,
        )
        members = group.members
        k = turn_for_time((moved.start + moved.end) / 2, [extents[i] for i in members])
        shares[members[k]].append(moved)
    return {i: _turn_transcript(words, extents[i], transcript) for i, words in shares.items()}
