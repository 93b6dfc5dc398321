"""Corpus-level figures from per-item results, as ZipVoice-Dialog's evaluation aggregates them.

WER and cpWER are corpus rates (total errors / total reference words, not a mean of per-item
rates); cpSIM and DNSMOS are means over items; turn accuracy is total correct turns / total
turns; RTF is total synthesis time / total audio duration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Summary", "summarise"]


@dataclass(frozen=True)
class Summary:
    """One row of the results table (rates are fractions, not percent).

    Attributes:
        model: the system's name.
        params: its size as given (e.g. ``"123M"``), or ``""``.
        num_items: items scored.
        num_missing: test-list items whose generated wav was missing.
        hours: total duration of the scored audio.
        prompt_mode: ``merged``, ``split`` or ``mixed``.
        rtf: real-time factor (None: no synthesis times).
        wer: corpus WER.
        cpwer: corpus cpWER over items no longer than ``cpwer_max_s``.
        cpwer_items: items in the cpWER.
        cpwer_max_s: the cpWER length limit (None: all items).
        cpsim: mean cpSIM (None: no prompts).
        cpsim_swapped: mean cosine of the other speaker pairing (how far apart the voices are).
        dnsmos_ovrl: mean DNSMOS OVRL (also ``dnsmos_sig``, ``dnsmos_bak``).
        turn_accuracy: correct turns / turns.
        switch_error: mean ``|found - expected|`` speaker switches per item.
        models: what computed each metric (``{"WER": "Whisper base ...", ...}``).
    """

    model: str
    params: str
    num_items: int
    num_missing: int
    hours: float
    prompt_mode: str
    rtf: float | None
    wer: float | None
    cpwer: float | None
    cpwer_items: int
    cpwer_max_s: float | None
    cpsim: float | None
    cpsim_swapped: float | None
    dnsmos_ovrl: float | None
    dnsmos_sig: float | None
    dnsmos_bak: float | None
    turn_accuracy: float | None
    switch_error: float | None
    models: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Summary:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def summarise(
    items: Sequence[Mapping[str, Any]],
    model: str = "",
    params: str = "",
    num_missing: int = 0,
    cpwer_max_s: float | None = None,
    rtf: float | None = None,
    models: Mapping[str, str] | None = None,
) -> Summary:
    """Aggregate per-item result dicts (see :class:`model.evaluation.evaluate.ItemResult`).

    Args:
        items: per-item results.
        model: system name for the row.
        params: system size for the row.
        num_missing: items that could not be scored.
        cpwer_max_s: only items at most this long enter the cpWER (the paper: 30 s).
        rtf: a given RTF; None computes it from the items' ``synthesis_s``.
        models: metric -> model description.
    """
    timed = [i for i in items if i.get("synthesis_s") is not None]
    if rtf is None and timed:
        rtf = _ratio(sum(i["synthesis_s"] for i in timed), sum(i["duration_s"] for i in timed))
    short = [i for i in items if cpwer_max_s is None or i["duration_s"] <= cpwer_max_s + 1e-9]
    modes = {i.get("prompt_mode", "") for i in items}
    return Summary(
        model=model,
        params=params,
        num_items=len(items),
        num_missing=num_missing,
        hours=sum(i["duration_s"] for i in items) / 3600.0,
        prompt_mode=modes.pop() if len(modes) == 1 else ("mixed" if modes else ""),
        rtf=rtf,
        wer=_ratio(sum(i["wer_errors"] for i in items), sum(i["ref_words"] for i in items)),
        cpwer=_ratio(sum(i["cpwer_errors"] for i in short), sum(i["ref_words"] for i in short)),
        cpwer_items=len(short),
        cpwer_max_s=cpwer_max_s,
        cpsim=_mean([i.get("cpsim") for i in items]),
        cpsim_swapped=_mean([i.get("cpsim_swapped") for i in items]),
        dnsmos_ovrl=_mean([i.get("dnsmos_ovrl") for i in items]),
        dnsmos_sig=_mean([i.get("dnsmos_sig") for i in items]),
        dnsmos_bak=_mean([i.get("dnsmos_bak") for i in items]),
        turn_accuracy=_ratio(
            sum(i["turns_correct"] for i in items), sum(i["num_turns"] for i in items)
        ),
        switch_error=_mean(
            [float(abs(i["switches_found"] - i["switches_expected"])) for i in items]
        ),
        models=dict(models or {}),
    )
