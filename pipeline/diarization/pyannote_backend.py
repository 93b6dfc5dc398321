"""Second backend: a pyannote.audio 4 pipeline (``Pipeline.from_pretrained``) over arrays.

The default ``pyannote/speaker-diarization-community-1`` needs the Hugging Face hub (and a token
that accepted its conditions); a local directory holding a ``config.yaml`` works offline. No
real pyannote weights ship in any package, so offline this backend is tested for plumbing only,
with a random-weight pipeline built locally (``tests/pipeline/test_diarize.py``).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from pipeline.diarization import timeline
from pipeline.diarization.recipe import Diarization
from pipeline.records import SpeakerSegment

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def load_pipeline(checkpoint: str, token: str | None = None, num_threads: int = 1) -> Any:
    """``pyannote.audio.Pipeline.from_pretrained(checkpoint, token=...)`` with a clear failure.

    Args:
        checkpoint: hub id (``pyannote/speaker-diarization-community-1``) or a local directory /
            ``config.yaml``.
        token: Hugging Face token; ``None`` falls back to ``HF_TOKEN``.
        num_threads: torch intra-op threads.

    Raises:
        ImportError: pyannote.audio is not installed (``pip install .[pyannote]``).
        FileNotFoundError: the pipeline could not be loaded (no hub access, no token, bad path).
    """
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # no telemetry from workers
    try:
        import torch
        from pyannote.audio import Pipeline
    except ImportError as exc:
        raise ImportError("the pyannote backend needs pyannote.audio: "
                          "pip install 'pyannote.audio==4.0.7'") from exc
    torch.set_num_threads(max(1, num_threads))
    token = token or os.environ.get("HF_TOKEN")
    try:
        pipeline = Pipeline.from_pretrained(checkpoint, token=token)
    except Exception as exc:  # hub unreachable, gated model, malformed config
        raise FileNotFoundError(
            f"could not load pyannote pipeline {checkpoint!r} ({type(exc).__name__}: {exc}); "
            "give a local directory with config.yaml, or hub access and --hf_token") from exc
    if pipeline is None:
        raise FileNotFoundError(f"pyannote pipeline {checkpoint!r} not found (hub id needs "
                                "--hf_token and accepted conditions; or give a local directory)")
    return pipeline


def _annotation_segments(annotation: Any, recording_id: str) -> list[SpeakerSegment]:
    segments = [SpeakerSegment(recording_id=recording_id, speaker=str(label),
                               start=round(float(turn.start), 3), end=round(float(turn.end), 3))
                for turn, _, label in annotation.itertracks(yield_label=True)]
    return [s for s in segments if s.end > s.start]


def diarize_pyannote(samples: np.ndarray, pipeline: Any, *, recording_id: str = "",
                     num_speakers: int | None = None, min_speakers: int | None = None,
                     max_speakers: int | None = None) -> Diarization:
    """Run a pyannote pipeline on one mono 16 kHz array.

    Returns:
        segments labelled ``SPK0..`` by first appearance with ``overlap`` marked, and the
        pipeline's per-speaker embeddings when it gives them.
    """
    import torch

    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, :]
    kwargs = {k: v for k, v in (("num_speakers", num_speakers), ("min_speakers", min_speakers),
                                ("max_speakers", max_speakers)) if v}
    output = pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE}, **kwargs)
    annotation = getattr(output, "speaker_diarization", output)  # 4.x DiarizeOutput or 3.x
    segments = timeline.mark_overlap(_annotation_segments(annotation, recording_id))
    segments, mapping = timeline.relabel_by_first_appearance(segments)
    embeddings: dict[str, np.ndarray] = {}
    vectors = getattr(output, "speaker_embeddings", None)
    if vectors is not None:
        for row, label in zip(np.asarray(vectors), annotation.labels()):
            if str(label) in mapping and np.all(np.isfinite(row)):
                embeddings[mapping[str(label)]] = row.astype(np.float32)
    return Diarization(sorted(segments, key=lambda s: (s.start, s.speaker)), embeddings)
