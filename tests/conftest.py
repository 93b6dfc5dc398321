"""Fixtures shared by the whole suite: the bundled sample, its references, and ONE pipeline run.

The whole-pipeline run of the bundled sample is expensive here (every model of the default run),
so it happens once per session (:func:`sample_run`) and every end-to-end test reads its outputs.

Figures measured by models (WER, DNSMOS, similarities, losses, tolerances between two numeric
paths) are checked through the :func:`figure` fixture: it asserts the bound and, when
``PORTABILITY_FIGURES`` names a file, appends the figure to it as a JSON line, so that
``scripts/test_portability.sh`` can show each figure's spread over CPU instruction sets and
thread counts against its bound. Every test that uses it is marked ``numeric``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.upstream import upstream_fixture_dir

# Threads of every model the tests run (torch, onnxruntime, CTranslate2), fixed so that a
# machine's core count does not change the arithmetic; the portability check also runs 1.
TEST_THREADS = int(os.environ.get("PORTABILITY_THREADS", "2"))
# torch (and MKL/oneDNN) read this when they start, in this process and in the CLIs tests run
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "pipeline" / "assets"


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
def upstream_fixtures() -> Path:
    """What upstream ZipVoice's own code produced (``tests/fixtures/zipvoice-upstream``, see its
    README). Part of the repository: a missing file is an error, never a skip."""
    return upstream_fixture_dir()


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> SampleRun:
    """The default run (no --input: the bundled sample), as a user runs it, once per session
    (thread counts fixed, see TEST_THREADS)."""
    from pipeline.run import run

    output = tmp_path_factory.mktemp("sample_run") / "output"
    threads = [
        f"--{name}={TEST_THREADS}"
        for name in ("asr_threads", "quality_num_threads", "diar_num_threads")
    ]
    summary = run(["--runner=DirectRunner", f"--output={output}", *threads])
    return SampleRun(output=output, summary=summary)


@pytest.fixture(scope="session", autouse=True)
def _fixed_torch_threads():
    """torch's intra-op threads are TEST_THREADS whatever the machine (a test may change them
    for itself and put them back)."""
    import torch

    torch.set_num_threads(TEST_THREADS)


FIGURES_ENV = "PORTABILITY_FIGURES"
VARIANT_ENV = "PORTABILITY_VARIANT"


def pytest_collection_modifyitems(items):
    for item in items:
        if "figure" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.numeric)


@pytest.fixture
def figure(request):
    """``figure(name, value, at_most=None, at_least=None)``: assert a measured figure's bound.

    The bound is inclusive. With ``PORTABILITY_FIGURES=path`` every call (passing or not) is
    also appended to ``path`` as ``{"test", "name", "value", "at_most", "at_least",
    "variant"}`` (``variant`` from ``PORTABILITY_VARIANT``). Set bounds outside the spread the
    portability check measures, and write the margin beside them.
    """

    def check(
        name: str,
        value: float,
        *,
        at_most: float | None = None,
        at_least: float | None = None,
        detail: object = "",
    ) -> float:
        value = float(value)
        if at_most is None and at_least is None:
            raise ValueError(f"figure {name!r}: give at_most and/or at_least")
        path = os.environ.get(FIGURES_ENV)
        if path:
            row = {
                "test": request.node.nodeid,
                "name": name,
                "value": value,
                "at_most": at_most,
                "at_least": at_least,
                "variant": os.environ.get(VARIANT_ENV, ""),
            }
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")
        request.node.user_properties.append((name, value))
        bounds = " and ".join(
            part
            for part in (
                f">= {at_least}" if at_least is not None else "",
                f"<= {at_most}" if at_most is not None else "",
            )
            if part
        )
        assert not math.isnan(value), f"{name} is NaN {detail}"
        assert at_most is None or value <= at_most, f"{name} = {value:.4f}, not {bounds} {detail}"
        assert at_least is None or value >= at_least, f"{name} = {value:.4f}, not {bounds} {detail}"
        return value

    return check


def read_rttm(path: os.PathLike) -> list[tuple[str, float, float]]:
    """(speaker, start, end) rows of an RTTM file."""
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            rows.append((parts[7], start, start + duration))
    return rows
