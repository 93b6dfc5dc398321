"""The measures the report draws as distributions, each with the thresholds the run applied.

Thresholds are read from the run's own options (``run_manifest.json``) through the stages'
options dataclasses, so an option's default lives in one place: :class:`pipeline.filters.FilterOptions`
and :class:`pipeline.dialogue.DialogueOptions`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.options import dataclass_from_values
from pipeline.dialogue import DialogueOptions
from pipeline.filters import FilterOptions, purity_limits
from pipeline.quality.cps import CpsBounds
from pipeline.records import quality_measures

from .run_data import Row, dialogue_duration

# a filter's reject message starts "<measure>=<value>" (pipeline.filters, pipeline.dialogue)
_VALUE_IN_MESSAGE = re.compile(r"^(\w+)=(-?[0-9.]+(?:e-?\d+)?)")
# message names that differ from the quality field they measure
_MESSAGE_NAMES = {"switches": "speaker_switches"}


@dataclass(frozen=True)
class Threshold:
    """One limit: ``keeps`` is ``"above"`` when values at or above ``value`` pass."""

    value: float
    flag: str
    keeps: str


@dataclass(frozen=True)
class Measure:
    """A distribution to draw: kept dialogues' ``key`` against the dropped ones' values."""

    key: str
    title: str
    unit: str
    thresholds: tuple[Threshold, ...] = ()
    discrete: bool = False


@dataclass(frozen=True)
class RunOptions:
    """The options of the stages whose thresholds the report draws; ``source`` says where they
    came from (the run's manifest, or the defaults when it has none or they do not parse)."""

    filters: FilterOptions
    dialogue: DialogueOptions
    source: str


def run_options(options: dict[str, Any] | None) -> RunOptions:
    """The filter and segmentation options of a run from its manifest's ``options``."""
    if options is not None:
        try:
            return RunOptions(
                dataclass_from_values(FilterOptions, options),
                dataclass_from_values(DialogueOptions, options),
                "run_manifest.json",
            )
        except (TypeError, ValueError):
            pass
    return RunOptions(
        FilterOptions(), DialogueOptions(), "defaults (no readable run_manifest.json)"
    )


def _above(value: float, flag: str) -> Threshold:
    return Threshold(float(value), flag, "above")


def _above_if_set(value: float, flag: str) -> tuple[Threshold, ...]:
    """The limit where there is one (an unset limit is -inf)."""
    return (_above(value, flag),) if math.isfinite(value) else ()


def _below(value: float, flag: str) -> Threshold:
    return Threshold(float(value), flag, "below")


def main_language(dialogues: Sequence[Row]) -> str:
    """The language most kept dialogues are in (``*`` when there are none)."""
    counts = Counter(d.get("language") or "*" for d in dialogues)
    return counts.most_common(1)[0][0] if counts else "*"


def measures(opts: RunOptions, language: str) -> list[Measure]:
    """Every distribution the report draws, with the run's thresholds (``language`` picks the
    characters-per-second bounds drawn)."""
    f, d = opts.filters, opts.dialogue
    cps_lo, cps_hi = CpsBounds.parse(f.cps_bounds).for_language(language)
    out = [
        Measure(
            "duration",
            "Dialogue duration",
            "seconds",
            (
                _above(d.min_dialogue_s, "--min_dialogue_s"),
                _below(d.max_dialogue_s, "--max_dialogue_s"),
            ),
        ),
        Measure("num_turns", "Turns per dialogue", "turns", discrete=True),
        Measure(
            "dnsmos_ovrl",
            "DNSMOS P.835 OVRL",
            "OVRL",
            (_above(f.min_dnsmos_ovrl, "--min_dnsmos_ovrl"),) if f.min_dnsmos_ovrl > 0 else (),
        ),
        Measure(
            "avg_logprob",
            "ASR confidence (mean avg_logprob)",
            "log probability",
            (_above(f.min_dialogue_avg_logprob, "--min_dialogue_avg_logprob"),),
        ),
        Measure(
            "no_speech_prob",
            "ASR no-speech probability",
            "probability",
            (_below(f.max_dialogue_no_speech_prob, "--max_dialogue_no_speech_prob"),),
        ),
        Measure(
            "cps",
            f"Characters per second of speech (bounds for {language!r})",
            "characters / s",
            tuple(
                t
                for t in (
                    _above(cps_lo, "--cps_bounds"),
                    _below(cps_hi, "--cps_bounds"),
                )
                if math.isfinite(t.value) and (t.keeps == "below" or t.value > 0)
            ),
        ),
        Measure(
            "overlap_ratio",
            "Overlap ratio (both talking)",
            "share of the time",
            (_below(f.max_dialogue_overlap_ratio, "--max_dialogue_overlap_ratio"),),
        ),
        Measure(
            "speaker_share",
            "Speaker balance (the quieter side's share of the speech)",
            "share",
            (_above(f.min_speaker_share, "--min_speaker_share"),),
        ),
        Measure(
            "speaker_switches",
            "Speaker switches",
            "switches",
            (_above(d.min_speaker_switches, "--min_speaker_switches"),),
            discrete=True,
        ),
        Measure(
            "bandwidth_hz",
            "Effective bandwidth",
            "Hz",
            (_above(f.min_dialogue_bandwidth_hz, "--min_dialogue_bandwidth_hz"),)
            if f.min_dialogue_bandwidth_hz > 0
            else (),
        ),
    ]
    if f.role_purity:
        limits = purity_limits(f, f.purity_embedding_model)
        out += [
            Measure(
                "role_margin",
                "Role purity: worst turn's margin to its own role",
                "cosine margin",
                (_above(limits.min_margin, "--min_role_margin"),),
            ),
            Measure(
                "role_self_similarity",
                "Role purity: a role's turns against the rest of the role",
                "cosine",
                (_above(limits.min_self_similarity, "--min_role_self_similarity"),),
            ),
            Measure(
                "role_cross_similarity",
                "Role purity: the two roles' voices",
                "cosine",
                (_below(limits.max_cross_similarity, "--max_role_cross_similarity"),),
            ),
            Measure(
                "role_part_margin",
                "Role purity: worst stretch between pauses' margin to its own role",
                "cosine margin",
                _above_if_set(limits.min_part_margin, "--min_role_part_margin"),
            ),
            Measure(
                "role_separation",
                "Role purity: turns alike within a role minus across roles",
                "cosine margin",
                _above_if_set(limits.min_separation, "--min_role_separation"),
            ),
        ]
    return out


def kept_values(measure: Measure, dialogues: Sequence[Row]) -> list[float]:
    """The kept dialogues' values of ``measure`` (unmeasured ones left out)."""
    if measure.key == "duration":
        return [dialogue_duration(d) for d in dialogues]
    values = [
        quality_measures(d.get("quality")).get(measure.key, d.get(measure.key)) for d in dialogues
    ]
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def dropped_values(measure: Measure, rejects: Sequence[Row]) -> list[float]:
    """The values that rejects' messages give for ``measure`` (``dnsmos_ovrl=2.1 < 2.8``); for
    ``duration``, also the length of every segment rejected ``too_long``."""
    out = []
    for r in rejects:
        m = _VALUE_IN_MESSAGE.match(r.get("message") or "")
        if m and _MESSAGE_NAMES.get(m.group(1), m.group(1)) == measure.key:
            out.append(float(m.group(2)))
        elif measure.key == "duration" and r.get("reason") == "too_long" and r.get("item_id"):
            out.append(max(0.0, float(r.get("end") or 0.0) - float(r.get("start") or 0.0)))
    return [v for v in out if math.isfinite(v)]
