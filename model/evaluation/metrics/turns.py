"""Turn-taking metrics: speaker switches found by diarization, and per-turn speaker accuracy.

- **Switches**: the script's number of speaker changes (consecutive turns of one speaker are one
  turn) against the diarization's. The diarized turn sequence is the non-overlapped segments in
  time order, adjacent same-speaker pieces merged, and pieces under ``min_turn_s`` of speech
  removed one at a time, shortest first (re-merging after each removal), so a split syllable or
  a short misattribution does not count as two switches.
- **Turn accuracy**: the script's words are aligned to Whisper's timed words (minimum edit
  alignment); each script turn takes the diarized speaker most of its aligned words fall on; the
  fraction of turns whose speaker matches, under the better of the two S1/S2 <-> diarized-label
  pairings. A turn none of whose words were recognised counts as wrong.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from core.text_norm import tokenize
from core.wer import align
from model.evaluation.metrics.script import SPEAKERS, ScriptTurn
from pipeline.api import SpeakerSegment, Word

__all__ = ["TurnScore", "diarized_turn_sequence", "merge_turns", "score_turns"]

MIN_TURN_S = 0.3


@dataclass(frozen=True)
class TurnScore:
    """Turn-taking of one output against its script.

    Attributes:
        num_turns: script turns (consecutive same-speaker turns merged).
        switches_expected: speaker changes in the script.
        switches_found: speaker changes in the diarization.
        turns_correct: script turns attributed to the right speaker (best pairing).
        mapping: ``(script speaker, diarized label)`` of the best pairing.
        predicted: the diarized label attributed to each script turn (``""``: none).
    """

    num_turns: int
    switches_expected: int
    switches_found: int
    turns_correct: int
    mapping: tuple[tuple[str, str], ...]
    predicted: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        return self.turns_correct / self.num_turns if self.num_turns else 0.0

    @property
    def switch_error(self) -> int:
        """``|found - expected|`` speaker changes."""
        return abs(self.switches_found - self.switches_expected)


def merge_turns(turns: Sequence[ScriptTurn]) -> list[ScriptTurn]:
    """Consecutive turns of one speaker joined into one."""
    merged: list[ScriptTurn] = []
    for turn in turns:
        if merged and merged[-1].speaker == turn.speaker:
            merged[-1] = ScriptTurn(turn.speaker, f"{merged[-1].text} {turn.text}")
        else:
            merged.append(turn)
    return merged


def diarized_turn_sequence(
    segments: Sequence[SpeakerSegment], min_turn_s: float = MIN_TURN_S
) -> list[tuple[str, float]]:
    """The diarization as a turn sequence: ``(speaker, seconds of speech)`` per turn.

    >>> seg = lambda spk, a, b: SpeakerSegment("r", spk, a, b)
    >>> diarized_turn_sequence([seg("A", 0, 2), seg("B", 2, 2.1), seg("A", 2.1, 4), seg("B", 5, 6)])
    [('A', 3.9), ('B', 1.0)]
    """
    pieces = [
        [s.speaker, s.end - s.start]
        for s in sorted(segments, key=lambda s: (s.start, s.speaker))
        if not s.overlap
    ]

    def merged(items: list[list]) -> list[list]:
        out: list[list] = []
        for speaker, seconds in items:
            if out and out[-1][0] == speaker:
                out[-1][1] += seconds
            else:
                out.append([speaker, seconds])
        return out

    pieces = merged(pieces)
    while pieces:
        shortest = min(range(len(pieces)), key=lambda i: pieces[i][1])
        if pieces[shortest][1] >= min_turn_s:
            break
        pieces = merged(pieces[:shortest] + pieces[shortest + 1 :])
    return [(speaker, round(float(seconds), 3)) for speaker, seconds in pieces]


def _turn_votes(
    turns: Sequence[ScriptTurn], words: Sequence[Word], speakers: Sequence[str | None]
) -> list[str]:
    """The diarized label most aligned words of each turn fall on (``""``: none or a tie)."""
    ref_tokens: list[str] = []
    ref_turn: list[int] = []
    for index, turn in enumerate(turns):
        tokens = tokenize(turn.text)
        ref_tokens += tokens
        ref_turn += [index] * len(tokens)
    hyp_tokens: list[str] = []
    hyp_speaker: list[str | None] = []
    for word, speaker in zip(words, speakers):
        tokens = tokenize(word.text)
        hyp_tokens += tokens
        hyp_speaker += [speaker] * len(tokens)
    votes = [Counter() for _ in turns]
    for i, j in align(ref_tokens, hyp_tokens):
        if i is not None and j is not None and hyp_speaker[j] is not None:
            votes[ref_turn[i]][hyp_speaker[j]] += 1
    out = []
    for counter in votes:
        ranked = counter.most_common(2)
        if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
            out.append("")
        else:
            out.append(ranked[0][0])
    return out


def score_turns(
    turns: Sequence[ScriptTurn],
    words: Sequence[Word],
    speakers: Sequence[str | None],
    segments: Sequence[SpeakerSegment],
    min_turn_s: float = MIN_TURN_S,
) -> TurnScore:
    """Switch counts and turn accuracy of one output.

    Args:
        turns: the script's turns.
        words: Whisper's timed words of the output.
        speakers: the diarized label of each word (:func:`model.evaluation.metrics.diarization.word_speakers`).
        segments: the output's diarization.
        min_turn_s: diarized turns with less speech are not turns (see the module docstring).
    """
    script = merge_turns(turns)
    predicted = _turn_votes(script, words, speakers)
    labels = sorted({s.speaker for s in segments} | {p for p in predicted if p})
    labels += [""] * max(0, len(SPEAKERS) - len(labels))
    best: tuple[int, tuple[tuple[str, str], ...]] | None = None
    for order in itertools.permutations(labels, len(SPEAKERS)):
        pairing = dict(zip(SPEAKERS, order))
        correct = sum(
            1 for turn, label in zip(script, predicted) if label and pairing[turn.speaker] == label
        )
        if best is None or correct > best[0]:
            best = (correct, tuple(zip(SPEAKERS, order)))
    sequence = diarized_turn_sequence(segments, min_turn_s)
    return TurnScore(
        num_turns=len(script),
        switches_expected=max(0, len(script) - 1),
        switches_found=max(0, len(sequence) - 1),
        turns_correct=best[0] if best else 0,
        mapping=best[1] if best else (),
        predicted=tuple(predicted),
    )
