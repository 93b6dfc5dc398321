"""The listening sections: one card per clip with its player, transcript and speaker timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.records import quality_measures

from .clips import ClipAudio
from .run_data import Row, RunData, span_s
from .selection import KEPT, ClipChoice, ReportOptions, has_span, reason_key
from .svg import Segment, Track, timeline
from .text import esc, table

MAX_FILE_REJECTS_LISTED = 50


@dataclass(frozen=True)
class TranscriptLine:
    """One line of a transcript: ``role`` is ``S1``, ``S2`` or ``""`` (a third speaker);
    ``inside`` is false for a line of the context around a rejected span."""

    role: str
    speaker: str
    start: float
    end: float
    text: str
    inside: bool = True


def _by_recording(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.get("recording_id") or "", []).append(r)
    return out


@dataclass(frozen=True)
class RunIndex:
    """The run's rows looked up by recording and by dialogue."""

    recordings: dict[str, Row]
    diarization: dict[str, list[Row]]
    turns: dict[str, list[Row]]
    dialogue_turns: dict[str, list[Row]]

    @classmethod
    def of(cls, run: RunData) -> RunIndex:
        dturns: dict[str, list[Row]] = {}
        for t in run.dialogue_turns:
            dturns.setdefault(t["dialogue_id"], []).append(t)
        return cls(
            {r["recording_id"]: r for r in run.recordings},
            _by_recording(run.diarization),
            _by_recording(run.turns),
            {k: sorted(v, key=lambda t: t["index"]) for k, v in dturns.items()},
        )


def speaker_roles(speakers_in_order: Sequence[str]) -> dict[str, str]:
    """``S1`` for the first speaker, ``S2`` for the second (later ones get no role)."""
    roles: dict[str, str] = {}
    for speaker in speakers_in_order:
        if speaker not in roles and len(roles) < 2:
            roles[speaker] = f"S{len(roles) + 1}"
    return roles


def _overlapping(rows: Sequence[Row], start: float, end: float) -> list[Row]:
    return sorted(
        (r for r in rows if r["end"] > start and r["start"] < end),
        key=lambda r: (r["start"], r["end"]),
    )


def clip_roles(choice: ClipChoice, audio: ClipAudio, index: RunIndex) -> dict[str, str]:
    """File-wide speaker label → role: a kept dialogue's own; for a reject, by who speaks
    first in what the clip plays (diarization, else the transcribed turns)."""
    if choice.kind == KEPT:
        roles = {
            choice.row.get("s1_speaker") or "": "S1",
            choice.row.get("s2_speaker") or "": "S2",
        }
        roles.pop("", None)
        return roles
    source = index.diarization.get(choice.recording_id) or index.turns.get(choice.recording_id, [])
    return speaker_roles([r["speaker"] for r in _overlapping(source, audio.start, audio.end)])


def transcript_lines(
    choice: ClipChoice, audio: ClipAudio, roles: Mapping[str, str], index: RunIndex
) -> list[TranscriptLine]:
    """The transcript of a clip: a kept dialogue's own turns; for a reject, the recording's
    transcribed turns in what the clip plays (those outside the rejected span marked)."""
    if choice.kind == KEPT:
        return [
            TranscriptLine(
                t["role"], t.get("speaker") or "", t["start"], t["end"], t.get("text") or ""
            )
            for t in index.dialogue_turns.get(choice.item_id, [])
        ]
    return [
        TranscriptLine(
            roles.get(t["speaker"], ""),
            t["speaker"],
            t["start"],
            t["end"],
            t.get("text") or "",
            t["end"] > choice.start and t["start"] < choice.end,
        )
        for t in _overlapping(index.turns.get(choice.recording_id, []), audio.start, audio.end)
    ]


