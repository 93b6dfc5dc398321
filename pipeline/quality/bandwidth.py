"""Effective audio bandwidth: the highest frequency that still carries real signal energy.

Telephone audio stored at 16 kHz has nothing above ~3.4-4 kHz; a 44.1 kHz file that was once an
MP3 at 16 kHz has nothing above ~8 kHz. The estimate is the long-term spectrum of the louder
frames, and the bandwidth is the highest frequency whose level is within ``threshold_db`` of the
spectrum's peak, ignoring isolated bins (a tone or hum does not count as bandwidth).
"""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

_FRAME = 512
_HOP = 256
# Frames more than this below the loudest frame are silence; they would only raise the floor.
_ACTIVE_FRAME_DB = 40.0
# A band edge needs this many consecutive bins above the threshold (~94 Hz at 16 kHz).
_MIN_RUN_BINS = 3


def estimate_bandwidth_hz(samples: np.ndarray, sample_rate: int,
                          threshold_db: float = -60.0) -> float:
    """The effective bandwidth of a mono signal, in Hz (at most ``sample_rate / 2``).

    Args:
        samples: mono audio, shape ``(samples,)``.
        sample_rate: its sample rate.
        threshold_db: level relative to the spectral peak below which a bin is empty.

    Returns:
        The upper edge in Hz; 0.0 for silence or a clip shorter than one frame.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] < _FRAME or not np.any(x):
        return 0.0
    n_frames = 1 + (x.shape[0] - _FRAME) // _HOP
    idx = np.arange(_FRAME)[None, :] + _HOP * np.arange(n_frames)[:, None]
    frames = x[idx] * np.hanning(_FRAME)[None, :]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, bins)
    energy = power.sum(axis=1)
    loud = energy >= energy.max() * 10 ** (-_ACTIVE_FRAME_DB / 10)
    spectrum = power[loud].mean(axis=0)
    level_db = 10 * np.log10(spectrum + 1e-20)
    above = level_db >= level_db.max() + threshold_db
    # highest bin that ends a run of _MIN_RUN_BINS bins above the threshold
    run = np.convolve(above.astype(int), np.ones(_MIN_RUN_BINS, dtype=int), mode="valid")
    full = np.nonzero(run == _MIN_RUN_BINS)[0]
    if full.size == 0:
        return 0.0
    top_bin = int(full[-1]) + _MIN_RUN_BINS - 1
    return float(min(top_bin * sample_rate / _FRAME, sample_rate / 2))
