"""The launcher's progress line on a local run: watch the output directory, write to stderr.

Recordings finish inside Beam's workers (threads or processes of the DirectRunner), so the
launcher learns about them from the files they write: a recording's state file
(``_state/<id>.json``, :mod:`pipeline.output.state`) when it is finished, and its step mark
(``_progress/<id>.json``, :mod:`pipeline.output.progress_marks`) while it is in the chain.
:class:`RunWatch` turns those (and the input files' lengths, read from their headers a few at a
time) into :class:`pipeline.progress.ProgressSnapshot`; :class:`ProgressReporter` writes the line
from a thread: redrawn in place every second on a terminal, one plain line every
``--progress_interval_s`` otherwise, and a last line when the run ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import TextIO

from core.audio_io import probe_duration_s
from pipeline.decode import recording_id_for
from pipeline.output.progress_marks import StepMarks
from pipeline.output.state import STATE_DIR, StateStore
from pipeline.progress import (
    ProgressSnapshot,
    format_progress,
    share_done_after,
    share_inside_step,
    step_share,
)


def _state_mtimes(state_root: str) -> dict[str, int]:
    """``{recording_id: mtime_ns}`` of the state files under ``state_root``."""
    found = {}
    try:
        entries = list(os.scandir(state_root))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.endswith(".json"):
            try:
                found[entry.name[: -len(".json")]] = entry.stat().st_mtime_ns
            except FileNotFoundError:  # replaced while we looked
                continue
    return found


def _state_audio_s(path: str) -> float:
    """Seconds of audio of a finished recording, from its state file (0 for a rejected file)."""
    try:
        rows = StateStore.read(path)
    except (OSError, ValueError):
        return 0.0
    return float(sum(r.get("duration_s", 0.0) for r in rows.get("recordings", ())))


class RunWatch:
    """Progress of one run over ``uris`` into the local ``output_dir``.

    Args:
        output_dir: the run's (local) output directory.
        uris: every input URI of the run.
        resume: whether recordings finished by an earlier run are skipped.
        steps: the labels of the per-recording chain's steps, in order (as the marks name them).
        clock: seconds, monotonic (tests pass their own).
        wall: seconds since the epoch, as the workers stamp their step marks.
    """

    def __init__(
        self,
        output_dir: str,
        uris: list[str],
        resume: bool,
        steps: list[str],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.state_root = os.path.join(output_dir, STATE_DIR)
        self.marks = StepMarks(output_dir)
        self.steps = steps
        self.clock = clock
        self.wall = wall
        self.started = clock()
        self.first_mark: dict[str, tuple[float, float]] = {}  # id -> (time, share) first seen
        self.uri_of = {recording_id_for(u): u for u in uris}
        self.before = _state_mtimes(self.state_root)
        skipped = set(self.uri_of) & set(self.before) if resume else set()
        self.files_skipped = len(skipped)
        self.todo = set(self.uri_of) - skipped
        self.lengths: dict[str, float] = {}  # recording id -> seconds, from the file's header
        self.to_probe = sorted(r for r in self.todo if "://" not in self.uri_of[r])
        self.done: dict[str, float] = {}  # recording id -> seconds of audio

    def probe(self, budget_s: float) -> None:
        """Read the lengths of more input files from their headers, for at most ``budget_s``."""
        deadline = self.clock() + budget_s
        while self.to_probe and self.clock() < deadline:
            rid = self.to_probe.pop()
            length = probe_duration_s(self.uri_of[rid].removeprefix("file://"))
            if length is not None:
                self.lengths[rid] = length

    def _collect_finished(self) -> None:
        for rid, mtime in _state_mtimes(self.state_root).items():
            if rid in self.todo and rid not in self.done and self.before.get(rid) != mtime:
                length = self.lengths.get(rid)
                if length is None:
                    length = _state_audio_s(os.path.join(self.state_root, f"{rid}.json"))
                self.done[rid] = length

    def snapshot(self) -> ProgressSnapshot:
        """The run now."""
        self._collect_finished()
        audio_done = sum(self.done.values())
        running: set[str] = set()
        for rid in self.marks.recording_ids():
            if rid in self.done:
                self.marks.remove(rid)  # finished after its last mark: keep the folder small
                continue
            mark = self.marks.read(rid) if rid in self.todo else None
            if mark is None:
                continue
            step = str(mark.get("step", ""))
            length = self.lengths.get(rid, float(mark.get("audio_s", 0.0)))
            at = self.steps.index(step) + 1 if step in self.steps else len(self.steps)
            running_step = self.steps[at] if at < len(self.steps) else "writing"
            running.add(running_step)
            share = share_done_after(self.steps, step)
            marked_at = float(mark.get("at", 0.0))
            first_at, first_share = self.first_mark.setdefault(rid, (marked_at, share))
            share += share_inside_step(
                first_share,
                share,
                marked_at - first_at,
                step_share(self.steps, running_step),
                self.wall() - marked_at,
            )
            audio_done += length * share
        known = [self.lengths.get(r, self.done.get(r)) for r in self.todo]
        measured = [s for s in known if s is not None]
        unknown = len(known) - len(measured)
        total: float | None = sum(measured)
        if unknown and measured:
            total += unknown * sum(measured) / len(measured)
        elif unknown:
            total = None
        return ProgressSnapshot(
            elapsed_s=self.clock() - self.started,
            files_done=len(self.done),
            files_total=len(self.todo),
            audio_done_s=audio_done,
            audio_total_s=total,
            audio_total_exact=unknown == 0,
            files_skipped=self.files_skipped,
            current_step=(
                "writing the tables"
                if self.todo and len(self.done) == len(self.todo)
                else running.pop()
                if len(running) == 1
                else ""
            ),
        )


class _ClearLine(logging.Filter):
    """On a terminal, wipe the progress line before a log record is written over it."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream

    def filter(self, record: logging.LogRecord) -> bool:
        self.stream.write("\r\x1b[K")
        return True


