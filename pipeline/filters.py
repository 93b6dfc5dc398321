"""Quality filters of dialogue segments: each measure is recorded, each threshold is an option.

Input: ``RecordingWork`` with ``dialogues``/``dialogue_turns`` (from :mod:`pipeline.dialogue`).
Output: the same work keeping the dialogues that pass, their ``quality`` map filled and
``bandwidth_hz`` set; every dropped dialogue becomes an item-level reject whose message starts
``<measure>=<value>``. Reasons: ``low_asr_confidence``, ``cps_out_of_range``, ``overlap_ratio``,
``speaker_imbalance``, ``low_bandwidth``, ``low_dnsmos``, ``speaker_inconsistent``.
Models (loaded once per worker in ``setup``): DNSMOS P.835 ONNX (``speechmos`` package files) and
the GE2E speaker encoder (``resemblyzer`` package weights).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from pipeline.options import opt
from pipeline.quality.bandwidth import estimate_bandwidth_hz
from pipeline.quality.cps import DEFAULT_CPS_BOUNDS, CpsBounds, chars_per_second
from pipeline.records import (
    ANALYSIS_SAMPLE_RATE,
    Dialogue,
    DialogueTurn,
    RecordingWork,
    Reject,
    Turn,
)
from pipeline.stage import RecordingStageFn, StageOutputs, apply_stage, item_reject, replace

logger = logging.getLogger(__name__)

STAGE = "filters"

# reject reasons of this stage, in the order the filters run (cheap ones first)
LOW_ASR_CONFIDENCE = "low_asr_confidence"
CPS_OUT_OF_RANGE = "cps_out_of_range"
OVERLAP_RATIO = "overlap_ratio"
SPEAKER_IMBALANCE = "speaker_imbalance"
LOW_BANDWIDTH = "low_bandwidth"
LOW_DNSMOS = "low_dnsmos"
SPEAKER_INCONSISTENT = "speaker_inconsistent"
REASONS = (LOW_ASR_CONFIDENCE, CPS_OUT_OF_RANGE, OVERLAP_RATIO, SPEAKER_IMBALANCE, LOW_BANDWIDTH,
           LOW_DNSMOS, SPEAKER_INCONSISTENT)

# the analysis audio is 16 kHz: a bandwidth estimate this close to its Nyquist frequency means
# "at least 8 kHz", and the recording-level estimate at the original rate is used instead
_NEAR_NYQUIST = 0.95


@dataclass(frozen=True)
class FilterOptions:
    """Options of the dialogue quality filters (each field is a command-line flag)."""

    min_dnsmos_ovrl: float = opt(2.8, "drop dialogues whose DNSMOS P.835 OVRL is below this "
                                      "(OpenDialog's threshold); 0 keeps all (still scored)")
    dnsmos_p808: bool = opt(False, "also compute DNSMOS P.808 (recorded, not filtered on)")
    dnsmos_max_batch_windows: int = opt(4, "most 9.01 s DNSMOS windows per ONNX call: all "
                                           "windows of a recording's dialogues are batched "
                                           "in calls of this size (each window costs ~110-180 "
                                           "MB of onnxruntime memory on CPU)")
    dnsmos_max_windows: int = opt(3, "score at most this many of a dialogue's 9.01 s DNSMOS "
                                     "windows, evenly spread (0: all, as speechmos; 3 moved "
                                     "OVRL by at most 0.03 on the sample's clips at under "
                                     "half the cost)")
    cps_bounds: str = opt(DEFAULT_CPS_BOUNDS, "letters+digits per second of speech allowed per "
                                              "language, lang=min:max, '*' for the others; "
                                              "empty disables")
    min_dialogue_avg_logprob: float = opt(-1.0, "drop dialogues whose duration-weighted mean "
                                                "ASR avg_logprob is below this (Whisper's "
                                                "fallback threshold)")
    max_dialogue_no_speech_prob: float = opt(0.6, "drop dialogues whose mean ASR no_speech_prob "
                                                  "is above this")
    max_dialogue_overlap_ratio: float = opt(0.3, "drop dialogues where both speakers talk at "
                                                 "once for more than this share of the time")
    min_speaker_share: float = opt(0.1, "drop dialogues where one speaker has less than this "
                                        "share of the speech")
    speaker_consistency: bool = opt(True, "check speaker labels with GE2E embeddings")
    min_speaker_margin: float = opt(-0.05, "drop dialogues with a turn whose voice is closer to "
                                           "the other speaker's by more than this (cosine "
                                           "margin)")
    consistency_min_turn_s: float = opt(1.0, "shortest turn embedded for the speaker check, s")
    min_dialogue_bandwidth_hz: float = opt(0.0, "drop dialogues whose effective bandwidth is "
                                                "below this; 0 keeps telephone audio")
    quality_num_threads: int = opt(0, "threads of the DNSMOS/GE2E models (0: library default)")

    def __post_init__(self):
        CpsBounds.parse(self.cps_bounds)  # raises ValueError naming the bad entry
        if not 0 <= self.max_dialogue_overlap_ratio <= 1:
            raise ValueError(f"max_dialogue_overlap_ratio={self.max_dialogue_overlap_ratio} "
                             "must be in [0, 1]")
        if not 0 <= self.min_speaker_share <= 0.5:
            raise ValueError(f"min_speaker_share={self.min_speaker_share} must be in [0, 0.5]")
        if self.dnsmos_max_windows < 0:
            raise ValueError(f"dnsmos_max_windows={self.dnsmos_max_windows} must be >= 0")
        if self.dnsmos_max_batch_windows < 1:
            raise ValueError(f"dnsmos_max_batch_windows={self.dnsmos_max_batch_windows} "
                             "must be >= 1")


# --- pure measures -----------------------------------------------------------------------------


def asr_confidence(dialogue: Dialogue, turns: Sequence[Turn]) -> tuple[float, float]:
    """Duration-weighted mean ``avg_logprob`` and ``no_speech_prob`` of the ASR turns inside."""
    weights, logprob, no_speech = 0.0, 0.0, 0.0
    for turn in turns:
        w = min(turn.end, dialogue.end) - max(turn.start, dialogue.start)
        if w > 0:
            weights += w
            logprob += w * turn.avg_logprob
            no_speech += w * turn.no_speech_prob
    if weights == 0:
        return 0.0, 0.0
    return logprob / weights, no_speech / weights


def speech_seconds(dialogue: Dialogue) -> float:
    """Seconds during which at least one of the two speakers talks."""
    return dialogue.s1_s + dialogue.s2_s - dialogue.overlap_ratio * dialogue.duration


def speaker_share(dialogue: Dialogue) -> float:
    """The smaller speaker's share of the two speakers' speech time."""
    total = dialogue.s1_s + dialogue.s2_s
    return min(dialogue.s1_s, dialogue.s2_s) / total if total > 0 else 0.0


def dialogue_bandwidth_hz(clip_16k: np.ndarray, recording_bandwidth_hz: float,
                          recording_sample_rate: int) -> float:
    """Bandwidth of a dialogue: its 16 kHz audio's, or the recording's when that one is wider."""
    bw = estimate_bandwidth_hz(clip_16k, ANALYSIS_SAMPLE_RATE)
    if bw >= _NEAR_NYQUIST * ANALYSIS_SAMPLE_RATE / 2 and recording_bandwidth_hz > bw:
        bw = recording_bandwidth_hz
    if recording_sample_rate > 0:
        bw = min(bw, recording_sample_rate / 2)
    return bw


def clip(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    """Samples of ``audio`` (``(samples,)`` or ``(channels, samples)``) between two times."""
    i, j = round(start * ANALYSIS_SAMPLE_RATE), round(end * ANALYSIS_SAMPLE_RATE)
    return audio[..., max(0, i):max(0, j)]


def cheap_checks(dialogue: Dialogue, turns: Sequence[Turn], clip_16k: np.ndarray,
                 opts: FilterOptions, recording_bandwidth_hz: float = 0.0,
                 recording_sample_rate: int = 0) -> tuple[dict[str, float], tuple[str, str] | None]:
    """The model-free measures of one dialogue and the first filter it fails, if any.

    Returns:
        ``(quality, failure)``; ``failure`` is ``(reason, message)`` or None.
    """
    logprob, no_speech = asr_confidence(dialogue, turns)
    speech_s = speech_seconds(dialogue)
    cps = chars_per_second(dialogue.text, speech_s)
    share = speaker_share(dialogue)
    bandwidth = dialogue_bandwidth_hz(clip_16k, recording_bandwidth_hz, recording_sample_rate)
    quality = {"avg_logprob": logprob, "no_speech_prob": no_speech, "cps": cps,
               "speech_s": speech_s, "speaker_share": share,
               "overlap_ratio": dialogue.overlap_ratio, "bandwidth_hz": bandwidth}
    lo, hi = CpsBounds.parse(opts.cps_bounds).for_language(dialogue.language) \
        if opts.cps_bounds else (0.0, math.inf)
    checks = [
        (logprob < opts.min_dialogue_avg_logprob, LOW_ASR_CONFIDENCE,
         f"avg_logprob={logprob:.3f} < {opts.min_dialogue_avg_logprob:g}"),
        (no_speech > opts.max_dialogue_no_speech_prob, LOW_ASR_CONFIDENCE,
         f"no_speech_prob={no_speech:.3f} > {opts.max_dialogue_no_speech_prob:g}"),
        (not lo <= cps <= hi, CPS_OUT_OF_RANGE,
         f"cps={cps:.2f} outside [{lo:g}, {hi:g}] for language {dialogue.language!r}"),
        (dialogue.overlap_ratio > opts.max_dialogue_overlap_ratio, OVERLAP_RATIO,
         f"overlap_ratio={dialogue.overlap_ratio:.3f} > {opts.max_dialogue_overlap_ratio:g}"),
        (share < opts.min_speaker_share, SPEAKER_IMBALANCE,
         f"speaker_share={share:.3f} < {opts.min_speaker_share:g}"),
        (bandwidth < opts.min_dialogue_bandwidth_hz, LOW_BANDWIDTH,
         f"bandwidth_hz={bandwidth:.0f} < {opts.min_dialogue_bandwidth_hz:g}"),
    ]
    for failed, reason, message in checks:
        if failed:
            return quality, (reason, message)
    return quality, None


def _embedding_references(work: RecordingWork, dialogue: Dialogue,
                          dim: int) -> dict[str, np.ndarray] | None:
    """File-wide voices of S1/S2 from the diarizer, if it supplied embeddings of GE2E's size."""
    embs = work.speaker_embeddings
    if not embs or dialogue.s1_speaker not in embs or dialogue.s2_speaker not in embs:
        return None
    s1, s2 = np.asarray(embs[dialogue.s1_speaker]), np.asarray(embs[dialogue.s2_speaker])
    if s1.shape != (dim,) or s2.shape != (dim,):
        return None
    return {"S1": s1, "S2": s2}


