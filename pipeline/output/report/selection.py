"""Which dialogues and rejects the report lets a curator hear.

Kept: the best, median and worst dialogue by DNSMOS OVRL (by duration when none was scored).
Rejected: a few rejects of each reason that has a time span, one of each reason first, then a
second, until the clip cap; whole-file rejects have no span and are only listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.options import opt
from pipeline.records import quality_measures

from .run_data import Row, dialogue_duration, span_s

KEPT = "kept"
REJECTED = "rejected"


@dataclass(frozen=True)
class ReportOptions:
    """How much audio the report holds (each field a flag of ``python -m pipeline.output.report``)."""

    max_clips: int = opt(20, "clips in all, kept and rejected")
    max_kept: int = opt(3, "kept dialogues played: best, median and worst by DNSMOS OVRL")
    rejects_per_reason: int = opt(2, "clips of each reject reason that has a time span")
    max_clip_s: float = opt(30.0, "longest clip, s (a longer item plays its first seconds)")
    reject_context_s: float = opt(
        1.0,
        "audio played before and after a rejected span, s (a 0.3 s turn alone is hard to judge)",
    )
    timeline_context_s: float = opt(10.0, "recording time drawn on each side of a clip, s")
    bitrate: int = opt(24000, "Opus bit rate of the clips (mono, 16 kHz), bits per second")


@dataclass(frozen=True)
class ClipChoice:
    """One dialogue or reject to play.

    ``start``/``end`` are the kept dialogue's or the rejected item's span in the recording;
    ``row`` is its table row (a ``dialogues`` or a ``rejects`` row).
    """

    clip_id: str
    kind: str
    label: str
    recording_id: str
    item_id: str
    start: float
    end: float
    row: Row


def _dnsmos(row: Row) -> float | None:
    value = quality_measures(row.get("quality")).get("dnsmos_ovrl")
    return value if value is not None and math.isfinite(value) else None


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices of ``range(n)`` evenly spaced, first and last included (all when n <= k)."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [0]
    return [round(j * (n - 1) / (k - 1)) for j in range(k)]


def choose_kept(dialogues: Sequence[Row], count: int) -> list[ClipChoice]:
    """The kept dialogues to play, best first (by DNSMOS OVRL, or by duration when unscored)."""
    scored = [d for d in dialogues if _dnsmos(d) is not None]
    if scored:
        ranked = sorted(scored, key=lambda d: (-(_dnsmos(d) or 0.0), d["dialogue_id"]))
        measure = "DNSMOS OVRL"
    else:
        ranked = sorted(dialogues, key=lambda d: (-dialogue_duration(d), d["dialogue_id"]))
        measure = "duration"
    n = len(ranked)
    names = {0: "best", n - 1: "worst", round((n - 1) / 2): "median"}
    out = []
    for i in sorted(_spread(n, count)):
        d = ranked[i]
        rank = "only" if n == 1 else names.get(i, f"#{i + 1} of {n}")
        value = _dnsmos(d) if measure == "DNSMOS OVRL" else dialogue_duration(d)
        out.append(
            ClipChoice(
                clip_id=f"kept-{len(out) + 1:02d}",
                kind=KEPT,
                label=f"{rank} by {measure} ({value:.2f})",
                recording_id=d["recording_id"],
                item_id=d["dialogue_id"],
                start=float(d["start"]),
                end=float(d["end"]),
                row=d,
            )
        )
    return out


def reason_key(row: Row) -> str:
    """``stage/reason`` of a reject row."""
    return f"{row.get('stage') or '?'}/{row.get('reason') or '?'}"


def has_span(row: Row) -> bool:
    """A reject that names a stretch of a recording (so there is something to hear)."""
    return bool(row.get("item_id")) and span_s(row) > 0


def choose_rejects(rejects: Sequence[Row], per_reason: int, budget: int) -> list[ClipChoice]:
    """Rejects to play: per ``stage/reason`` (most frequent first) up to ``per_reason`` spread
    over its rejects, taken one of each reason at a time so the ``budget`` reaches every reason
    it can."""
    by_reason: dict[str, list[Row]] = {}
    for r in rejects:
        if has_span(r):
            by_reason.setdefault(reason_key(r), []).append(r)
    order = sorted(by_reason, key=lambda k: (-len(by_reason[k]), k))
    picks: dict[str, list[Row]] = {}
    for key in order:
        rows = sorted(by_reason[key], key=lambda r: (r["recording_id"], r["start"], r["item_id"]))
        picks[key] = [rows[i] for i in sorted(_spread(len(rows), per_reason))]
    chosen: list[tuple[str, Row]] = []
    for round_ in range(per_reason):
        for key in order:
            if len(chosen) < budget and round_ < len(picks[key]):
                chosen.append((key, picks[key][round_]))
    chosen.sort(key=lambda kr: (order.index(kr[0]), kr[1]["recording_id"], kr[1]["start"]))
    return [
        ClipChoice(
            clip_id=f"rejected-{i + 1:02d}",
            kind=REJECTED,
            label=key,
            recording_id=r["recording_id"],
            item_id=r["item_id"],
            start=float(r["start"]),
            end=float(r["end"]),
            row=r,
        )
        for i, (key, r) in enumerate(chosen)
    ]


def choose_clips(
    dialogues: Sequence[Row], rejects: Sequence[Row], opts: ReportOptions
) -> list[ClipChoice]:
    """Every clip the report plays: kept ones first, then rejected ones, at most ``max_clips``."""
    kept = choose_kept(dialogues, min(opts.max_kept, opts.max_clips))
    return kept + choose_rejects(rejects, opts.rejects_per_reason, opts.max_clips - len(kept))
