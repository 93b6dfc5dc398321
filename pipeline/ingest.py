"""Ingest: turn ``--input`` into URIs, and split off recordings a previous run finished.

``--input`` is a glob (``calls/**/*.mp3``), a directory (every audio file below it), or a text file
listing one URI per line (``.txt``/``.lst``/``.list``); any scheme Beam's ``FileSystems`` knows.
Without ``--input`` the bundled sample is curated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipeline.decode import recording_id_for
from pipeline.output.state import StateStore

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".mp3",
    ".ogg",
    ".opus",
    ".m4a",
    ".aac",
    ".wma",
    ".webm",
    ".mp4",
    ".aiff",
    ".aif",
    ".au",
    ".sph",
    ".amr",
)
LIST_EXTENSIONS = (".txt", ".lst", ".list")
FINISHED = "finished"


def bundled_sample() -> str:
    """Path of the bundled two-speaker telephone sample (the default input)."""
    return os.path.join(os.path.dirname(__file__), "assets", "sample.wav")


def input_patterns(input_spec: str | None) -> tuple[list[str], list[str]]:
    """Resolve ``--input`` into (glob patterns to match, list files to read).

    Raises:
        FileNotFoundError: nothing matches ``input_spec``.
    """
    if not input_spec:
        return [bundled_sample()], []
    spec = input_spec
    if spec.lower().endswith(LIST_EXTENSIONS) and FileSystems.exists(spec):
        return [], [spec]
    if not any(ch in spec for ch in "*?[") and _is_directory(spec):
        return [FileSystems.join(spec.rstrip("/"), "**")], []
    if not FileSystems.match([spec])[0].metadata_list:
        raise FileNotFoundError(f"--input {spec!r} matches no file")
    return [spec], []


def _is_directory(path: str) -> bool:
    if "://" not in path:
        return os.path.isdir(path)
    return bool(FileSystems.match([path.rstrip("/") + "/*"])[0].metadata_list)


def _is_audio_candidate(path: str, from_directory: bool) -> bool:
    # a directory walk keeps audio extensions only; an explicit glob keeps what the user matched,
    # except provenance sidecars (<audio file>.json, pipeline.provenance)
    lower = path.lower()
    if lower.endswith(".json") and lower[: -len(".json")].endswith(AUDIO_EXTENSIONS):
        return False
    return not from_directory or lower.endswith(AUDIO_EXTENSIONS)


def list_input_uris(input_spec: str | None) -> list[str]:
    """The URIs ``--input`` names, as :class:`MatchInputs` finds them, listed here in the
    launcher (for the progress line's totals).

    Raises:
        FileNotFoundError: nothing matches ``input_spec``.
    """
    patterns, list_files = input_patterns(input_spec)
    from_directory = bool(patterns) and patterns[0].endswith("**") and bool(input_spec)
    uris: set[str] = set()
    for result in FileSystems.match(patterns) if patterns else ():
        uris.update(
            m.path for m in result.metadata_list if _is_audio_candidate(m.path, from_directory)
        )
    for list_file in list_files:
        with FileSystems.open(list_file) as handle:
            lines = handle.read().decode().splitlines()
        uris.update(s for s in map(str.strip, lines) if s and not s.startswith("#"))
    return sorted(uris)


class MatchInputs(beam.PTransform):
    """``--input`` → PCollection of URIs (sorted, de-duplicated, spread with a Reshuffle)."""

    def __init__(self, input_spec: str | None):
        super().__init__()
        self.input_spec = input_spec

    def expand(self, pbegin):
        patterns, list_files = input_patterns(self.input_spec)
        from_directory = bool(patterns) and patterns[0].endswith("**") and self.input_spec
        parts = []
        if patterns:
            parts.append(
                pbegin
                | "Patterns" >> beam.Create(patterns)
                | "MatchFiles" >> fileio.MatchAll()
                | "MatchedPaths" >> beam.Map(lambda meta: meta.path)
                | "KeepAudio" >> beam.Filter(_is_audio_candidate, bool(from_directory))
            )
        for i, list_file in enumerate(list_files):
            parts.append(
                pbegin
                | f"ReadList{i}" >> beam.io.ReadFromText(list_file)
                | f"StripLines{i}" >> beam.Map(str.strip)
                | f"DropBlank{i}" >> beam.Filter(lambda line: line and not line.startswith("#"))
            )
        uris = parts[0] if len(parts) == 1 else parts | "MergeInputs" >> beam.Flatten()
        return uris | "Dedup" >> beam.Distinct() | "SpreadFiles" >> beam.Reshuffle()


class SplitFinishedFn(beam.DoFn):
    """URIs whose recording a previous run finished go to ``finished`` (as state paths)."""

    def __init__(self, output_dir: str, resume: bool):
        super().__init__()
        self.output_dir = output_dir
        self.resume = resume
        self.skipped = Metrics.counter("ingest", "skipped_finished")
        self.todo = Metrics.counter("ingest", "files_to_process")

    def process(self, uri: str) -> Iterable:
        store = StateStore(self.output_dir)
        path = store.path_for(recording_id_for(uri))
        if self.resume and FileSystems.exists(path):
            self.skipped.inc()
            yield beam.pvalue.TaggedOutput(FINISHED, path)
        else:
            self.todo.inc()
            yield uri
