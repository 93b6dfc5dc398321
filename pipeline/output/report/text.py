"""Text that goes into the report: escaped, numbers formatted, and never a machine's path.

Reject messages (tracebacks, decoder errors) and URIs can name files on the machine that ran the
pipeline; :func:`scrub_paths` keeps only their last component, so the report can be shared.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

# an absolute POSIX or Windows path, or a URI with a scheme: everything up to the last "/" or "\"
_PATH = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*/"  # file:///x/, gs://bucket/dir/
    r"|(?<![\w.~/-])(?:~|/)(?:[^\s'\"<>/:]+/)+"  # /home/me/dir/ or ~/dir/
    r"|\b[A-Za-z]:\\(?:[^\s'\"<>\\]+\\)+)"  # C:\Users\me\
)


def scrub_paths(text: str) -> str:
    """``text`` with every absolute path, home-relative path and URI cut to its last component.

    >>> scrub_paths("cannot open: [Errno 2] No such file: '/home/me/calls/a.wav'")
    "cannot open: [Errno 2] No such file: '…/a.wav'"
    >>> scrub_paths("gs://bucket/x/y.mp3 and C:\\\\data\\\\b.wav")
    '…/y.mp3 and …/b.wav'
    """
    return _PATH.sub("…/", text)


def esc(value: Any) -> str:
    """A value as HTML text: paths scrubbed, then escaped."""
    return html.escape(scrub_paths(str(value)))


def fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits, everything else as :func:`esc`."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return esc(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """An HTML table (``cls`` its class attribute)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><tr>{head}</tr>{body}</table>"


def hours(seconds: float) -> float:
    return seconds / 3600.0
