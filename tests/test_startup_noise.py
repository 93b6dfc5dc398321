"""Known-harmless start-up messages are silenced, and nothing else is."""

from __future__ import annotations

import logging
import subprocess
import sys

from core.startup_noise import FUNASR_NOTICE, HarmlessStartupLogs, drop_funasr_notice
from tests.conftest import REPO


def _record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("root", level, __file__, 1, msg, None, None)


def test_only_the_listed_log_records_are_dropped():
    keep = HarmlessStartupLogs().filter
    assert not keep(
        _record(
            "apitools not found, and bigquery client libraries are not available despite "
            "the import not raising an ImportError."
        )
    )
    assert keep(_record("apitools is broken"))
    assert keep(_record("something else is not available"))


def test_only_funasr_s_notice_is_dropped_from_what_it_prints():
    notice = (
        f"{FUNASR_NOTICE}\nIf you want to use ffmpeg backend to load audio, please install it by:"
        "\n\tsudo apt install ffmpeg # ubuntu\n\t# brew install ffmpeg # mac\n"
    )
    assert drop_funasr_notice("before\n" + notice + "after\n") == "before\nafter\n"
    assert drop_funasr_notice("a real message\n") == "a real message\n"


def test_importing_funasr_prints_no_ffmpeg_notice():
    code = (
        "from core.startup_noise import import_funasr\n"
        "m = import_funasr()\n"
        "assert hasattr(m, 'AutoModel')\n"
        "print('imported')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout
    assert "ffmpeg is not installed" not in proc.stdout + proc.stderr