def clip_timeline(
    choice: ClipChoice,
    audio: ClipAudio,
    roles: Mapping[str, str],
    index: RunIndex,
    opts: ReportOptions,
) -> str:
    """The recording's diarization around a clip, the item's span shaded."""
    rec = index.recordings.get(choice.recording_id) or {}
    duration = float(rec.get("duration_s") or max(audio.end, choice.end))
    window = (
        max(0.0, min(audio.start, choice.start) - opts.timeline_context_s),
        min(duration, max(audio.end, choice.end) + opts.timeline_context_s),
    )
    source = index.diarization.get(choice.recording_id) or index.turns.get(choice.recording_id, [])
    by_speaker: dict[str, list[Segment]] = {}
    for row in source:
        if row["end"] > window[0] and row["start"] < window[1]:
            by_speaker.setdefault(row["speaker"], []).append(
                Segment(row["start"], row["end"], bool(row.get("overlap")))
            )
    order = sorted(by_speaker, key=lambda s: (roles.get(s) or "S9", s))
    tracks = [
        Track(f"{roles[s]} · {s}" if s in roles else s, roles.get(s, ""), by_speaker[s])
        for s in order
    ]
    title = f"who speaks when around {choice.item_id} (recording time)"
    return timeline(tracks, window, (choice.start, choice.end), title, (audio.start, audio.end))


def _transcript(lines: Sequence[TranscriptLine]) -> str:
    if not lines:
        return '<p class="nodata">no transcribed turn in this span</p>'
    out = []
    for line in lines:
        cls = (line.role.lower() if line.role else "other") + ("" if line.inside else " outside")
        tag = f"[{line.role}]" if line.role else f"[{line.speaker}]"
        out.append(
            f'<p class="turn {cls}"><span class="tag">{esc(tag)}</span> {esc(line.text)}'
            f' <span class="when">{line.start:.1f}–{line.end:.1f} s</span></p>'
        )
    return '<div class="transcript">' + "".join(out) + "</div>"


def _player(choice: ClipChoice, audio: ClipAudio) -> str:
    if not audio.src:
        return f'<p class="missing">No clip: {esc(audio.missing)}.</p>'
    note = (
        f" (the first {audio.end - audio.start:.0f} s of {choice.end - choice.start:.1f} s)"
        if audio.truncated
        else ""
    )
    return (
        f'<audio controls preload="metadata" src="{esc(audio.src)}" data-kind="{choice.kind}" '
        f'data-item="{esc(choice.item_id)}"></audio>'
        f'<span class="when"> plays {audio.start:.2f}–{audio.end:.2f} s{esc(note)}</span>'
    )


def _kept_meta(row: Row) -> str:
    q = quality_measures(row.get("quality"))
    bits = [
        f"{row.get('language') or '?'}",
        f"{row.get('num_turns')} turns",
        f"layout {row.get('channel_layout') or 'mono'}",
        f"split {row.get('split') or 'train'}",
    ]
    for key, name in (
        ("dnsmos_ovrl", "DNSMOS OVRL"),
        ("cps", "chars/s"),
        ("overlap_ratio", "overlap"),
        ("speaker_share", "balance"),
        ("role_margin", "role margin"),
    ):
        if key in q:
            bits.append(f"{name} {q[key]:.3g}")
    return ", ".join(bits)


def clip_card(choice: ClipChoice, audio: ClipAudio, index: RunIndex, opts: ReportOptions) -> str:
    """One clip: heading, player, what it is, timeline, transcript."""
    roles = clip_roles(choice, audio, index)
    lines = transcript_lines(choice, audio, roles, index)
    if choice.kind == KEPT:
        meta = esc(_kept_meta(choice.row))
    else:
        meta = f"<code>{esc(choice.row.get('message') or '')}</code>"
    head = f"{esc(choice.label)}: {esc(choice.item_id)}"
    return (
        f'<div class="clip {choice.kind}" data-kind="{choice.kind}">'
        f"<h3>{head}</h3>"
        f'<p class="meta">recording {esc(choice.recording_id)}, '
        f"{choice.start:.2f}–{choice.end:.2f} s ({choice.end - choice.start:.1f} s). {meta}</p>"
        f"{_player(choice, audio)}"
        f"{clip_timeline(choice, audio, roles, index, opts)}"
        f"{_transcript(lines)}</div>"
    )


