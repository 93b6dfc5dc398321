"""Curate two-speaker dialogue corpora from long-form recordings with Apache Beam.

    python beam_runner.py --runner=DirectRunner                      # the bundled sample → ./output
    python beam_runner.py --runner=DirectRunner --input 'calls/**/*.mp3' --output out/

All options: ``python beam_runner.py --help``. This file only parses options and runs the pipeline
that :mod:`pipeline.run` builds.
"""

import json
import logging
import sys

from pipeline.options import CurateOptions, help_parser
from pipeline.run import run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        help_parser().print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("apache_beam", "faster_whisper", "numba", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        summary = run(argv)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = CurateOptions(argv).output
    print(json.dumps(summary, indent=1, sort_keys=True))
    print(
        f"{summary['files']} files: {summary['recordings']} curated, "
        f"{summary['files_rejected']} rejected; {summary['dialogues']} dialogues. "
        f"Outputs in {output}/ (tables, lhotse/, rttm/, rejects/, metrics.json, report)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
