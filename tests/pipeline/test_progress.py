"""The progress line: its arithmetic and wording, and the watch over an output directory.

A real run's progress line on stderr (and none with ``--quiet``) is checked by the messy run of
``tests/pipeline/test_run.py``.
"""

from __future__ import annotations

import io
import json
import os
import time

import pytest

from pipeline.decode import recording_id_for
from pipeline.output.progress_marks import StepMarks
from pipeline.output.state import StateStore
from pipeline.progress import (
    ProgressSnapshot,
    eta_seconds,
    format_duration,
    format_progress,
    share_done_after,
    step_share,
)
from pipeline.progress_watch import ProgressReporter, RunWatch

STEPS = ["DecodeAudio", "DetectSpeech", "Diarize", "Transcribe", "FilterDialogues"]


def test_eta_is_the_remaining_audio_at_the_rate_so_far():
    # 1 h of 4 h done in 10 min: 3 h left at 6x real time = 30 min
    assert eta_seconds(3600, 4 * 3600, 600) == pytest.approx(1800)
    assert eta_seconds(4 * 3600, 4 * 3600, 600) == 0.0
    assert eta_seconds(5000, 4000, 600) == 0.0  # an under-estimated total never goes negative
    assert eta_seconds(0, 3600, 600) is None  # nothing done: no rate yet
    assert eta_seconds(60, None, 600) is None  # total unknown


def test_the_line_reads_files_audio_rate_and_eta():
    snap = ProgressSnapshot(
        elapsed_s=320, files_done=3, files_total=10, audio_done_s=1.2 * 3600, audio_total_s=4 * 3600
    )
    assert snap.realtime_factor == pytest.approx(13.5)
    assert format_progress(snap) == (
        "files 3/10 · 1.2 h of 4.0 h audio · 14x real time · ETA 12 min · 5 min elapsed"
    )
    final = format_progress(snap, final=True)
    assert final.endswith("done in 5 min") and "ETA" not in final


def test_the_line_before_anything_is_done_and_with_estimates():
    start = ProgressSnapshot(
        elapsed_s=4,
        files_done=0,
        files_total=1,
        audio_done_s=0,
        audio_total_s=16 * 60,
        current_step="DecodeAudio",
    )
    assert format_progress(start) == (
        "files 0/1 · 0 min of 16 min audio · ETA – · 4 s elapsed · DecodeAudio"
    )
    guessed = ProgressSnapshot(
        elapsed_s=100,
        files_done=2,
        files_total=5,
        audio_done_s=300,
        audio_total_s=720,
        audio_total_exact=False,
        files_skipped=4,
    )
    line = format_progress(guessed)
    assert line.startswith("files 2/5 (+4 done before) · 5 min of ~12 min audio · 3.0x real")
    unknown = ProgressSnapshot(
        elapsed_s=10, files_done=0, files_total=3, audio_done_s=0, audio_total_s=None
    )
    assert format_progress(unknown) == "files 0/3 · 0 s audio · ETA – · 10 s elapsed"
    assert [format_duration(s) for s in (42, 200, 5400, 3 * 86400)] == [
        "42 s",
        "3 min",
        "1.5 h",
        "3 d",
    ]


def test_a_step_counts_its_share_of_a_recording():
    assert share_done_after(STEPS, "FilterDialogues") == pytest.approx(1.0)
    after_diarize = share_done_after(STEPS, "Diarize")
    assert 0.1 < after_diarize < 0.2 < share_done_after(STEPS, "Transcribe") < 1.0
    assert share_done_after(STEPS, "unknown") == 0.0


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _finish(output, uri: str, duration_s: float | None) -> None:
    rows = {"recordings": [{"duration_s": duration_s}]} if duration_s else {"rejects": [{}]}
    StateStore(str(output)).write(recording_id_for(uri), rows)


