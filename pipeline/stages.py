"""The stage registry: every per-recording stage of the curation chain, in order, once.

The command line (:mod:`pipeline.options`) takes its flag groups from here and the runner
(:mod:`pipeline.run`) builds the chain from here. A new stage is a module with a frozen options
dataclass (fields declared with :func:`core.options.opt`) and a ``PTransform`` over
``RecordingWork`` that returns :class:`pipeline.stage.StageOutputs`; it goes in :data:`STAGES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipeline import decode, dialogue, diarize, filters, provenance, vad
from pipeline.asr import stage as asr
from pipeline.output import corpus


@dataclass(frozen=True)
class StageSpec:
    """One stage: its Beam label, its options dataclass, and how to build its transform.

    ``build(stage_options, all_options)`` gets its own options and a reader of any other
    stage's (``all_options(OtherOptions)``), for stages that share a decision with another.
    """

    label: str
    options: type
    build: Callable[[Any, Callable[[type], Any]], beam.PTransform]


def _segment_dialogues(opts: dialogue.DialogueOptions, options_of) -> beam.PTransform:
    # dialogue rows carry the split of their recording: the corpus uses the same function
    return dialogue.SegmentDialogues(
        opts, split_fn=corpus.split_function(options_of(corpus.CorpusOptions))
    )


# decoding comes first and its rejects are whole files; the others each fill one field of the work.
# Decoding's second argument is where it writes the audio (pipeline.audio.scratch_dir_for)
DECODE = StageSpec(
    "DecodeAudio", decode.DecodeOptions, lambda o, scratch_dir: decode.DecodeAudio(o, scratch_dir)
)
STAGES: tuple[StageSpec, ...] = (
    StageSpec("DetectSpeech", vad.VadOptions, lambda o, _: vad.DetectSpeech(o)),
    StageSpec("Diarize", diarize.DiarizeOptions, lambda o, _: diarize.Diarize(o)),
    StageSpec("Transcribe", asr.AsrOptions, lambda o, _: asr.Transcribe(o)),
    StageSpec("SegmentDialogues", dialogue.DialogueOptions, _segment_dialogues),
    StageSpec("FilterDialogues", filters.FilterOptions, lambda o, _: filters.FilterDialogues(o)),
)


def option_classes() -> list[type]:
    """The options dataclass of every stage, in pipeline order, then the corpus writer's."""
    return [
        DECODE.options,
        provenance.ProvenanceOptions,
        *(s.options for s in STAGES),
        corpus.CorpusOptions,
    ]
