"""Two-speaker dialogue segmentation (OpenDialog-style): turns → tagged dialogue segments.

Input: ``RecordingWork`` with ``turns`` (file-wide speakers, word timestamps) and ``diarization``.
Output: the same work with ``dialogues`` and ``dialogue_turns`` filled; text is tagged
``[S1]… [S2]… [S1]…`` as ZipVoice-Dialog trains on it (``S1`` = whoever speaks first).
Item-level rejects: ``one_speaker``, ``too_few_switches``, ``too_short``, ``too_long``,
``third_speaker``. No model. The cutting rules are pure functions (:func:`segment_dialogues`);
the README section "Dialogue segmentation rules" describes them.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.dialogue_script import tag_turns
from core.options import opt
from pipeline import stereo
from pipeline.records import (
    Dialogue,
    DialogueTurn,
    Recording,
    RecordingWork,
    Reject,
    SpeakerSegment,
    Turn,
    Word,
)
from pipeline.stage import (
    RecordingStage,
    RecordingStageFn,
    item_reject,
    replace,
)

logger = logging.getLogger(__name__)

STAGE = "dialogue"

# reject reasons of this stage
ONE_SPEAKER = "one_speaker"  # a stretch of conversation in which only one speaker talks
TOO_FEW_SWITCHES = "too_few_switches"  # fewer speaker switches than --min_speaker_switches
TOO_SHORT = "too_short"  # shorter than --min_dialogue_s
TOO_LONG = "too_long"  # speech with no pause to cut at for longer than --max_dialogue_s
THIRD_SPEAKER = "third_speaker"  # another speaker's diarized speech inside the segment
REASONS = (ONE_SPEAKER, TOO_FEW_SWITCHES, TOO_SHORT, TOO_LONG, THIRD_SPEAKER)

MAX_DIALOGUE_S_LIMIT = 60.0

# Languages written without spaces between words (word texts are joined without a separator).
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "bo", "yue"})


@dataclass(frozen=True)
class DialogueOptions:
    """Options of the dialogue segmentation stage (each field is a command-line flag)."""

    min_dialogue_s: float = opt(3.0, "shortest dialogue segment kept, seconds")
    max_dialogue_s: float = opt(
        30.0,
        "longest dialogue segment, seconds (at most 60); longer conversations are cut at pauses",
    )
    min_speaker_switches: int = opt(1, "fewest speaker switches (S1→S2 or S2→S1) in a segment")
    max_turn_gap_s: float = opt(
        3.0,
        "a pause longer than this between two turns ends a "
        "conversation (segments never span it), seconds",
    )
    min_cut_pause_s: float = opt(
        0.2,
        "shortest pause where a segment may be cut (between turns, "
        "or between two words of a turn that does not fit), "
        "seconds",
    )
    dialogue_edge_pad_s: float = opt(
        0.1,
        "silence kept before the first and after the last "
        "word (never more than half the pause to other "
        "speech), seconds",
    )
    max_other_speaker_s: float = opt(
        0.5, "most seconds of a third speaker's diarized speech allowed inside a segment"
    )
    max_untranscribed_s: float = opt(
        0.4,
        "diarized speech of one speaker, alone, that no "
        "transcribed turn of theirs covers (a reply the "
        "recogniser heard no words in) ends a conversation "
        "when it lasts this long, seconds (0: off)",
    )
    pseudo_stereo: bool = opt(
        False,
        "render mono dialogues into 2 channels, each speaker's "
        "diarized regions on its own channel (layout "
        "pseudo_stereo)",
    )

    def __post_init__(self):
        if not 0 < self.min_dialogue_s <= self.max_dialogue_s:
            raise ValueError(
                f"min_dialogue_s={self.min_dialogue_s} must be > 0 and <= "
                f"max_dialogue_s={self.max_dialogue_s}"
            )
        if self.max_dialogue_s > MAX_DIALOGUE_S_LIMIT:
            raise ValueError(
                f"max_dialogue_s={self.max_dialogue_s} is above the "
                f"{MAX_DIALOGUE_S_LIMIT:g} s limit"
            )
        if self.min_speaker_switches < 1:
            raise ValueError(f"min_speaker_switches={self.min_speaker_switches} must be >= 1")
        for name in (
            "max_turn_gap_s",
            "min_cut_pause_s",
            "dialogue_edge_pad_s",
            "max_other_speaker_s",
            "max_untranscribed_s",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


# --- text --------------------------------------------------------------------------------------

_BRACKETED = re.compile(r"\[[^\]]*\]|<[^>]*>")


def clean_turn_text(text: str) -> str:
    """Make ASR text safe inside a tagged dialogue string.

    ZipVoice's tokenizer reads ``[...]`` as a tag token, ``<...>`` as pinyin and ``_`` as
    padding, so bracketed spans (non-speech annotations such as ``[laughter]``) are removed,
    stray brackets dropped, ``_`` turned into a space and whitespace collapsed.
    """
    text = _BRACKETED.sub(" ", text)
    text = re.sub(r"[\[\]<>]", " ", text).replace("_", " ")
    return " ".join(text.split())


def join_words(words: Sequence[Word], language: str = "") -> str:
    """The text of consecutive words (Whisper word texts carry their own leading space)."""
    if any(w.text[:1].isspace() for w in words):
        return "".join(w.text for w in words).strip()
    sep = "" if language.split("-")[0].lower() in _NO_SPACE_LANGUAGES else " "
    return sep.join(w.text.strip() for w in words)


def tagged_text(turns: Sequence[DialogueTurn]) -> str:
    """``[S1]text [S2]text …`` (:func:`core.dialogue_script.tag_turns`)."""
    return tag_turns([(t.role, t.text) for t in turns])


# --- pure segmentation -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """A stretch of one speaker's speech that is never cut (no pause >= min_cut_pause_s inside)."""

    speaker: str
    start: float
    end: float
    text: str
    turn_index: int
    language: str
    channel: int


