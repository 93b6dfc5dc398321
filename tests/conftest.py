"""Fixtures shared by the whole suite: the bundled sample, its references, and ONE pipeline run.

The whole-pipeline run of the bundled sample is expensive here (every model of the default run),
so it happens once per session (:func:`sample_run`) and every end-to-end test reads its outputs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "pipeline" / "assets"
SHARED = REPO.parent / "shared"


@dataclass(frozen=True)
class SampleRun:
    """Outputs of one pipeline run over the bundled sample."""

    output: Path
    summary: dict


@pytest.fixture(scope="session")
def sample_wav() -> Path:
    return ASSETS / "sample.wav"


@pytest.fixture(scope="session")
def sample_rttm() -> Path:
    return ASSETS / "sample.rttm"


@pytest.fixture(scope="session")
def sample_stm() -> Path:
    return ASSETS / "sample.stm"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> SampleRun:
    """The default run (no --input: the bundled sample), as a user runs it, once per session."""
    from pipeline.run import run

    output = tmp_path_factory.mktemp("sample_run") / "output"
    summary = run(["--runner=DirectRunner", f"--output={output}"])
    return SampleRun(output=output, summary=summary)


def read_rttm(path: os.PathLike) -> list[tuple[str, float, float]]:
    """(speaker, start, end) rows of an RTTM file."""
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            rows.append((parts[7], start, start + duration))
    return rows
