"""The report page: every section in order, one HTML document, and writing it with its clips."""

from __future__ import annotations

import logging
import os
import shutil

from .clips import render_clips
from .listen import RunIndex, file_rejects_section, kept_section, rejected_section
from .overview import (
    corpus_section,
    counters_section,
    distributions_section,
    drops_section,
    hours_section,
    per_recording_section,
)
from .run_data import RunData, dialogue_duration, load_run
from .selection import ReportOptions, choose_clips
from .svg import DROPPED_COLOR, KEPT_COLOR, OTHER_COLOR, ROLE_COLORS
from .text import esc, hours
from .thresholds import main_language, measures, run_options

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"
MEDIA_DIR = "report_media"

_STYLE = (
    "body{font-family:sans-serif;max-width:62em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #bbb;padding:2px 8px;text-align:left;vertical-align:top}"
    "h2{border-bottom:1px solid #ddd;margin-top:1.6em}"
    "h3{font-size:1em;margin:0 0 0.3em}"
    ".clip{border:1px solid #ddd;border-radius:6px;padding:0.7em 1em;margin:1em 0}"
    ".clip.kept{border-left:5px solid " + KEPT_COLOR + "}"
    ".clip.rejected{border-left:5px solid " + DROPPED_COLOR + "}"
    ".clip audio{width:28em;max-width:100%;vertical-align:middle}"
    ".meta,.when{color:#555;font-size:0.9em}"
    ".transcript p{margin:0.15em 0}"
    ".tag{font-weight:bold}"
    ".s1,.s1 .tag{color:" + ROLE_COLORS["S1"] + "}"
    ".s2,.s2 .tag{color:" + ROLE_COLORS["S2"] + "}"
    ".other,.other .tag{color:" + OTHER_COLOR + "}"
    ".transcript .turn{padding-left:0.4em;border-left:3px solid transparent}"
    ".transcript .turn.s1{border-color:" + ROLE_COLORS["S1"] + "}"
    ".transcript .turn.s2{border-color:" + ROLE_COLORS["S2"] + "}"
    ".transcript .turn.outside{opacity:0.6}"
    ".plots{display:flex;flex-wrap:wrap;gap:0.5em 1.5em}"
    ".missing{color:" + DROPPED_COLOR + "}"
    ".nodata{color:#777;font-style:italic}"
    ".wide{overflow-x:auto}"
    "svg{display:block;margin:0.4em 0;max-width:100%;height:auto}"
    "code{white-space:pre-wrap}"
)


def _summary(run: RunData) -> str:
    hours_in = hours(sum(r.get("duration_s") or 0.0 for r in run.recordings))
    hours_out = hours(sum(dialogue_duration(d) for d in run.dialogues))
    files = len(run.recordings) + sum(1 for r in run.rejects if not r.get("item_id"))
    return (
        f"<p>{files} input files, {len(run.recordings)} decoded ({hours_in:.4g} h); "
        f"{len(run.dialogues)} dialogues kept ({hours_out:.4g} h); {len(run.rejects)} rejects. "
        "Contents: <a href='#listen-kept'>kept dialogues</a>, "
        "<a href='#listen-rejected'>rejected items</a>, "
        "<a href='#distributions'>distributions</a>, <a href='#per-recording'>per recording</a>, "
        "<a href='#hours'>hours</a>, <a href='#drops'>drops</a>.</p>"
    )


def render(run: RunData, media_dir: str | None, opts: ReportOptions) -> str:
    """The report's HTML; clips are written into ``media_dir`` (``None``: no audio, the players
    say so) and linked as ``report_media/<clip>``."""
    choices = choose_clips(run.dialogues, run.rejects, opts)
    index = RunIndex.of(run)
    clips = render_clips(choices, index.recordings, media_dir, MEDIA_DIR, opts)
    options = run_options(run.options)
    sections = [
        ("listen-kept", kept_section(choices, clips, index, opts, len(run.dialogues))),
        ("listen-rejected", rejected_section(choices, clips, index, run.rejects, opts)),
        ("file-rejects", file_rejects_section(run.rejects)),
        (
            "distributions",
            distributions_section(measures(options, main_language(run.dialogues)), run, options),
        ),
        ("per-recording", per_recording_section(run)),
        ("hours", hours_section(run)),
        ("drops", drops_section(run.rejects)),
        ("corpus", corpus_section(run.corpus)),
        ("counters", counters_section(run.metrics)),
    ]
    title = f"Curation report: {esc(run.name)}"
    size = sum(c.size_bytes for c in clips.values())
    audio_note = (
        f"{sum(1 for c in clips.values() if c.src)} clips (Opus, mono 16 kHz, "
        f"{opts.bitrate // 1000} kb/s, {size / 1024:.0f} KiB) in {MEDIA_DIR}/ beside this file: "
        "keep the two together."
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1>{_summary(run)}<p class='meta'>{esc(audio_note)} "
        "No scripts, fonts or remote files: it opens offline.</p>"
        + "".join(f'<section id="{key}">{html}</section>' for key, html in sections if html)
        + "</body></html>"
    )


def build_report(
    output_dir: str, media_dir: str | None = None, opts: ReportOptions | None = None
) -> str:
    """The report's HTML for a run's output directory (clips written into ``media_dir``)."""
    return render(load_run(output_dir), media_dir, opts or ReportOptions())


def write_report(output_dir: str, opts: ReportOptions | None = None) -> str:
    """Write ``report.html`` and its clips (``report_media/``) into ``output_dir``; return the
    report's path. The previous report and clips are replaced only once the new ones are ready."""
    path = os.path.join(output_dir, REPORT_NAME)
    media = os.path.join(output_dir, MEDIA_DIR)
    staging = media + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    text = build_report(output_dir, staging, opts)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    shutil.rmtree(media, ignore_errors=True)
    os.makedirs(staging, exist_ok=True)
    os.replace(staging, media)
    os.replace(path + ".tmp", path)
    logger.info("report written to %s", path)
    return path
