"""ASR stage: every speaker turn of a recording transcribed, with language ID and word times.

Input: :class:`RecordingWork` with ``audio`` and ``diarization`` (and ``speech`` for split
points). Output: the same work with ``turns`` (tuple of :class:`Turn`, ids
``<recording_id>-t<NNNN>``). Turns are planned by :mod:`pipeline.asr.plan`, packed into shared
30 s windows by :mod:`pipeline.asr.pack` (``--asr_packing turns``, the default; ``none`` gives each
turn its own window) and decoded in batches by :mod:`pipeline.asr.whisper` (faster-whisper, int8
on CPU); turns identified as Chinese go to FunASR Paraformer with ``--zh_asr paraformer``. A
recording without diarization gets no turns (the dialogue stage reports it), not a reject.
Item-level rejects: ``turn_too_short`` (shorter than ``--asr_min_turn_s``), ``no_transcript``
(the recogniser returned no text). Models: :func:`pipeline.asr.models.resolve_asr_model`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from apache_beam.metrics import Metrics

from core.cpu import auto_threads
from core.options import opt
from pipeline.asr import pack
from pipeline.asr.plan import TurnSpan, plan_turns
from pipeline.asr.whisper import WINDOW_S, ChunkTranscript, clamp_words, compression_ratio
from pipeline.audio import OnDemand, clip_lengths
from pipeline.records import ANALYSIS_SAMPLE_RATE, RecordingWork, Reject, Turn
from pipeline.stage import (
    RecordingStage,
    RecordingStageFn,
    item_reject,
    replace,
)

logger = logging.getLogger(__name__)

STAGE = "asr"
TURN_TOO_SHORT = "turn_too_short"  # a planned turn shorter than --asr_min_turn_s
NO_TRANSCRIPT = "no_transcript"  # the recogniser returned no text for the turn
REASONS = (TURN_TOO_SHORT, NO_TRANSCRIPT)

_TURN_FIELDS = {f.name for f in dataclasses.fields(Turn)}


@dataclass(frozen=True)
class AsrOptions:
    """Settings of the ASR stage (each field is a command-line flag)."""

    asr_model: str = opt(
        "base",
        "Whisper model: an offline name (base, tiny.en), a local "
        "CTranslate2 directory, or a faster-whisper size / hub id (downloads)",
    )
    asr_device: str = opt(
        "cpu", "device for Whisper and Paraformer", choices=("cpu", "cuda", "auto")
    )
    asr_compute_type: str = opt(
        "int8", "CTranslate2 compute type (int8, int8_float16, float16, float32, ...)"
    )
    asr_beam_size: int = opt(5, "beam width (1 = greedy; measured worse on the sample)")
    asr_batch_size: int = opt(
        0,
        "windows per encoder/decoder call; 0 = auto: 8 on GPU, 1 on "
        "CPU (where batches cost about 1.3x the CPU: bench/bench_asr.py)",
    )
    asr_language: str = opt("", "force this language code (e.g. en, zh); empty = detect per turn")
    zh_asr: str = opt(
        "whisper", "recogniser for turns identified as Chinese", choices=("whisper", "paraformer")
    )
    paraformer_model: str = opt(
        "paraformer-zh",
        "FunASR model for --zh_asr paraformer: hub alias, hub id or local directory",
    )
    paraformer_hub: str = opt(
        "ms", "hub of --paraformer_model names: ms (ModelScope) or hf", choices=("ms", "hf")
    )
    asr_merge_gap_s: float = opt(
        0.5,
        "join same-speaker segments across pauses shorter than "
        "this (when nobody else speaks in the pause)",
    )
    max_asr_chunk_s: float = opt(
        30.0,
        "longest audio per ASR call; longer turns are split at their largest pause (at most 30)",
    )
    asr_min_turn_s: float = opt(0.3, "turns shorter than this are rejected, not transcribed")
    asr_pad_s: float = opt(
        0.2,
        "audio added before and after each turn for the recogniser "
        "(diarization boundaries clip word edges)",
    )
    asr_word_timestamps: bool = opt(True, "align words to the audio")
    asr_guards: bool = opt(
        False,
        "Whisper's hallucination guards (openai-whisper's defaults): a window whose text "
        "compresses too well (a loop) or is too unlikely is decoded again by sampling at rising "
        "temperatures, and one judged silence comes back empty "
        "(pipeline.asr.whisper.DecodeGuards; costs: bench/bench_asr_options.py)",
    )
    asr_threads: int = opt(0, "CPU threads for Whisper (0 = the usable cores, at most 4)")
    asr_parallel_windows: int = opt(
        0,
        "windows Whisper decodes at once on CPU, each on its own model replica with "
        "asr_threads / this many threads; 0 = one per thread (on 2 cores the ASR stage is 1.68x "
        "faster than one window on two threads, the same text: bench/bench_pipeline.py); GPU: 1",
    )
    asr_packing: str = opt(
        "turns",
        "turns: consecutive turns share 30 s Whisper windows "
        "(overlapping or adjacent turns read once as continuous audio, "
        "--asr_pack_gap_s of silence between such groups, words handed back "
        "by time; language ID per window); none: one window per turn. Needs "
        "--asr_word_timestamps (without it: none)",
        choices=("none", "turns"),
    )
    asr_pack_gap_s: float = opt(0.3, "silence between two packed turns (--asr_packing turns)")
    asr_pack_window_s: float = opt(
        30.0, "most audio packed into one Whisper window (--asr_packing turns; at most 30)"
    )

    def __post_init__(self):
        if not 0.0 < self.max_asr_chunk_s <= 30.0:
            raise ValueError(f"max_asr_chunk_s must be in (0, 30], got {self.max_asr_chunk_s}")
        if self.asr_beam_size < 1:
            raise ValueError(f"asr_beam_size must be >= 1, got {self.asr_beam_size}")
        if self.asr_batch_size < 0:
            raise ValueError(f"asr_batch_size must be >= 0 (0 = auto), got {self.asr_batch_size}")
        if self.asr_merge_gap_s < 0:
            raise ValueError(f"asr_merge_gap_s must be >= 0, got {self.asr_merge_gap_s}")
        if not 0.0 <= self.asr_min_turn_s < self.max_asr_chunk_s:
            raise ValueError(
                f"asr_min_turn_s must be in [0, max_asr_chunk_s), got {self.asr_min_turn_s}"
            )
        if not 0.0 <= self.asr_pad_s <= 1.0:
            raise ValueError(f"asr_pad_s must be in [0, 1], got {self.asr_pad_s}")
        if self.asr_threads < 0:
            raise ValueError(f"asr_threads must be >= 0, got {self.asr_threads}")
        if self.asr_parallel_windows < 0:
            raise ValueError(
                f"asr_parallel_windows must be >= 0 (0 = auto), got {self.asr_parallel_windows}"
            )
        if not 0.0 <= self.asr_pack_gap_s <= 5.0:
            raise ValueError(f"asr_pack_gap_s must be in [0, 5], got {self.asr_pack_gap_s}")
        if not 0.0 < self.asr_pack_window_s <= 30.0:
            raise ValueError(f"asr_pack_window_s must be in (0, 30], got {self.asr_pack_window_s}")

    def cpu_layout(self) -> tuple[int, int]:
        """(windows decoded at once, threads of each) on CPU: ``asr_threads`` split evenly."""
        threads = auto_threads(self.asr_threads)
        parallel = min(self.asr_parallel_windows or threads, threads)
        return parallel, max(1, threads // parallel)

    @property
    def packed(self) -> bool:
        """Whether turns are packed into shared windows (needs word times to split them)."""
        return self.asr_packing == "turns" and self.asr_word_timestamps


# --- pure helpers ---------------------------------------------------------------------------


def per_channel(work: RecordingWork) -> bool:
    """Whether turns are read from their own channel (multi-channel audio whose diarization
    places speakers on more than one channel) rather than from the mix."""
    return work.audio.num_channels > 1 and len({s.channel for s in work.diarization}) > 1


def turn_extent(
    work: RecordingWork,
    span: TurnSpan,
    pad_s: float,
    limits: tuple[float, float] | None = None,
) -> tuple[int, int]:
    """The samples ``(start, stop)`` the recogniser hears for ``span``.

    The span is widened by ``pad_s`` on both sides (clipped to the recording and to ``limits``
    when given), less when that would pass Whisper's 30 s window, so the span itself is never cut.
    """
    total = work.audio.num_samples
    pad_s = min(pad_s, max(0.0, WINDOW_S - span.duration) / 2)
    lo, hi = limits if limits is not None else (-np.inf, np.inf)
    start = max(0, round(max(span.start - pad_s, min(lo, span.start)) * ANALYSIS_SAMPLE_RATE))
    end = min(total, round(min(span.end + pad_s, max(hi, span.end)) * ANALYSIS_SAMPLE_RATE))
    return start, min(end, start + round(WINDOW_S * ANALYSIS_SAMPLE_RATE))


def turn_audio(
    work: RecordingWork,
    span: TurnSpan,
    pad_s: float,
    own_channel: bool,
    limits: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float]:
    """The samples the recogniser hears for ``span`` (:func:`turn_extent`; its own channel
    or the mix) and the time they start at."""
    start, stop = turn_extent(work, span, pad_s, limits)
    clip = work.audio.clips([(start, stop, span.channel if own_channel else None)])[0]
    return clip, start / ANALYSIS_SAMPLE_RATE


def make_turn(recording_id: str, index: int, span: TurnSpan, result: ChunkTranscript) -> Turn:
    """A :class:`Turn` from a planned span and what the recogniser returned for it."""
    extra = {"overlap_s": round(span.overlap_s, 3)} if "overlap_s" in _TURN_FIELDS else {}
    return Turn(
        recording_id=recording_id,
        turn_id=turn_id(recording_id, index),
        speaker=span.speaker,
        start=round(span.start, 3),
        end=round(span.end, 3),
        text=result.text,
        language=result.language,
        language_prob=round(result.language_prob, 4),
        avg_logprob=result.avg_logprob,
        no_speech_prob=result.no_speech_prob,
        compression_ratio=round(result.compression_ratio, 4),
        words=clamp_words(result.words, span.start, span.end),
        channel=span.channel,
        **extra,
    )


def turn_id(recording_id: str, index: int) -> str:
    """``<recording_id>-t<index:04d>``: deterministic, so reruns give the same ids."""
    return f"{recording_id}-t{index:04d}"


# --- models ---------------------------------------------------------------------------------


def models_used(opts: AsrOptions) -> dict[str, str]:
    """The stage's models for the run manifest: ``{name: local path or hub id}``.

    Resolving ``--asr_model`` also builds the offline Whisper base cache, which is what
    ``python -m pipeline.warm_cache`` relies on.
    """
    from pipeline.asr.models import resolve_asr_model_dir

    models = {"whisper": str(resolve_asr_model_dir(opts.asr_model))}
    if opts.zh_asr == "paraformer":
        models["paraformer"] = opts.paraformer_model
    return models


class AsrEngine:
    """The loaded recognisers of one worker: Whisper, and Paraformer when asked for.

    Attributes:
        model_dir: the resolved Whisper directory.
        model_sha256: sha256 of its ``model.bin`` (for the run manifest).
    """

    def __init__(self, opts: AsrOptions):
        from pipeline.asr.models import load_whisper, resolve_asr_model
        from pipeline.asr.whisper import DecodeGuards, WhisperBatchTranscriber

        self.opts = opts
        self.model_dir, self.model_sha256 = resolve_asr_model(opts.asr_model)
        import ctranslate2

        on_gpu = opts.asr_device == "cuda" or (
            opts.asr_device == "auto" and ctranslate2.get_cuda_device_count() > 0
        )
        # GPU: one replica, batches do the work (asr_batch_size); CPU: windows side by side
        parallel, threads = (1, opts.asr_threads) if on_gpu else opts.cpu_layout()
        whisper = load_whisper(
            self.model_dir, opts.asr_device, opts.asr_compute_type, threads, replicas=parallel
        )
        # on CPU a batch of 30 s windows is memory-bound (the encoder's attention and the beams'
        # cross-attention caches grow with it): one window per call, windows side by side on
        # one-thread replicas, costs the least there
        self.batch_size = opts.asr_batch_size or (8 if whisper.model.device == "cuda" else 1)
        self.whisper = WhisperBatchTranscriber(
            whisper,
            beam_size=opts.asr_beam_size,
            batch_size=self.batch_size,
            word_timestamps=opts.asr_word_timestamps,
            language=opts.asr_language or None,
            guards=DecodeGuards() if opts.asr_guards else None,
            parallel=parallel,
        )
        self.paraformer: Any | None = None
        if opts.zh_asr == "paraformer":
            from pipeline.asr.paraformer import ParaformerTranscriber

            self.paraformer = ParaformerTranscriber(
                opts.paraformer_model,
                device=opts.asr_device,
                batch_size=self.batch_size,
                threads=opts.asr_threads,
                word_timestamps=opts.asr_word_timestamps,
                hub=opts.paraformer_hub,
            )
        logger.info(
            "ASR engine: whisper %s (sha256 %s) on %s, batch %d, %d window(s) at once, zh via %s",
            self.model_dir,
            self.model_sha256[:12],
            whisper.model.device,
            self.batch_size,
            parallel,
            opts.zh_asr,
        )

    def transcribe(
        self,
        chunks: Sequence[np.ndarray],
        offsets_s: Sequence[float],
        sources: Sequence[int] | None = None,
    ) -> list[ChunkTranscript]:
        """Transcribe chunks (one per turn, ordered by start): Whisper for all, packed into
        shared windows when ``opts.packed`` (:mod:`pipeline.asr.pack`); Paraformer, one turn at
        a time, for those identified as Chinese.

        Args:
            chunks: each turn's audio (16 kHz float32, at most 30 s): a list, or clips read
                when indexed (:class:`pipeline.audio.Clips`), which are then read a window's
                worth at a time.
            offsets_s: recording time of each chunk's first sample.
            sources: where each chunk was read (channel, or 0 for the mix; default all 0):
                only chunks of one source can share audio.
        """
        deferred = frozenset({"zh"}) if self.paraformer is not None else frozenset()
        if self.opts.packed:
            results = self._transcribe_packed(
                chunks, offsets_s, sources or [0] * len(chunks), deferred
            )
        else:
            results = self.whisper.transcribe(chunks, offsets_s, defer_languages=deferred)
        todo = [i for i, r in enumerate(results) if not r.decoded]
        if todo:
            recognised = self.paraformer.transcribe(
                [chunks[i] for i in todo],  # type: ignore
                [offsets_s[i] for i in todo],
            )
            for i, rec in zip(todo, recognised):
                results[i] = dataclasses.replace(
                    results[i],
                    text=rec.text,
                    words=rec.words,
                    decoded=True,
                    compression_ratio=compression_ratio(rec.text),
                )
        return results

    def _transcribe_packed(
        self,
        chunks: Sequence[np.ndarray],
        offsets_s: Sequence[float],
        sources: Sequence[int],
        deferred: frozenset[str],
    ) -> list[ChunkTranscript]:
        """Whisper over packed windows; the turns of a deferred window come back undecoded
        (with the window's language), each to be recognised on its own."""
        rate = ANALYSIS_SAMPLE_RATE
        lengths = clip_lengths(chunks)
        extents = [(o, o + n / rate) for n, o in zip(lengths, offsets_s)]
        window_s = self.opts.asr_pack_window_s
        groups = pack.group_extents([(s, a, b) for s, (a, b) in zip(sources, extents)], window_s)
        # a turn longer than the window still gets a window of its own (up to 30 s)
        windows = pack.pack_pieces(
            [pack.group_length(g, lengths, offsets_s, rate) for g in groups],
            round(self.opts.asr_pack_gap_s * rate),
            round(window_s * rate),
            round(WINDOW_S * rate),
        )
        # each window's audio is put together when its batch is decoded (every piece is in
        # exactly one window): the recording's speech is never held at once
        pieces = OnDemand(
            len(groups), lambda g: pack.stitch_group(groups[g], chunks, offsets_s, rate)
        )
        audio = OnDemand(len(windows), lambda w: pack.assemble_window(windows[w], pieces))
        raw = self.whisper.transcribe_windows(audio, defer_languages=deferred)
        results: dict[int, ChunkTranscript] = {}
        for window, transcript in zip(windows, raw):
            if transcript.decoded:
                results.update(pack.split_window(window, transcript, groups, extents, rate))
            else:
                results.update(
                    {i: transcript for p in window.pieces for i in groups[p.index].members}
                )
        return [results[i] for i in range(len(chunks))]


def transcribe_work(
    work: RecordingWork, engine: AsrEngine, opts: AsrOptions
) -> tuple[tuple[Turn, ...], list[Reject]]:
    """Plan, cut and transcribe the turns of one recording.

    Returns:
        The turns with text, and item-level rejects for turns too short or left without text.
    """
    spans = plan_turns(work.diarization, work.speech, opts.asr_merge_gap_s, opts.max_asr_chunk_s)
    rejects: list[Reject] = []
    todo: list[tuple[int, TurnSpan]] = []
    for index, span in enumerate(spans):
        if span.duration < opts.asr_min_turn_s:
            rejects.append(
                item_reject(
                    STAGE,
                    work.recording,
                    TURN_TOO_SHORT,
                    f"{span.duration:.2f} s < --asr_min_turn_s {opts.asr_min_turn_s}",
                    turn_id(work.recording_id, index),
                    span.start,
                    span.end,
                )
            )
        else:
            todo.append((index, span))
    own_channel = per_channel(work)
    limits: list[tuple[float, float] | None] = [None] * len(todo)
    if opts.packed:  # packed turns pad into silence only: neighbours share no padding audio
        extents = pack.padded_extents(
            [(s.channel if own_channel else 0, s.start, s.end) for s in spans], opts.asr_pad_s
        )
        limits = [extents[index] for index, _ in todo]
    # the turns' audio is read when the recogniser gets to it, not all at once
    bounds = [
        turn_extent(work, span, opts.asr_pad_s, limit) for (_, span), limit in zip(todo, limits)
    ]
    clips = work.audio.clips(
        [(a, b, span.channel if own_channel else None) for (a, b), (_, span) in zip(bounds, todo)]
    )
    sources = [span.channel if own_channel else 0 for _, span in todo]
    offsets = [a / ANALYSIS_SAMPLE_RATE for a, _ in bounds]
    results = engine.transcribe(clips, offsets, sources) if todo else []
    turns: list[Turn] = []
    for (index, span), result in zip(todo, results):
        if not result.text:
            rejects.append(
                item_reject(
                    STAGE,
                    work.recording,
                    NO_TRANSCRIPT,
                    f"empty transcript (language {result.language}, no_speech_prob "
                    f"{result.no_speech_prob:.2f})",
                    turn_id(work.recording_id, index),
                    span.start,
                    span.end,
                )
            )
            continue
        turns.append(make_turn(work.recording_id, index, span, result))
    return tuple(turns), rejects


# --- Beam -----------------------------------------------------------------------------------


class TranscribeFn(RecordingStageFn):
    """Fill ``work.turns``; the models load once per worker process (shared across threads)."""

    stage = STAGE

    def __init__(self, opts: AsrOptions):
        super().__init__()
        self.opts = opts
        self._engine: AsrEngine | None = None

    def setup(self):
        super().setup()
        self._engine = self.shared_model(f"asr:{self.opts!r}", lambda: AsrEngine(self.opts))
        self._turns_out = Metrics.counter(STAGE, "turns_out")
        self._turn_ms = Metrics.counter(STAGE, "turn_audio_ms")
        self._zh_turns = Metrics.counter(STAGE, "turns_zh")

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        assert self._engine is not None, "setup() was not called"
        turns, rejects = transcribe_work(work, self._engine, self.opts)
        self._turns_out.inc(len(turns))
        self._turn_ms.inc(int(sum(t.end - t.start for t in turns) * 1000))
        self._zh_turns.inc(sum(t.language == "zh" for t in turns))
        return replace(work, turns=turns), rejects


class Transcribe(RecordingStage):
    """Composite: ``RecordingWork`` -> the same work with ``turns``, plus the ASR rejects.

    >>> # outputs = works | "Transcribe" >> Transcribe(AsrOptions(asr_model="tiny.en"))
    """

    options_class = AsrOptions
    fn_class = TranscribeFn
    step = "TranscribeTurns"
