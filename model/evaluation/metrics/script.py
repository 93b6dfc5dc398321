"""A dialogue script ``[S1] ... [S2] ...`` as speaker turns and per-speaker text, for scoring.

Lenient on purpose (evaluation must score whatever the test list holds): text before the first
tag belongs to ``[S1]``; only ``[S1]``/``[S2]`` are speaker tags; other bracketed, angle-bracketed
and parenthesised spans (``[laughs]``, ``<noise>``, ``(coughs)``) are not spoken words and are
removed from the reference, as the ZipVoice-Dialog evaluation does.

>>> [t.speaker for t in parse_script("[S1] Hi! [S2] Hello. [S1] Bye.")]
['S1', 'S2', 'S1']
>>> speaker_texts(parse_script("[S1] Hi! [S2] Hello. [S1] Bye."))
{'S1': 'Hi! Bye.', 'S2': 'Hello.'}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "SPEAKERS",
    "ScriptTurn",
    "parse_script",
    "plain_text",
    "speaker_texts",
    "swap_speakers",
    "to_script",
]

SPEAKERS = ("S1", "S2")
_SPEAKER_TAG = re.compile(r"\[(S[12])\]")
_NON_SPEECH = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ScriptTurn:
    """One turn of the script.

    Attributes:
        speaker: ``"S1"`` or ``"S2"``.
        text: the turn's words, non-speech tags removed.
    """

    speaker: str
    text: str


def plain_text(text: str) -> str:
    """``text`` without speaker tags and other non-speech tags, spaces collapsed.

    >>> plain_text("[S1] Oh [laughs] hi. [S2] Hey <noise> there.")
    'Oh hi. Hey there.'
    """
    return _SPACES.sub(" ", _NON_SPEECH.sub(" ", text)).strip()


def parse_script(text: str) -> tuple[ScriptTurn, ...]:
    """Split a script into turns (empty turns are dropped; consecutive turns are kept apart).

    Args:
        text: e.g. ``"[S1] Hello. [S2] Hi! [S1] How are you?"``.

    Returns:
        The turns in order.
    """
    turns: list[ScriptTurn] = []
    speaker, cursor = "S1", 0
    for match in _SPEAKER_TAG.finditer(text):
        words = plain_text(text[cursor : match.start()])
        if words:
            turns.append(ScriptTurn(speaker, words))
        speaker, cursor = match.group(1), match.end()
    words = plain_text(text[cursor:])
    if words:
        turns.append(ScriptTurn(speaker, words))
    return tuple(turns)


def speaker_texts(turns: Sequence[ScriptTurn]) -> dict[str, str]:
    """Each speaker's words concatenated in script order (both speakers always present)."""
    return {spk: " ".join(t.text for t in turns if t.speaker == spk) for spk in SPEAKERS}


def swap_speakers(turns: Sequence[ScriptTurn], indices: Sequence[int]) -> tuple[ScriptTurn, ...]:
    """A copy of ``turns`` with the speaker of the turns at ``indices`` swapped (S1 <-> S2)."""
    chosen = set(indices)
    other = {"S1": "S2", "S2": "S1"}
    return tuple(
        ScriptTurn(other[t.speaker], t.text) if i in chosen else t for i, t in enumerate(turns)
    )


def to_script(turns: Sequence[ScriptTurn]) -> str:
    """The script text of ``turns``: ``"[S1] a [S2] b"``."""
    return " ".join(f"[{t.speaker}] {t.text}" for t in turns)
