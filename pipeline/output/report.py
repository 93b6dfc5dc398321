"""``report.html``: a self-contained run report (inline SVG plots, opens offline).

Reads what a run wrote: the Parquet tables (``recordings``, ``dialogues``, ``dialogue_turns``,
``rejects``), ``metrics.json`` (the Beam counters) and ``corpus.json`` when present. Plots:
dialogue durations, turns per dialogue, speaker balance, DNSMOS OVRL (kept and dropped), drops by
stage and reason, hours in and out. Plots are drawn with matplotlib when it is installed (SVG,
text as paths) and with a small built-in SVG bar renderer otherwise.

Usage: ``python -m pipeline.output.report OUTPUT_DIR``
"""

from __future__ import annotations

import argparse
import glob
import html
import io
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from pipeline.records import quality_measures

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"
_VALUE_IN_MESSAGE = re.compile(r"^(\w+)=(-?[0-9.]+(?:e-?\d+)?)")


# --- reading -----------------------------------------------------------------------------------


def find_table_files(output_dir: str, table: str) -> list[str]:
    """The Parquet files of one table, whichever layout the writer used.

    Accepted: ``<table>.parquet``, ``<table>-*.parquet`` (Beam shard names), ``<table>/**.parquet``
    and the same under ``tables/``.
    """
    found: set[str] = set()
    for base in (output_dir, os.path.join(output_dir, "tables")):
        for pattern in (
            f"{table}.parquet",
            f"{table}-*.parquet",
            f"{table}.*.parquet",
            os.path.join(table, "**", "*.parquet"),
        ):
            found.update(glob.glob(os.path.join(base, pattern), recursive=True))
    return sorted(found)


