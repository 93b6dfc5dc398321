"""Word error rate with the project's fixed normalisation (:mod:`core.text_norm`).

:func:`align` aligns two token sequences (Levenshtein, unit costs) and :func:`error_counts`
counts the substitutions, deletions and insertions along it; :func:`word_error_rate` normalises
and tokenises a reference and a hypothesis first; :func:`corpus_error_rate` sums the counts over
many pairs (the corpus WER is total errors / total reference units, not a mean of per-pair rates).
For Chinese the units are characters, so the same functions give CER (see ``text_norm``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.text_norm import tokenize

__all__ = ["ErrorCounts", "align", "corpus_error_rate", "error_counts", "word_error_rate"]


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
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_units + other.reference_units,
        )


def align(
    reference: Sequence[str], hypothesis: Sequence[str]
) -> list[tuple[int | None, int | None]]:
    """A minimum-edit (Levenshtein, unit costs) alignment of two token sequences, as index pairs.

    Among alignments of minimal total cost, ties are broken toward match/substitution, then
    deletion, then insertion (the convention of sclite and jiwer), so the result is deterministic.

    Returns:
        ``(ref_index, hyp_index)`` pairs in order: both set for a match or substitution,
        ``(i, None)`` for a deletion, ``(None, j)`` for an insertion.

    >>> align("a b c".split(), "a x c d".split())
    [(0, 0), (1, 1), (2, 2), (None, 3)]
    """
    n, m = len(reference), len(hypothesis)
    prev = list(range(m + 1))  # costs of the previous row
    moves = [bytearray(b"I") * (m + 1)]  # per cell: M(atch/substitution), D(eletion), I(nsertion)
    for i in range(1, n + 1):
        cur = [i] + [0] * m
        row = bytearray(b"D") * (m + 1)
        ref_token = reference[i - 1]
        for j in range(1, m + 1):
            best, step = prev[j - 1] + (ref_token != hypothesis[j - 1]), ord("M")
            if prev[j] + 1 < best:
                best, step = prev[j] + 1, ord("D")
            if cur[j - 1] + 1 < best:
                best, step = cur[j - 1] + 1, ord("I")
            cur[j], row[j] = best, step
        moves.append(row)
        prev = cur
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        step = moves[i][j]
        if step == ord("M"):
            i, j = i - 1, j - 1
            pairs.append((i, j))
        elif step == ord("D"):
            i -= 1
            pairs.append((i, None))
        else:
            j -= 1
            pairs.append((None, j))
    pairs.reverse()
    return pairs


def error_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> ErrorCounts:
    """Count each kind of error along :func:`align`'s alignment.

    >>> error_counts("a b c".split(), "a x c d".split())
    ErrorCounts(substitutions=1, deletions=0, insertions=1, reference_units=3)
    """
    subs = dels = ins = 0
    for i, j in align(reference, hypothesis):
        if i is None:
            ins += 1
        elif j is None:
            dels += 1
        elif reference[i] != hypothesis[j]:
            subs += 1
    return ErrorCounts(subs, dels, ins, len(reference))


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
