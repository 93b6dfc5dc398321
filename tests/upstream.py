"""Where the upstream ZipVoice fixtures live: ``tests/fixtures/zipvoice-upstream`` (what
upstream's own code produced; its README says how). Part of the repository, so a missing file is
an error, never a skip."""

from __future__ import annotations

from pathlib import Path

UPSTREAM_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "zipvoice-upstream"


def upstream_fixture_dir() -> Path:
    """The fixture folder; raises ``FileNotFoundError`` when it is incomplete."""
    if not (UPSTREAM_FIXTURES / "tiny_zipvoice.pt").is_file():
        raise FileNotFoundError(
            f"{UPSTREAM_FIXTURES} is incomplete: the upstream fixtures are "
            "part of the repository (git checkout tests/fixtures)"
        )
    return UPSTREAM_FIXTURES
