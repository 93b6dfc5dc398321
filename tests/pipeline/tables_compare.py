"""Compare two runs' output tables: same ids and texts, numbers within a tolerance."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.output.run_files import read_table
from pipeline.records import TABLES

# numeric columns may differ by this much across runners (thread counts change float summation
# order in the ONNX and CTranslate2 kernels); ids, labels and texts must be identical
NUMERIC_TOLERANCE = 1e-3
_SORT_KEYS = (
    "recording_id",
    "dialogue_id",
    "turn_id",
    "uri",
    "stage",
    "speaker",
    "start",
    "index",
    "reason",
    "item_id",
)


def _sorted_rows(output: Path, table: str) -> list[dict]:
    rows = read_table(output, table).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r.get(k, "")) for k in _SORT_KEYS))


def _close(a, b, path: str) -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, abs_tol=NUMERIC_TOLERANCE), (
            f"{path}: {a} != {b}"
        )
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_same_tables(left: Path, right: Path, ignore: tuple[str, ...] = ("message",)) -> None:
    """Every table of two output dirs holds the same rows (see :data:`NUMERIC_TOLERANCE`)."""
    for table in TABLES:
        a, b = _sorted_rows(left, table), _sorted_rows(right, table)
        assert len(a) == len(b), f"{table}: {len(a)} vs {len(b)} rows"
        for i, (x, y) in enumerate(zip(a, b)):
            for key in ignore:
                x.pop(key, None)
                y.pop(key, None)
            _close(x, y, f"{table}[{i}]")