class ProgressReporter:
    """Writes ``watch``'s progress line to ``stream`` from a thread while the run goes on.

    Use as a context manager around the run: the last line says ``done`` when the block ends
    without an exception.

    Args:
        watch: where the numbers come from.
        stream: where the line goes (stderr).
        interval_s: seconds between lines when ``stream`` is not a terminal.
        tick_s: seconds between redraws on a terminal (and between looks at the output).
    """

    def __init__(
        self, watch: RunWatch, stream: TextIO, interval_s: float = 30.0, tick_s: float = 1.0
    ):
        self.watch = watch
        self.stream = stream
        self.interval_s = interval_s
        self.tick_s = min(tick_s, interval_s)
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._filters: list[tuple[logging.Handler, _ClearLine]] = []
        self._lock = threading.Lock()

    def _write(self, line: str, *, end: str) -> None:
        with self._lock:
            if self.tty:
                width = shutil.get_terminal_size((120, 20)).columns - 1
                self.stream.write("\r\x1b[K" + line[:width] + end)
            else:
                self.stream.write(line + end)
            self.stream.flush()

    def _loop(self) -> None:
        last = self.watch.clock()
        while not self._stop.wait(self.tick_s):
            self.watch.probe(budget_s=0.2 * self.tick_s)
            line = format_progress(self.watch.snapshot())
            if self.tty:
                self._write(line, end="")
            elif self.watch.clock() - last >= self.interval_s:
                last = self.watch.clock()
                self._write(line, end="\n")

    def start(self) -> None:
        if self.tty:
            for handler in logging.getLogger().handlers:
                if getattr(handler, "stream", None) is self.stream:
                    clear = _ClearLine(self.stream)
                    handler.addFilter(clear)
                    self._filters.append((handler, clear))
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()

    def stop(self, finished: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for handler, clear in self._filters:
            handler.removeFilter(clear)
        self._filters.clear()
        self._write(format_progress(self.watch.snapshot(), final=finished), end="\n")

    def __enter__(self) -> ProgressReporter:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(finished=exc_type is None)
