"""The shape every per-recording stage shares: a DoFn over :class:`RecordingWork` with counters.

A stage turns one ``RecordingWork`` into the same work with its own field filled. Expected data
problems are raised as :class:`pipeline.errors.StageReject` (file-wide) or returned as item-level
:class:`Reject` records; both go to the ``rejects`` output, and the work always continues down the
chain (a recording that decoded stays in ``recordings``, whatever later stages find).
An unexpected exception inside one recording is contained the same way (reason ``stage_error``),
so one bad file never stops the run. Rejects are yielded on the ``rejects`` output (for tests and
per-stage counting) and also accumulated in ``work.rejects``, which the writers persist.

Counters, namespace = the stage name: ``items_in``, ``items_out``, ``dropped_<reason>``,
``audio_ms_in`` (milliseconds of audio entering the stage), ``wall_ms`` (wall time spent in it),
``load_ms`` (wall time its models took to load, once per worker process; not in ``wall_ms``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from pipeline.errors import STAGE_ERROR, StageReject
from pipeline.records import Recording, RecordingWork, Reject

logger = logging.getLogger(__name__)

REJECTS = "rejects"


class StageOutputs(NamedTuple):
    """What a stage transform returns: the work that goes on, and the rejects it emitted."""

    main: beam.PCollection
    rejects: beam.PCollection


class StageCounters:
    """Beam counters of one stage (items in/out, drops by reason, audio seconds, wall time)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.items_in = Metrics.counter(stage, "items_in")
        self.items_out = Metrics.counter(stage, "items_out")
        self.audio_ms_in = Metrics.counter(stage, "audio_ms_in")
        self.millis = Metrics.counter(stage, "wall_ms")
        self.load_ms = Metrics.counter(stage, "load_ms")
        self._dropped: dict[str, object] = {}

    def dropped(self, reason: str, n: int = 1) -> None:
        if reason not in self._dropped:
            self._dropped[reason] = Metrics.counter(self.stage, f"dropped_{reason}")
        self._dropped[reason].inc(n)  # type: ignore[attr-defined]


def item_reject(
    stage: str,
    recording: Recording,
    reason: str,
    message: str,
    item_id: str,
    start: float,
    end: float,
) -> Reject:
    """An item-level reject (a segment, turn or dialogue of ``recording``)."""
    return Reject(
        uri=recording.uri,
        recording_id=recording.recording_id,
        stage=stage,
        reason=reason,
        message=message,
        item_id=item_id,
        start=start,
        end=end,
    )


class _ModelHolder:
    """A weak-referenceable box, as ``Shared.acquire`` needs, around any loaded model."""

    def __init__(self, value: Any):
        self.value = value


class StageFn(beam.DoFn):
    """Base DoFn of every stage: its counters (:class:`StageCounters`, made in :meth:`setup`)
    and its models, loaded in :meth:`setup` through :meth:`shared_model`, so one worker process
    loads each model once, however many threads and bundles use it. Subclasses set ``stage``.
    """

    stage = "stage"

    def __init__(self):
        super().__init__()
        self.counters: StageCounters | None = None
        self._shared = Shared()
        self._holders: dict[str, _ModelHolder] = {}
        self._unreported_load_s = 0.0  # loading happens in setup, where no counter counts

    def shared_model(
        self, key: str, loader: Callable[[], Any], *, per_instance: bool = False
    ) -> Any:
        """The model ``loader()`` returns, loaded once per worker process for ``key`` (the one
        way a stage loads a model). ``per_instance=True`` loads it for this DoFn instance only,
        for a model that keeps state between calls and so cannot be shared across threads."""
        started = time.perf_counter()
        try:
            if per_instance:
                return loader()
            # Shared keeps the holder only while someone references it: this instance does
            holder = self._shared.acquire(lambda: _ModelHolder(loader()), tag=key)
            self._holders[key] = holder
            return holder.value
        finally:
            self._unreported_load_s += time.perf_counter() - started

    def count_loading(self, counters: StageCounters) -> None:
        """Add the model loading time not yet counted to ``load_ms`` (called from ``process``:
        Beam counts only what a step's processing increments)."""
        if self._unreported_load_s:
            counters.load_ms.inc(int(self._unreported_load_s * 1000))
            self._unreported_load_s = 0.0

    def setup(self):
        self.counters = StageCounters(self.stage)


