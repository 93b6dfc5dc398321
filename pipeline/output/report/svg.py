"""Inline SVG drawings of the report: histograms with thresholds, bar charts, speaker timelines.

Plain SVG strings with no ids, scripts or fonts to fetch, so any number of them share one page
and it opens offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .text import esc

KEPT_COLOR = "#5b8c5a"
DROPPED_COLOR = "#b5483f"
BAR_COLOR = "#4878a8"
ROLE_COLORS = {"S1": "#2563b0", "S2": "#c2571a"}
OTHER_COLOR = "#8a8a8a"
SPAN_FILL = "#f3d36b"


@dataclass(frozen=True)
class Series:
    """Values drawn in one colour (stacked on the series before it)."""

    name: str
    values: Sequence[float]
    color: str


@dataclass(frozen=True)
class Line:
    """A vertical line across a histogram (a filter threshold)."""

    value: float
    label: str


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    overlap: bool = False


@dataclass(frozen=True)
class Track:
    """One speaker's row of a timeline; ``role`` (``S1``/``S2``/``""``) picks its colour."""

    label: str
    role: str
    segments: Sequence[Segment]


def role_color(role: str) -> str:
    return ROLE_COLORS.get(role, OTHER_COLOR)


def _open(width: float, height: float, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" font-family="sans-serif">'
        f"<title>{esc(title)}</title>"
    )


def nice_ticks(lo: float, hi: float, count: int = 5, min_step: float = 0.0) -> list[float]:
    """Round tick values covering ``[lo, hi]`` (about ``count`` of them, ``min_step`` apart or
    more)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = max((hi - lo) / max(1, count), min_step)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float) -> str:
    return f"{value:.4g}"


def histogram(
    series: Sequence[Series],
    title: str,
    unit: str,
    lines: Sequence[Line] = (),
    discrete: bool = False,
    bins: int = 24,
) -> str:
    """A stacked histogram of ``series`` with ``lines`` (thresholds) drawn across it."""
    data = [(s, [v for v in s.values if math.isfinite(v)]) for s in series]
    everything = [v for _, vs in data for v in vs]
    if not everything:
        return f'<p class="nodata">{esc(title)}: no data</p>'
    marks = [line.value for line in lines if math.isfinite(line.value)]
    lo, hi = min(everything + marks), max(everything + marks)
    if discrete and hi - lo <= 40:
        lo, hi = math.floor(lo), math.ceil(hi)
        widen = max(0, 5 - int(hi - lo + 1))  # at least 5 integer bins
        lo, hi = lo - widen // 2 - 0.5, hi + widen - widen // 2 + 0.5
        nbins = int(hi - lo)
    else:
        if hi <= lo:
            pad = max(0.5, 0.05 * abs(lo))
            lo, hi = lo - pad, hi + pad
        margin = 0.04 * (hi - lo)
        lo, hi = lo - margin, hi + margin
        nbins = bins
    width = (hi - lo) / nbins
    counts = [[0] * nbins for _ in data]
    for k, (_, vs) in enumerate(data):
        for v in vs:
            counts[k][min(nbins - 1, max(0, int((v - lo) / width)))] += 1
    top = max(sum(c[i] for c in counts) for i in range(nbins)) or 1
    left, plot_w, plot_h, head = 40, 380, 100, 40
    total_w, total_h = left + plot_w + 20, head + plot_h + 44

    def x_of(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    def y_of(count: float) -> float:
        return head + plot_h - count / top * plot_h

    parts = [_open(total_w, total_h, title)]
    parts.append(f'<text x="4" y="14" font-size="13" font-weight="bold">{esc(title)}</text>')
    legend_x = 4.0
    for s, vs in data:
        parts.append(
            f'<rect x="{legend_x:.0f}" y="21" width="10" height="10" fill="{s.color}"/>'
            f'<text x="{legend_x + 13:.0f}" y="30" font-size="11">{esc(s.name)} ({len(vs)})</text>'
        )
        legend_x += 24 + 7 * len(f"{s.name} ({len(vs)})")
    parts.append(
        f'<line x1="{left}" y1="{head + plot_h}" x2="{left + plot_w}" y2="{head + plot_h}" '
        f'stroke="#444"/><text x="{left - 4}" y="{head + 8}" font-size="10" '
        f'text-anchor="end">{top}</text><text x="{left - 4}" y="{head + plot_h}" '
        f'font-size="10" text-anchor="end">0</text>'
    )
    for i in range(nbins):
        base = 0
        for k, (s, _) in enumerate(data):
            c = counts[k][i]
            if c:
                x0, x1 = x_of(lo + i * width), x_of(lo + (i + 1) * width)
                parts.append(
                    f'<rect x="{x0 + 0.5:.1f}" y="{y_of(base + c):.1f}" '
                    f'width="{max(0.5, x1 - x0 - 1):.1f}" height="{y_of(base) - y_of(base + c):.1f}" '
                    f'fill="{s.color}"><title>{esc(s.name)}: {c} in '
                    f"[{lo + i * width:.4g}, {lo + (i + 1) * width:.4g})</title></rect>"
                )
            base += c
    for tick in nice_ticks(lo, hi, min_step=1.0 if discrete else 0.0):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{head + plot_h}" x2="{x:.1f}" y2="{head + plot_h + 4}" '
            f'stroke="#444"/><text x="{x:.1f}" y="{head + plot_h + 16}" font-size="10" '
            f'text-anchor="middle">{_tick_label(tick)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{head + plot_h + 34}" font-size="11" '
        f'text-anchor="middle">{esc(unit)}</text>'
    )
    for n, line in enumerate(lines):
        if not math.isfinite(line.value):
            continue
        x = x_of(line.value)
        anchor = "end" if x > left + plot_w * 0.6 else "start"
        dx = -3 if anchor == "end" else 3
        parts.append(
            f'<line class="threshold" x1="{x:.1f}" y1="{head - 4}" x2="{x:.1f}" '
            f'y2="{head + plot_h}" stroke="#222" stroke-width="1.5" stroke-dasharray="5,3"/>'
            f'<text x="{x + dx:.1f}" y="{head + 6 + 12 * n}" font-size="10" '
            f'text-anchor="{anchor}">{esc(line.label)}</text>'
        )
    return "".join(parts) + "</svg>"


def bars(labels: Sequence[str], values: Sequence[float], title: str, unit: str) -> str:
    """A horizontal bar chart."""
    if not values:
        return f'<p class="nodata">{esc(title)}: no data</p>'
    top = max(values) or 1.0
    row_h, left, width = 20, 230, 330
    height = 30 + row_h * len(values) + 18
    parts = [_open(left + width + 70, height, title)]
    parts.append(f'<text x="4" y="16" font-size="13" font-weight="bold">{esc(title)}</text>')
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 26 + i * row_h
        w = width * value / top
        parts.append(
            f'<text x="{left - 4}" y="{y + 13}" font-size="11" text-anchor="end">{esc(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 4}" fill="{BAR_COLOR}"/>'
            f'<text x="{left + w + 3:.1f}" y="{y + 13}" font-size="11">{value:.4g}</text>'
        )
    parts.append(
        f'<text x="{left + width / 2:.0f}" y="{height - 4}" font-size="11" '
        f'text-anchor="middle">{esc(unit)}</text>'
    )
    return "".join(parts) + "</svg>"


def _clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss``), with tenths when the time has them."""
    minutes, secs = divmod(round(seconds, 1), 60.0)
    hours_, minutes = divmod(int(minutes), 60)
    sec = f"{int(secs):02d}" if float(secs).is_integer() else f"{secs:04.1f}"
    return f"{hours_}:{minutes:02d}:{sec}" if hours_ else f"{minutes}:{sec}"