# --- Beam --------------------------------------------------------------------------------------


class FilterDialoguesFn(RecordingStageFn):
    """Measure every dialogue of a recording and keep those that pass the filters."""

    stage = STAGE

    def __init__(self, opts: FilterOptions):
        super().__init__()
        self.opts = opts
        self._dnsmos = None
        self._ge2e = None

    def setup(self):
        super().setup()
        from pipeline.quality.dnsmos import DnsmosScorer

        o = self.opts
        # one copy per worker process, shared by its threads (onnxruntime and torch inference
        # are thread-safe)
        self._dnsmos = self.shared_model(
            f"dnsmos:{o.dnsmos_p808}:{o.quality_num_threads}:{o.dnsmos_max_batch_windows}"
            f":{o.dnsmos_max_windows}",
            lambda: DnsmosScorer(p808=o.dnsmos_p808, num_threads=o.quality_num_threads,
                                 max_batch_windows=o.dnsmos_max_batch_windows,
                                 max_windows=o.dnsmos_max_windows))
        if o.speaker_consistency:
            from pipeline.quality.speaker_consistency import Ge2eEmbedder

            self._ge2e = self.shared_model(f"ge2e:{o.quality_num_threads}",
                                           lambda: Ge2eEmbedder(
                                               num_threads=o.quality_num_threads))

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        if self._dnsmos is None:
            self.setup()
        kept, rejects = filter_dialogues(work, self.opts, self._dnsmos, self._ge2e)
        ids = {d.dialogue_id for d in kept}
        return replace(work, dialogues=tuple(kept),
                       dialogue_turns=tuple(t for t in work.dialogue_turns
                                            if t.dialogue_id in ids)), rejects


