"""Options as dataclass fields: ``opt()`` declares a field that is also a command-line flag, and
the flag builder turns a dataclass into flags and parsed flags back into the dataclass.

A leaf module (no pipeline imports): every stage declares its options with :func:`opt`, and
:mod:`pipeline.options` builds the command line from the stage registry (:mod:`pipeline.stages`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from apache_beam.options.pipeline_options import PipelineOptions

T = TypeVar("T")


def opt(default: Any, help: str, **metadata: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field that is also a command-line flag (``choices=`` may be given)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def parse_bool(text: str) -> bool:
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
            kwargs["type"] = parse_bool
            kwargs["nargs"] = "?"
            kwargs["const"] = True
        elif kind in (int, float, str):
            kwargs["type"] = kind
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs["help"] += f" (default: {default})"
        group.add_argument(f"--{f.name}", **kwargs)


def dataclass_from_options(cls: type[T], options: PipelineOptions) -> T:
    """Build a stage's options dataclass from the parsed flags (unset flags keep the default)."""
    values = options.get_all_options(drop_default=False, retain_unknown_options=False)
    given = {
        f.name: values[f.name] for f in dataclasses.fields(cls) if values.get(f.name) is not None
    }
    return cls(**given)