def _turn_pieces(turn: Turn, index: int, min_cut_pause_s: float) -> list[_Piece]:
    """Split a turn at the pauses between its words where it may be cut."""
    words = [w for w in turn.words if w.text.strip()]
    if not words:
        return [
            _Piece(
                turn.speaker,
                turn.start,
                turn.end,
                clean_turn_text(turn.text),
                index,
                turn.language,
                turn.channel,
            )
        ]
    groups: list[list[Word]] = [[words[0]]]
    for prev, word in itertools.pairwise(words):
        if word.start - prev.end >= min_cut_pause_s:
            groups.append([word])
        else:
            groups[-1].append(word)
    if len(groups) == 1:
        # keep the turn's own (punctuated) text; the span is the words' span
        return [
            _Piece(
                turn.speaker,
                words[0].start,
                words[-1].end,
                clean_turn_text(turn.text),
                index,
                turn.language,
                turn.channel,
            )
        ]
    return [
        _Piece(
            turn.speaker,
            g[0].start,
            g[-1].end,
            clean_turn_text(join_words(g, turn.language)),
            index,
            turn.language,
            turn.channel,
        )
        for g in groups
    ]


def _untranscribed_pieces(
    turns: Sequence[Turn], diarization: Sequence[SpeakerSegment], min_s: float, bridge_s: float
) -> list[_Piece]:
    """Text-less pieces where a speaker with transcribed turns talks alone and no turn of theirs
    covers it (a turn the recogniser found no words in, or one shorter than ``asr_min_turn_s``,
    is dropped with its own reject, so without these a dialogue could hold that speech inside
    the other speaker's turn, untranscribed). Such stretches less than ``bridge_s`` apart count
    as one (diarization may cut a reply in two); one of at least ``min_s`` of speech becomes a
    piece. Speakers with no turn at all are third speakers (``max_other_speaker_s``)."""
    covered: dict[str, list[tuple[float, float]]] = {}
    for turn in turns:
        covered.setdefault(turn.speaker, []).append((turn.start, turn.end))
    out = []
    for speaker, spans in covered.items():
        # where their speech is accounted for (their turns) or not alone (other voices)
        taken = _union(spans + [(s.start, s.end) for s in diarization if s.speaker != speaker])
        free: list[tuple[float, float]] = []
        for seg in diarization:
            if seg.speaker != speaker or seg.overlap:
                continue
            parts = [(seg.start, seg.end)]
            for a, b in taken:
                if a < seg.end and b > seg.start:
                    parts = [
                        part
                        for s, e in parts
                        for part in ((s, min(e, a)), (max(s, b), e))
                        if part[1] > part[0]
                    ]
            free += parts
        stretches: list[list[tuple[float, float]]] = []
        for span in sorted(free):
            if stretches and span[0] - stretches[-1][-1][1] < bridge_s:
                stretches[-1].append(span)
            else:
                stretches.append([span])
        channel = (
            next(s.channel for s in diarization if s.speaker == speaker)
            if any(s.speaker == speaker for s in diarization)
            else 0
        )
        out += [
            _Piece(speaker, group[0][0], group[-1][1], "", -1, "", channel)
            for group in stretches
            if sum(e - s for s, e in group) >= min_s
        ]
    return out


