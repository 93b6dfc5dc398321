"""The dialogue script format ``[S1] ... [S2] ...``: its speaker tags, splitting and joining
scripts with validation, and the tagged text of a Lhotse cut.

The dialogue models know two speakers: ``[S1]`` (the first to talk) and ``[S2]``. A script
must start with ``[S1]``, may hold only these two speaker tags, and every turn needs text.
Other bracketed tags (``[LAUGHS]``, ``[COUGHS]``) are left inside the turn text.

>>> split_dialogue("[S1] Hi! [S2] [LAUGHS] Hello.")
[('[S1]', 'Hi!'), ('[S2]', '[LAUGHS] Hello.')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

SPEAKER_A_TAG = "[S1]"  # whoever speaks first
SPEAKER_B_TAG = "[S2]"
SPEAKER_TAGS = (SPEAKER_A_TAG, SPEAKER_B_TAG)
_TAG_AT_START = re.compile(r"^\s*\[S[12]\]")
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


def starts_with_first_speaker(text: str) -> bool:
    """Whether a script begins with ``[S1]`` (the form every corpus line must have)."""
    return text.lstrip().startswith(SPEAKER_A_TAG)


def tag_turns(turns: Sequence[tuple[str, str]]) -> str:
    """``[S1]text [S2]text …`` from ``(role, text)`` pairs, roles ``S1``/``S2``: each tag directly
    followed by its text, as ZipVoice-Dialog builds it (its tokenizer splits tags out; the space
    between turns only keeps the text readable)."""
    return " ".join(f"[{role}]{text}" for role, text in turns)


def join_dialogue(turns: Sequence[tuple[str, str]]) -> str:
    """The script of ``turns`` (inverse of :func:`split_dialogue`): ``"[S1] a [S2] b"``."""
    return " ".join(f"{tag} {turn_text}" for tag, turn_text in turns)


def dialogue_text(cut: Any) -> str:
    """The tagged dialogue text of a cut: ``"[S1] … [S2] …"``.

    Order of precedence: ``cut.custom["text"]``; a supervision text that already starts with a
    speaker tag (ZipVoice-style single-supervision cuts); otherwise the turns (supervisions) in
    time order, consecutive turns of the same speaker merged. Speakers ``S1``/``S2`` keep their
    labels; other labels are mapped to S1, S2 in order of first appearance.

    Args:
        cut: a Lhotse cut.

    Returns:
        The tagged text.

    Raises:
        ValueError: no text, or more than two speakers.
    """
    custom = getattr(cut, "custom", None) or {}
    if isinstance(custom.get("text"), str) and custom["text"].strip():
        return custom["text"].strip()
    sups = sorted(cut.supervisions, key=lambda s: (s.start, s.end))
    if len(sups) == 1 and sups[0].text and _TAG_AT_START.match(sups[0].text):
        return sups[0].text.strip()
    if not sups:
        raise ValueError(f"cut {cut.id}: no supervisions and no custom['text']")
    voiced = [s for s in sups if (s.text or "").strip()]
    speakers = list(dict.fromkeys(s.speaker or "S1" for s in voiced))
    if len(speakers) > 2:
        raise ValueError(f"cut {cut.id}: more than two speakers ({speakers})")
    if set(speakers) <= {"S1", "S2"}:
        labels = {spk: spk for spk in speakers}
    else:  # other labels: S1, S2 by order of first appearance
        labels = {spk: f"S{i + 1}" for i, spk in enumerate(speakers)}
    turns: list[tuple[str, str]] = []
    for sup in voiced:
        tag, text = labels[sup.speaker or "S1"], sup.text.strip()
        if turns and turns[-1][0] == tag:
            turns[-1] = (tag, f"{turns[-1][1]} {text}")
        else:
            turns.append((tag, text))
    if not turns:
        raise ValueError(f"cut {cut.id}: all supervision texts are empty")
    return " ".join(f"[{tag}] {text}" for tag, text in turns)