def filter_dialogues(work: RecordingWork, opts: FilterOptions, dnsmos, ge2e=None
                     ) -> tuple[list[Dialogue], list[Reject]]:
    """Measure and filter the dialogues of one recording.

    Args:
        work: the recording with its dialogues, turns and 16 kHz audio.
        opts: thresholds.
        dnsmos: a :class:`pipeline.quality.dnsmos.DnsmosScorer` (the surviving dialogues'
            clips are handed to it one at a time).
        ge2e: a :class:`pipeline.quality.speaker_consistency.Ge2eEmbedder`, or None to skip
            the speaker check.

    Returns:
        ``(kept dialogues with quality filled, rejects)``.
    """
    rec = work.recording
    rejects: list[Reject] = []
    survivors: list[tuple[Dialogue, dict[str, float]]] = []
    mono = work.mono
    for dialogue in work.dialogues:
        quality, failure = cheap_checks(dialogue, work.turns, clip(mono, dialogue.start,
                                                                   dialogue.end),
                                        opts, rec.bandwidth_hz, rec.sample_rate)
        if failure:
            rejects.append(item_reject(STAGE, rec, failure[0], failure[1], dialogue.dialogue_id,
                                       dialogue.start, dialogue.end))
        else:
            survivors.append((dialogue, quality))
    if not survivors:
        return [], rejects

    scores = dnsmos.score(clip(mono, d.start, d.end) for d, _ in survivors)  # one at a time
    after_dnsmos = []
    for (dialogue, quality), score in zip(survivors, scores):
        quality.update(dnsmos_ovrl=score.ovrl, dnsmos_sig=score.sig, dnsmos_bak=score.bak)
        if not math.isnan(score.p808):
            quality["dnsmos_p808"] = score.p808
        if score.ovrl < opts.min_dnsmos_ovrl:
            rejects.append(item_reject(STAGE, rec, LOW_DNSMOS,
                                       f"dnsmos_ovrl={score.ovrl:.3f} < {opts.min_dnsmos_ovrl:g}",
                                       dialogue.dialogue_id, dialogue.start, dialogue.end))
        else:
            after_dnsmos.append((dialogue, quality))

    margins = _speaker_margins(work, [d for d, _ in after_dnsmos], opts, ge2e)
    kept = []
    for (dialogue, quality), margin in zip(after_dnsmos, margins):
        if ge2e is not None:
            quality["speaker_margin"] = margin
        if not math.isnan(margin) and margin < opts.min_speaker_margin:
            rejects.append(item_reject(STAGE, rec, SPEAKER_INCONSISTENT,
                                       f"speaker_margin={margin:.3f} < "
                                       f"{opts.min_speaker_margin:g}",
                                       dialogue.dialogue_id, dialogue.start, dialogue.end))
            continue
        kept.append(dataclasses.replace(dialogue, bandwidth_hz=quality["bandwidth_hz"],
                                        quality={**dialogue.quality, **quality}))
    return kept, rejects


