"""Effective audio bandwidth: the highest frequency that carries real energy.

Telephone audio stored at 16 or 44.1 kHz still stops near 3.4–4 kHz; that is poor training data
for a 22–24 kHz TTS model, so every recording and dialogue row records an estimate:

- a recording's, by :class:`BandwidthProbe`, on the file's original sample rate while it is decoded
  (a long-term average power spectrum over a bounded number of frames, so memory does not grow
  with file length);
- a dialogue's, by :func:`estimate_bandwidth_hz`, on its 16 kHz clip (the long-term spectrum of
  the louder frames; isolated bins such as a tone or hum do not count). :mod:`pipeline.filters`
  takes the recording's estimate instead when the clip's reaches the 16 kHz Nyquist limit.
"""

from __future__ import annotations

import numpy as np

N_FFT = 2048
MAX_FRAMES = 4000  # about 3 minutes of 44.1 kHz audio at hop N_FFT: plenty for a long-term spectrum
FLOOR_DB = 50.0  # energy more than this far below the spectrum's peak is not "real"


class BandwidthProbe:
    """Accumulates a long-term power spectrum from decoded blocks; see :meth:`bandwidth_hz`."""

    def __init__(self, sample_rate: int, n_fft: int = N_FFT, max_frames: int = MAX_FRAMES):
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.max_frames = max_frames
        self._power = np.zeros(n_fft // 2 + 1)
        self._frames = 0
        self._pending = np.zeros(0, dtype=np.float32)
        self._window = np.hanning(n_fft).astype(np.float32)

    def update(self, block: np.ndarray) -> None:
        """Add a block of samples, shape ``(samples, channels)`` or ``(samples,)``."""
        if self._frames >= self.max_frames:
            return
        mono = block.mean(axis=1) if block.ndim == 2 else block
        data = np.concatenate([self._pending, mono.astype(np.float32, copy=False)])
        usable = (len(data) // self.n_fft) * self.n_fft
        if usable:
            frames = data[:usable].reshape(-1, self.n_fft)[: self.max_frames - self._frames]
            spectra = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
            self._power += spectra.sum(axis=0)
            self._frames += len(frames)
        self._pending = data[usable:]

    def bandwidth_hz(self) -> float:
        """Highest frequency within :data:`FLOOR_DB` of the spectrum's peak (0.0 for no audio)."""
        if self._frames == 0 or not np.any(self._power > 0):
            return 0.0
        return spectrum_bandwidth_hz(self._power / self._frames, self.sample_rate)


def spectrum_bandwidth_hz(power: np.ndarray, sample_rate: int, floor_db: float = FLOOR_DB) -> float:
    """Bandwidth of a power spectrum (bins from 0 Hz to Nyquist)."""
    smoothed = np.convolve(power, np.ones(5) / 5, mode="same")
    level_db = 10 * np.log10(smoothed + 1e-20)
    above = np.nonzero(level_db > level_db.max() - floor_db)[0]
    nyquist = sample_rate / 2
    return float(above[-1] / (len(power) - 1) * nyquist) if len(above) else 0.0


# a dialogue's 16 kHz clip: frames of _FRAME samples every _HOP
_FRAME = 512
_HOP = 256
# Frames more than this below the loudest frame are silence; they would only raise the floor.
_ACTIVE_FRAME_DB = 40.0
# A band edge needs this many consecutive bins above the threshold (~94 Hz at 16 kHz).
_MIN_RUN_BINS = 3


def estimate_bandwidth_hz(
    samples: np.ndarray, sample_rate: int, threshold_db: float = -60.0
) -> float:
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
