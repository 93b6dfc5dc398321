"""What a progress line says: a snapshot of the run, its rate and ETA, and the line itself.

Pure arithmetic and formatting; :mod:`pipeline.progress_watch` takes the snapshots from the
output directory and writes the lines. A line reads::

    files 3/10 · 1.2 h of 4.0 h audio · 45x real time · ETA 3 min · Transcribe

Audio done counts finished recordings whole and, for recordings still in the chain, the share of a
recording's time the steps they have passed usually take (:data:`STEP_SHARES`), plus a guess of
how far into the running step they are at the pace of their earlier steps (never past 90 % of
it), so a single long file moves too. ``~`` marks a total estimated from the files measured so far.
"""

from __future__ import annotations

from dataclasses import dataclass

# Share of a recording's processing time each step of the chain takes (its Beam label), from
# bench/bench_pipeline.py on a 20-minute conversation (decode 1.2 s, VAD 3.2, diarize 12.6,
# ASR 91.9, filters 14.2 of 123 s); a step not listed counts as a small one.
STEP_SHARES: dict[str, float] = {
    "DecodeAudio": 1.2,
    "DetectSpeech": 3.2,
    "Diarize": 12.6,
    "Transcribe": 91.9,
    "SegmentDialogues": 0.1,
    "FilterDialogues": 14.2,
}
_UNLISTED_SHARE = 0.1


def step_share(steps: list[str], step: str) -> float:
    """The share (0..1) of a recording's time that ``step`` of ``steps`` usually takes."""
    weights = [STEP_SHARES.get(s, _UNLISTED_SHARE) for s in steps]
    return STEP_SHARES.get(step, _UNLISTED_SHARE) / sum(weights) if step in steps else 0.0


def share_inside_step(
    share_before: float, share_now: float, seconds_between: float, step: float, seconds_in: float
) -> float:
    """How much of the running step (of share ``step``) a recording has likely done after
    ``seconds_in`` seconds in it, at the pace it went from ``share_before`` to ``share_now`` in
    ``seconds_between`` seconds; at most 90 % of the step (the pace is a guess), 0 when unknown.

    >>> share_inside_step(0.0, 0.2, 10.0, step=0.4, seconds_in=10.0)
    0.2
    """
    if share_now <= share_before or seconds_between <= 0 or step <= 0:
        return 0.0
    expected_s = step * seconds_between / (share_now - share_before)
    return step * min(max(seconds_in, 0.0) / expected_s, 0.9)


def share_done_after(steps: list[str], done_step: str) -> float:
    """The share (0..1) of a recording's time spent once ``done_step`` of ``steps`` (the chain's
    labels, in order) has finished."""
    weights = [STEP_SHARES.get(s, _UNLISTED_SHARE) for s in steps]
    if done_step not in steps:
        return 0.0
    return sum(weights[: steps.index(done_step) + 1]) / sum(weights)


@dataclass(frozen=True)
class ProgressSnapshot:
    """The run at one moment, as the launcher sees it.

    ``audio_total_s`` is None while nothing is known of any file's length;
    ``audio_total_exact`` is False when some lengths are estimated.
    """

    elapsed_s: float
    files_done: int
    files_total: int
    audio_done_s: float
    audio_total_s: float | None
    audio_total_exact: bool = True
    files_skipped: int = 0  # finished by an earlier run (resume), not in files_total
    current_step: str = ""  # the step the recordings in flight are in, when they agree

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of audio done per second of wall time, None before any."""
        if self.elapsed_s <= 0 or self.audio_done_s <= 0:
            return None
        return self.audio_done_s / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; 0 when every file is done, None when unknown."""
        return eta_seconds(self.audio_done_s, self.audio_total_s, self.elapsed_s)


def eta_seconds(done_s: float, total_s: float | None, elapsed_s: float) -> float | None:
    """Time left to process ``total_s`` seconds of audio, ``done_s`` of them done in
    ``elapsed_s``: the remaining audio at the mean rate so far. None when nothing is done yet or
    the total is unknown."""
    if total_s is None or done_s <= 0 or elapsed_s <= 0:
        return None
    return max(total_s - done_s, 0.0) * elapsed_s / done_s


def format_duration(seconds: float) -> str:
    """``42 s``, ``16 min``, ``3.5 h``, ``12 d``: coarse on purpose, for a progress line."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def _audio_amount(done_s: float, total_s: float | None, exact: bool) -> str:
    if total_s is None:
        return f"{format_duration(done_s)} audio"
    # both in the total's unit, so "3 min of 16 min" and not "3 min of 0.3 h"
    if total_s < 90:
        unit, scale, digits = "s", 1, 0
    elif total_s < 90 * 60:
        unit, scale, digits = "min", 60, 1 if total_s < 10 * 60 else 0
    else:
        unit, scale, digits = "h", 3600, 1
    mark = "" if exact else "~"
    return f"{done_s / scale:.{digits}f} {unit} of {mark}{total_s / scale:.{digits}f} {unit} audio"


def format_progress(snap: ProgressSnapshot, *, final: bool = False) -> str:
    """The progress line of ``snap``; ``final`` for the line written when the run ends."""
    files = f"files {snap.files_done}/{snap.files_total}"
    if snap.files_skipped:
        files += f" (+{snap.files_skipped} done before)"
    parts = [files, _audio_amount(snap.audio_done_s, snap.audio_total_s, snap.audio_total_exact)]
    rate = snap.realtime_factor
    if rate is not None:
        parts.append(f"{rate:.1f}x real time" if rate < 10 else f"{rate:.0f}x real time")
    if final:
        parts.append(f"done in {format_duration(snap.elapsed_s)}")
        return " · ".join(parts)
    eta = snap.eta_s
    parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA –")
    parts.append(f"{format_duration(snap.elapsed_s)} elapsed")
    if snap.current_step:
        parts.append(snap.current_step)
    return " · ".join(parts)