def timeline(
    tracks: Sequence[Track],
    window: tuple[float, float],
    span: tuple[float, float],
    title: str,
    clip: tuple[float, float] | None = None,
) -> str:
    """Who speaks when in ``window`` of a recording: one row per speaker, ``span`` (the item)
    shaded, ``clip`` (what the player plays) outlined; times are recording time."""
    t0, t1 = window
    if t1 <= t0:
        t1 = t0 + 1.0
    left, plot_w, row_h, head = 120, 560, 16, 6
    rows = max(1, len(tracks))
    plot_h = rows * row_h
    total_w, total_h = left + plot_w + 28, head + plot_h + 26

    def x_of(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * plot_w

    parts = [_open(total_w, total_h, title)]
    s0, s1 = x_of(span[0]), x_of(span[1])
    parts.append(
        f'<rect class="span" x="{s0:.1f}" y="{head - 3}" width="{max(1.0, s1 - s0):.1f}" '
        f'height="{plot_h + 6}" fill="{SPAN_FILL}" fill-opacity="0.45"/>'
    )
    if clip is not None:
        c0, c1 = x_of(clip[0]), x_of(clip[1])
        parts.append(
            f'<rect x="{c0:.1f}" y="{head - 3}" width="{max(1.0, c1 - c0):.1f}" '
            f'height="{plot_h + 6}" fill="none" stroke="#7a6420" stroke-dasharray="3,2"/>'
        )
    if not tracks:
        parts.append(
            f'<text x="{left + 4}" y="{head + 12}" font-size="11">no diarized speech here</text>'
        )
    for i, track in enumerate(tracks):
        y = head + i * row_h
        color = role_color(track.role)
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end" '
            f'fill="{color}">{esc(track.label)}</text>'
            f'<line x1="{left}" y1="{y + row_h / 2:.1f}" x2="{left + plot_w}" '
            f'y2="{y + row_h / 2:.1f}" stroke="#e2e2e2"/>'
        )
        for seg in track.segments:
            if seg.end <= t0 or seg.start >= t1:
                continue
            a, b = x_of(seg.start), x_of(seg.end)
            opacity = "0.55" if seg.overlap else "1"
            parts.append(
                f'<rect x="{a:.1f}" y="{y + 2}" width="{max(0.8, b - a):.1f}" '
                f'height="{row_h - 4}" fill="{color}" fill-opacity="{opacity}">'
                f"<title>{esc(track.label)} {seg.start:.2f}-{seg.end:.2f} s"
                f"{' (overlap)' if seg.overlap else ''}</title></rect>"
            )
    axis_y = head + plot_h + 2
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#444"/>'
    )
    for tick in nice_ticks(t0, t1, 6):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#444"/>'
            f'<text x="{x:.1f}" y="{axis_y + 15}" font-size="10" '
            f'text-anchor="middle">{_clock(tick)}</text>'
        )
    return "".join(parts) + "</svg>"
