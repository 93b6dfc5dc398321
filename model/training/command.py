"""The command line shared by ``python -m model.train`` and ``python -m model.distill``.

Both build their parser from their options dataclass (one flag per field, ``--exp_dir`` or
``--exp-dir``, plus the aliases declared on the fields), seed the data sampler with the run's
``--seed``, log at INFO, and turn a bad option or a missing file into exit status 2 with one
line on stderr instead of a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from core.options import add_dataclass_args, dataclass_from_args

T = TypeVar("T")


def command_parser(command: str, description: str, options_class: type) -> argparse.ArgumentParser:
    """The parser of ``python -m <command>``: one flag per field of ``options_class``."""
    parser = argparse.ArgumentParser(prog=f"python -m {command}", description=description)
    add_dataclass_args(parser, options_class, kebab=True)
    return parser


def options_from_args(options_class: type[T], args: argparse.Namespace) -> T:
    """Typed options from parsed arguments (the data sampler is seeded by ``--seed``)."""
    options = dataclass_from_args(options_class, args)
    return dataclasses.replace(options, data=dataclasses.replace(options.data, seed=options.seed))


def run_command(
    command: str,
    parser: argparse.ArgumentParser,
    options_class: type[T],
    run: Callable[[T], Any],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run, and return the exit status (bad options: 2, no traceback)."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from model.network.checkpoint import CheckpointError

    try:
        run(options_from_args(options_class, args))
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def check_run_paths(cuts: Sequence[str], exp_dir: str, last: str, resume: bool, what: str) -> Path:
    """Fail before any weights load: a cuts manifest missing, ``--resume`` without the run's
    last checkpoint (``exp_dir/last``), or a new run over an existing one. Returns ``exp_dir``.

    Raises:
        FileNotFoundError, ValueError: as above (``what`` names the run in the message).
    """
    for path in cuts:
        if not Path(path).is_file():
            raise FileNotFoundError(f"cuts manifest not found: {path}")
    checkpoint = Path(exp_dir) / last
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"--resume: {checkpoint} does not exist")
    if not resume and checkpoint.is_file():
        raise ValueError(f"{exp_dir} already holds {what}: pass --resume or a new --exp-dir")
    return Path(exp_dir)
