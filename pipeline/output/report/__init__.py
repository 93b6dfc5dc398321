"""``report.html``: a run report a curator can listen to (opens offline, no absolute paths).

Sections: clips of kept dialogues (best, median and worst by DNSMOS OVRL) and of a few rejects of
each reason, each with a player, the ``[S1]``/``[S2]`` transcript coloured by role and a timeline
of who speaks when (the recording's diarization, the item's span shaded); whole-file rejects
(listed, nothing to play); distributions of the filter measures with the run's thresholds drawn;
a per-recording table (hours in, kept, dropped by reason); hours in and out; drops by stage and
reason; the corpus and the run's counters.

The clips are Opus files in ``report_media/`` beside ``report.html``, linked relatively: the
page stays small (the audio is not inlined as base64, a third larger), each clip can be fetched
on its own, and the pair is moved or copied together. Their number and length are capped
(:class:`ReportOptions`).

Modules: :mod:`.run_data` (reading the run), :mod:`.selection` (which clips),
:mod:`.clips` (cutting and encoding), :mod:`.thresholds` (measures and the run's limits),
:mod:`.svg` (drawings), :mod:`.listen` and :mod:`.overview` (sections), :mod:`.page` (the page).

Usage: ``python -m pipeline.output.report OUTPUT_DIR`` re-renders a run's report.
"""

from .cli import main
from .page import MEDIA_DIR, REPORT_NAME, build_report, write_report
from .run_data import find_table_files, read_table
from .selection import ReportOptions

__all__ = [
    "MEDIA_DIR",
    "REPORT_NAME",
    "ReportOptions",
    "build_report",
    "find_table_files",
    "main",
    "read_table",
    "write_report",
]
