"""DNSMOS P.835 (SIG/BAK/OVRL), batched: a clip's 9.01 s windows go through ONNX in batches.

The models are the ONNX files the ``speechmos`` package ships (``dnsmos_models/``, Microsoft,
MIT). Windowing, tiling of short clips and the polynomial calibration follow
``speechmos.dnsmos.run`` (itself Microsoft's ``dnsmos_local.py``), so scores agree with it; the
difference is that a clip's windows go through ``InferenceSession.run`` in batches and P.808 (a second model
on a mel spectrogram) is skipped unless asked for.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW_S = 9.01
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)  # 144160, the model's fixed input length
HOP_SAMPLES = SAMPLE_RATE

# Calibration polynomials of the non-personalised P.835 model (DNSMOS dnsmos_local.py).
_POLY_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_POLY_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_POLY_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


@dataclass(frozen=True)
class DnsmosScore:
    """Clip-level DNSMOS: the mean over the clip's windows (``p808`` is NaN when skipped)."""

    ovrl: float
    sig: float
    bak: float
    p808: float = math.nan
    num_windows: int = 0


def model_dir() -> Path:
    """Where the ``speechmos`` package keeps the DNSMOS ONNX files (found without importing it)."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the speechmos package is not installed: pip install --no-deps speechmos==0.0.1.1"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"


def clip_windows(clip: np.ndarray) -> np.ndarray:
    """The 9.01 s windows (1 s hop) DNSMOS scores for one 16 kHz clip, shape ``(k, 144160)``.

    A clip shorter than one window is repeated (doubled until long enough), as speechmos does.
    Window ``i`` spans ``int(i * 16000)`` to ``int((i + 9.01) * 16000)``: in floating point that
    end is one sample short for ``i`` = 7…23, 31…, and the reference skips such windows (so a
    30 s clip is scored on 7 of its 21 windows). The same windows are kept here on purpose:
    scores then equal the reference's, whose thresholds (e.g. OpenDialog's 2.8) we reuse.
    """
    audio = np.asarray(clip, dtype=np.float32)
    if audio.size == 0:
        raise ValueError("empty clip")
    while audio.shape[0] < WINDOW_SAMPLES:
        audio = np.concatenate([audio, audio])
    num_hops = int(np.floor(audio.shape[0] / SAMPLE_RATE) - WINDOW_S) + 1
    windows = []
    for i in range(num_hops):
        window = audio[int(i * HOP_SAMPLES) : int((i + WINDOW_S) * HOP_SAMPLES)]
        if window.shape[0] >= WINDOW_SAMPLES:
            windows.append(window[:WINDOW_SAMPLES])
    return np.stack(windows)


def spread(windows: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``windows`` (rows), evenly spaced, first and last kept; 0 = all."""
    if limit <= 0 or windows.shape[0] <= limit:
        return windows
    index = np.unique(np.round(np.linspace(0, windows.shape[0] - 1, limit)).astype(int))
    return windows[index]


def _p808_features(window: np.ndarray) -> np.ndarray:
    """The P.808 model's input for one window: 120-bin log-mel, shape ``(900, 120)``."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=window[:-160], sr=SAMPLE_RATE, n_fft=321, hop_length=160, n_mels=120
    )
    return ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T.astype(np.float32)


class DnsmosScorer:
    """Loads the DNSMOS ONNX models once; scores many clips per call.

    Args:
        p808: also run the P.808 model (costs a mel spectrogram per window).
        num_threads: onnxruntime intra-op threads (0: onnxruntime's default).
        max_batch_windows: most windows per ``run`` call. On CPU a window needs ~110-180 MB
            of onnxruntime working memory and batching does not make a window cheaper
            (bench/bench_dnsmos.py), so small batches are the default.
        max_windows: score at most this many windows of a clip, evenly spread over the
            reference's windows (first and last included); 0 scores them all, as
            ``speechmos`` does. The reference's windows overlap by 8 s, so a few spread ones
            give nearly the same clip mean at a fraction of the cost.

    Example:
        >>> scorer = DnsmosScorer()
        >>> [s.ovrl for s in scorer.score([clip_a, clip_b])]  # doctest: +SKIP
        [3.1, 2.7]
    """

    def __init__(
        self,
        p808: bool = False,
        num_threads: int = 0,
        max_batch_windows: int = 4,
        max_windows: int = 0,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads > 0:
            options.intra_op_num_threads = num_threads
        directory = model_dir()
        providers = ["CPUExecutionProvider"]
        self._p835 = ort.InferenceSession(
            str(directory / "sig_bak_ovr.onnx"), options, providers=providers
        )
        self._p808: object | None = None
        if p808:
            self._p808 = ort.InferenceSession(
                str(directory / "model_v8.onnx"), options, providers=providers
            )
        self.max_batch_windows = max(1, max_batch_windows)
        if max_windows < 0:
            raise ValueError(f"max_windows={max_windows}: expected 0 (all) or more")
        self.max_windows = max_windows

    def score(self, clips: Iterable[np.ndarray]) -> list[DnsmosScore]:
        """DNSMOS of each clip (16 kHz mono float32 in [-1, 1]).

        Clips are taken one at a time (a generator keeps memory flat over a long recording's
        dialogues) and their windows go through the models in batches of exactly
        ``max_batch_windows`` (fixed shapes keep onnxruntime's memory planning reusable).
        """
        pending: list[np.ndarray] = []
        owners: list[int] = []
        rows: list[np.ndarray] = []  # per window: sig, bak, ovrl, p808
        for index, clip in enumerate(clips):
            windows = spread(clip_windows(clip), self.max_windows)
            pending.extend(windows)
            owners.extend([index] * len(windows))
            while len(pending) >= self.max_batch_windows:
                rows.append(self._run(np.stack(pending[: self.max_batch_windows])))
                del pending[: self.max_batch_windows]
        if pending:
            rows.append(self._run(np.stack(pending)))
        if not owners:
            return []
        table, owner = np.concatenate(rows), np.asarray(owners)
        scores = []
        for index in range(int(owner.max()) + 1):
            sig, bak, ovr, p808 = table[owner == index].mean(axis=0)
            scores.append(
                DnsmosScore(
                    ovrl=float(ovr),
                    sig=float(sig),
                    bak=float(bak),
                    p808=float(p808),
                    num_windows=int((owner == index).sum()),
                )
            )
        return scores

    def _run(self, windows: np.ndarray) -> np.ndarray:
        """Calibrated (sig, bak, ovrl, p808) of each window, shape ``(k, 4)``."""
        raw = self._p835.run(None, {"input_1": windows})[0]
        p808 = np.full(windows.shape[0], np.nan)
        if self._p808 is not None:
            feats = np.stack([_p808_features(w) for w in windows])
            p808 = self._p808.run(None, {"input_1": feats})[0][:, 0]
        return np.stack(
            [_POLY_SIG(raw[:, 0]), _POLY_BAK(raw[:, 1]), _POLY_OVR(raw[:, 2]), p808], axis=1
        )
