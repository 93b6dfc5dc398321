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

With :class:`DecodeGuards` (off by default; the evaluation's ASR turns them on), step 4 is
Whisper's own guarded decoding: a chunk whose text compresses too well (a loop) or whose tokens
are too unlikely is decoded again at rising sampling temperatures (seeded, so a rerun on the same
machine gives the same text), and a chunk that is most likely silence comes back empty.

Chunks whose language is in ``defer_languages`` are only language-identified, not decoded (the
caller hands them to another recogniser, e.g. Paraformer for Chinese). A chunk may also be a
packed window of several turns (:meth:`WhisperBatchTranscriber.transcribe_windows` returns its words
raw, for :mod:`pipeline.asr.pack` to hand back to the turns).
"""

from __future__ import annotations

import collections
import logging
import math
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.records import ANALYSIS_SAMPLE_RATE, Word

logger = logging.getLogger(__name__)

__all__ = ["ChunkTranscript", "DecodeGuards", "WhisperBatchTranscriber", "compression_ratio"]

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
        temperature: the sampling temperature of the decode kept (0: beam search).
        skipped: True when :class:`DecodeGuards` judged the chunk silence (its text dropped).
    """

    text: str
    language: str
    language_prob: float
    avg_logprob: float = math.nan
    no_speech_prob: float = math.nan
    compression_ratio: float = 0.0
    words: tuple[Word, ...] = ()
    decoded: bool = True
    temperature: float = 0.0
    skipped: bool = False


@dataclass(frozen=True)
class DecodeGuards:
    """Whisper's hallucination guards, as in openai-whisper's ``transcribe`` (same defaults).

    A beam-search decode whose text has a gzip compression ratio above
    ``compression_ratio_threshold`` (a loop) or a mean token log-probability below
    ``log_prob_threshold`` is redone by sampling at each of ``temperatures[1:]`` in turn
    (``best_of`` samples, the likeliest kept) until one passes; if none passes, the likeliest
    decode that is not a loop is kept. A chunk whose no-speech probability is above
    ``no_speech_threshold`` while its log-probability is below ``log_prob_threshold`` is silence:
    its text is dropped. Sampling is seeded with ``seed`` before each call, so the fallback gives
    the same text on every run on one machine (different machines may still differ: their
    arithmetic does).
    """

    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    best_of: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperatures or self.temperatures[0] != 0.0:
            raise ValueError(
                f"temperatures must start with 0.0 (beam search), got {self.temperatures}"
            )
        if list(self.temperatures) != sorted(set(self.temperatures)):
            raise ValueError(f"temperatures must rise, got {self.temperatures}")

    def needs_fallback(self, ratio: float, avg_logprob: float, no_speech_prob: float) -> bool:
        if self.is_silence(avg_logprob, no_speech_prob):
            return False
        too_repetitive = (
            self.compression_ratio_threshold is not None
            and ratio > self.compression_ratio_threshold
        )
        too_unlikely = self.log_prob_threshold is not None and avg_logprob < self.log_prob_threshold
        return too_repetitive or too_unlikely

    def is_silence(self, avg_logprob: float, no_speech_prob: float) -> bool:
        return (
            self.no_speech_threshold is not None
            and self.log_prob_threshold is not None
            and no_speech_prob > self.no_speech_threshold
            and avg_logprob < self.log_prob_threshold
        )


def clamp_words(words: Sequence[Word], start: float, end: float) -> tuple[Word, ...]:
    """Words clipped into ``[start, end]`` and made monotonic (starts and ends never go back)."""
    out: list[Word] = []
    cursor = start
    for word in words:
        w_start = min(max(float(word.start), cursor), end)
        w_end = min(max(float(word.end), w_start), end)
        out.append(
            Word(
                start=round(w_start, 3),
                end=round(w_end, 3),
                text=word.text,
                probability=float(word.probability),
            )
        )
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
        guards: Whisper's fallback and no-speech guards (``None``: one beam-search decode per
            chunk, its text kept whatever it is).
        parallel: batches decoded at once, each from its own Python thread on its own model
            replica (load the model with ``replicas`` >= this). On 2 CPU cores, two one-thread
            replicas side by side take 0.71x the time of one two-thread replica on the sample's
            turns and 0.59x on the packed windows of a 20-minute conversation, the same text
            (bench/bench_asr.py, bench/bench_pipeline.py). Guarded decoding stays one batch at a
            time (its sampling seed is process-wide).

    >>> # engine = WhisperBatchTranscriber(load_whisper(path), beam_size=5, batch_size=8)
    >>> # results = engine.transcribe([audio_a, audio_b], offsets_s=[3.2, 7.9])
    """

    def __init__(
        self,
        model: Any,
        beam_size: int = 5,
        batch_size: int = 8,
        word_timestamps: bool = True,
        language: str | None = None,
        guards: DecodeGuards | None = None,
        parallel: int = 1,
    ):
        from faster_whisper.tokenizer import Tokenizer

        if parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {parallel}")
        self.model = model
        self.parallel = 1 if guards is not None else parallel
        self.guards = guards
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.word_timestamps = word_timestamps
        self.multilingual = bool(model.model.is_multilingual)
        if language and self.multilingual and language not in model.supported_languages:
            raise ValueError(
                f"--asr_language {language!r} is not a Whisper language code (e.g. en, zh, de)"
            )
        if language and not self.multilingual and language != "en":
            raise ValueError(
                f"--asr_language {language!r} needs a multilingual model; this "
                "one is English-only (e.g. use --asr_model base)"
            )
        self.language = language or None
        self._tokenizer_cls = Tokenizer
        self._tokenizers: dict[str, Any] = {}

    def _tokenizer(self, language: str) -> Any:
        if language not in self._tokenizers:
            self._tokenizers[language] = self._tokenizer_cls(
                self.model.hf_tokenizer, self.multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def _features(self, chunk: np.ndarray) -> np.ndarray:
        extractor = self.model.feature_extractor
        n_samples = int(WINDOW_S * ANALYSIS_SAMPLE_RATE)
        chunk = np.asarray(chunk, dtype=np.float32)[:n_samples]
        return extractor(chunk, padding=n_samples - len(chunk))[:, : extractor.nb_max_frames]

    def _subset(
        self, encoder_output: Any, features: np.ndarray, index: list[int], size: int
    ) -> Any:
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

    def transcribe(
        self,
        chunks: Sequence[np.ndarray],
        offsets_s: Sequence[float],
        defer_languages: frozenset[str] = frozenset(),
    ) -> list[ChunkTranscript]:
        """Transcribe ``chunks`` (16 kHz mono float32, each at most 30 s).

        Args:
            chunks: the audio of each chunk.
            offsets_s: where each chunk starts in the recording (word times are shifted by it).
            defer_languages: chunks identified as one of these are returned undecoded.

        Returns:
            One :class:`ChunkTranscript` per chunk, in input order.
        """
        raw = self.transcribe_windows(chunks, defer_languages)
        return [
            _to_recording_time(result, offset, min(len(chunk) / ANALYSIS_SAMPLE_RATE, WINDOW_S))
            for result, chunk, offset in zip(raw, chunks, offsets_s)
        ]

    def transcribe_windows(
        self, windows: Sequence[np.ndarray], defer_languages: frozenset[str] = frozenset()
    ) -> list[ChunkTranscript]:
        """Transcribe windows (16 kHz mono float32, each at most 30 s), words left raw.

        Like :meth:`transcribe`, but word times are in window time (seconds from the window's
        start), unclipped, and word texts keep Whisper's spelling (a leading space starts a word
        in spaced scripts): what :mod:`pipeline.asr.pack` splits back into turns.
        """
        # batches are read here, in order, as they are handed out (never more than the decoders
        # have in hand and ahead: a window of a lazy sequence is read from the recording's file)
        batches = (
            windows[begin : begin + self.batch_size]
            for begin in range(0, len(windows), self.batch_size)
        )

        def decode(batch: Sequence[np.ndarray]) -> list[ChunkTranscript]:
            return self._transcribe_batch(batch, defer_languages)

        if self.parallel == 1 or len(windows) <= self.batch_size:
            return [result for batch in batches for result in decode(batch)]
        return [result for out in _in_order(decode, batches, self.parallel) for result in out]

    def _transcribe_batch(
        self, chunks: Sequence[np.ndarray], defer_languages: frozenset[str]
    ) -> list[ChunkTranscript]:
        features = np.stack([self._features(c) for c in chunks])
        durations = [min(len(c) / ANALYSIS_SAMPLE_RATE, WINDOW_S) for c in chunks]
        encoder_output = self.model.encode(features)
        languages = self._languages(encoder_output, len(chunks))
        results: list[ChunkTranscript | None] = [
            ChunkTranscript(text="", language=lang, language_prob=float(prob), decoded=False)
            if lang in defer_languages
            else None
            for lang, prob in languages
        ]
        todo = [i for i, r in enumerate(results) if r is None]
        if not todo:
            return results  # type: ignore[return-value]
        encoded = self._subset(encoder_output, features, todo, len(chunks))
        todo_languages = [languages[i][0] for i in todo]
        longest_s = max(durations[i] for i in todo)
        outputs = self._generate(encoded, todo_languages, longest_s)
        temperatures = [0.0] * len(todo)
        skipped = [False] * len(todo)
        if self.guards is not None:
            outputs, temperatures, skipped = self._guarded(
                encoded, features[todo], todo_languages, longest_s, outputs
            )
        words: dict[int, tuple[Word, ...]] = {}
        aligned = [k for k in range(len(todo)) if not skipped[k] and outputs[k][0]]
        if self.word_timestamps and aligned:
            words = self._align(
                self._subset(encoded, features[todo], aligned, len(todo)),
                features[todo][aligned],
                [todo[k] for k in aligned],
                [outputs[k] for k in aligned],
                languages,
                durations,
            )
        for k, i in enumerate(todo):
            tokens, avg_logprob, no_speech_prob = outputs[k]
            text = "" if skipped[k] else self._tokenizer(languages[i][0]).decode(tokens).strip()
            results[i] = ChunkTranscript(
                text=text,
                language=languages[i][0],
                language_prob=float(languages[i][1]),
                avg_logprob=float(avg_logprob),
                no_speech_prob=float(no_speech_prob),
                compression_ratio=compression_ratio(text),
                words=words.get(i, ()),
                temperature=temperatures[k],
                skipped=skipped[k],
            )
        return results  # type: ignore[return-value]

    def _max_length(self, prompts: list[list[int]], longest_s: float) -> int:
        return min(
            self.model.max_length,
            max(len(p) for p in prompts) + 8 + int(longest_s * _MAX_TOKENS_PER_S),
        )

    def _prompts(self, languages: list[str]) -> list[list[int]]:
        return [
            self.model.get_prompt(self._tokenizer(lang), [], without_timestamps=True)
            for lang in languages
        ]

    def _generate(
        self, encoded: Any, languages: list[str], longest_s: float, temperature: float = 0.0
    ) -> list[tuple[list[int], float, float]]:
        """Beam search (``temperature`` 0), else the likeliest of ``best_of`` samples."""
        from faster_whisper.transcribe import get_suppressed_tokens

        prompts = self._prompts(languages)
        suppress = list(get_suppressed_tokens(self._tokenizer(languages[0]), [-1]))
        if temperature > 0:
            import ctranslate2

            assert self.guards is not None
            ctranslate2.set_random_seed(self.guards.seed)
            search = {
                "beam_size": 1,
                "num_hypotheses": self.guards.best_of,
                "sampling_topk": 0,
                "sampling_temperature": temperature,
            }
        else:
            search = {"beam_size": self.beam_size, "patience": 1.0}
        generated = self.model.model.generate(
            encoded,
            prompts,
            length_penalty=1.0,
            max_length=self._max_length(prompts, longest_s),
            suppress_blank=True,
            suppress_tokens=suppress,
            return_scores=True,
            return_no_speech_prob=True,
            **search,
        )
        outputs = []
        for result in generated:
            tokens = result.sequences_ids[0]
            # ctranslate2 returns the length-normalised score; same average as faster-whisper
            cum_logprob = result.scores[0] * len(tokens)
            outputs.append((tokens, cum_logprob / (len(tokens) + 1), result.no_speech_prob))
        return outputs

    def _guarded(
        self,
        encoded: Any,
        features: np.ndarray,
        languages: list[str],
        longest_s: float,
        outputs: list[tuple[list[int], float, float]],
    ) -> tuple[list[tuple[list[int], float, float]], list[float], list[bool]]:
        """:class:`DecodeGuards` over a batch: chunks that fail are decoded again, together, at
        each higher temperature; returns the kept decodes, their temperatures, and which chunks
        are silence."""
        guards = self.guards
        assert guards is not None
        size = len(outputs)
        tried: list[list[tuple[tuple[list[int], float, float], float, float]]] = [
            [] for _ in range(size)
        ]
        kept: list[tuple[list[int], float, float] | None] = [None] * size
        temperature_of = [0.0] * size
        pending = list(range(size))
        current = outputs
        for step, temperature in enumerate(guards.temperatures):
            if step > 0:
                current = self._generate(
                    self._subset(encoded, features, pending, size),
                    [languages[k] for k in pending],
                    longest_s,
                    temperature,
                )
            still = []
            for k, out in zip(pending, current):
                text = self._tokenizer(languages[k]).decode(out[0]).strip()
                ratio = compression_ratio(text)
                tried[k].append((out, ratio, temperature))
                if guards.needs_fallback(ratio, out[1], out[2]):
                    still.append(k)
                else:
                    kept[k], temperature_of[k] = out, temperature
            pending = still
            if not pending:
                break
        for k in pending:  # every temperature failed: the likeliest decode that is not a loop
            limit = guards.compression_ratio_threshold
            candidates = [t for t in tried[k] if limit is None or t[1] <= limit] or tried[k]
            best = max(candidates, key=lambda t: t[0][1])
            kept[k], temperature_of[k] = best[0], best[2]
            logger.debug(
                "chunk %d: no decode passed the guards; kept T=%.1f (ratio %.2f, avg_logprob %.2f)",
                k,
                best[2],
                best[1],
                best[0][1],
            )
        final = [out for out in kept if out is not None]
        skipped = [guards.is_silence(out[1], out[2]) for out in final]
        return final, temperature_of, skipped

    def _align(
        self,
        encoded: Any,
        features: np.ndarray,
        todo: list[int],
        outputs: list[tuple[list[int], float, float]],
        languages: list[tuple[str, float]],
        durations: list[float],
    ) -> dict[int, tuple[Word, ...]]:
        """Raw word timings (window time, Whisper's spelling) of the decoded chunks, aligned once
        per language in the batch."""
        words: dict[int, tuple[Word, ...]] = {}
        fps = self.model.frames_per_second
        for lang in sorted({languages[i][0] for i in todo}):
            group = [k for k, i in enumerate(todo) if languages[i][0] == lang]
            tokenizer = self._tokenizer(lang)
            segments = [
                [{"tokens": outputs[k][0], "start": 0.0, "end": durations[todo[k]], "seek": 0}]
                for k in group
            ]
            num_frames = [min(round(durations[todo[k]] * fps), 3000) for k in group]
            self.model.add_word_timestamps(
                segments,
                tokenizer,
                self._subset(encoded, features, group, len(todo)),
                num_frames,
                _PREPEND_PUNCT,
                _APPEND_PUNCT,
                0.0,
            )
            for k, segment in zip(group, segments):
                words[todo[k]] = tuple(
                    Word(
                        start=float(w["start"]),
                        end=float(w["end"]),
                        text=w["word"],
                        probability=float(w["probability"]),
                    )
                    for w in segment[0].get("words", [])
                    if w["word"].strip()
                )
        return words


def _to_recording_time(
    result: ChunkTranscript, offset_s: float, duration_s: float
) -> ChunkTranscript:
    """A chunk's transcript with its raw window-time words moved to recording time: shifted by
    ``offset_s``, stripped, probabilities rounded, clipped to the chunk."""
    if not result.words:
        return result
    moved = [
        Word(
            start=offset_s + w.start,
            end=offset_s + w.end,
            text=w.text.strip(),
            probability=round(float(w.probability), 4),
        )
        for w in result.words
    ]
    return replace(result, words=clamp_words(moved, offset_s, offset_s + duration_s))


def _in_order(fn, items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``fn`` of each item, from ``workers`` threads, yielded in order; an item is taken from
    ``items`` only when fewer than ``2 * workers`` calls are pending (memory stays bounded)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="whisper") as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