def kept_section(
    choices: Sequence[ClipChoice],
    clips: Mapping[str, ClipAudio],
    index: RunIndex,
    opts: ReportOptions,
    total: int,
) -> str:
    kept = [c for c in choices if c.kind == KEPT]
    intro = (
        f"<p>{len(kept)} of {total} kept dialogues, spread from the best to the worst by DNSMOS "
        "OVRL (by duration when none was scored); each heading gives its rank. "
        "Transcript roles and timeline rows share colours: "
        '<span class="s1">S1</span>, <span class="s2">S2</span>, '
        '<span class="other">other speakers</span>; the shaded band is the dialogue, the dashed '
        "box what the player plays.</p>"
    )
    if not kept:
        return "<h2>Listen: kept dialogues</h2><p class='nodata'>No dialogue was kept.</p>"
    cards = "".join(clip_card(c, clips[c.clip_id], index, opts) for c in kept)
    return "<h2>Listen: kept dialogues</h2>" + intro + cards


def rejected_section(
    choices: Sequence[ClipChoice],
    clips: Mapping[str, ClipAudio],
    index: RunIndex,
    rejects: Sequence[Row],
    opts: ReportOptions,
) -> str:
    shown = [c for c in choices if c.kind != KEPT]
    spans: dict[str, int] = {}
    for r in rejects:
        if has_span(r):
            spans[reason_key(r)] = spans.get(reason_key(r), 0) + 1
    sampled = {c.label for c in shown}
    not_sampled = sorted(k for k in spans if k not in sampled)
    parts = [
        "<h2>Listen: rejected items</h2>",
        f"<p>Up to {opts.rejects_per_reason} of each reject reason with a time span "
        f"({len(spans)} reasons, {sum(spans.values())} rejects), with "
        f"{opts.reject_context_s:g} s of audio before and after the span.</p>",
    ]
    if not spans:
        parts.append("<p class='nodata'>No reject with a time span.</p>")
    parts += [clip_card(c, clips[c.clip_id], index, opts) for c in shown]
    if not_sampled:
        parts.append(
            f"<p>Not sampled (the report holds at most {opts.max_clips} clips): "
            + ", ".join(f"{esc(k)} ({spans[k]})" for k in not_sampled)
            + ".</p>"
        )
    return "".join(parts)


def file_rejects_section(rejects: Sequence[Row]) -> str:
    """Whole-file rejects: listed, never played (they name no span of a readable recording)."""
    whole = [r for r in rejects if not has_span(r) and not r.get("item_id")]
    spanless_items = [r for r in rejects if r.get("item_id") and span_s(r) <= 0]
    parts = ["<h2>Whole-file rejects (no clip)</h2>"]
    if not whole and not spanless_items:
        return "".join(parts) + "<p class='nodata'>None.</p>"
    parts.append(
        "<p>These name no span of a decoded recording (the file could not be read, was silent, "
        "had no speech, ...), so there is nothing to play.</p>"
    )
    rows = sorted(
        whole + spanless_items, key=lambda r: (reason_key(r), r.get("recording_id") or "")
    )
    listed = rows[:MAX_FILE_REJECTS_LISTED]
    parts.append(
        table(
            ("file", "stage", "reason", "message"),
            [
                (
                    (r.get("uri") or r.get("recording_id") or "?").rsplit("/", 1)[-1],
                    r.get("stage") or "?",
                    r.get("reason") or "?",
                    (r.get("message") or "")[:300],
                )
                for r in listed
            ],
        )
    )
    if len(rows) > len(listed):
        parts.append(f"<p>… and {len(rows) - len(listed)} more.</p>")
    return "".join(parts)
