"""Real-time factor: seconds of synthesis per second of generated audio.

Synthesis times come from the caller (a timer around inference) or from a file with one
``name<TAB>seconds`` line per generated wav (``#`` starts a comment). The corpus RTF is total
synthesis time over total audio duration, as ZipVoice's inference logs report it.

>>> real_time_factor(0.5, 10.0)
0.05
>>> corpus_rtf({"a": 1.0, "b": 3.0}, {"a": 10.0, "b": 10.0, "c": 5.0})
0.2
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["corpus_rtf", "read_synthesis_times", "real_time_factor"]


def real_time_factor(synthesis_s: float, audio_s: float) -> float:
    """``synthesis_s / audio_s``.

    Raises:
        ValueError: ``audio_s`` is not positive or ``synthesis_s`` is negative.
    """
    if audio_s <= 0:
        raise ValueError(f"audio duration must be positive, got {audio_s}")
    if synthesis_s < 0:
        raise ValueError(f"synthesis time must not be negative, got {synthesis_s}")
    return synthesis_s / audio_s


def corpus_rtf(synthesis_s: Mapping[str, float], durations_s: Mapping[str, float]) -> float | None:
    """Total synthesis time over total duration of the items that have both (None: none do)."""
    names = [n for n in synthesis_s if n in durations_s]
    total_audio = sum(durations_s[n] for n in names)
    if not names or total_audio <= 0:
        return None
    return real_time_factor(sum(synthesis_s[n] for n in names), total_audio)


def read_synthesis_times(path: str | os.PathLike) -> dict[str, float]:
    """``{name: seconds}`` from a ``name<TAB>seconds`` file.

    Raises:
        ValueError: a line without exactly two fields or with a non-numeric time.
    """
    times: dict[str, float] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 'name<TAB>seconds', got {line!r}")
            try:
                times[fields[0]] = float(fields[1])
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {fields[1]!r} is not a number") from exc
    return times
