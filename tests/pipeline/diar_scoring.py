"""Scoring the corpus against known speakers: is each kept dialogue's role one true person?

Used by the diarization tests and ``bench/bench_diarize.py`` on conversations with exact
references (``voice_conversations.py``). A role is *pure* when at least ``min_share`` of its
turns' time (0.5 s from their edges ignored) belongs to one reference speaker; a dialogue is pure when both roles are, and their
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


def solo_spans(reference: Sequence[SpeakerSegment]) -> list[tuple[str, float, float]]:
    """``(speaker, start, end)`` stretches where exactly one reference speaker talks."""
    edges = sorted({t for s in reference for t in (s.start, s.end)})
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        active = {s.speaker for s in reference if s.start < b and s.end > a}
        if len(active) == 1:
            out.append((active.pop(), a, b))
    return out


def judge_dialogue(
    dialogue_id: str,
    duration: float,
    turns: Iterable[tuple[str, float, float]],
    reference: Sequence[SpeakerSegment],
    min_share: float = 0.95,
    collar_s: float = 0.5,
) -> DialogueVerdict:
    """Judge one dialogue from its ``(role, start, end)`` turns (recording times).

    Only time where one reference speaker talks alone counts (at a real overlap both people are
    heard, whichever role the turn carries), and not within ``collar_s`` of a turn's edges (where
    a boundary a few hundred ms off is not a second person, as DER's collar)."""
    solo = solo_spans(reference)
    turns = list(turns)

    def role_time(collar: float) -> dict[str, dict[str, float]]:
        time: dict[str, dict[str, float]] = {"S1": {}, "S2": {}}
        for role, start, end in turns:
            start, end = start + collar, end - collar
            for speaker, a, b in solo:
                shared = _overlap(start, end, a, b)
                if shared > 0:
                    time[role][speaker] = time[role].get(speaker, 0.0) + shared
        return time

    time, whole = role_time(collar_s), role_time(0.0)
    for role in time:  # a role of short turns only: judged on their whole length
        if not time[role]:
            time[role] = whole[role]
    people, shares = [], []
    for role in ("S1", "S2"):
        total = sum(time[role].values())
        person = max(time[role], key=time[role].get) if total else ""
        people.append(person)
        shares.append(time[role][person] / total if total else 0.0)
    pure = all(s >= min_share for s in shares) and people[0] != people[1] and all(people)
    return DialogueVerdict(
        dialogue_id, duration, (people[0], people[1]), (shares[0], shares[1]), pure
    )


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


# The quality filters that do not concern speakers, switched off: the built conversations mix
# telephone prompts and read speech in five languages, which DNSMOS, ASR confidence, characters
# per second and speaker share were never meant to judge.
RELAXED_FILTERS = (
    "--min_dnsmos_ovrl=0",
    "--min_dialogue_avg_logprob=-99",
    "--max_dialogue_no_speech_prob=1",
    "--cps_bounds=*=0:1000",
    "--min_speaker_share=0",
)


@dataclass(frozen=True)
class CorpusPurity:
    """Purity and yield of a pipeline run's kept dialogues against exact references."""

    kept_s: float  # kept dialogue seconds
    pure_s: float  # of which in dialogues whose roles are each one reference person
    two_person_speech_s: float  # speech of the two-person conversations
    kept_two_person_s: float  # kept dialogue seconds from two-person conversations
    three_person_mixed: int  # dialogues of three-person conversations that are not pure
    dialogues: int
    impure: tuple[DialogueVerdict, ...]

    @property
    def purity(self) -> float:
        return self.pure_s / self.kept_s if self.kept_s else float("nan")

    @property
    def yield_(self) -> float:
        return self.kept_two_person_s / self.two_person_speech_s


def corpus_purity(output_dir, references: dict[str, Sequence[SpeakerSegment]]) -> CorpusPurity:
    """Judge every kept dialogue of a pipeline output (``dialogues`` and ``dialogue_turns``
    tables) against the references, keyed by the input file's stem (recording ids start with
    ``<stem>-``)."""
    import pandas as pd

    dialogues = pd.read_parquet(f"{output_dir}/dialogues")
    turns = pd.read_parquet(f"{output_dir}/dialogue_turns")
    kept = pure = two_speech = kept_two = 0.0
    mixed = 0
    impure = []
    for name, reference in references.items():
        people = len({s.speaker for s in reference})
        if people == 2:
            two_speech += speech_seconds(reference)
        rows = dialogues[dialogues.recording_id.str.startswith(f"{name}-")]
        for row in rows.itertuples():
            mine = turns[turns.dialogue_id == row.dialogue_id]
            verdict = judge_dialogue(
                row.dialogue_id, row.duration, zip(mine.role, mine.start, mine.end), reference
            )
            kept += row.duration
            kept_two += row.duration if people == 2 else 0.0
            if verdict.pure:
                pure += row.duration
            else:
                impure.append(verdict)
                mixed += int(people == 3)
    return CorpusPurity(kept, pure, two_speech, kept_two, mixed, len(dialogues), tuple(impure))
