"""cpSIM: speaker similarity of a generated dialogue to its two prompt speakers.

As in ZipVoice-Dialog's evaluation: diarize the output (two speakers), concatenate each
speaker's segments, embed each, compare with the prompt speakers' embeddings (a merged prompt is
diarized the same way), and keep the larger of the two pairings' mean cosine. If diarization
does not find two speakers, the whole clip stands in for both (as ZipVoice does).

The embedder is GE2E (Resemblyzer's bundled weights, 256-d), an offline stand-in for the paper's
WavLM-large ECAPA-TDNN: its cosines are on another scale (higher for everyone) and it separates
voices poorly on narrow-band telephone speech.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.evaluation.metrics.audio import cut
from model.evaluation.metrics.diarization import speaker_labels, speaker_spans
from pipeline.api import SpeakerSegment

logger = logging.getLogger(__name__)

__all__ = ["CpSim", "SpeakerPair", "cp_sim", "diarized_pair", "split_pair"]

_MIN_SPEAKER_S = 0.5  # less speech than this is no speaker embedding


@dataclass(frozen=True)
class SpeakerPair:
    """Embeddings of the two speakers of one clip (or of two prompt files).

    Attributes:
        embeddings: shape ``(2, D)``, L2-normalised rows.
        labels: the diarized label (or ``S1``/``S2``) of each row.
        fallback: True when diarization did not give two speakers and the whole clip was used.
    """

    embeddings: np.ndarray
    labels: tuple[str, str]
    fallback: bool = False


@dataclass(frozen=True)
class CpSim:
    """cpSIM of one output against its prompts.

    Attributes:
        score: the larger mean cosine of the two pairings (the cpSIM).
        other_score: the mean cosine of the other pairing.
        cosine: ``cosine[i][j]`` between prompt speaker ``i`` (S1, S2) and output speaker ``j``.
        mapping: ``(prompt speaker, output label)`` of the best pairing.
        fallback: the output (or a merged prompt) was not split into two speakers.
    """

    score: float
    other_score: float
    cosine: tuple[tuple[float, float], tuple[float, float]]
    mapping: tuple[tuple[str, str], tuple[str, str]]
    fallback: bool


def split_pair(prompt_s1: np.ndarray, prompt_s2: np.ndarray, embedder: Any) -> SpeakerPair:
    """Embeddings of two single-speaker prompts (16 kHz arrays)."""
    rows = embedder.embed([prompt_s1, prompt_s2])
    return SpeakerPair(np.asarray(rows, dtype=np.float32), ("S1", "S2"))


def diarized_pair(
    samples: np.ndarray, segments: Sequence[SpeakerSegment], embedder: Any
) -> SpeakerPair:
    """Embeddings of the first two diarized speakers' concatenated speech (first appearance order).

    Overlapped stretches are left out of each speaker's audio when the speaker has other speech.
    A speaker with under 0.5 s, or a clip with fewer than two speakers, falls back to the whole
    clip for both rows.
    """
    labels = speaker_labels(segments)[:2]
    pieces = [cut(samples, speaker_spans(segments, label)) for label in labels]
    if len(pieces) < 2 or any(len(p) < _MIN_SPEAKER_S * 16000 for p in pieces):
        logger.debug("diarization gave %d usable speakers: whole clip for both", len(pieces))
        row = np.asarray(embedder.embed([samples]), dtype=np.float32)[0]
        names = (tuple(labels) + ("", ""))[:2]
        return SpeakerPair(np.stack([row, row]), (names[0], names[1]), fallback=True)
    rows = embedder.embed(pieces)
    return SpeakerPair(np.asarray(rows, dtype=np.float32), (labels[0], labels[1]))


def cp_sim(prompt: SpeakerPair, output: SpeakerPair) -> CpSim:
    """The better of the two pairings' mean cosine (prompt S1/S2 against output speakers).

    >>> e = np.eye(2, dtype=np.float32)
    >>> r = cp_sim(SpeakerPair(e, ("S1", "S2")), SpeakerPair(e[::-1], ("SPK0", "SPK1")))
    >>> r.score, r.other_score, r.mapping
    (1.0, 0.0, (('S1', 'SPK1'), ('S2', 'SPK0')))
    """
    a = prompt.embeddings / np.linalg.norm(prompt.embeddings, axis=1, keepdims=True)
    b = output.embeddings / np.linalg.norm(output.embeddings, axis=1, keepdims=True)
    cos = (a @ b.T).astype(np.float64)
    straight = float((cos[0, 0] + cos[1, 1]) / 2)
    swapped = float((cos[0, 1] + cos[1, 0]) / 2)
    s1, s2 = output.labels
    if straight >= swapped:
        score, other, mapping = straight, swapped, (("S1", s1), ("S2", s2))
    else:
        score, other, mapping = swapped, straight, (("S1", s2), ("S2", s1))
    matrix = (
        (round(float(cos[0, 0]), 6), round(float(cos[0, 1]), 6)),
        (round(float(cos[1, 0]), 6), round(float(cos[1, 1]), 6)),
    )
    return CpSim(
        score=round(score, 6),
        other_score=round(other, 6),
        cosine=matrix,
        mapping=mapping,
        fallback=prompt.fallback or output.fallback,
    )
