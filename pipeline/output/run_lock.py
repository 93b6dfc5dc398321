"""One run per output directory: ``<output>/.lock``, taken at start and removed at the end.

The lock file is created atomically (``O_CREAT | O_EXCL``) and holds the run's pid, host, start
time and the start time of its process. A second run pointed at the same ``--output`` finds it and
refuses (:class:`OutputLockedError`, naming the other run) before writing anything. A lock whose
run is gone (same host, pid not alive, or alive but a different process that reused the pid) is
stale: it is taken over, with a warning, so a crashed run never leaves the output stuck. A lock
from another host cannot be checked and is always respected (delete the file if that run is gone).

Taking a lock (reading, judging, replacing a stale one) is serialised by an advisory ``flock`` on
the output directory itself, so two runs that both find the same stale lock do not both take it.
Outputs on remote filesystems (``gs://``, ``s3://``, ...) are not locked (a log line says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class OutputLockedError(RuntimeError):
    """Another live run holds the output directory's lock."""


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about the run that holds it."""

    pid: int
    host: str
    started: float  # time.time() when the run took the lock
    process_start: str  # the kernel's start time of the process (Linux), "" when unknown
    token: str  # unique to one acquisition: a run removes only its own lock

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, started {when}"


def process_start_time(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat``), which
    tells a reused pid from the original process; "" where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: fields resume after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def holder_alive(holder: LockHolder, host: str | None = None) -> bool:
    """Whether the run that wrote ``holder`` may still be running (from another host: assumed)."""
    if holder.host != (host or socket.gethostname()):
        return True
    if not pid_alive(holder.pid):
        return False
    current = process_start_time(holder.pid)
    return not (holder.process_start and current and current != holder.process_start)


def read_holder(path: str) -> LockHolder | None:
    """The lock file's holder; None when it is unreadable or half-written (a crashed write)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
        return LockHolder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            started=float(data["started"]),
            process_start=str(data.get("process_start", "")),
            token=str(data.get("token", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _serialised(directory: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` (a no-op where the filesystem refuses)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _create(path: str, holder: LockHolder) -> bool:
    """Create the lock file holding ``holder``; False when one exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(holder), handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def acquire(output_dir: str) -> tuple[str, LockHolder]:
    """Take ``<output_dir>/.lock`` (the directory must exist); returns its path and contents.

    Raises:
        OutputLockedError: a live run holds it.
    """
    path = os.path.join(output_dir, LOCK_NAME)
    pid = os.getpid()
    me = LockHolder(
        pid=pid,
        host=socket.gethostname(),
        started=time.time(),
        process_start=process_start_time(pid),
        token=uuid.uuid4().hex,
    )
    with _serialised(output_dir):
        if _create(path, me):
            return path, me
        other = read_holder(path)
        if other is not None and holder_alive(other):
            raise OutputLockedError(
                f"another run is writing to {output_dir} ({other.describe()}); wait for it to "
                f"finish or choose another --output (if that run is gone, delete {path})"
            )
        logger.warning(
            "taking over the lock of a run that is gone (%s)",
            other.describe() if other else "unreadable lock file",
        )
        os.unlink(path)
        if not _create(path, me):  # only a run that ignores the flock gets here
            raise OutputLockedError(f"another run took the lock of {output_dir} just now")
    return path, me


def release(path: str, mine: LockHolder) -> None:
    """Remove the lock at ``path`` if it is still ``mine``."""
    holder = read_holder(path)
    if holder is not None and holder.token == mine.token:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def output_lock(output_dir: str) -> Iterator[str | None]:
    """Hold the output's lock for the ``with`` block (removed on exceptions too); yields its path,
    or None for a remote output, which is not locked."""
    if "://" in output_dir:
        logger.info("%s is remote: it is not locked against a concurrent run", output_dir)
        yield None
        return
    path, mine = acquire(output_dir)
    try:
        yield path
    finally:
        release(path, mine)
