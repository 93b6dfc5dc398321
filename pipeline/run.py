"""The curation pipeline's graph, and ``run(argv)`` which builds, runs and summarises it.

Data flow (one fused chain per recording; only URIs and table rows are ever shuffled)::

    MatchInputs → SplitFinished ─┬─ todo → DecodeAudio → AttachProvenance → DetectSpeech
                                 │            │    → Diarize → Transcribe → SegmentDialogues
                                 │            │    → FilterDialogues → PersistRecording ─┐
                                 │            └─ file rejects → PersistReject ───────────┤→ WriteTables
                                 └─ finished → LoadFinished ─────────────────────────────┤
                                          rows grouped by recording → WriteCorpus (cuts, TSV)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any, TextIO

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.audio import clear_scratch, scratch_dir_for
from pipeline.ingest import FINISHED, MatchInputs, SplitFinishedFn, list_input_uris
from pipeline.option_fields import dataclass_from_options
from pipeline.options import CurateOptions
from pipeline.output import corpus
from pipeline.output.progress_marks import MarkStepFn, StepMarks
from pipeline.output.run_lock import output_lock
from pipeline.output.tables import (
    OUTPUTS,
    LoadFinishedFn,
    PersistRecordingFn,
    PersistRejectFn,
    WriteTables,
)
from pipeline.progress_watch import ProgressReporter, RunWatch
from pipeline.provenance import AttachProvenance, ProvenanceOptions
from pipeline.records import table_row
from pipeline.stages import DECODE, STAGES

logger = logging.getLogger(__name__)


def build_stages(options: PipelineOptions) -> list[tuple[str, beam.PTransform]]:
    """The per-recording stages after decoding (:data:`pipeline.stages.STAGES`), in order, each
    built from its own options."""

    def options_of(cls):
        return dataclass_from_options(cls, options)

    return [(spec.label, spec.build(options_of(spec.options), options_of)) for spec in STAGES]


def corpus_entries(rows_by_table: dict[str, beam.PCollection]) -> beam.PCollection:
    """Every recording's rows (processed now or restored) grouped into corpus entries."""
    keyed = {
        table: rows_by_table[table]
        | f"KeyForCorpus_{table}" >> beam.Map(lambda row: (corpus.recording_id_of(row), row))
        for table in ("recordings", "dialogues", "dialogue_turns", "diarization")
    }
    return (
        keyed
        | "GroupRowsByRecording" >> beam.CoGroupByKey()
        | "KeepRecorded" >> beam.Filter(lambda kv: len(kv[1]["recordings"]) > 0)
        | "ToCorpusEntries" >> beam.Map(corpus.entries_from_rows)
    )


def chain_steps() -> list[str]:
    """The labels of the per-recording chain's steps, in order (what step marks name)."""
    return [DECODE.label, *(spec.label for spec in STAGES)]


def build_pipeline(
    pipeline: beam.Pipeline, options: PipelineOptions, *, step_marks: bool = False
) -> None:
    """Add the whole curation graph to ``pipeline``; ``step_marks``: mark each recording's
    progress through the chain for the launcher's progress line (a local output only)."""
    curate = options.view_as(CurateOptions)
    output = curate.output

    def marked(works: beam.PCollection, step: str) -> beam.PCollection:
        if not step_marks:
            return works
        return works | f"Mark_{step}" >> beam.ParDo(MarkStepFn(output, step))

    uris = pipeline | "MatchInputs" >> MatchInputs(curate.input)
    split = uris | "SplitFinished" >> beam.ParDo(
        SplitFinishedFn(output, curate.resume)
    ).with_outputs(FINISHED, main="todo")

    decode_opts = dataclass_from_options(DECODE.options, options)
    scratch_dir = scratch_dir_for(decode_opts.audio_scratch_dir, output)
    decoded = split.todo | DECODE.label >> DECODE.build(decode_opts, scratch_dir)
    works = decoded.main | "AttachProvenance" >> AttachProvenance(
        dataclass_from_options(ProvenanceOptions, options)
    )
    works = marked(works, DECODE.label)
    for label, transform in build_stages(options):
        works = marked((works | label >> transform).main, label)

    # with the launcher's progress line, the workers do not log progress as well
    worker_log_s = None if step_marks else curate.progress_interval_s
    persisted = works | "PersistRecording" >> beam.ParDo(
        PersistRecordingFn(output, worker_log_s)
    ).with_outputs(*OUTPUTS)
    file_rejects = decoded.rejects | "PersistReject" >> beam.ParDo(
        PersistRejectFn(output)
    ).with_outputs(*OUTPUTS)
    finished = split[FINISHED] | "LoadFinished" >> beam.ParDo(LoadFinishedFn()).with_outputs(
        *OUTPUTS
    )

    rows_by_table = {
        table: (persisted[table], file_rejects[table], finished[table])
        | f"Merge_{table}" >> beam.Flatten()
        for table in OUTPUTS
    }
    corpus_out = corpus_entries(rows_by_table) | "WriteCorpus" >> corpus.WriteCorpusEntries(
        output, dataclass_from_options(corpus.CorpusOptions, options)
    )
    # duplicate-content rejects are decided over the whole output on every run, so they are not
    # part of any recording's state file
    rows_by_table["rejects"] = (
        rows_by_table["rejects"],
        corpus_out.rejects | "CorpusRejectRows" >> beam.Map(lambda r: table_row("rejects", r)),
    ) | "MergeCorpusRejects" >> beam.Flatten()
    rows_by_table | "WriteTables" >> WriteTables(output)


