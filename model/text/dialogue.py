"""Split a dialogue script ``[S1] ... [S2] ...`` into speaker turns, with validation.

The dialogue models know two speakers: ``[S1]`` (the first to talk) and ``[S2]``. A script
must start with ``[S1]``, may hold only these two speaker tags, and every turn needs text.
Other bracketed tags (``[LAUGHS]``, ``[COUGHS]``) are left inside the turn text.

>>> split_dialogue("[S1] Hi! [S2] [LAUGHS] Hello.")
[('[S1]', 'Hi!'), ('[S2]', '[LAUGHS] Hello.')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from model.text.token_table import SPEAKER_A_TAG, SPEAKER_B_TAG

SPEAKER_TAGS = (SPEAKER_A_TAG, SPEAKER_B_TAG)
# any speaker-looking tag: [S1], [S2], [S3], [s10] ...
_ANY_SPEAKER_TAG = re.compile(r"\[[sS](\d+)\]")


class DialogueFormatError(ValueError):
    """The dialogue text does not follow the ``[S1] ... [S2] ...`` format."""


def split_dialogue(text: str) -> list[tuple[str, str]]:
    """Split ``text`` into ``(speaker_tag, turn_text)`` pairs in order.

    Args:
        text: a script such as ``"[S1] Hello. [S2] Hi! [S1] How are you?"``.

    Returns:
        The turns; consecutive turns of one speaker are kept apart.

    Raises:
        DialogueFormatError: no speaker tag; text before the first tag or a first tag other
            than ``[S1]``; a speaker tag other than ``[S1]``/``[S2]`` (``[S3]``, ``[s1]``);
            a turn with no text.
    """
    matches = list(_ANY_SPEAKER_TAG.finditer(text))
    if not matches:
        raise DialogueFormatError(
            "no speaker tags: write the dialogue as '[S1] first turn [S2] second turn ...'"
        )
    for match in matches:
        if match.group(0) not in SPEAKER_TAGS:
            raise DialogueFormatError(
                f"unsupported speaker tag {match.group(0)} at character {match.start()}: "
                "only [S1] and [S2] are allowed (two speakers)"
            )
    leading = text[: matches[0].start()].strip()
    if leading:
        raise DialogueFormatError(f"text before the first speaker tag: {leading!r}")
    if matches[0].group(0) != SPEAKER_A_TAG:
        raise DialogueFormatError(f"the dialogue must start with [S1], not {matches[0].group(0)}")
    turns = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        turn_text = text[match.end() : end].strip()
        if not turn_text:
            raise DialogueFormatError(f"turn {index + 1} ({match.group(0)}) has no text")
        turns.append((match.group(0), turn_text))
    return turns


def join_dialogue(turns: Sequence[tuple[str, str]]) -> str:
    """The script of ``turns`` (inverse of :func:`split_dialogue`): ``"[S1] a [S2] b"``."""
    return " ".join(f"{tag} {turn_text}" for tag, turn_text in turns)
