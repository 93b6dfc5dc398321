"""Silence the start-up messages of third-party imports that are known to be harmless here.

Only these exact messages, never warnings in general:

* Beam logs ``apitools not found, and bigquery client libraries are not available ...`` on the
  root logger when it is imported without its ``[gcp]`` extra; we use no BigQuery. (Logging it
  also configures the root logger as a side effect, which left our own log format unused.)
* funasr prints ``Notice: ffmpeg is not installed. torchaudio is used to load audio ...`` on
  import; we hand it decoded arrays, never files.

A leaf module: it imports nothing of this project.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from types import ModuleType

HARMLESS_LOG_PREFIXES = ("apitools not found, and bigquery client libraries are not available",)
FUNASR_NOTICE = "Notice: ffmpeg is not installed. torchaudio is used to load audio"


class HarmlessStartupLogs(logging.Filter):
    """Drops the log records listed in :data:`HARMLESS_LOG_PREFIXES` (and nothing else)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(HARMLESS_LOG_PREFIXES)


def silence_harmless_logs() -> None:
    """Filter the known-harmless start-up records out of the root logger (call it before the
    import that logs them; calling it again adds nothing)."""
    root = logging.getLogger()
    if not any(isinstance(f, HarmlessStartupLogs) for f in root.filters):
        root.addFilter(HarmlessStartupLogs())


def drop_funasr_notice(printed: str) -> str:
    """``printed`` without funasr's ffmpeg notice (the notice's lines only).

    >>> drop_funasr_notice(FUNASR_NOTICE + "\\nIf you want ... by:\\n\\tsudo apt install ffmpeg"
    ...                    " # ubuntu\\n\\t# brew install ffmpeg # mac\\nother\\n")
    'other\\n'
    """
    start = printed.find(FUNASR_NOTICE)
    if start < 0:
        return printed
    end = printed.find("# brew install ffmpeg # mac", start)
    end = len(printed) if end < 0 else printed.find("\n", end) + 1 or len(printed)
    return printed[:start] + printed[end:]


def import_funasr() -> ModuleType:
    """``import funasr`` without its ffmpeg notice; anything else it prints is passed on."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            import funasr
    finally:
        sys.stdout.write(drop_funasr_notice(captured.getvalue()))
    return funasr
