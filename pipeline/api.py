"""What the pipeline offers other packages: the one module ``model`` (its evaluation, its prompt
loading) may import from ``pipeline`` (``.importlinter`` checks it).

Records (speaker segments, words) are plain dataclasses and load at once. Everything else loads
on first use (PEP 562), so importing this module costs no Beam, torch or model import:

* audio: ``ANALYSIS_SAMPLE_RATE`` (decoding itself is :mod:`core.audio_io`);
* speech: :class:`VadOptions`, :func:`load_vad_model`, :func:`detect_speech`;
* transcription: :func:`resolve_asr_model`, :func:`load_whisper`,
  :class:`WhisperBatchTranscriber`, :class:`DecodeGuards`, :func:`plan_turns`,
  :func:`split_span`;
* diarization: :class:`DiarizeOptions`, :class:`OnnxModels`, :class:`SegmentationModel`,
  :func:`diarize_array`, :class:`CamPlusEmbedder`, :class:`Ge2eEmbedder`;
* quality: :class:`DnsmosScore`, :class:`DnsmosScorer`.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.records import ANALYSIS_SAMPLE_RATE, SpeakerSegment, SpeechRegion, Word

_LAZY = {
    "VadOptions": "pipeline.vad",
    "load_vad_model": "pipeline.vad",
    "detect_speech": "pipeline.vad",
    "resolve_asr_model": "pipeline.asr.models",
    "load_whisper": "pipeline.asr.models",
    "WhisperBatchTranscriber": "pipeline.asr.whisper",
    "DecodeGuards": "pipeline.asr.whisper",
    "plan_turns": "pipeline.asr.plan",
    "split_span": "pipeline.asr.plan",
    "DiarizeOptions": "pipeline.diarize",
    "OnnxModels": "pipeline.diarization.recipe",
    "diarize_array": "pipeline.diarization.recipe",
    "SegmentationModel": "pipeline.diarization.segmentation",
    "CamPlusEmbedder": "pipeline.diarization.campplus",
    "Ge2eEmbedder": "pipeline.diarization.embedding",
    "DnsmosScore": "pipeline.quality.dnsmos",
    "DnsmosScorer": "pipeline.quality.dnsmos",
}

__all__ = ["ANALYSIS_SAMPLE_RATE", "SpeakerSegment", "SpeechRegion", "Word", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
