"""``python -m pipeline.output.report OUTPUT_DIR``: (re-)write a run's report."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from core.options import add_dataclass_args, dataclass_from_args

from .page import write_report
from .selection import ReportOptions


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write report.html (and its clips, report_media/) for a curation run."
    )
    parser.add_argument("output_dir", help="the run's --output directory")
    add_dataclass_args(parser, ReportOptions)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    print(write_report(args.output_dir, dataclass_from_args(ReportOptions, args)))
