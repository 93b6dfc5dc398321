"""The report's summary sections: distributions with thresholds, the per-recording table, hours
in and out, drops by reason, the corpus and the run's counters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import svg
from .run_data import Row, RunData, dialogue_duration, span_s
from .selection import reason_key
from .text import esc, hours, table
from .thresholds import Measure, RunOptions, dropped_values, kept_values

MAX_RECORDING_ROWS = 100


def _line_label(t) -> str:
    sign = "≥" if t.keeps == "above" else "≤"
    return f"keeps {sign} {t.value:g} ({t.flag})"


def distribution(measure: Measure, run: RunData) -> str:
    """One measure's histogram: kept dialogues and the dropped values the rejects give."""
    series = [
        svg.Series("kept", kept_values(measure, run.dialogues), svg.KEPT_COLOR),
        svg.Series("dropped", dropped_values(measure, run.rejects), svg.DROPPED_COLOR),
    ]
    lines = [svg.Line(t.value, _line_label(t)) for t in measure.thresholds]
    return svg.histogram(series, measure.title, measure.unit, lines, measure.discrete)


def distributions_section(measures: Sequence[Measure], run: RunData, opts: RunOptions) -> str:
    drawn = [distribution(m, run) for m in measures]
    return (
        "<h2>Distributions and thresholds</h2>"
        f"<p>Kept dialogues against the values the rejects record; dashed lines are the run's "
        f"thresholds (from {esc(opts.source)}).</p>"
        + '<div class="plots">'
        + "".join(f'<div class="plot">{d}</div>' for d in drawn)
        + "</div>"
    )


def per_recording_section(run: RunData) -> str:
    """Hours in, kept and dropped (by reason) per recording, the longest recordings first."""
    kept: dict[str, list[float]] = {}
    for d in run.dialogues:
        kept.setdefault(d["recording_id"], []).append(dialogue_duration(d))
    dropped: dict[str, dict[str, list[float]]] = {}
    for r in run.rejects:
        if r.get("item_id"):
            per = dropped.setdefault(r.get("recording_id") or "", {})
            per.setdefault(reason_key(r), []).append(span_s(r))
    reasons = sorted({k for per in dropped.values() for k in per})
    rows = []
    ordered = sorted(
        run.recordings, key=lambda r: (-(r.get("duration_s") or 0.0), r["recording_id"])
    )
    for rec in ordered[:MAX_RECORDING_ROWS]:
        rid = rec["recording_id"]
        per = dropped.get(rid, {})
        rows.append(
            (
                rid,
                hours(rec.get("duration_s") or 0.0),
                hours(rec.get("speech_s") or 0.0),
                len(kept.get(rid, [])),
                hours(sum(kept.get(rid, []))),
                *(
                    f"{len(per[k])} · {hours(sum(per[k])):.3g} h" if k in per else ""
                    for k in reasons
                ),
            )
        )
    headers = ("recording", "hours in", "speech h", "kept dialogues", "kept h", *reasons)
    more = (
        f"<p>… and {len(ordered) - MAX_RECORDING_ROWS} shorter recordings.</p>"
        if len(ordered) > MAX_RECORDING_ROWS
        else ""
    )
    return (
        "<h2>Per recording</h2>"
        "<p>Dropped: count · hours of the rejected spans, by stage/reason (spans of different "
        "stages can overlap: a turn the recogniser dropped lies inside a rejected segment).</p>"
        + (
            "<div class='wide'>" + table(headers, rows) + "</div>"
            if rows
            else "<p class='nodata'>No recording was decoded.</p>"
        )
        + more
    )


def hours_section(run: RunData) -> str:
    hours_in = hours(sum(r.get("duration_s") or 0.0 for r in run.recordings))
    speech_in = hours(sum(r.get("speech_s") or 0.0 for r in run.recordings))
    by_split: dict[str, float] = {}
    by_layout: dict[str, float] = {}
    for d in run.dialogues:
        h = hours(dialogue_duration(d))
        split = d.get("split") or "train"
        layout = d.get("channel_layout") or "mono"
        by_split[split] = by_split.get(split, 0.0) + h
        by_layout[layout] = by_layout.get(layout, 0.0) + h
    hours_out = sum(by_split.values())
    rows: list[tuple[str, Any]] = [
        ("recordings", len(run.recordings)),
        ("hours in (audio)", hours_in),
        ("hours in (speech, VAD)", speech_in),
        ("dialogues out", len(run.dialogues)),
        ("hours out (dialogues)", hours_out),
        ("yield (out / in)", hours_out / hours_in if hours_in else 0.0),
    ]
    rows += [(f"hours out, split {k}", v) for k, v in sorted(by_split.items())]
    rows += [(f"hours out, layout {k}", v) for k, v in sorted(by_layout.items())]
    return (
        "<h2>Hours in and out</h2>"
        + table(("measure", "value"), rows)
        + svg.bars(
            ["audio in", "speech in", "dialogues out"],
            [hours_in, speech_in, hours_out],
            "Hours in and out",
            "hours",
        )
    )


def drops_section(rejects: Sequence[Row]) -> str:
    drops: dict[tuple[str, str], list[float]] = {}
    for r in rejects:
        entry = drops.setdefault((r.get("stage") or "?", r.get("reason") or "?"), [0.0, 0.0])
        entry[0] += 1
        entry[1] += span_s(r)
    ordered = sorted(drops.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return (
        "<h2>Drops by stage and reason</h2>"
        + svg.bars(
            [f"{s}/{r}" for (s, r), _ in ordered],
            [v[0] for _, v in ordered],
            "Rejects by stage/reason",
            "count",
        )
        + table(
            ("stage", "reason", "count", "seconds"),
            [(s, r, int(v[0]), v[1]) for (s, r), v in ordered],
        )
    )


def corpus_section(corpus: Any) -> str:
    if not isinstance(corpus, dict):
        return ""
    rows = [
        (
            split,
            e.get("num_dialogues", 0),
            e.get("hours", 0.0),
            ", ".join(f"{k} {v:.3f} h" for k, v in (e.get("hours_by_layout") or {}).items()),
        )
        for split, e in sorted((corpus.get("splits") or {}).items())
    ]
    return "<h2>Corpus</h2>" + table(("split", "dialogues", "hours", "layouts"), rows)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out: list[tuple[str, Any]] = []
        for k in sorted(obj, key=str):
            out.extend(_flatten(obj[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, obj)]


def counters_section(metrics: Any) -> str:
    if metrics is None:
        return ""
    return "<h2>Counters (metrics.json)</h2>" + table(("counter", "value"), _flatten(metrics))