def read_table(output_dir: str, table: str) -> list[dict[str, Any]]:
    """All rows of one table as dicts (``[]`` when the run wrote none)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in find_table_files(output_dir, table):
        try:
            rows.extend(pq.read_table(path).to_pylist())
        except (OSError, ValueError) as exc:  # a half-written file of a killed run
            logger.warning("report: cannot read %s: %s", path, exc)
    return rows


def _read_json(path: str) -> Any | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _quality(row: dict[str, Any]) -> dict[str, float]:
    """A dialogue row's measured quality fields (the struct's nulls left out)."""
    return quality_measures(row.get("quality"))


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out: list[tuple[str, Any]] = []
        for k in sorted(obj, key=str):
            out.extend(_flatten(obj[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and all(isinstance(x, dict) for x in obj):
        out = []
        for i, x in enumerate(obj):
            name = x.get("name") or x.get("key") or str(i)
            ns = x.get("namespace") or x.get("stage")
            value = x.get("value", x.get("committed", x.get("result")))
            if value is not None and not isinstance(value, (dict, list)):
                out.append((f"{prefix}.{ns}.{name}" if ns else f"{prefix}.{name}", value))
            else:
                out.extend(_flatten(x, f"{prefix}.{i}"))
        return out
    return [(prefix, obj)]


# --- plotting ----------------------------------------------------------------------------------


def _histogram(values: Sequence[float], bins: int = 20) -> tuple[list[str], list[float]]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return [], []
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return [f"{lo:.3g}"], [float(len(vals))]
    width = (hi - lo) / bins
    counts = [0.0] * bins
    for v in vals:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return [f"{lo + i * width:.3g}" for i in range(bins)], counts


def _svg_bars(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    xlabel: str,
    horizontal: bool = False,
) -> str:
    """A plain SVG bar chart (used when matplotlib is not installed)."""
    esc = html.escape
    if not values:
        return f"<p><em>{esc(title)}: no data</em></p>"
    top = max(values) or 1.0
    if horizontal:
        row_h, left, width = 20, 260, 360
        height = 30 + row_h * len(values)
        parts = [
            (
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
                f'height="{height}"><text x="4" y="16" font-size="13">{esc(title)}</text>'
            )
        ]
        for i, (label, value) in enumerate(zip(labels, values)):
            y = 26 + i * row_h
            w = width * value / top
            parts.append(
                f'<text x="{left - 4}" y="{y + 13}" font-size="11" '
                f'text-anchor="end">{esc(label)}</text>'
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 4}" '
                f'fill="#4878a8"/><text x="{left + w + 3:.1f}" y="{y + 13}" '
                f'font-size="11">{value:g}</text>'
            )
        return "".join(parts) + "</svg>"
    n, plot_w, plot_h = len(values), 560, 180
    bar_w = plot_w / n
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{plot_w + 60}" '
            f'height="{plot_h + 70}"><text x="4" y="16" font-size="13">{esc(title)}</text>'
        )
    ]
    for i, (label, value) in enumerate(zip(labels, values)):
        h = plot_h * value / top
        x = 40 + i * bar_w
        parts.append(
            f'<rect x="{x:.1f}" y="{30 + plot_h - h:.1f}" width="{bar_w * 0.9:.1f}" '
            f'height="{h:.1f}" fill="#4878a8"><title>{esc(label)}: {value:g}</title>'
            f"</rect>"
        )
        if n <= 12 or i % max(1, n // 8) == 0:
            parts.append(f'<text x="{x:.1f}" y="{plot_h + 45}" font-size="10">{esc(label)}</text>')
    parts.append(
        f'<text x="{40 + plot_w / 2}" y="{plot_h + 64}" font-size="11" '
        f'text-anchor="middle">{esc(xlabel)}</text><text x="4" y="{30 + 10}" '
        f'font-size="10">{top:g}</text>'
    )
    return "".join(parts) + "</svg>"


class _Plotter:
    """Histograms and bar charts as inline SVG strings (matplotlib when available)."""

    def __init__(self):
        self._figures = 0
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            plt.rcParams["svg.fonttype"] = "path"  # no font files needed to view the SVG
            self._plt = plt
        except ImportError:
            self._plt = None

    @property
    def engine(self) -> str:
        return "matplotlib" if self._plt is not None else "builtin-svg"

    def _svg(self, fig) -> str:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
        self._plt.close(fig)
        text = buf.getvalue()
        text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE for inlining
        # inline SVGs share the page's id namespace: give each figure's ids its own prefix
        self._figures += 1
        prefix = f"fig{self._figures}-"
        text = text.replace('id="', f'id="{prefix}').replace("url(#", f"url(#{prefix}")
        return text.replace('href="#', f'href="#{prefix}')

    def histogram(
        self,
        series: dict[str, Sequence[float]],
        title: str,
        xlabel: str,
        bins: int = 20,
        discrete: bool = False,
    ) -> str:
        series = {
            k: [v for v in vs if v is not None and math.isfinite(v)] for k, vs in series.items()
        }
        series = {k: v for k, v in series.items() if v}
        if not series:
            return f"<p><em>{html.escape(title)}: no data</em></p>"
        if self._plt is None:
            values = next(iter(series.values()))
            if discrete:
                labels = sorted({int(v) for v in values})
                return _svg_bars(
                    [str(x) for x in labels],
                    [float(sum(1 for v in values if int(v) == x)) for x in labels],
                    title,
                    xlabel,
                )
            labels, counts = _histogram(values, bins)
            return _svg_bars(labels, counts, title, xlabel)
        fig, ax = self._plt.subplots(figsize=(6.4, 3.0))
        all_values = [v for vs in series.values() for v in vs]
        if discrete:
            edges = [x - 0.5 for x in range(int(min(all_values)), int(max(all_values)) + 2)]
        else:
            lo, hi = min(all_values), max(all_values)
            edges = bins if hi > lo else [lo - 0.5, hi + 0.5]
        ax.hist(list(series.values()), bins=edges, label=list(series), stacked=len(series) > 1)
        if len(series) > 1:
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        return self._svg(fig)

    def bars(self, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str) -> str:
        if not values:
            return f"<p><em>{html.escape(title)}: no data</em></p>"
        if self._plt is None:
            return _svg_bars(labels, values, title, xlabel, horizontal=True)
        fig, ax = self._plt.subplots(figsize=(6.4, 0.45 * len(values) + 1.0))
        ax.barh(list(labels)[::-1], list(values)[::-1], color="#4878a8")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        return self._svg(fig)


# --- report ------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def build_report(output_dir: str) -> str:
    """The report's HTML for a run's output directory."""
    recordings = read_table(output_dir, "recordings")
    dialogues = read_table(output_dir, "dialogues")
    rejects = read_table(output_dir, "rejects")
    metrics = _read_json(os.path.join(output_dir, "metrics.json"))
    corpus = _read_json(os.path.join(output_dir, "corpus.json"))
    plot = _Plotter()
    sections: list[str] = []

    # hours in and out
    hours_in = sum(r.get("duration_s") or 0.0 for r in recordings) / 3600
    speech_in = sum(r.get("speech_s") or 0.0 for r in recordings) / 3600
    by_split: dict[str, float] = {}
    by_layout: dict[str, float] = {}
    for d in dialogues:
        dur = (d.get("duration") or (d["end"] - d["start"])) / 3600
        by_split[d.get("split") or "train"] = by_split.get(d.get("split") or "train", 0.0) + dur
        layout = d.get("channel_layout") or "mono"
        by_layout[layout] = by_layout.get(layout, 0.0) + dur
    hours_out = sum(by_split.values())
    rows = [
        ("recordings", len(recordings)),
        ("hours in (audio)", hours_in),
        ("hours in (speech, VAD)", speech_in),
        ("dialogues out", len(dialogues)),
        ("hours out (dialogues)", hours_out),
        ("yield (out / in)", hours_out / hours_in if hours_in else 0.0),
    ]
    rows += [(f"hours out, split {k}", v) for k, v in sorted(by_split.items())]
    rows += [(f"hours out, layout {k}", v) for k, v in sorted(by_layout.items())]
    sections.append(
        "<h2>Hours in and out</h2>"
        + _table(("measure", "value"), rows)
        + plot.bars(
            ["audio in", "speech in", "dialogues out"],
            [hours_in, speech_in, hours_out],
            "Hours in and out",
            "hours",
        )
    )

    # dialogues
    durations = [d.get("duration") or (d["end"] - d["start"]) for d in dialogues]
    sections.append(
        "<h2>Dialogue durations</h2>"
        + plot.histogram({"dialogues": durations}, "Dialogue duration", "seconds")
    )
    sections.append(
        "<h2>Turns per dialogue</h2>"
        + plot.histogram(
            {"dialogues": [d.get("num_turns") or 0 for d in dialogues]},
            "Turns per dialogue",
            "turns",
            discrete=True,
        )
    )
    shares = [
        d["s1_s"] / (d["s1_s"] + d["s2_s"])
        for d in dialogues
        if (d.get("s1_s") or 0) + (d.get("s2_s") or 0) > 0
    ]
    sections.append(
        "<h2>Speaker balance</h2>"
        + plot.histogram(
            {"dialogues": shares}, "S1 share of the speech (0.5 = balanced)", "S1 share"
        )
    )

    # DNSMOS: kept from the dialogues, dropped from the reject messages
    kept = [_quality(d).get("dnsmos_ovrl") for d in dialogues]
    dropped = []
    for r in rejects:
        m = _VALUE_IN_MESSAGE.match(r.get("message") or "")
        if m and m.group(1) == "dnsmos_ovrl":
            dropped.append(float(m.group(2)))
    sections.append(
        "<h2>DNSMOS P.835 OVRL</h2>"
        + plot.histogram(
            {"kept": [v for v in kept if v is not None], "dropped (low_dnsmos)": dropped},
            "DNSMOS OVRL of scored dialogues",
            "OVRL",
        )
    )

    # drops by stage and reason
    drops: dict[tuple[str, str], list[float]] = {}
    for r in rejects:
        key = (r.get("stage") or "?", r.get("reason") or "?")
        span = max(0.0, (r.get("end") or 0.0) - (r.get("start") or 0.0))
        entry = drops.setdefault(key, [0.0, 0.0])
        entry[0] += 1
        entry[1] += span
    ordered = sorted(drops.items(), key=lambda kv: (-kv[1][0], kv[0]))
    sections.append(
        "<h2>Drops by stage and reason</h2>"
        + plot.bars(
            [f"{s}/{r}" for (s, r), _ in ordered],
            [v[0] for _, v in ordered],
            "Rejects by stage/reason",
            "count",
        )
        + _table(
            ("stage", "reason", "count", "seconds"),
            [(s, r, int(v[0]), v[1]) for (s, r), v in ordered],
        )
    )

    if corpus:
        rows = [
            (
                split,
                e.get("num_dialogues", 0),
                e.get("hours", 0.0),
                ", ".join(f"{k} {v:.3f} h" for k, v in (e.get("hours_by_layout") or {}).items()),
            )
            for split, e in sorted(corpus.get("splits", {}).items())
        ]
        sections.append(
            "<h2>Corpus</h2>" + _table(("split", "dialogues", "hours", "layouts"), rows)
        )
    if metrics is not None:
        sections.append(
            "<h2>Counters (metrics.json)</h2>" + _table(("counter", "value"), _flatten(metrics))
        )

    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
        "td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
        "h2{border-bottom:1px solid #ddd;margin-top:1.6em}"
    )
    title = f"Curation report: {html.escape(os.path.abspath(output_dir))}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h1>{title}</h1>"
        f"<p>Plots: {plot.engine}. Self-contained: no external files.</p>"
        + "".join(sections)
        + "</body></html>"
    )


def write_report(output_dir: str) -> str:
    """Write ``report.html`` into ``output_dir`` and return its path."""
    path = os.path.join(output_dir, REPORT_NAME)
    text = build_report(output_dir)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    logger.info("report written to %s", path)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write report.html for a curation run.")
    parser.add_argument("output_dir", help="the run's --output directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    print(write_report(args.output_dir))


if __name__ == "__main__":
    main()