def _windows(pieces: Sequence[_Piece], opts: DialogueOptions) -> list[list[_Piece]]:
    """Maximal runs of pieces with at most two speakers and no long pause or untranscribed turn."""
    windows: list[list[_Piece]] = []
    current: list[_Piece] = []
    current_end = float("-inf")
    for piece in pieces:
        if not piece.text:  # speech without a transcript: a segment may not contain it
            if current:
                windows.append(current)
            current, current_end = [], float("-inf")
            continue
        speakers = {p.speaker for p in current} | {piece.speaker}
        if current and (piece.start - current_end > opts.max_turn_gap_s or len(speakers) > 2):
            windows.append(current)
            current, current_end = [], float("-inf")
        current.append(piece)
        current_end = max(current_end, piece.end)
    if current:
        windows.append(current)
    return windows


def _chunks(
    window: Sequence[_Piece], max_s: float, min_pause_s: float
) -> list[tuple[int, int, bool]]:
    """Cut a window into chunks no longer than ``max_s``, only at pauses.

    A cut is allowed after piece ``e`` when all speech up to ``e`` (of either speaker) ends at
    least ``min_pause_s`` before the next piece starts, so no word is ever cut. Greedy: each chunk
    takes as many pieces as fit. Returns ``(first, last, fits)`` index triples; ``fits`` is False
    for a stretch with no allowed cut inside ``max_s`` (rejected as too long).
    """
    n = len(window)
    prefix_end = []
    running = float("-inf")
    for piece in window:
        running = max(running, piece.end)
        prefix_end.append(running)

    def cut_after(e: int) -> bool:
        return e == n - 1 or prefix_end[e] + min_pause_s <= window[e + 1].start

    chunks: list[tuple[int, int, bool]] = []
    s = 0
    while s < n:
        best, end_max = None, float("-inf")
        for e in range(s, n):
            end_max = max(end_max, window[e].end)
            if end_max - window[s].start > max_s:
                break
            if cut_after(e):
                best = e
        if best is None:
            e = s
            while not cut_after(e):
                e += 1
            chunks.append((s, e, False))
            s = e + 1
        else:
            chunks.append((s, best, True))
            s = best + 1
    return chunks


def _merge_runs(
    pieces: Sequence[_Piece], turn_texts: dict[int, tuple[int, str]]
) -> list[tuple[str, float, float, str]]:
    """Merge consecutive same-speaker pieces into ``(speaker, start, end, text)`` runs.

    ``turn_texts`` maps a turn index to ``(number of pieces, cleaned turn text)``: a turn whose
    pieces are all in the run contributes its own (punctuated) text, a cut turn its words' text.
    """
    runs: list[list[_Piece]] = []
    for piece in sorted(pieces, key=lambda p: (p.start, p.end)):
        if runs and runs[-1][-1].speaker == piece.speaker:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    merged = []
    for run in runs:
        parts: list[str] = []
        counts: dict[int, int] = {}
        for piece in run:
            counts[piece.turn_index] = counts.get(piece.turn_index, 0) + 1
        done: set[int] = set()
        for piece in run:
            n_pieces, text = turn_texts[piece.turn_index]
            if counts[piece.turn_index] == n_pieces:
                if piece.turn_index not in done:
                    parts.append(text)
                    done.add(piece.turn_index)
            else:
                parts.append(piece.text)
        language = run[0].language.split("-")[0].lower()
        sep = "" if language in _NO_SPACE_LANGUAGES else " "
        merged.append(
            (run[0].speaker, run[0].start, max(p.end for p in run), sep.join(p for p in parts if p))
        )
    return merged


def _intervals_overlap_s(
    a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]
) -> float:
    """Total time where an interval of ``a`` and one of ``b`` overlap (each list non-overlapping
    within itself after union)."""
    ua, ub = _union(a), _union(b)
    total, i, j = 0.0, 0, 0
    while i < len(ua) and j < len(ub):
        lo, hi = max(ua[i][0], ub[j][0]), min(ua[i][1], ub[j][1])
        if hi > lo:
            total += hi - lo
        if ua[i][1] < ub[j][1]:
            i += 1
        else:
            j += 1
    return total


