"""Command-line options: one ``CurateOptions(PipelineOptions)`` built from the stages' dataclasses.

Each stage module owns a frozen ``<Stage>Options`` dataclass; every field becomes a flag of the
same name (underscores, like Beam's own flags) whose help text is the field's ``metadata["help"]``.
DoFns receive the dataclass, never the options object. Beam flags (``--runner``,
``--direct_num_workers``, …) share the same command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Type, TypeVar

from apache_beam.options.pipeline_options import PipelineOptions

T = TypeVar("T")

BUNDLED_SAMPLE = "bundled sample"


def opt(default: Any, help: str, **metadata: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field that is also a command-line flag (``choices=`` may be given)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def _stage_option_classes() -> list[type]:
    """The options dataclasses of every stage, in pipeline order (imported lazily: no models)."""
    from pipeline import asr, corpus, decode, dialogue, diarize, filters, vad

    return [decode.DecodeOptions, vad.VadOptions, diarize.DiarizeOptions, asr.AsrOptions,
            dialogue.DialogueOptions, filters.FilterOptions, corpus.CorpusOptions]


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag per field of ``cls`` to ``parser`` (as a group named after the class)."""
    group = parser.add_argument_group(cls.__name__)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        origin = typing.get_origin(kind)
        args = typing.get_args(kind)
        if origin in (typing.Union, types.UnionType) and type(None) in args:  # X | None
            kind = next(a for a in args if a is not type(None))
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", ""), "default": None}
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if kind is bool:
            kwargs["type"] = _parse_bool
            kwargs["nargs"] = "?"
            kwargs["const"] = True
        elif kind in (int, float, str):
            kwargs["type"] = kind
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs["help"] += f" (default: {default})"
        group.add_argument(f"--{f.name}", **kwargs)


def dataclass_from_options(cls: Type[T], options: PipelineOptions) -> T:
    """Build a stage's options dataclass from the parsed flags (unset flags keep the default)."""
    values = options.get_all_options(drop_default=False, retain_unknown_options=False)
    given = {f.name: values[f.name] for f in dataclasses.fields(cls)
             if values.get(f.name) is not None}
    return cls(**given)


class CurateOptions(PipelineOptions):
    """Options of the curation pipeline (``python beam_runner.py --help`` lists them all)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        io = parser.add_argument_group("input/output")
        io.add_argument("--input", default=None,
                        help="a glob, a directory, or a text file listing one URI per line; any "
                             "scheme Beam's FileSystems knows (default: the bundled sample)")
        io.add_argument("--output", default="output", help="output directory (default: output)")
        io.add_argument("--resume", type=_parse_bool, nargs="?", const=True, default=True,
                        help="skip recordings a previous run with this --output finished "
                             "(default: true)")
        io.add_argument("--progress_interval_s", type=float, default=30.0,
                        help="seconds between progress log lines (default: 30)")
        for stage_cls in _stage_option_classes():
            add_dataclass_args(parser, stage_cls)


def help_parser() -> argparse.ArgumentParser:
    """A parser for ``--help``: our flags and the Beam flags users of this pipeline need."""
    from apache_beam.options import pipeline_options as beam_options

    parser = argparse.ArgumentParser(
        prog="beam_runner.py", description="Curate two-speaker dialogue corpora with Apache Beam.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    CurateOptions._add_argparse_args(parser)
    for name in ("StandardOptions", "DirectOptions", "PortableOptions", "FlinkRunnerOptions",
                 "GoogleCloudOptions", "WorkerOptions", "SetupOptions"):
        beam_parser = beam_options._BeamArgumentParser(allow_abbrev=False)
        getattr(beam_options, name)._add_argparse_args(beam_parser)
        group = parser.add_argument_group(f"Beam {name}")
        for action in beam_parser._actions:
            if action.option_strings and action.dest != "help":
                group._add_action(action)
    return parser