def _speaker_margins(work: RecordingWork, dialogues: Sequence[Dialogue], opts: FilterOptions,
                     ge2e) -> list[float]:
    """GE2E speaker margin of each dialogue (NaN when skipped)."""
    if ge2e is None or not dialogues:
        return [math.nan] * len(dialogues)
    from pipeline.quality.speaker_consistency import EMBEDDING_DIM, speaker_margin

    by_dialogue: dict[str, list[DialogueTurn]] = {}
    for turn in work.dialogue_turns:
        if turn.end - turn.start >= opts.consistency_min_turn_s:
            by_dialogue.setdefault(turn.dialogue_id, []).append(turn)
    margins = []
    for dialogue in dialogues:  # one dialogue's turns at a time: memory flat in file length
        turns = by_dialogue.get(dialogue.dialogue_id, [])
        if not turns:
            margins.append(math.nan)
            continue
        clips = [clip(work.audio[t.channel] if dialogue.channel_layout == "stereo"
                      else work.mono, t.start, t.end) for t in turns]
        refs = _embedding_references(work, dialogue, EMBEDDING_DIM)
        margins.append(speaker_margin(ge2e.embed(clips), [t.role for t in turns], refs))
    return margins


class FilterDialogues(beam.PTransform):
    """Composite: ``RecordingWork`` → the same work keeping the dialogues that pass.

    >>> # outputs = segmented.main | "FilterDialogues" >> FilterDialogues(FilterOptions())
    """

    def __init__(self, opts: FilterOptions):
        super().__init__()
        self.opts = opts

    def expand(self, works: beam.PCollection) -> StageOutputs:
        return apply_stage(works, "Filter", FilterDialoguesFn(self.opts))
