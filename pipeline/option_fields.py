"""The pipeline's half of the options: the stage options dataclasses declare their fields with
:func:`core.options.opt` and :mod:`pipeline.options` adds them as flags with
:func:`core.options.add_dataclass_args`; this builds a dataclass back from Beam's parsed
``PipelineOptions``.
"""

from __future__ import annotations

from typing import TypeVar

from apache_beam.options.pipeline_options import PipelineOptions

from core.options import dataclass_from_values

T = TypeVar("T")


def dataclass_from_options(cls: type[T], options: PipelineOptions) -> T:
    """Build a stage's options dataclass from the parsed flags (unset flags keep the default)."""
    values = options.get_all_options(drop_default=False, retain_unknown_options=False)
    return dataclass_from_values(cls, values)
