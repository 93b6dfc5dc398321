"""Two-speaker diarization of generated dialogues, and mapping times to its speakers.

An adapter over the pipeline's ONNX recipe (:func:`pipeline.diarization.recipe.diarize_array`:
pyannote segmentation-3.0 + GE2E track clustering) with ``num_speakers=2``, as the
ZipVoice-Dialog evaluation runs pyannote with ``num_speakers=2``. Labels are ``SPK0``, ``SPK1`` by
first appearance, so on a merged prompt ``SPK0`` is the prompt's ``[S1]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.api import SpeakerSegment, Word

logger = logging.getLogger(__name__)

__all__ = [
    "TwoSpeakerDiarizer",
    "fill_unattributed",
    "speaker_labels",
    "speaker_spans",
    "word_speakers",
]

_NEAREST_MAX_S = 1.0  # a word outside every segment goes to the nearest one within this


class TwoSpeakerDiarizer:
    """The pipeline's ONNX diarizer, set to two speakers.

    Args:
        embedder: a loaded speaker embedder (``Ge2eEmbedder``) for cpSIM; ``None`` loads one.
            The diarization itself uses CAM++, the pipeline's default.
        num_threads: onnxruntime threads of the segmentation model.
    """

    def __init__(self, embedder: Any | None = None, num_threads: int = 1):
        from pipeline.api import (
            CamPlusEmbedder,
            DiarizeOptions,
            Ge2eEmbedder,
            OnnxModels,
            SegmentationModel,
        )

        self.embedder = embedder if embedder is not None else Ge2eEmbedder()
        # the diarizer's own embedding is the pipeline's default (CAM++): its recipe was fitted
        # with it; GE2E (shared with cpSIM) cannot tell the sample's telephone voices apart
        self._models = OnnxModels(
            segmentation=SegmentationModel(num_threads=num_threads),
            embedder=CamPlusEmbedder(num_threads=num_threads),
        )
        self._opts = DiarizeOptions(num_speakers=2)

    def __call__(self, samples: np.ndarray) -> tuple[SpeakerSegment, ...]:
        """Speaker segments of a 16 kHz mono clip (overlapped stretches flagged ``overlap``)."""
        from pipeline.api import diarize_array

        if len(samples) == 0:
            return ()
        result = diarize_array(np.asarray(samples, dtype=np.float32), self._opts, self._models)
        return tuple(sorted(result.segments, key=lambda s: (s.start, s.speaker)))


def speaker_labels(segments: Sequence[SpeakerSegment]) -> list[str]:
    """Speaker labels in order of first appearance."""
    seen: list[str] = []
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.speaker not in seen:
            seen.append(seg.speaker)
    return seen


def speaker_spans(
    segments: Sequence[SpeakerSegment], speaker: str, exclude_overlap: bool = True
) -> list[tuple[float, float]]:
    """``(start, end)`` of one speaker's segments in time order.

    With ``exclude_overlap``, stretches where the other speaker also talks are left out, unless
    that leaves nothing (then all of the speaker's segments are returned).
    """
    own = sorted((s for s in segments if s.speaker == speaker), key=lambda s: s.start)
    clean = [(s.start, s.end) for s in own if not s.overlap]
    if exclude_overlap and clean:
        return clean
    return [(s.start, s.end) for s in own]


def word_speakers(words: Sequence[Word], segments: Sequence[SpeakerSegment]) -> list[str | None]:
    """The diarized speaker of each word: most time shared with the word, else the nearest.

    A word that overlaps no segment goes to the segment nearest its midpoint if that is within
    1 s, else ``None``. Overlapped stretches count for both speakers.
    """
    out: list[str | None] = []
    for word in words:
        shared: dict[str, float] = {}
        for seg in segments:
            common = min(word.end, seg.end) - max(word.start, seg.start)
            if common > 0:
                shared[seg.speaker] = shared.get(seg.speaker, 0.0) + common
        if shared:
            out.append(max(sorted(shared), key=lambda k: shared[k]))
            continue
        middle = (word.start + word.end) / 2
        best, best_gap = None, _NEAREST_MAX_S
        for seg in segments:
            gap = max(seg.start - middle, middle - seg.end, 0.0)
            if gap <= best_gap:
                best, best_gap = seg.speaker, gap
        out.append(best)
    return out


def fill_unattributed(speakers: Sequence[str | None], default: str = "SPK0") -> list[str]:
    """Each ``None`` replaced by the previous word's speaker (the next one's at the start).

    >>> fill_unattributed([None, "A", None, "B"])
    ['A', 'A', 'A', 'B']
    """
    out: list[str | None] = list(speakers)
    last: str | None = None
    for i, speaker in enumerate(out):
        if speaker is None:
            out[i] = last
        else:
            last = speaker
    following: str | None = None
    for i in range(len(out) - 1, -1, -1):
        if out[i] is None:
            out[i] = following or default
        else:
            following = out[i]
    return [s if s is not None else default for s in out]