def test_the_watch_counts_finished_and_running_recordings(tmp_path, sample_wav):
    output = tmp_path / "out"
    uris = [str(sample_wav), "/nowhere/a.wav", "/nowhere/b.wav", "/nowhere/old.wav"]
    _finish(output, uris[3], 50.0)  # finished by an earlier run
    clock = _Clock()
    watch = RunWatch(str(output), uris, resume=True, steps=STEPS, clock=clock)
    watch.probe(budget_s=5.0)
    assert watch.lengths == {recording_id_for(uris[0]): pytest.approx(30.0)}  # from its header
    first = watch.snapshot()
    assert (first.files_done, first.files_total, first.files_skipped) == (0, 3, 1)
    assert first.audio_total_s == pytest.approx(90.0) and not first.audio_total_exact

    clock.now += 20
    _finish(output, uris[1], 60.0)
    StepMarks(str(output)).write(recording_id_for(uris[0]), "Diarize", 30.0)
    snap = watch.snapshot()
    assert snap.files_done == 1 and snap.elapsed_s == 20
    assert snap.audio_done_s == pytest.approx(60 + 30 * share_done_after(STEPS, "Diarize"))
    assert snap.current_step == "Transcribe"  # the step after the last one it finished
    assert snap.audio_total_s == pytest.approx(30 + 60 + 45)  # b.wav: the mean of the known

    _finish(output, uris[0], 30.0)
    _finish(output, uris[2], None)  # rejected: no audio
    done = watch.snapshot()
    assert (done.files_done, done.audio_done_s, done.audio_total_s) == (3, 90.0, 90.0)
    assert done.audio_total_exact and done.eta_s == 0.0
    assert done.current_step == "writing the tables"
    assert StepMarks(str(output)).recording_ids() == [], "a finished recording's mark is removed"


def test_without_resume_rewritten_state_files_count(tmp_path):
    output = tmp_path / "out"
    _finish(output, "/x/a.wav", 10.0)
    watch = RunWatch(str(output), ["/x/a.wav"], resume=False, steps=STEPS)
    assert watch.snapshot().files_done == 0  # the earlier run's file is not this run's work
    path = StateStore(str(output)).path_for(recording_id_for("/x/a.wav"))
    os.utime(path, ns=(1, 1))  # rewritten by this run
    assert watch.snapshot().files_done == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_reporter_writes_lines_or_redraws_one(tmp_path):
    output = tmp_path / "out"
    uris = ["/x/a.wav", "/x/b.wav"]
    plain = io.StringIO()
    with ProgressReporter(
        RunWatch(str(output), uris, resume=True, steps=STEPS), plain, interval_s=0.05
    ):
        _finish(output, uris[0], 10.0)
        time.sleep(0.3)
        _finish(output, uris[1], 10.0)
    lines = plain.getvalue().splitlines()
    assert len(lines) >= 2 and "\r" not in plain.getvalue()
    assert lines[-1].startswith("files 2/2 ") and lines[-1].endswith("done in 0 s")

    terminal = _Terminal()
    with ProgressReporter(
        RunWatch(str(tmp_path / "other"), uris, resume=True, steps=STEPS),
        terminal,
        interval_s=30,
        tick_s=0.05,
    ):
        time.sleep(0.3)
    text = terminal.getvalue()
    assert text.count("\r\x1b[K") >= 3 and text.endswith("\n") and text.count("\n") == 1


def test_a_failed_run_ends_without_done(tmp_path):
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with ProgressReporter(RunWatch(str(tmp_path), ["/x/a.wav"], True, STEPS), out, 30):
            raise RuntimeError("boom")
    assert "done" not in out.getvalue() and out.getvalue().startswith("files 0/1")


def test_a_long_step_moves_at_the_pace_of_the_earlier_ones(tmp_path):
    """One long recording in the ASR step: its audio done grows with the time spent in it, at the
    pace its decode-to-diarize steps went, and stops at 90 % of the step."""
    output, uri = tmp_path / "out", "/x/long.wav"
    rid = recording_id_for(uri)
    wall = _Clock()
    watch = RunWatch(str(output), [uri], resume=True, steps=STEPS, wall=wall)
    marks = StepMarks(str(output))

    def mark(step: str, at: float) -> None:
        marks.write(rid, step, 960.0)
        path = os.path.join(marks.root, f"{rid}.json")
        with open(path, "w") as handle:
            json.dump({"step": step, "audio_s": 960.0, "at": at}, handle)

    mark("DecodeAudio", wall.now)
    decoded = watch.snapshot().audio_done_s
    assert decoded == pytest.approx(960 * share_done_after(STEPS, "DecodeAudio"))
    wall.now += 30
    mark("Diarize", wall.now)
    diarized = watch.snapshot().audio_done_s
    assert diarized == pytest.approx(960 * share_done_after(STEPS, "Diarize"))
    # 30 s per (diarized - decoded) share: Transcribe's share is expected to take
    pace = 30 / (share_done_after(STEPS, "Diarize") - share_done_after(STEPS, "DecodeAudio"))
    asr_share = step_share(STEPS, "Transcribe")
    wall.now += pace * asr_share / 2
    assert watch.snapshot().audio_done_s == pytest.approx(diarized + 960 * asr_share / 2)
    wall.now += pace * asr_share * 10
    assert watch.snapshot().audio_done_s == pytest.approx(diarized + 960 * asr_share * 0.9)
