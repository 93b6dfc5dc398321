"""One run per output directory: a live run's lock refuses a second, a crashed run's is taken."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from pipeline.output import run_lock
from pipeline.output.run_lock import LOCK_NAME, OutputLockedError, output_lock, process_start_time
from pipeline.run import run
from tests.conftest import REPO


def _write_lock(output, pid: int, host: str | None = None, process_start: str = "") -> None:
    output.mkdir(parents=True, exist_ok=True)
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "started": 1_700_000_000.0,
        "process_start": process_start,
        "token": "theirs",
    }
    (output / LOCK_NAME).write_text(json.dumps(holder))


@pytest.fixture
def live_pid():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_live_run_s_lock_refuses_a_second_run_before_it_writes(tmp_path, live_pid):
    output = tmp_path / "out"
    _write_lock(output, live_pid, process_start=process_start_time(live_pid))
    started = time.monotonic()
    with pytest.raises(OutputLockedError) as refused:
        run(["--runner=DirectRunner", f"--output={output}"])
    assert time.monotonic() - started < 10
    message = str(refused.value)
    assert f"pid {live_pid} on {socket.gethostname()}" in message
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_700_000_000.0)) in message
    assert sorted(p.name for p in output.iterdir()) == [LOCK_NAME], "nothing written"
    assert json.loads((output / LOCK_NAME).read_text())["pid"] == live_pid, "their lock stays"


def test_the_command_line_refuses_with_a_clear_error(tmp_path, live_pid):
    output = tmp_path / "out"
    _write_lock(output, live_pid)
    proc = subprocess.run(
        [sys.executable, "beam_runner.py", "--runner=DirectRunner", f"--output={output}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert f"error: another run is writing to {output} (pid {live_pid}" in proc.stderr
    assert "apitools not found" not in proc.stderr  # the known-harmless start-up message
    assert sorted(p.name for p in output.iterdir()) == [LOCK_NAME]


def test_a_crashed_run_s_lock_is_taken_over_and_removed_at_the_end(tmp_path, dead_pid, caplog):
    output = tmp_path / "out"
    _write_lock(output, dead_pid)
    with caplog.at_level(logging.WARNING, logger=run_lock.__name__):
        with output_lock(str(output)) as path:
            held = json.loads(open(path).read())
            assert held["pid"] == os.getpid() and held["token"] != "theirs"
    assert f"pid {dead_pid}" in caplog.text and "gone" in caplog.text
    assert not (output / LOCK_NAME).exists()


def test_a_reused_pid_or_a_garbled_lock_is_stale_another_host_s_is_not(tmp_path, live_pid):
    output = tmp_path / "out"
    _write_lock(output, live_pid, process_start="1")  # the pid now names another process
    with output_lock(str(output)):
        pass
    (output / LOCK_NAME).write_text('{"pid": 12')  # a run that died while writing it
    with output_lock(str(output)):
        pass
    _write_lock(output, live_pid, host="elsewhere.example")
    with pytest.raises(OutputLockedError, match="on elsewhere.example"):
        with output_lock(str(output)):
            pass


def test_the_lock_is_released_when_the_run_fails_and_only_its_own(tmp_path):
    output = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        run(["--runner=DirectRunner", f"--input={tmp_path}/none-*.wav", f"--output={output}"])
    assert not (output / LOCK_NAME).exists()
    with pytest.raises(OutputLockedError):
        with output_lock(str(output)):
            with output_lock(str(output)):  # a second run in this very process is refused too
                pass
    with output_lock(str(output)) as path:
        _write_lock(output, 1, host="elsewhere.example")  # replaced under us: not ours to delete
    assert os.path.exists(path)


def test_remote_outputs_are_not_locked():
    with output_lock("gs://bucket/curated") as path:
        assert path is None
