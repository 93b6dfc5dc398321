"""Command-line options: one ``CurateOptions(PipelineOptions)`` built from the stages' dataclasses.

Each stage module owns a frozen ``<Stage>Options`` dataclass (fields declared with
:func:`core.options.opt`); the stage registry (:mod:`pipeline.stages`) lists them, and
every field becomes a flag of the same name (underscores, like Beam's own flags) whose help text
is the field's ``metadata["help"]``.
DoFns receive the dataclass, never the options object. Beam flags (``--runner``,
``--direct_num_workers``, …) share the same command line.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from core.options import add_dataclass_args, parse_bool
from pipeline.stages import option_classes


class CurateOptions(PipelineOptions):
    """Options of the curation pipeline (``python beam_runner.py --help`` lists them all)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        io = parser.add_argument_group("input/output")
        io.add_argument(
            "--input",
            default=None,
            help="a glob, a directory, or a text file listing one URI per line; any "
            "scheme Beam's FileSystems knows (default: the bundled sample)",
        )
        io.add_argument("--output", default="output", help="output directory (default: output)")
        io.add_argument(
            "--resume",
            type=parse_bool,
            nargs="?",
            const=True,
            default=True,
            help="skip recordings a previous run with this --output finished (default: true)",
        )
        io.add_argument(
            "--progress_interval_s",
            type=float,
            default=30.0,
            help="seconds between progress lines when stderr is not a terminal, and between "
            "the workers' progress log lines on other runners (default: 30)",
        )
        io.add_argument(
            "--quiet",
            type=parse_bool,
            nargs="?",
            const=True,
            default=False,
            help="no progress line, and warnings and errors only in the log (default: false)",
        )
        for stage_cls in option_classes():
            add_dataclass_args(parser, stage_cls)


def help_parser() -> argparse.ArgumentParser:
    """A parser for ``--help``: our flags and the Beam flags users of this pipeline need."""
    from apache_beam.options import pipeline_options as beam_options

    parser = argparse.ArgumentParser(
        prog="beam_runner.py",
        description="Curate two-speaker dialogue corpora with Apache Beam.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    CurateOptions._add_argparse_args(parser)
    for name in (
        "StandardOptions",
        "DirectOptions",
        "PortableOptions",
        "FlinkRunnerOptions",
        "GoogleCloudOptions",
        "WorkerOptions",
        "SetupOptions",
    ):
        beam_parser = beam_options._BeamArgumentParser(allow_abbrev=False)
        getattr(beam_options, name)._add_argparse_args(beam_parser)
        group = parser.add_argument_group(f"Beam {name}")
        for action in beam_parser._actions:
            if action.option_strings and action.dest != "help":
                group._add_action(action)
    return parser
