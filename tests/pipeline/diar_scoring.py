"""Scoring the corpus against known speakers: is each kept dialogue's role one true person?

Used by the diarization tests and ``bench/bench_diarize.py`` on conversations with exact
references (``voice_conversations.py``). A role is *pure* when at least ``min_share`` of its
turns' time belongs to one reference speaker; a dialogue is pure when both roles are, and their
people differ. Purity = pure kept dialogue seconds / kept dialogue seconds; yield = kept
dialogue seconds / seconds of the two-person conversations' speech.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.records import SpeakerSegment


@dataclass(frozen=True)
class DialogueVerdict:
    dialogue_id: str
    duration: float
    people: tuple[str, str]  # the dominant reference speaker of S1 and of S2
    shares: tuple[float, float]  # their share of the role's time
    pure: bool


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def judge_dialogue(dialogue_id: str, duration: float, turns: Iterable[tuple[str, float, float]],
                   reference: Sequence[SpeakerSegment], min_share: float = 0.95
                   ) -> DialogueVerdict:
    """Judge one dialogue from its ``(role, start, end)`` turns (recording times)."""
    time: dict[str, dict[str, float]] = {"S1": {}, "S2": {}}
    for role, start, end in turns:
        for seg in reference:
            shared = _overlap(start, end, seg.start, seg.end)
            if shared > 0:
                time[role][seg.speaker] = time[role].get(seg.speaker, 0.0) + shared
    people, shares = [], []
    for role in ("S1", "S2"):
        total = sum(time[role].values())
        person = max(time[role], key=time[role].get) if total else ""
        people.append(person)
        shares.append(time[role][person] / total if total else 0.0)
    pure = all(s >= min_share for s in shares) and people[0] != people[1] and all(people)
    return DialogueVerdict(dialogue_id, duration, (people[0], people[1]),
                           (shares[0], shares[1]), pure)


def speech_seconds(reference: Sequence[SpeakerSegment]) -> float:
    """Seconds during which at least one reference speaker talks."""
    spans = sorted((s.start, s.end) for s in reference)
    total, cursor = 0.0, float("-inf")
    for start, end in spans:
        start = max(start, cursor)
        if end > start:
            total += end - start
        cursor = max(cursor, end)
    return total
