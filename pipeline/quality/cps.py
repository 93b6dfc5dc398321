"""Characters per second of speech, and the plausible range per language.

A transcript whose rate is far outside what people speak is a transcription error: too few
characters (missed speech, a hallucinated short phrase over a long segment) or too many (a
hallucinated repetition, text from another segment). Characters are letters and digits (tags,
spaces and punctuation do not count); seconds are seconds of speech, not of the segment.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_TAG = re.compile(r"\[S\d\]")

# Bounds in letters/digits per second of speech. English conversational speech runs at about
# 12-16 letters/s (≈ 3 words/s); Mandarin at about 4-6 characters/s. The ranges are wide on
# purpose: they catch transcription failures, not fast or slow talkers.
DEFAULT_CPS_BOUNDS = "en=5:25,zh=1.5:10,ja=2:14,ko=2:14,*=3:30"


@dataclass(frozen=True)
class CpsBounds:
    """Lower and upper characters-per-second bound for each language (``*`` for the rest)."""

    bounds: tuple[tuple[str, float, float], ...]

    @classmethod
    def parse(cls, spec: str) -> CpsBounds:
        """Parse ``"en=5:25,zh=1.5:10,*=3:30"``.

        Raises:
            ValueError: on a malformed entry or a lower bound above the upper one.
        """
        items = []
        for entry in filter(None, (e.strip() for e in spec.split(","))):
            try:
                lang, rng = entry.split("=")
                lo, hi = (float(v) for v in rng.split(":"))
            except ValueError as exc:
                raise ValueError(f"cps bound {entry!r} is not lang=min:max (e.g. en=5:25)") from exc
            if lo > hi:
                raise ValueError(f"cps bound {entry!r}: min {lo} is above max {hi}")
            items.append((lang.strip().lower(), lo, hi))
        return cls(tuple(items))

    def for_language(self, language: str) -> tuple[float, float]:
        """The bounds of ``language`` (``en``, ``en-US`` …); ``*`` or no bounds if unlisted."""
        lang = language.split("-")[0].lower()
        table = {k: (lo, hi) for k, lo, hi in self.bounds}
        return table.get(lang, table.get("*", (0.0, float("inf"))))


def count_chars(text: str) -> int:
    """Letters and digits in ``text`` once ``[S1]``/``[S2]`` tags are removed."""
    text = _TAG.sub("", text)
    return sum(1 for ch in text if unicodedata.category(ch)[0] in ("L", "N"))


def chars_per_second(text: str, speech_s: float) -> float:
    """``count_chars(text) / speech_s`` (``inf`` when there is text but no speech time)."""
    chars = count_chars(text)
    if speech_s <= 0:
        return float("inf") if chars else 0.0
    return chars / speech_s
