"""Any audio file as 16 kHz mono float32, the rate every metric model here expects.

Decoding reuses :func:`core.audio_io.decode_audio` (PyAV + soxr: wav, flac, mp3, ...).
Multi-channel files (e.g. ZipVoice-Dialog-Stereo outputs, one speaker per channel) are averaged
to mono, which is what a listener of the downmix hears and what the paper's evaluation loads.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["SAMPLE_RATE", "cut", "load_mono_16k"]

SAMPLE_RATE = 16000


def load_mono_16k(path: str | os.PathLike) -> np.ndarray:
    """The file's audio at 16 kHz, channels averaged, shape ``(n,)`` float32.

    Raises:
        core.audio_io.DecodeError: the file cannot be decoded.
    """
    from core.audio_io import decode_audio

    decoded = decode_audio(os.fspath(path), target_rate=SAMPLE_RATE)
    return np.ascontiguousarray(decoded.samples.mean(axis=0), dtype=np.float32)


def cut(samples: np.ndarray, spans_s: list[tuple[float, float]]) -> np.ndarray:
    """The pieces ``[start_s, end_s)`` of a 16 kHz array, concatenated in the given order."""
    pieces = [
        samples[max(0, round(a * SAMPLE_RATE)) : round(b * SAMPLE_RATE)]
        for a, b in spans_s
        if b > a
    ]
    pieces = [p for p in pieces if len(p)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
