"""VAD stage: speech regions of each recording with silero-vad (the package's own weights).

Input/output: :class:`RecordingWork`; fills ``speech`` (tuple of :class:`SpeechRegion`) and the
recording's ``speech_s``/``speech_ratio``. Reject (item level, the whole recording):
``no_speech``. Model: silero-vad's bundled ONNX (or JIT) weights, loaded once per worker.
Long files are read and processed in windows of ``vad_window_s`` so memory stays flat.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.options import opt
from pipeline import errors
from pipeline.audio import MixSignal
from pipeline.records import ANALYSIS_SAMPLE_RATE, RecordingWork, Reject, SpeechRegion
from pipeline.stage import RecordingStage, RecordingStageFn, replace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VadOptions:
    """silero-vad settings (names as in ``silero_vad.get_speech_timestamps``)."""

    vad_threshold: float = opt(0.5, "speech probability threshold")
    min_speech_duration_ms: int = opt(250, "drop speech shorter than this")
    min_silence_duration_ms: int = opt(100, "silence needed to end a speech region")
    speech_pad_ms: int = opt(30, "padding added around each speech region")
    vad_window_s: float = opt(600.0, "process long files in windows of this length")
    vad_backend: str = opt("onnx", "silero weights to run", choices=("onnx", "jit"))

    def __post_init__(self):
        if not 0.0 < self.vad_threshold < 1.0:
            raise ValueError(f"vad_threshold must be in (0, 1), got {self.vad_threshold}")
        if self.vad_window_s < 30:
            raise ValueError(f"vad_window_s must be >= 30, got {self.vad_window_s}")


def load_vad_model(backend: str = "onnx") -> Any:
    """silero-vad from the weights inside the ``silero-vad`` wheel (no download)."""
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=backend == "onnx")


def detect_speech(
    samples: np.ndarray | MixSignal,
    model: Any,
    opts: VadOptions,
    sample_rate: int = ANALYSIS_SAMPLE_RATE,
) -> list[tuple[float, float]]:
    """Speech regions ``(start_s, end_s)`` of a mono signal (an array, or a recording's mix read
    window by window: :meth:`pipeline.audio.RecordingAudio.mix_signal`), in windows of
    ``vad_window_s``.

    Regions that touch across a window boundary are joined.
    """
    import torch
    from silero_vad import get_speech_timestamps

    window = int(opts.vad_window_s * sample_rate)
    regions: list[tuple[float, float]] = []
    for offset in range(0, len(samples), window):
        chunk = torch.from_numpy(np.ascontiguousarray(samples[offset : offset + window]))
        if len(chunk) < 512:
            break
        stamps = get_speech_timestamps(
            chunk,
            model,
            threshold=opts.vad_threshold,
            sampling_rate=sample_rate,
            min_speech_duration_ms=opts.min_speech_duration_ms,
            min_silence_duration_ms=opts.min_silence_duration_ms,
            speech_pad_ms=opts.speech_pad_ms,
        )
        base = offset / sample_rate
        for stamp in stamps:
            start, end = base + stamp["start"] / sample_rate, base + stamp["end"] / sample_rate
            if regions and start - regions[-1][1] < 1e-3:
                regions[-1] = (regions[-1][0], end)
            else:
                regions.append((start, end))
    return [(round(s, 3), round(e, 3)) for s, e in regions]


class DetectSpeechFn(RecordingStageFn):
    """Fills ``work.speech``; a recording with no speech is rejected (``no_speech``)."""

    stage = "vad"

    def __init__(self, opts: VadOptions):
        super().__init__()
        self.opts = opts
        self.model = None

    def setup(self):
        super().setup()
        # silero keeps per-stream state: one model per DoFn instance (it is 2 MB and loads in ms)
        self.model = self.shared_model(
            f"vad:{self.opts.vad_backend}",
            lambda: load_vad_model(self.opts.vad_backend),
            per_instance=True,
        )

    def apply(self, work: RecordingWork) -> tuple[RecordingWork, list[Reject]]:
        regions = detect_speech(work.audio.mix_signal(), self.model, self.opts)
        if hasattr(self.model, "reset_states"):
            self.model.reset_states()
        speech = tuple(SpeechRegion(work.recording_id, s, e) for s, e in regions)
        speech_s = round(sum(r.duration for r in speech), 3)
        recording = dataclasses.replace(
            work.recording,
            speech_s=speech_s,
            speech_ratio=round(speech_s / max(work.recording.duration_s, 1e-9), 4),
        )
        work = replace(work, recording=recording, speech=speech)
        if not speech:  # the recording stays in `recordings`; later stages find nothing to do
            return work, [
                self.whole_recording_reject(work, errors.NO_SPEECH, "VAD found no speech")
            ]
        return work, []


class DetectSpeech(RecordingStage):
    """Recordings → recordings with speech regions (and ``no_speech`` rejects)."""

    options_class = VadOptions
    fn_class = DetectSpeechFn
    step = "RunSileroVad"
