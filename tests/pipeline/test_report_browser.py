"""report.html in a real browser: headless Chromium opens it offline, logs no error, and every
clip loads and plays (kept and rejected ones). Skipped only where no Chromium exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.output import report
from tests.browser import BROWSER_ENV, PageVisit, find_browser, visit
from tests.pipeline.report_fixtures import write_run


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip(
            "no Chromium browser on this machine (install Debian's `chromium`, as "
            f"scripts/setup.sh does when it can, or set {BROWSER_ENV}=/path/to/chrome): "
            "the report was not checked in a browser"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("Chromium is here but Playwright is not: pip install -e '.[dev]'")
    return found


def _assert_all_clips_play(page: PageVisit) -> None:
    assert page.console_errors == [] and page.page_errors == [], page
    assert page.failed_requests == [], page.failed_requests
    for clip in page.audio:
        assert clip.error is None and clip.ready_state >= 1, clip  # its media loaded
        assert clip.duration > 0 and clip.played > 0, clip  # and it plays
    kinds = {clip.kind for clip in page.audio}
    assert {"kept", "rejected"} <= kinds, kinds


def test_sample_report_plays_kept_and_rejected_clips(sample_run, browser):
    page = visit(sample_run.output / "report.html", browser)
    assert page.title == f"Curation report: {sample_run.output.name}"
    text = (sample_run.output / "report.html").read_text(encoding="utf-8")
    repo = Path(__file__).resolve().parents[2]
    for path in (sample_run.output.resolve(), Path.home(), repo):
        if len(path.parts) > 1:  # a home of "/" says nothing
            assert str(path) not in text, f"{path} is written in the report"
    _assert_all_clips_play(page)


def test_report_clips_play_and_a_broken_one_is_caught(tmp_path, browser):
    out, *_ = write_run(tmp_path)
    report.write_report(str(out))
    page = visit(out / "report.html", browser)
    assert len(page.audio) == 6
    _assert_all_clips_play(page)
    # the check sees a clip that does not decode and one that is missing
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    media = sorted((moved / "report_media").iterdir())
    media[0].write_bytes(b"not audio at all" * 64)
    media[1].unlink()
    broken = visit(moved / "report.html", browser)
    by_src = {clip.src: clip for clip in broken.audio}
    assert by_src[f"report_media/{media[0].name}"].error is not None
    assert by_src[f"report_media/{media[1].name}"].error is not None
    assert broken.console_errors or broken.failed_requests
    assert all(
        c.error is None
        for s, c in by_src.items()
        if Path(s).name not in {media[0].name, media[1].name}
    )
