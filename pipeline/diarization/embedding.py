"""Speaker embeddings of speech pieces: GE2E (Resemblyzer's own weights) or any ONNX model by path.

Both embedders take a list of 16 kHz mono float32 waveforms and return one L2-normalised row per
waveform, shape ``(N, D)``. GE2E (``resemblyzer==0.1.4``, 256-d LSTM d-vector, loaded from
``resemblyzer/pretrained.pt``) is reliable on clean wide-band speech and weak on telephone audio.
The ONNX embedder is for WeSpeaker-style exports (e.g. ResNet34): input either 80-d Kaldi fbank
``(1, T, 80)`` or a raw waveform ``(1, samples)``, output ``(1, D)``; no such weights ship offline,
so it is tested with a random-weight export only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
GE2E = "ge2e"


class Embedder(Protocol):
    """What the diarizer needs from a speaker-embedding model."""

    name: str
    dimension: int

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """One L2-normalised embedding per waveform, shape ``(N, dimension)``."""


def _normalise(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


class Ge2eEmbedder:
    """GE2E d-vectors from Resemblyzer's bundled weights, batched over 1.6 s partials.

    Args:
        partials_per_s: rate of the 1.6 s partial windows. Resemblyzer uses 1.3 (overlapping);
            0.625 (back to back) halves the LSTM time and left DER unchanged on our test sets.
        batch_size: partials per LSTM call.
        num_threads: torch intra-op threads (process-wide; ``None`` leaves torch's setting).
    """

    name = GE2E
    dimension = 256
    _PARTIAL_FRAMES = 160  # 1.6 s of 10 ms mel frames
    _HOP = 160  # samples per mel frame

    def __init__(
        self, partials_per_s: float = 0.625, batch_size: int = 64, num_threads: int | None = None
    ):
        import torch
        from resemblyzer import VoiceEncoder

        if num_threads:
            torch.set_num_threads(num_threads)
        self._torch = torch
        self.encoder = VoiceEncoder(device="cpu", verbose=False)
        self.encoder.eval()
        self.step_frames = max(1, round(100 / partials_per_s))
        self.batch_size = batch_size

    def _partials(self, waveform: np.ndarray) -> np.ndarray:
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

        wav = normalize_volume(np.asarray(waveform, dtype=np.float32), -30, increase_only=True)
        min_samples = self._PARTIAL_FRAMES * self._HOP
        if len(wav) < min_samples:
            wav = np.pad(wav, (0, min_samples - len(wav)))
        mel = wav_to_mel_spectrogram(wav)  # (frames, 40)
        last = max(0, len(mel) - self._PARTIAL_FRAMES)
        starts = list(range(0, last + 1, self.step_frames))
        if last - starts[-1] > self.step_frames // 2:  # cover the tail
            starts.append(last)
        return np.stack([mel[s : s + self._PARTIAL_FRAMES] for s in starts])

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """One L2-normalised 256-d embedding per waveform (mean of its partials' embeddings)."""
        if not waveforms:
            return np.zeros((0, self.dimension), dtype=np.float32)
        partials = [self._partials(w) for w in waveforms]
        owners = np.repeat(np.arange(len(partials)), [len(p) for p in partials])
        stacked = np.concatenate(partials)
        outputs = []
        with self._torch.inference_mode():
            for first in range(0, len(stacked), self.batch_size):
                batch = self._torch.from_numpy(stacked[first : first + self.batch_size])
                outputs.append(self.encoder(batch).numpy())
        partial_embeddings = np.concatenate(outputs)
        sums = np.zeros((len(waveforms), self.dimension), dtype=np.float64)
        np.add.at(sums, owners, partial_embeddings)
        return _normalise(sums).astype(np.float32)


class OnnxEmbedder:
    """A speaker-embedding ONNX model given by path (WeSpeaker-style export).

    The input layout is read from the model: rank 3 = Kaldi fbank ``(batch, frames, mel_bins)``
    with per-utterance mean normalisation (WeSpeaker's recipe), rank 2 = raw waveform.

    Args:
        path: the ``.onnx`` file.
        num_threads: onnxruntime intra-op threads.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the model's input is neither rank 2 nor rank 3.
    """

    def __init__(self, path: str, num_threads: int = 1):
        import os

        import onnxruntime as ort

        if not os.path.exists(path):
            raise FileNotFoundError(
                f"embedding model {path!r} not found (use 'ge2e' for the bundled GE2E model)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.name = os.path.basename(path)
        spec = self.session.get_inputs()[0]
        self.input_name = spec.name
        self.rank = len(spec.shape)
        if self.rank not in (2, 3):
            raise ValueError(
                f"{path}: input {spec.name} has shape {spec.shape}; expected "
                "(batch, frames, mel_bins) fbank or (batch, samples) waveform"
            )
        self.mel_bins = (
            int(spec.shape[2]) if self.rank == 3 and isinstance(spec.shape[2], int) else 80
        )
        out_shape = self.session.get_outputs()[0].shape
        self.dimension = int(out_shape[-1]) if isinstance(out_shape[-1], int) else 0

    def _features(self, waveform: np.ndarray) -> np.ndarray:
        if self.rank == 2:
            return np.asarray(waveform, dtype=np.float32)[None, :]
        import torch
        from torchaudio.compliance import kaldi

        wav = torch.from_numpy(np.asarray(waveform, dtype=np.float32))[None, :] * (1 << 15)
        feats = kaldi.fbank(
            wav,
            num_mel_bins=self.mel_bins,
            frame_length=25,
            frame_shift=10,
            dither=0.0,
            energy_floor=0.0,
            sample_frequency=SAMPLE_RATE,
        )
        feats = feats - feats.mean(dim=0, keepdim=True)
        return feats.numpy()[None, :, :]

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """One L2-normalised embedding per waveform (one model call each: lengths differ)."""
        rows = []
        for waveform in waveforms:
            if len(waveform) < 400:  # under one 25 ms fbank frame
                waveform = np.pad(waveform, (0, 400 - len(waveform)))
            output = self.session.run(None, {self.input_name: self._features(waveform)})[0]
            rows.append(np.asarray(output, dtype=np.float32).reshape(-1))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.dimension = len(rows[0])
        return _normalise(np.stack(rows))


def load_embedder(spec: str, num_threads: int = 1, runtime: str = "onnx") -> Embedder:
    """``"campplus"`` (the default), ``"ecapa"``, ``"ge2e"`` or a path to an ONNX model.

    ``runtime`` (``"onnx"`` or ``"torch"``) is how CAM++ runs; the other models have one way."""
    if spec.lower() == "campplus":
        from pipeline.diarization.campplus import CamPlusEmbedder

        return CamPlusEmbedder(num_threads=num_threads, runtime=runtime)
    if spec.lower() == "ecapa":
        from pipeline.diarization.ecapa import EcapaEmbedder

        return EcapaEmbedder(num_threads=num_threads)
    if spec.lower() == GE2E:
        return Ge2eEmbedder(num_threads=num_threads)
    return OnnxEmbedder(spec, num_threads=num_threads)


def embedder_weights(spec: str) -> str:
    """Where the weights of an embedding model spec live (a file, a directory or the spec)."""
    import importlib.util
    import os

    name = spec.lower()
    if name == "campplus":
        from pipeline.diarization.campplus import bundled_weights

        return str(bundled_weights())
    if name == "ecapa":
        from pipeline.diarization.ecapa import bundled_directory

        return str(bundled_directory() / "embedding_model.ckpt")
    if name == GE2E:
        found = importlib.util.find_spec("resemblyzer")
        return os.path.join(os.path.dirname(found.origin), "pretrained.pt") if found else spec
    return spec
