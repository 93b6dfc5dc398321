"""WER of a whole dialogue and cpWER over speaker permutations.

Counting and normalisation are the pipeline's (:mod:`core.wer`, :mod:`core.text_norm`):
one fixed normalisation for every WER the project reports; Chinese is scored per character.

cpWER ("concatenated minimum-permutation WER", CHiME-6): each reference speaker's words are
concatenated, each hypothesis speaker's words too; every one-to-one pairing of reference and
hypothesis speakers is scored as the *sum* of the per-pair edit counts, and the pairing with the
fewest errors is kept. A missing speaker on either side is an empty text (all deletions or all
insertions). Summing per pair differs slightly from ZipVoice's ``process_one_cpwer``, which aligns
the two concatenations joined end to end (an alignment may then cross the speaker boundary).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from core.text_norm import tokenize
from core.wer import ErrorCounts, error_counts, word_error_rate
from model.evaluation.metrics.script import plain_text

__all__ = ["CpWer", "ErrorCounts", "cp_wer", "dialogue_wer"]

_MAX_SPEAKERS = 6  # permutations grow as n!; evaluation has 2 speakers


@dataclass(frozen=True)
class CpWer:
    """The best speaker pairing and its error counts.

    Attributes:
        counts: summed edit counts of the best pairing (``.rate`` is the cpWER).
        mapping: ``(reference speaker, hypothesis speaker)`` pairs of the best pairing; ``""``
            stands for a missing speaker.
        worst_counts: counts of the worst pairing (with 2 speakers: the swapped one).
    """

    counts: ErrorCounts
    mapping: tuple[tuple[str, str], ...]
    worst_counts: ErrorCounts


def dialogue_wer(script: str, hypothesis: str) -> ErrorCounts:
    """WER of a transcript against a script, speaker and non-speech tags removed from both.

    >>> dialogue_wer("[S1] Hello there. [S2] Hi!", "hello there hi").rate
    0.0
    """
    return word_error_rate(plain_text(script), plain_text(hypothesis))


def cp_wer(reference: Mapping[str, str], hypothesis: Mapping[str, str]) -> CpWer:
    """cpWER: the minimum over one-to-one speaker pairings of the summed edit counts.

    Args:
        reference: words per reference speaker (e.g. ``{"S1": ..., "S2": ...}``).
        hypothesis: words per hypothesis speaker (e.g. diarized ``{"SPK0": ..., "SPK1": ...}``).

    Returns:
        The best pairing (ties: the first in sorted label order) and the worst one's counts.

    Raises:
        ValueError: more than 6 speakers on one side.

    >>> r = cp_wer({"S1": "a b", "S2": "c d"}, {"X": "c d", "Y": "a b x"})
    >>> r.counts.errors, r.mapping, r.worst_counts.errors
    (1, (('S1', 'Y'), ('S2', 'X')), 5)
    """
    ref_labels = sorted(reference)
    hyp_labels = sorted(hypothesis)
    size = max(len(ref_labels), len(hyp_labels))
    if size > _MAX_SPEAKERS:
        raise ValueError(f"cpWER over {size} speakers is too costly (at most {_MAX_SPEAKERS})")
    ref_labels += [""] * (size - len(ref_labels))
    hyp_labels += [""] * (size - len(hyp_labels))
    ref_tokens = {k: tokenize(reference[k]) if k else [] for k in ref_labels}
    hyp_tokens = {k: tokenize(hypothesis[k]) if k else [] for k in hyp_labels}
    cache: dict[tuple[str, str], ErrorCounts] = {}

    def pair(r: str, h: str) -> ErrorCounts:
        if (r, h) not in cache:
            cache[(r, h)] = error_counts(ref_tokens[r], hyp_tokens[h])
        return cache[(r, h)]

    scored = []
    for order in itertools.permutations(hyp_labels):
        total = ErrorCounts()
        for r, h in zip(ref_labels, order):
            total = total + pair(r, h)
        scored.append((total, tuple((r, h) for r, h in zip(ref_labels, order) if r or h)))
    best = min(scored, key=lambda item: item[0].errors)  # first of equals: stable order
    worst = max(scored, key=lambda item: item[0].errors)[0]
    return CpWer(counts=best[0], mapping=best[1], worst_counts=worst)
