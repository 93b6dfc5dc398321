"""The curation pipeline's graph, and ``run(argv)`` which builds, runs and summarises it.

Data flow (one fused chain per recording; only URIs and table rows are ever shuffled)::

    MatchInputs → SplitFinished ─┬─ todo → DecodeAudio → DetectSpeech → Diarize → Transcribe
                                 │            │             → SegmentDialogues → FilterDialogues
                                 │            │             → PersistRecording ─┐
                                 │            └─ file rejects → PersistReject ──┤→ WriteTables
                                 └─ finished → LoadFinished ────────────────────┤
                                          rows grouped by recording → WriteCorpus (cuts, TSV)
"""
from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import corpus, decode, vad
from pipeline.ingest import FINISHED, MatchInputs, SplitFinishedFn
from pipeline.options import CurateOptions, dataclass_from_options
from pipeline.records import table_row
from pipeline.writers import (OUTPUTS, LoadFinishedFn, PersistRecordingFn, PersistRejectFn,
                              WriteTables)

logger = logging.getLogger(__name__)

# the per-recording stages after VAD, in order: (module, transform class, options class)
LATER_STAGES = (
    ("pipeline.diarize", "Diarize", "DiarizeOptions"),
    ("pipeline.asr", "Transcribe", "AsrOptions"),
    ("pipeline.dialogue", "SegmentDialogues", "DialogueOptions"),
    ("pipeline.filters", "FilterDialogues", "FilterOptions"),
)


@dataclass(frozen=True)
class Stage:
    """One per-recording stage as the graph uses it."""

    label: str
    transform: Any


def _available(module: str) -> Optional[Any]:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def build_stages(options: PipelineOptions) -> list[Stage]:
    """The per-recording stages after decoding, each built from its own options dataclass."""
    stages = [Stage("DetectSpeech",
                    vad.DetectSpeech(dataclass_from_options(vad.VadOptions, options)))]
    for module_name, transform_name, options_name in LATER_STAGES:
        module = _available(module_name)
        if module is None or not hasattr(module, transform_name):
            continue  # a stage not built in this checkout
        stage_opts = dataclass_from_options(getattr(module, options_name), options)
        kwargs = {}
        if transform_name == "SegmentDialogues":  # rows carry the split of their recording
            kwargs["split_fn"] = corpus.split_function(
                dataclass_from_options(corpus.CorpusOptions, options))
        stages.append(Stage(transform_name,
                            getattr(module, transform_name)(stage_opts, **kwargs)))
    return stages


def corpus_entries(rows_by_table: dict[str, beam.PCollection]) -> beam.PCollection:
    """Every recording's rows (processed now or restored) grouped into corpus entries."""
    keyed = {table: rows_by_table[table] | f"KeyForCorpus_{table}" >> beam.Map(
        lambda row: (corpus.recording_id_of(row), row))
        for table in ("recordings", "dialogues", "dialogue_turns", "diarization")}
    return (keyed | "GroupRowsByRecording" >> beam.CoGroupByKey()
            | "KeepRecorded" >> beam.Filter(lambda kv: len(kv[1]["recordings"]) > 0)
            | "ToCorpusEntries" >> beam.Map(corpus.entries_from_rows))


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions) -> None:
    """Add the whole curation graph to ``pipeline``."""
    curate = options.view_as(CurateOptions)
    output = curate.output
    decode_opts = dataclass_from_options(decode.DecodeOptions, options)

    uris = pipeline | "MatchInputs" >> MatchInputs(curate.input)
    split = uris | "SplitFinished" >> beam.ParDo(
        SplitFinishedFn(output, curate.resume)).with_outputs(FINISHED, main="todo")

    decoded = split.todo | "DecodeAudio" >> decode.DecodeAudio(decode_opts)
    works = decoded.main
    for stage in build_stages(options):
        works = (works | stage.label >> stage.transform).main

    persisted = works | "PersistRecording" >> beam.ParDo(
        PersistRecordingFn(output, curate.progress_interval_s)).with_outputs(*OUTPUTS)
    file_rejects = decoded.rejects | "PersistReject" >> beam.ParDo(
        PersistRejectFn(output)).with_outputs(*OUTPUTS)
    finished = split[FINISHED] | "LoadFinished" >> beam.ParDo(
        LoadFinishedFn()).with_outputs(*OUTPUTS)

    rows_by_table = {
        table: (persisted[table], file_rejects[table], finished[table])
        | f"Merge_{table}" >> beam.Flatten()
        for table in OUTPUTS}
    corpus_out = corpus_entries(rows_by_table) | "WriteCorpus" >> corpus.WriteCorpusEntries(
        output, dataclass_from_options(corpus.CorpusOptions, options))
    # duplicate-content rejects are decided over the whole output on every run, so they are not
    # part of any recording's state file
    rows_by_table["rejects"] = (
        (rows_by_table["rejects"],
         corpus_out.rejects | "CorpusRejectRows" >> beam.Map(lambda r: table_row("rejects", r)))
        | "MergeCorpusRejects" >> beam.Flatten())
    rows_by_table | "WriteTables" >> WriteTables(output)


def run(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Parse ``argv``, run the pipeline to completion, write the run files; returns the summary."""
    from pipeline import run_files

    options = PipelineOptions(argv)
    curate = options.view_as(CurateOptions)
    os.makedirs(curate.output, exist_ok=True) if "://" not in curate.output else None
    started = time.time()
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    result = pipeline.run()
    result.wait_until_finish()
    elapsed = time.time() - started
    return run_files.finish_run(curate.output, options, result, elapsed)