def runs_locally(options: PipelineOptions) -> bool:
    """Whether the runner is one of the DirectRunner's (workers share this machine)."""
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return "direct" in name.lower()


def shows_progress(options: PipelineOptions) -> bool:
    """A progress line on stderr: a local run into a local output, without ``--quiet``."""
    curate = options.view_as(CurateOptions)
    return not curate.quiet and "://" not in curate.output and runs_locally(options)


# the thread options whose 0 means "the usable cores": split among local worker processes
AUTO_THREAD_OPTIONS = ("asr_threads", "diar_num_threads", "quality_num_threads")


def split_local_threads(options: PipelineOptions) -> list[str]:
    """Flags that share the machine's cores among the DirectRunner's workers: with
    ``--direct_num_workers=N`` (N > 1), each thread option left at 0 (auto) becomes
    ``max(1, cores // N)``, so N workers do not each take every core. Elsewhere: none."""
    from apache_beam.options.pipeline_options import DirectOptions

    from core.cpu import usable_cores

    workers = options.view_as(DirectOptions).direct_num_workers or 1
    if not runs_locally(options) or workers <= 1:
        return []
    values = options.get_all_options(drop_default=False, retain_unknown_options=False)
    share = max(1, usable_cores() // workers)
    return [f"--{name}={share}" for name in AUTO_THREAD_OPTIONS if not values.get(name)]


def run(argv: list[str] | None = None, stderr: TextIO | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the pipeline to completion, write the run files; returns the summary.

    The output directory is locked for the run (:mod:`pipeline.output.run_lock`): a second run
    into it raises :class:`pipeline.output.run_lock.OutputLockedError` before writing anything.
    On a local run the progress line goes to ``stderr`` (default ``sys.stderr``) unless
    ``--quiet``.
    """
    from pipeline.output import run_files

    argv = list(sys.argv[1:] if argv is None else argv)
    options = PipelineOptions(argv)
    shared = split_local_threads(options)
    if shared:
        options = PipelineOptions(argv + shared)
    curate = options.view_as(CurateOptions)
    if "://" not in curate.output:
        os.makedirs(curate.output, exist_ok=True)
    with output_lock(curate.output):
        started = time.time()
        progress = shows_progress(options)
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, options, step_marks=progress)
        reporter: contextlib.AbstractContextManager = contextlib.nullcontext()
        if progress:
            marks = StepMarks(curate.output)
            marks.clear()  # left by a run that crashed (the lock says none is running)
            watch = RunWatch(
                curate.output, list_input_uris(curate.input), curate.resume, chain_steps()
            )
            reporter = ProgressReporter(
                watch, stderr or sys.stderr, interval_s=curate.progress_interval_s
            )
        clear_scratch(curate.output)  # audio a crashed run left (the lock says none is running)
        try:
            with reporter:
                result = pipeline.run()
                result.wait_until_finish()
        finally:
            clear_scratch(curate.output)
            if progress:
                marks.clear()
        elapsed = time.time() - started
        summary = run_files.finish_run(curate.output, options, result, elapsed)
        if dataclass_from_options(corpus.CorpusOptions, options).write_hf:
            summary["hf_export"] = write_hf(curate.output)
            run_files.write_summary(curate.output, summary)
        return summary


def write_hf(output_dir: str) -> dict[str, Any]:
    """``--write_hf``: the Hugging Face export of the finished run (its summary; an empty
    corpus is logged and exported as nothing)."""
    from pipeline.output.hf_export import HfExportConfig
    from pipeline.output.interop import export_to_hf

    try:
        return export_to_hf(HfExportConfig(output_dir)).summary()
    except ValueError as exc:
        logger.warning("no Hugging Face export: %s", exc)
        return {"error": str(exc)}