class RecordingStageFn(StageFn):
    """Base DoFn of a per-recording stage (every stage after decoding).

    Subclasses set ``stage`` and implement :meth:`apply`, which returns the new work and a list of
    item-level rejects; a :class:`StageReject` or any other exception rejects the whole recording
    and the run goes on.
    """

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        raise NotImplementedError

    def process(self, work: RecordingWork) -> Iterable:
        counters = self.counters or StageCounters(self.stage)
        self.count_loading(counters)
        counters.items_in.inc()
        counters.audio_ms_in.inc(int(work.recording.duration_s * 1000))
        started = time.perf_counter()
        rejects: list[Reject] = []
        try:
            work, rejects = self.apply(work)
        except StageReject as exc:
            rejects = [self.whole_recording_reject(work, exc.reason, str(exc))]
        except Exception as exc:  # contain one recording's crash; the run goes on
            logger.exception("%s failed on %s", self.stage, work.recording.uri)
            message = f"{type(exc).__name__}: {exc} | " + traceback.format_exc(limit=3).replace(
                "\n", " "
            )
            rejects = [self.whole_recording_reject(work, STAGE_ERROR, message)]
        counters.millis.inc(int((time.perf_counter() - started) * 1000))
        for reject in rejects:
            counters.dropped(reject.reason)
            yield beam.pvalue.TaggedOutput(REJECTS, reject)
        counters.items_out.inc()
        # the work carries its rejects to the end of the chain, where they are persisted with
        # the recording's rows (resume then restores them too)
        yield dataclasses.replace(work, rejects=work.rejects + tuple(rejects))

    def whole_recording_reject(self, work: RecordingWork, reason: str, message: str) -> Reject:
        """An item-level reject covering the whole recording (nothing of it passed this stage)."""
        return Reject(
            uri=work.recording.uri,
            recording_id=work.recording_id,
            stage=self.stage,
            reason=reason,
            message=message,
            item_id=work.recording_id,
            start=0.0,
            end=work.recording.duration_s,
        )


class RecordingStage(beam.PTransform):
    """The one Beam wrapper of a per-recording stage: ``RecordingWork`` → :class:`StageOutputs`
    (the work that goes on, and the stage's rejects).

    A stage subclasses it with its options class, its DoFn and the label of its step; keyword
    arguments besides the options go to the DoFn::

        class DetectSpeech(RecordingStage):
            options_class = VadOptions
            fn_class = DetectSpeechFn
            step = "RunSileroVad"

        outputs = works | "DetectSpeech" >> DetectSpeech(VadOptions())
    """

    options_class: ClassVar[type]
    fn_class: ClassVar[type[RecordingStageFn]]
    step: ClassVar[str]

    def __init__(self, opts: Any = None, label: str | None = None, **fn_kwargs: Any):
        super().__init__(label)
        self.opts = opts if opts is not None else self.options_class()
        self.fn_kwargs = fn_kwargs

    def expand(self, works: beam.PCollection) -> StageOutputs:
        return apply_stage(works, self.step, self.fn_class(self.opts, **self.fn_kwargs))


def apply_stage(pcoll: beam.PCollection, label: str, fn: RecordingStageFn) -> StageOutputs:
    """Run ``fn`` over ``pcoll`` and split main and rejects (used by each stage's ``expand``)."""
    results = pcoll | label >> beam.ParDo(fn).with_outputs(REJECTS, main="main")
    return StageOutputs(results.main, results[REJECTS])


def replace(work: RecordingWork, **changes) -> RecordingWork:
    """``dataclasses.replace`` for work records (re-exported so stages import one name)."""
    return dataclasses.replace(work, **changes)
