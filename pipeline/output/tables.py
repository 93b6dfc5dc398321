"""Writers: per-recording state and RTTM, then the Parquet tables and Lhotse manifests.

Every recording leaves the per-recording chain through :class:`PersistRecordingFn`, which turns it
into table rows (one tagged output per table), writes its state file (see :mod:`pipeline.output.state`)
and its RTTM. Rows of recordings finished by an earlier run are read back from their state files
by :class:`LoadFinishedFn`. :class:`WriteTables` then writes each table with Beam's Parquet IO and
the Lhotse ``recordings.jsonl.gz`` / ``supervisions.jsonl.gz`` with ``WriteToText``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipeline.output.state import StateStore
from pipeline.records import (
    PROVENANCE_FIELDS,
    TABLES,
    RecordingWork,
    Reject,
    lhotse_recording_dict,
    quality_struct,
    table_row,
    table_schema,
)

logger = logging.getLogger(__name__)

LHOTSE_RECORDINGS = "lhotse_recordings"
LHOTSE_SUPERVISIONS = "lhotse_supervisions"
OUTPUTS = TABLES + (LHOTSE_RECORDINGS, LHOTSE_SUPERVISIONS)


def lhotse_supervisions(work: RecordingWork) -> list[dict[str, Any]]:
    """One Lhotse ``SupervisionSegment`` dict per transcribed turn (speaker = file-wide label)."""
    sups = []
    for turn in work.turns:
        sups.append(
            {
                "id": turn.turn_id,
                "recording_id": turn.recording_id,
                "start": round(turn.start, 3),
                "duration": round(turn.end - turn.start, 3),
                "channel": turn.channel,
                "text": turn.text,
                "language": turn.language,
                "speaker": turn.speaker,
                "custom": {
                    "avg_logprob": turn.avg_logprob,
                    "no_speech_prob": turn.no_speech_prob,
                    "language_prob": turn.language_prob,
                },
            }
        )
    return sups


def recording_rows(work: RecordingWork) -> dict[str, list[dict[str, Any]]]:
    """Every output row of one processed recording, by table."""
    rows: dict[str, list[dict[str, Any]]] = {
        "recordings": [table_row("recordings", work.recording)],
        "speech": [table_row("speech", r) for r in work.speech],
        "diarization": [table_row("diarization", s) for s in work.diarization],
        "turns": [table_row("turns", t) for t in work.turns],
        "dialogues": [table_row("dialogues", d) for d in work.dialogues],
        "dialogue_turns": [table_row("dialogue_turns", t) for t in work.dialogue_turns],
        "rejects": [table_row("rejects", r) for r in work.rejects],
        LHOTSE_RECORDINGS: [lhotse_recording_dict(work.recording)],
        LHOTSE_SUPERVISIONS: lhotse_supervisions(work),
    }
    return rows


def rttm_text(work: RecordingWork) -> str:
    """The recording's diarization in RTTM (file-wide speaker labels)."""
    lines = [
        f"SPEAKER {work.recording_id} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> "
        f"{s.speaker} <NA> <NA>"
        for s in sorted(work.diarization, key=lambda s: s.start)
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def _emit(rows: dict[str, list[dict[str, Any]]]) -> Iterable:
    for table in OUTPUTS:
        for row in rows.get(table, ()):
            yield beam.pvalue.TaggedOutput(table, row)


class ProgressLog:
    """Logs files and audio hours finished by this worker, at most every ``interval_s`` (never
    when it is None: the launcher shows a progress line instead), and counts them in the Beam
    counters ``progress/files_done`` and ``progress/audio_ms_done``, which every runner shows."""

    def __init__(self, interval_s: float | None):
        self.interval_s = interval_s
        self.files = 0
        self.audio_s = 0.0
        self.started = time.monotonic()
        self.last = self.started
        self.files_done = Metrics.counter("progress", "files_done")
        self.audio_ms_done = Metrics.counter("progress", "audio_ms_done")

    def add(self, audio_s: float) -> None:
        self.files += 1
        self.audio_s += audio_s
        self.files_done.inc()
        self.audio_ms_done.inc(int(audio_s * 1000))
        now = time.monotonic()
        if self.interval_s is not None and now - self.last >= self.interval_s:
            self.last = now
            elapsed = now - self.started
            logger.info(
                "progress: %d files, %.2f h of audio finished in %.0f s "
                "(%.1fx real time) by this worker",
                self.files,
                self.audio_s / 3600,
                elapsed,
                self.audio_s / max(elapsed, 1e-9),
            )


class PersistRecordingFn(beam.DoFn):
    """RecordingWork → its state file, its RTTM, and its rows on one output per table; then its
    scratch audio is deleted (the end of the recording's chain)."""

    def __init__(self, output_dir: str, progress_interval_s: float | None = 30.0):
        super().__init__()
        self.output_dir = output_dir
        self.progress_interval_s = progress_interval_s
        self.progress: ProgressLog | None = None

    def setup(self):
        self.progress = ProgressLog(self.progress_interval_s)

    def process(self, work: RecordingWork) -> Iterable:
        rows = recording_rows(work)
        rttm_dir = FileSystems.join(self.output_dir, "rttm")
        try:
            FileSystems.mkdirs(rttm_dir)
        except OSError:
            pass
        with FileSystems.create(FileSystems.join(rttm_dir, f"{work.recording_id}.rttm")) as f:
            f.write(rttm_text(work).encode())
        # the state file is written last: it is what marks the recording finished
        StateStore(self.output_dir).write(work.recording_id, rows)
        work.audio.release()  # its scratch audio (pipeline.audio): no stage reads it again
        if self.progress is not None:
            self.progress.add(work.recording.duration_s)
        yield from _emit(rows)


class PersistRejectFn(beam.DoFn):
    """A file-level reject → its state file and its ``rejects`` row."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def setup(self):
        self.files_done = Metrics.counter("progress", "files_done")

    def process(self, reject: Reject) -> Iterable:
        rows = {"rejects": [table_row("rejects", reject)]}
        StateStore(self.output_dir).write(reject.recording_id, rows)
        self.files_done.inc()
        yield from _emit(rows)


class LoadFinishedFn(beam.DoFn):
    """A state file of a recording finished earlier → its rows, as if processed now."""

    def process(self, path: str) -> Iterable:
        yield from _emit(StateStore.read(path))


def _arrow_ready(row: dict[str, Any], table: str) -> dict[str, Any]:
    """A row read back from a state file as pyarrow wants it: a dialogue's ``quality`` as the
    struct (state files of older runs hold it as a list of pairs), and the provenance columns
    that older state files lack as ``""``."""
    if isinstance(row.get("quality"), list):
        row = dict(row, quality=quality_struct(row["quality"]))
    if table in ("recordings", "dialogues") and any(name not in row for name in PROVENANCE_FIELDS):
        row = {**{name: "" for name in PROVENANCE_FIELDS}, **row}
    return row


class WriteTables(beam.PTransform):
    """Rows by table (a dict of PCollections) → Parquet tables and Lhotse manifests."""

    def __init__(self, output_dir: str, num_shards: int = 1):
        super().__init__()
        self.output_dir = output_dir
        self.num_shards = num_shards

    def expand(self, rows_by_table: dict[str, beam.PCollection]):
        for table in TABLES:
            (
                rows_by_table[table]
                | f"ArrowReady_{table}" >> beam.Map(_arrow_ready, table)
                | f"Write_{table}"
                >> beam.io.WriteToParquet(
                    FileSystems.join(self.output_dir, table, "part"),
                    table_schema(table),
                    file_name_suffix=".parquet",
                    num_shards=self.num_shards,
                    shard_name_template="-SSSSS-of-NNNNN",
                )
            )
        lhotse_dir = FileSystems.join(self.output_dir, "lhotse")
        for table, name in (
            (LHOTSE_RECORDINGS, "recordings"),
            (LHOTSE_SUPERVISIONS, "supervisions"),
        ):
            (
                rows_by_table[table]
                | f"Collect_lhotse_{name}" >> beam.combiners.ToList()
                | f"Lines_lhotse_{name}"
                >> beam.FlatMap(
                    lambda rows: [
                        json.dumps(r, sort_keys=True) for r in sorted(rows, key=lambda r: r["id"])
                    ]
                )
                | f"Write_lhotse_{name}"
                >> beam.io.WriteToText(
                    FileSystems.join(lhotse_dir, name),
                    file_name_suffix=".jsonl.gz",
                    num_shards=1,
                    shard_name_template="",
                    compression_type=CompressionTypes.GZIP,
                )
            )
        return beam.pvalue.PDone(next(iter(rows_by_table.values())).pipeline)
