"""Batched Whisper decoding of many short audio chunks with per-chunk language ID.

faster-whisper's ``BatchedInferencePipeline`` detects one language per call and does not return
per-chunk language probabilities, so this module batches the same CTranslate2 calls itself:
for each batch of up to ``batch_size`` chunks (each at most 30 s, one speaker turn):

1. log-mel features, the audio zero-padded to 30 s as Whisper was trained;
2. one encoder pass for the whole batch (``WhisperModel.encode``);
3. language ID from that encoder output (``ctranslate2.models.Whisper.detect_language``),
   unless the model is English-only;
4. one ``generate`` call with a per-chunk language prompt (``<|notimestamps|>``, as in the
   batched pipeline), giving ``avg_logprob`` and ``no_speech_prob`` per chunk;
5. word timestamps by cross-attention alignment (``WhisperModel.add_word_timestamps``), one
   call per language present in the batch.

Chunks whose language is in ``defer_languages`` are only language-identified, not decoded (the
caller hands them to another recogniser, e.g. Paraformer for Chinese). A chunk may also be a
packed window of several turns (:meth:`WhisperBatchTranscriber.transcribe_windows` returns its words
raw, for :mod:`pipeline.asr_pack` to hand back to the turns).
"""
from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.records import ANALYSIS_SAMPLE_RATE, Word

logger = logging.getLogger(__name__)

__all__ = ["ChunkTranscript", "WhisperBatchTranscriber", "compression_ratio"]

WINDOW_S = 30.0
# generous cap on tokens per second of audio: stops a looping decoder early (speech rarely
# exceeds ~7 English tokens/s; Chinese runs ~1-2 tokens per character at ~6 characters/s)
_MAX_TOKENS_PER_S = 15
_PREPEND_PUNCT = "\"'“¿([{-"
_APPEND_PUNCT = "\"'.。,，!！?？:：”)]}、"


