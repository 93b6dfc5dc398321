"""What a run wrote, read back for the report: the Parquet tables and the JSON run files."""

from __future__ import annotations

import glob
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Row = dict[str, Any]


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


def read_table(output_dir: str, table: str) -> list[Row]:
    """All rows of one table as dicts (``[]`` when the run wrote none)."""
    import pyarrow.parquet as pq

    rows: list[Row] = []
    for path in find_table_files(output_dir, table):
        try:
            rows.extend(pq.read_table(path).to_pylist())
        except (OSError, ValueError) as exc:  # a half-written file of a killed run
            logger.warning("report: cannot read %s: %s", path, exc)
    return rows


def read_json(path: str) -> Any | None:
    """A JSON file's content, ``None`` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("report: cannot read %s: %s", path, exc)
        return None


@dataclass(frozen=True)
class RunData:
    """The tables and run files of one output directory.

    ``options`` are the run's options as ``run_manifest.json`` recorded them (only those given;
    ``None`` when the run wrote no manifest, e.g. an older run).
    """

    name: str
    recordings: list[Row] = field(default_factory=list)
    dialogues: list[Row] = field(default_factory=list)
    dialogue_turns: list[Row] = field(default_factory=list)
    turns: list[Row] = field(default_factory=list)
    diarization: list[Row] = field(default_factory=list)
    rejects: list[Row] = field(default_factory=list)
    metrics: Any | None = None
    corpus: Any | None = None
    options: dict[str, Any] | None = None


def run_name(output_dir: str) -> str:
    """The run's name in the report: the output directory's own name, never its full path."""
    return os.path.basename(os.path.normpath(os.path.abspath(output_dir))) or "output"


def load_run(output_dir: str) -> RunData:
    """Everything the report shows from ``output_dir``."""
    manifest = read_json(os.path.join(output_dir, "run_manifest.json"))
    options = manifest.get("options") if isinstance(manifest, dict) else None
    return RunData(
        name=run_name(output_dir),
        recordings=read_table(output_dir, "recordings"),
        dialogues=read_table(output_dir, "dialogues"),
        dialogue_turns=read_table(output_dir, "dialogue_turns"),
        turns=read_table(output_dir, "turns"),
        diarization=read_table(output_dir, "diarization"),
        rejects=read_table(output_dir, "rejects"),
        metrics=read_json(os.path.join(output_dir, "metrics.json")),
        corpus=read_json(os.path.join(output_dir, "corpus.json")),
        options=options if isinstance(options, dict) else None,
    )


def dialogue_duration(row: Row) -> float:
    """A dialogue row's length in seconds."""
    return float(row.get("duration") or (row["end"] - row["start"]))


def span_s(row: Row) -> float:
    """The seconds a reject row spans (0 for a whole-file reject)."""
    return max(0.0, float(row.get("end") or 0.0) - float(row.get("start") or 0.0))
