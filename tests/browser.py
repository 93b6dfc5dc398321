"""Load a local HTML page in headless Chromium and say what a person opening it would meet.

The browser is the system's (Debian ``chromium``, ``chromium-browser``, ``google-chrome``, or
the path in ``$REPORT_BROWSER``), driven through Playwright's Python API with
``executable_path``: Playwright's own browser download is never used. ``scripts/setup.sh``
installs Debian's ``chromium`` where it can.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

BROWSER_ENV = "REPORT_BROWSER"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# each <audio>: wait for its metadata (or its error), then play it for a moment
_AUDIO_CHECK = """
async (timeoutMs) => {
  const check = (a) => new Promise((resolve) => {
    const report = (played) => resolve({
      src: a.getAttribute("src"), kind: a.dataset.kind || "", readyState: a.readyState,
      error: a.error ? a.error.code : null, duration: a.duration, played: played,
    });
    const timer = setTimeout(() => report(a.currentTime), timeoutMs);
    const play = () => {
      if (a.error) { clearTimeout(timer); return report(0); }
      a.muted = true;
      a.addEventListener("timeupdate", () => {
        if (a.currentTime > 0.05) { a.pause(); clearTimeout(timer); report(a.currentTime); }
      });
      a.play().catch(() => { clearTimeout(timer); report(-1); });
    };
    if (a.readyState >= 1 || a.error) return play();
    a.addEventListener("loadedmetadata", play, { once: true });
    a.addEventListener("error", () => { clearTimeout(timer); report(0); }, { once: true });
    if (a.networkState === HTMLMediaElement.NETWORK_EMPTY) a.load();
  });
  return Promise.all([...document.querySelectorAll("audio")].map(check));
}
"""


@dataclass(frozen=True)
class AudioState:
    """One ``<audio>`` element after loading: ``ready_state`` >= 1 means its metadata loaded,
    ``error`` is the MediaError code (``None``: none), ``played`` the seconds it played."""

    src: str
    kind: str
    ready_state: int
    error: int | None
    duration: float
    played: float


@dataclass
class PageVisit:
    """What loading the page gave: console errors, uncaught exceptions, failed requests and the
    state of every audio element."""

    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    audio: list[AudioState] = field(default_factory=list)


def find_browser() -> str | None:
    """A Chromium-family executable: ``$REPORT_BROWSER``, else the first of
    :data:`BROWSER_NAMES` on ``PATH``; ``None`` when there is none."""
    override = os.environ.get(BROWSER_ENV)
    if override:
        return override if os.path.exists(override) else shutil.which(override)
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def visit(page_path: Path, executable: str, timeout_s: float = 60.0) -> PageVisit:
    """Open ``page_path`` (a local file) headless in ``executable`` and play its audio."""
    from playwright.sync_api import sync_playwright

    result = PageVisit()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: result.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: result.page_errors.append(str(exc)))
            page.on(
                "requestfailed",
                lambda r: result.failed_requests.append(f"{r.url}: {r.failure}"),
            )
            page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
            result.title = page.title()
            states = page.evaluate(_AUDIO_CHECK, int(timeout_s * 500))
            result.audio = [
                AudioState(
                    s["src"] or "",
                    s["kind"],
                    int(s["readyState"]),
                    s["error"],
                    float(s["duration"] or 0.0),
                    float(s["played"] or 0.0),
                )
                for s in states
            ]
        finally:
            browser.close()
    return result