def compression_ratio(text: str) -> float:
    """gzip compression ratio of ``text`` (Whisper's repetition detector; > 2.4 is suspect)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class ChunkTranscript:
    """What one ASR call returned for one chunk.

    Attributes:
        text: the transcript ("" when not decoded).
        language: Whisper language code (``en``, ``zh``, ...).
        language_prob: Whisper's probability of ``language``.
        avg_logprob: mean token log-probability (NaN when another recogniser decoded it).
        no_speech_prob: probability of the no-speech token (NaN when not known).
        compression_ratio: gzip ratio of ``text``.
        words: word timings in recording time.
        decoded: False when the chunk was deferred (its language is in ``defer_languages``).
    """

    text: str
    language: str
    language_prob: float
    avg_logprob: float = math.nan
    no_speech_prob: float = math.nan
    compression_ratio: float = 0.0
    words: tuple[Word, ...] = ()
    decoded: bool = True


def clamp_words(words: Sequence[Word], start: float, end: float) -> tuple[Word, ...]:
    """Words clipped into ``[start, end]`` and made monotonic (starts and ends never go back)."""
    out: list[Word] = []
    cursor = start
    for word in words:
        w_start = min(max(float(word.start), cursor), end)
        w_end = min(max(float(word.end), w_start), end)
        out.append(Word(start=round(w_start, 3), end=round(w_end, 3), text=word.text,
                        probability=float(word.probability)))
        cursor = w_start
    return tuple(out)


class WhisperBatchTranscriber:
    """Transcribe lists of chunks with one loaded ``faster_whisper.WhisperModel``.

    Args:
        model: a loaded ``WhisperModel``.
        beam_size: beam width (1 = greedy).
        batch_size: chunks per encoder/decoder call.
        word_timestamps: align words to audio.
        language: force this language code (language ID still reports its probability).

    >>> # engine = WhisperBatchTranscriber(load_whisper(path), beam_size=5, batch_size=8)
    >>> # results = engine.transcribe([audio_a, audio_b], offsets_s=[3.2, 7.9])
    """

    def __init__(self, model: Any, beam_size: int = 5, batch_size: int = 8,
                 word_timestamps: bool = True, language: str | None = None):
        from faster_whisper.tokenizer import Tokenizer

        self.model = model
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.word_timestamps = word_timestamps
        self.multilingual = bool(model.model.is_multilingual)
        if language and self.multilingual and language not in model.supported_languages:
            raise ValueError(f"--asr_language {language!r} is not a Whisper language code "
                             f"(e.g. en, zh, de)")
        if language and not self.multilingual and language != "en":
            raise ValueError(f"--asr_language {language!r} needs a multilingual model; this "
                             "one is English-only (e.g. use --asr_model base)")
        self.language = language or None
        self._tokenizer_cls = Tokenizer
        self._tokenizers: dict[str, Any] = {}

    def _tokenizer(self, language: str) -> Any:
        if language not in self._tokenizers:
            self._tokenizers[language] = self._tokenizer_cls(
                self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        return self._tokenizers[language]

    def _features(self, chunk: np.ndarray) -> np.ndarray:
        extractor = self.model.feature_extractor
        n_samples = int(WINDOW_S * ANALYSIS_SAMPLE_RATE)
        chunk = np.asarray(chunk, dtype=np.float32)[:n_samples]
        return extractor(chunk, padding=n_samples - len(chunk))[:, : extractor.nb_max_frames]

    def _subset(self, encoder_output: Any, features: np.ndarray, index: list[int],
                size: int) -> Any:
        """The encoder output of batch items ``index`` (re-encoded off CPU, sliced on CPU)."""
        if len(index) == size:
            return encoder_output
        if self.model.model.device == "cpu":
            import ctranslate2

            return ctranslate2.StorageView.from_array(np.asarray(encoder_output)[index])
        return self.model.encode(features[index])

    def _languages(self, encoder_output: Any, size: int) -> list[tuple[str, float]]:
        if not self.multilingual:
            return [("en", 1.0)] * size
        results = self.model.model.detect_language(encoder_output)
        out = []
        for probs in results:
            probs = [(token[2:-2], prob) for token, prob in probs]
            if self.language:
                out.append((self.language, dict(probs).get(self.language, 0.0)))
            else:
                out.append(probs[0])
        return out

    def transcribe(self, chunks: Sequence[np.ndarray], offsets_s: Sequence[float],
                   defer_languages: frozenset[str] = frozenset()) -> list[ChunkTranscript]:
        """Transcribe ``chunks`` (16 kHz mono float32, each at most 30 s).

        Args:
            chunks: the audio of each chunk.
            offsets_s: where each chunk starts in the recording (word times are shifted by it).
            defer_languages: chunks identified as one of these are returned undecoded.

        Returns:
            One :class:`ChunkTranscript` per chunk, in input order.
        """
        raw = self.transcribe_windows(chunks, defer_languages)
        return [_to_recording_time(result, offset, min(len(chunk) / ANALYSIS_SAMPLE_RATE,
                                                       WINDOW_S))
                for result, chunk, offset in zip(raw, chunks, offsets_s)]

    def transcribe_windows(self, windows: Sequence[np.ndarray],
                           defer_languages: frozenset[str] = frozenset()
                           ) -> list[ChunkTranscript]:
        """Transcribe windows (16 kHz mono float32, each at most 30 s), words left raw.

        Like :meth:`transcribe`, but word times are in window time (seconds from the window's
        start), unclipped, and word texts keep Whisper's spelling (a leading space starts a word
        in spaced scripts): what :mod:`pipeline.asr_pack` splits back into turns.
        """
        results: list[ChunkTranscript] = []
        for begin in range(0, len(windows), self.batch_size):
            batch = windows[begin: begin + self.batch_size]
            results.extend(self._transcribe_batch(batch, defer_languages))
        return results

    def _transcribe_batch(self, chunks: Sequence[np.ndarray],
                          defer_languages: frozenset[str]) -> list[ChunkTranscript]:
        features = np.stack([self._features(c) for c in chunks])
        durations = [min(len(c) / ANALYSIS_SAMPLE_RATE, WINDOW_S) for c in chunks]
        encoder_output = self.model.encode(features)
        languages = self._languages(encoder_output, len(chunks))
        results: list[ChunkTranscript | None] = [
            ChunkTranscript(text="", language=lang, language_prob=float(prob), decoded=False)
            if lang in defer_languages else None
            for lang, prob in languages]
        todo = [i for i, r in enumerate(results) if r is None]
        if not todo:
            return results  # type: ignore[return-value]
        encoded = self._subset(encoder_output, features, todo, len(chunks))
        outputs = self._generate(encoded, [languages[i][0] for i in todo],
                                 max(durations[i] for i in todo))
        words: dict[int, tuple[Word, ...]] = {}
        if self.word_timestamps:
            words = self._align(encoded, features[todo], todo, outputs, languages, durations)
        for k, i in enumerate(todo):
            tokens, avg_logprob, no_speech_prob = outputs[k]
            text = self._tokenizer(languages[i][0]).decode(tokens).strip()
            results[i] = ChunkTranscript(
                text=text, language=languages[i][0], language_prob=float(languages[i][1]),
                avg_logprob=float(avg_logprob), no_speech_prob=float(no_speech_prob),
                compression_ratio=compression_ratio(text), words=words.get(i, ()))
        return results  # type: ignore[return-value]

    def _generate(self, encoded: Any, languages: list[str],
                  longest_s: float) -> list[tuple[list[int], float, float]]:
        from faster_whisper.transcribe import get_suppressed_tokens

        prompts = [self.model.get_prompt(self._tokenizer(lang), [], without_timestamps=True)
                   for lang in languages]
        max_length = min(self.model.max_length,
                         max(len(p) for p in prompts) + 8 + int(longest_s * _MAX_TOKENS_PER_S))
        suppress = list(get_suppressed_tokens(self._tokenizer(languages[0]), [-1]))
        generated = self.model.model.generate(
            encoded, prompts, beam_size=self.beam_size, patience=1.0, length_penalty=1.0,
            max_length=max_length, suppress_blank=True, suppress_tokens=suppress,
            return_scores=True, return_no_speech_prob=True)
        outputs = []
        for result in generated:
            tokens = result.sequences_ids[0]
            # ctranslate2 returns the length-normalised score; same average as faster-whisper
            cum_logprob = result.scores[0] * len(tokens)
            outputs.append((tokens, cum_logprob / (len(tokens) + 1), result.no_speech_prob))
        return outputs

    def _align(self, encoded: Any, features: np.ndarray, todo: list[int],
               outputs: list[tuple[list[int], float, float]],
               languages: list[tuple[str, float]],
               durations: list[float]) -> dict[int, tuple[Word, ...]]:
        """Raw word timings (window time, Whisper's spelling) of the decoded chunks, aligned once
        per language in the batch."""
        words: dict[int, tuple[Word, ...]] = {}
        fps = self.model.frames_per_second
        for lang in sorted({languages[i][0] for i in todo}):
            group = [k for k, i in enumerate(todo) if languages[i][0] == lang]
            tokenizer = self._tokenizer(lang)
            segments = [[{"tokens": outputs[k][0], "start": 0.0, "end": durations[todo[k]],
                          "seek": 0}] for k in group]
            num_frames = [min(round(durations[todo[k]] * fps), 3000) for k in group]
            self.model.add_word_timestamps(
                segments, tokenizer, self._subset(encoded, features, group, len(todo)),
                num_frames, _PREPEND_PUNCT, _APPEND_PUNCT, 0.0)
            for k, segment in zip(group, segments):
                words[todo[k]] = tuple(
                    Word(start=float(w["start"]), end=float(w["end"]), text=w["word"],
                         probability=float(w["probability"]))
                    for w in segment[0].get("words", []) if w["word"].strip())
        return words


def _to_recording_time(result: ChunkTranscript, offset_s: float,
                       duration_s: float) -> ChunkTranscript:
    """A chunk's transcript with its raw window-time words moved to recording time: shifted by
    ``offset_s``, stripped, probabilities rounded, clipped to the chunk."""
    if not result.words:
        return result
    moved = [Word(start=offset_s + w.start, end=offset_s + w.end, text=w.text.strip(),
                  probability=round(float(w.probability), 4)) for w in result.words]
    return replace(result, words=clamp_words(moved, offset_s, offset_s + duration_s))
