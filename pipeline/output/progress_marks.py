"""Step marks: where each recording in flight is, for the launcher's progress line.

On a local run with a progress line, a pass-through :class:`MarkStepFn` after each step of the
per-recording chain (fused into it: no shuffle, one tiny file write) records
``<output>/_progress/<recording_id>.json`` = ``{"step": label, "audio_s": duration, "at": time}``. The
launcher (:mod:`pipeline.progress_watch`) reads them to move the line while a long recording is
still in the chain; a recording's state file (:mod:`pipeline.output.state`) marks it finished.
The launcher removes a recording's mark once it is finished, and the folder when the run starts
and ends.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable

import apache_beam as beam

from pipeline.records import RecordingWork

MARKS_DIR = "_progress"


class StepMarks:
    """The step marks of one (local) output directory."""

    def __init__(self, output_dir: str):
        self.root = os.path.join(output_dir, MARKS_DIR)

    def write(self, recording_id: str, step: str, audio_s: float) -> None:
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, f"{recording_id}.json")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            json.dump({"step": step, "audio_s": audio_s, "at": time.time()}, handle)
        os.replace(tmp, path)

    def recording_ids(self) -> list[str]:
        """The recordings that have a mark."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return [name[: -len(".json")] for name in names if name.endswith(".json")]

    def read(self, recording_id: str) -> dict | None:
        """``{"step", "audio_s", "at"}`` of a recording's mark; None when gone or unreadable."""
        try:
            with open(os.path.join(self.root, f"{recording_id}.json")) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def remove(self, recording_id: str) -> None:
        """Drop a finished recording's mark (its state file says the rest)."""
        try:
            os.unlink(os.path.join(self.root, f"{recording_id}.json"))
        except FileNotFoundError:
            pass

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class MarkStepFn(beam.DoFn):
    """Passes each ``RecordingWork`` on unchanged after marking that it finished ``step``."""

    def __init__(self, output_dir: str, step: str):
        super().__init__()
        self.output_dir = output_dir
        self.step = step

    def process(self, work: RecordingWork) -> Iterable[RecordingWork]:
        try:
            StepMarks(self.output_dir).write(
                work.recording_id, self.step, work.recording.duration_s
            )
        except OSError:  # a progress line is never worth failing a recording
            pass
        yield work
