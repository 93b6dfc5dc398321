"""Word error rate with the project's fixed normalisation (:mod:`core.text_norm`).

:func:`error_counts` aligns two token sequences (Levenshtein, unit costs) and counts
substitutions, deletions and insertions; :func:`word_error_rate` normalises and tokenises a
reference and a hypothesis first; :func:`corpus_error_rate` sums the counts over many pairs
(the corpus WER is total errors / total reference units, not a mean of per-pair rates).
For Chinese the units are characters, so the same functions give CER (see ``text_norm``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.text_norm import tokenize

__all__ = ["ErrorCounts", "corpus_error_rate", "error_counts", "word_error_rate"]


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations between a reference and a hypothesis.

    Attributes:
        substitutions: reference units replaced by another unit.
        deletions: reference units missing from the hypothesis.
        insertions: hypothesis units not in the reference.
        reference_units: number of units in the reference.
    """

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_units: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference units (``inf`` for an empty reference with insertions, else 0)."""
        if self.reference_units == 0:
            return float("inf") if self.errors else 0.0
        return self.errors / self.reference_units

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.substitutions + other.substitutions,
                           self.deletions + other.deletions,
                           self.insertions + other.insertions,
                           self.reference_units + other.reference_units)


def error_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> ErrorCounts:
    """Align two token sequences with unit-cost edits and count each kind of error.

    Among alignments of minimal total cost, ties are broken toward substitutions, then
    deletions, then insertions (the convention of sclite and jiwer), so counts are deterministic.

    >>> error_counts("a b c".split(), "a x c d".split())
    ErrorCounts(substitutions=1, deletions=0, insertions=1, reference_units=3)
    """
    n, m = len(reference), len(hypothesis)
    # cost[j] and ops[j] for the previous and current rows: (total, subs, dels, ins)
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        ref_token = reference[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1]
            if ref_token == hypothesis[j - 1]:
                best = diag
            else:
                best = (diag[0] + 1, diag[1] + 1, diag[2], diag[3])
            up = prev[j]  # deletion of reference[i-1]
            if up[0] + 1 < best[0]:
                best = (up[0] + 1, up[1], up[2] + 1, up[3])
            left = cur[j - 1]  # insertion of hypothesis[j-1]
            if left[0] + 1 < best[0]:
                best = (left[0] + 1, left[1], left[2], left[3] + 1)
            cur.append(best)
        prev = cur
    _, subs, dels, ins = prev[m]
    return ErrorCounts(subs, dels, ins, n)


def word_error_rate(reference: str, hypothesis: str) -> ErrorCounts:
    """Normalise and tokenise both texts, then count errors (``.rate`` is the WER).

    >>> round(word_error_rate("Hello, world!", "hello word").rate, 2)
    0.5
    """
    return error_counts(tokenize(reference), tokenize(hypothesis))


def corpus_error_rate(pairs: Iterable[tuple[str, str]]) -> ErrorCounts:
    """Summed counts over ``(reference, hypothesis)`` pairs (``.rate`` is the corpus WER)."""
    total = ErrorCounts()
    for reference, hypothesis in pairs:
        total = total + word_error_rate(reference, hypothesis)
    return total
