"""Per-recording state: every finished recording's rows, kept so a re-run can skip it.

When a recording leaves the last stage (or is rejected at decode), all its table rows are written
to ``<output>/_state/<recording_id>.json`` in one atomic write. A re-run with the same ``--output``
reads these files instead of processing the recording again, so a run killed part-way and re-run
ends with the same tables as an uninterrupted run, and no table holds a duplicate.
"""

from __future__ import annotations

import json
from typing import Any

from apache_beam.io.filesystems import FileSystems

STATE_DIR = "_state"


class StateStore:
    """Reads and writes the per-recording state files under one output directory."""

    def __init__(self, output_dir: str):
        self.root = FileSystems.join(output_dir, STATE_DIR)

    def path_for(self, recording_id: str) -> str:
        return FileSystems.join(self.root, f"{recording_id}.json")

    def write(self, recording_id: str, rows: dict[str, list[dict[str, Any]]]) -> str:
        """Write ``rows`` (table name → rows) atomically; returns the path."""
        path = self.path_for(recording_id)
        tmp = path + ".tmp"
        payload = json.dumps(rows, sort_keys=True).encode()
        try:
            FileSystems.mkdirs(self.root)
        except OSError:  # already there (another worker made it)
            pass
        with FileSystems.create(tmp) as handle:
            handle.write(payload)
        if FileSystems.exists(path):
            FileSystems.delete([path])
        FileSystems.rename([tmp], [path])
        return path

    @staticmethod
    def read(path: str) -> dict[str, list[dict[str, Any]]]:
        with FileSystems.open(path) as handle:
            return json.loads(handle.read().decode())