def _union(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _clip(
    spans: Sequence[tuple[float, float]], start: float, end: float
) -> list[tuple[float, float]]:
    return [(max(a, start), min(b, end)) for a, b in spans if min(b, end) > max(a, start)]


def _dominant_language(pieces: Sequence[_Piece]) -> str:
    weight: dict[str, float] = {}
    for p in pieces:
        if p.language:
            weight[p.language] = weight.get(p.language, 0.0) + (p.end - p.start)
    return max(sorted(weight), key=lambda k: weight[k]) if weight else ""


class _Rejected(Exception):
    """A candidate segment fails a rule (internal: becomes an item-level reject)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def segment_dialogues(
    recording: Recording,
    turns: Sequence[Turn],
    diarization: Sequence[SpeakerSegment],
    opts: DialogueOptions,
    split: str = "train",
) -> tuple[list[Dialogue], list[DialogueTurn], list[Reject]]:
    """Cut a recording's turns into two-speaker dialogue segments.

    Args:
        recording: the recording the turns belong to.
        turns: its transcribed turns (file-wide speakers, word timestamps in recording time).
        diarization: its speaker segments (for overlap, third-speaker speech, stereo channels).
        opts: the segmentation options.
        split: the corpus split of this recording (see :func:`pipeline.output.corpus.assign_split`).

    Returns:
        ``(dialogues, dialogue_turns, rejects)``; ids are ``{recording_id}-d{k:04d}`` with ``k``
        counting every candidate (kept or rejected) in time order.

    Example:
        >>> dialogues, turns, rejects = segment_dialogues(rec, rec_turns, diar, DialogueOptions())
        >>> dialogues[0].text  # doctest: +SKIP
        '[S1]Oh, hello. [S2]Neither did I. [S1]Okay, …'
    """
    rid = recording.recording_id
    ordered = sorted(turns, key=lambda t: (t.start, t.end))
    per_turn = [_turn_pieces(t, i, opts.min_cut_pause_s) for i, t in enumerate(ordered)]
    turn_texts = {i: (len(ps), clean_turn_text(ordered[i].text)) for i, ps in enumerate(per_turn)}
    pieces = [p for ps in per_turn for p in ps]
    if opts.max_untranscribed_s > 0:
        pieces += _untranscribed_pieces(
            ordered, diarization, opts.max_untranscribed_s, opts.min_cut_pause_s
        )
    pieces.sort(key=lambda p: (p.start, p.end))
    channels = stereo.speaker_channels(recording, diarization, turns)
    dialogues: list[Dialogue] = []
    dturns: list[DialogueTurn] = []
    rejects: list[Reject] = []
    k = 0
    for window in _windows(pieces, opts):
        for first, last, fits in _chunks(window, opts.max_dialogue_s, opts.min_cut_pause_s):
            chunk = window[first : last + 1]
            item_id = f"{rid}-d{k:04d}"
            k += 1
            start, end = chunk[0].start, max(p.end for p in chunk)
            try:
                if len({p.speaker for p in window}) < 2:
                    raise _Rejected(ONE_SPEAKER, f"only {chunk[0].speaker} speaks")
                if not fits:
                    raise _Rejected(
                        TOO_LONG,
                        f"speech_s={end - start:.2f}: no pause to cut at "
                        f"within {opts.max_dialogue_s:g} s",
                    )
                dialogue, dialogue_turns = _build_dialogue(
                    recording,
                    chunk,
                    pieces,
                    diarization,
                    channels,
                    opts,
                    item_id,
                    split,
                    turn_texts,
                )
            except _Rejected as exc:
                rejects.append(
                    item_reject(STAGE, recording, exc.reason, str(exc), item_id, start, end)
                )
                continue
            dialogues.append(dialogue)
            dturns.extend(dialogue_turns)
    return dialogues, dturns, rejects


def _build_dialogue(
    recording: Recording,
    chunk: Sequence[_Piece],
    all_pieces: Sequence[_Piece],
    diarization: Sequence[SpeakerSegment],
    channels: dict[str, int] | None,
    opts: DialogueOptions,
    dialogue_id: str,
    split: str,
    turn_texts: dict[int, tuple[int, str]],
) -> tuple[Dialogue, list[DialogueTurn]]:
    """One candidate chunk → a dialogue and its turns (raises :class:`_Rejected`)."""
    speakers = {p.speaker for p in chunk}
    word_start, word_end = chunk[0].start, max(p.end for p in chunk)
    if len(speakers) < 2:
        raise _Rejected(ONE_SPEAKER, f"only {chunk[0].speaker} speaks")
    runs = _merge_runs(chunk, turn_texts)
    switches = len(runs) - 1
    if switches < opts.min_speaker_switches:
        raise _Rejected(TOO_FEW_SWITCHES, f"switches={switches} < {opts.min_speaker_switches}")

    # pad the edges into silence, never past half the pause to other speech or the file bounds
    inside = set(map(id, chunk))
    before = [p.end for p in all_pieces if id(p) not in inside and p.end <= word_start]
    after = [p.start for p in all_pieces if id(p) not in inside and p.start >= word_end]
    pad_lo = pad_hi = opts.dialogue_edge_pad_s
    if before:
        pad_lo = min(pad_lo, (word_start - max(before)) / 2)
    if after:
        pad_hi = min(pad_hi, (min(after) - word_end) / 2)
    pad_lo, pad_hi = max(pad_lo, 0.0), max(pad_hi, 0.0)
    room = max(0.0, opts.max_dialogue_s - (word_end - word_start))
    if pad_lo + pad_hi > room:  # padding never pushes a segment past max_dialogue_s
        scale = room / (pad_lo + pad_hi)
        pad_lo, pad_hi = pad_lo * scale, pad_hi * scale
    start = max(0.0, word_start - pad_lo)
    end = word_end + pad_hi
    if recording.duration_s > 0:
        end = min(end, recording.duration_s)
    if end - start < opts.min_dialogue_s:
        raise _Rejected(TOO_SHORT, f"duration={end - start:.2f} < {opts.min_dialogue_s:g}")

    others = [(s.start, s.end) for s in diarization if s.speaker not in speakers]
    other_s = sum(b - a for a, b in _union(_clip(others, start, end)))
    if other_s > opts.max_other_speaker_s:
        raise _Rejected(
            THIRD_SPEAKER, f"other_speaker_s={other_s:.2f} > {opts.max_other_speaker_s:g}"
        )

    s1 = runs[0][0]
    s2 = next(spk for spk in sorted(speakers) if spk != s1)
    role_of = {s1: "S1", s2: "S2"}
    if channels is not None and s1 in channels and s2 in channels and channels[s1] != channels[s2]:
        layout = stereo.STEREO
    elif opts.pseudo_stereo:
        layout = stereo.PSEUDO_STEREO
    else:
        layout = stereo.MONO
    dturns = [
        DialogueTurn(
            dialogue_id=dialogue_id,
            index=i,
            role=role_of[spk],
            speaker=spk,
            start=a,
            end=b,
            text=text,
            channel=stereo.turn_channel(layout, role_of[spk], spk, channels),
        )
        for i, (spk, a, b, text) in enumerate(runs)
    ]

    # speech time and overlap from diarization where it knows the speaker, else from the words
    dialogue = Dialogue(
        dialogue_id=dialogue_id,
        recording_id=recording.recording_id,
        start=start,
        end=end,
        text=tagged_text(dturns),
        language=_dominant_language(chunk),
        num_turns=len(dturns),
        s1_speaker=s1,
        s2_speaker=s2,
        **_speech_measures(diarization, s1, s2, start, end, chunk),
        channel_layout=layout,
        sample_rate=recording.sample_rate,
        bandwidth_hz=recording.bandwidth_hz,
        split=split,
        quality={"other_speaker_s": float(other_s), "speaker_switches": float(switches)},
        licence=recording.licence,
        source=recording.source,
        metadata=recording.metadata,
    )
    return dialogue, dturns


def _speech_measures(
    diarization: Sequence[SpeakerSegment],
    s1: str,
    s2: str,
    start: float,
    end: float,
    spoken: Sequence[_Piece] | Sequence[DialogueTurn],
) -> dict[str, float]:
    """``s1_s``, ``s2_s`` and ``overlap_ratio`` of a dialogue over ``[start, end]``: each
    speaker's speech from diarization where it knows the speaker, else from ``spoken`` (the
    pieces or turns of the dialogue, which have ``speaker``, ``start`` and ``end``)."""
    spans = []
    for spk in (s1, s2):
        diarized = [(s.start, s.end) for s in diarization if s.speaker == spk]
        diarized = diarized or [(p.start, p.end) for p in spoken if p.speaker == spk]
        spans.append(_union(_clip(diarized, start, end)))
    return {
        "s1_s": sum(b - a for a, b in spans[0]),
        "s2_s": sum(b - a for a, b in spans[1]),
        "overlap_ratio": _intervals_overlap_s(*spans) / (end - start),
    }


def dialogue_parts(
    dialogue: Dialogue,
    turns: Sequence[DialogueTurn],
    drop: int,
    diarization: Sequence[SpeakerSegment],
    min_dialogue_s: float,
) -> list[tuple[Dialogue, list[DialogueTurn]]]:
    """The dialogues left of ``dialogue`` on either side of its turn ``drop`` (a turn index).

    A part keeps its turns' times and texts; ``S1`` is again whoever speaks first in it. It
    reaches the dialogue's own edge on the outer side and halfway into the pause before the
    dropped turn on the inner side. A part is returned when both speakers talk in it and it
    lasts at least ``min_dialogue_s``. Ids are the dialogue's with ``-1`` (before) and ``-2``
    (after); measures are recomputed as :func:`segment_dialogues` does (the filters' quality
    measures are not: the parts go through the filters again).
    """
    ordered = sorted(turns, key=lambda t: t.index)
    cut = ordered[drop]
    sides = (
        (ordered[:drop], dialogue.start, None),
        (ordered[drop + 1 :], None, dialogue.end),
    )
    parts = []
    for k, (side, start, end) in enumerate(sides, 1):
        speakers = [t.speaker for t in side]
        if len(set(speakers)) < 2:
            continue
        if start is None:
            start = side[0].start - max(0.0, side[0].start - cut.end) / 2
        if end is None:
            end = side[-1].end + max(0.0, cut.start - side[-1].end) / 2
        if end - start < min_dialogue_s:
            continue
        dialogue_id = f"{dialogue.dialogue_id}-{k}"
        s1 = speakers[0]
        s2 = next(spk for spk in speakers if spk != s1)
        role_of = {s1: "S1", s2: "S2"}
        dturns = [
            DialogueTurn(
                dialogue_id=dialogue_id,
                index=i,
                role=role_of[t.speaker],
                speaker=t.speaker,
                start=t.start,
                end=t.end,
                text=t.text,
                channel=t.channel
                if dialogue.channel_layout == stereo.STEREO
                else stereo.turn_channel(
                    dialogue.channel_layout, role_of[t.speaker], t.speaker, None
                ),
            )
            for i, t in enumerate(side)
        ]
        others = [(s.start, s.end) for s in diarization if s.speaker not in role_of]
        part = dataclasses.replace(
            dialogue,
            dialogue_id=dialogue_id,
            start=start,
            end=end,
            text=tagged_text(dturns),
            num_turns=len(dturns),
            s1_speaker=s1,
            s2_speaker=s2,
            **_speech_measures(diarization, s1, s2, start, end, side),
            quality={
                "other_speaker_s": float(sum(b - a for a, b in _union(_clip(others, start, end)))),
                "speaker_switches": float(len(dturns) - 1),
            },
        )
        parts.append((part, dturns))
    return parts


# --- Beam --------------------------------------------------------------------------------------


class SegmentDialoguesFn(RecordingStageFn):
    """Fill ``work.dialogues`` / ``work.dialogue_turns`` from ``work.turns``.

    Args:
        opts: segmentation options.
        split_fn: ``recording_id -> split`` (e.g. :func:`pipeline.output.corpus.split_function`);
            every dialogue is ``"train"`` when omitted.
    """

    stage = STAGE

    def __init__(self, opts: DialogueOptions, split_fn: Callable[[str], str] | None = None):
        super().__init__()
        self.opts = opts
        self.split_fn = split_fn

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        split = self.split_fn(work.recording_id) if self.split_fn else "train"
        dialogues, dturns, rejects = segment_dialogues(
            work.recording, work.turns, work.diarization, self.opts, split
        )
        return replace(work, dialogues=tuple(dialogues), dialogue_turns=tuple(dturns)), rejects


class SegmentDialogues(RecordingStage):
    """Composite: ``RecordingWork`` → the same work with two-speaker dialogue segments.

    >>> # outputs = works | "SegmentDialogues" >> SegmentDialogues(DialogueOptions())
    >>> # outputs.main, outputs.rejects
    """

    options_class = DialogueOptions
    fn_class = SegmentDialoguesFn
    step = "Segment"
