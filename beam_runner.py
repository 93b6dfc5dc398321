"""Curate two-speaker dialogue corpora from long-form recordings with Apache Beam.

    python beam_runner.py --runner=DirectRunner                      # the bundled sample → ./output
    python beam_runner.py --runner=DirectRunner --input 'calls/**/*.mp3' --output out/

All options: ``python beam_runner.py --help``. This file only sets up logging, parses options and
runs the pipeline that :mod:`pipeline.run` builds.
"""

import json
import logging
import sys

from core.startup_noise import silence_harmless_logs


def setup_logging(quiet: bool) -> None:
    """Our log format on stderr (INFO, or WARNING with ``--quiet``), set before Beam is
    imported so that its known-harmless start-up message is filtered out."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    silence_harmless_logs()
    for noisy in ("apache_beam", "faster_whisper", "numba", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _quiet(argv: list[str]) -> bool:
    # before the options can be parsed (that imports Beam): --quiet, --quiet=true, --quiet true
    for i, arg in enumerate(argv):
        if arg == "--quiet":
            following = argv[i + 1].lower() if i + 1 < len(argv) else ""
            return following not in ("false", "0", "no", "off")
        if arg.startswith("--quiet="):
            return arg.split("=", 1)[1].lower() in ("true", "1", "yes", "on")
    return False


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    setup_logging(_quiet(argv))
    from pipeline.options import CurateOptions, help_parser
    from pipeline.output.run_lock import OutputLockedError
    from pipeline.run import run

    if "-h" in argv or "--help" in argv:
        help_parser().print_help()
        return 0
    try:
        summary = run(argv)
    except (FileNotFoundError, ValueError, OutputLockedError) as exc:
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
