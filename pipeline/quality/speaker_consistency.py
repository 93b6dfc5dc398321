"""Speaker-label consistency inside a dialogue, from GE2E d-vectors (Resemblyzer 0.1.4 weights).

Diarization labels drift: a turn labelled S1 may really be S2 (Emilia issue #467 is the classic
case). For each turn long enough to embed, the margin is
``cos(turn, own voice) - cos(turn, other voice)``; a mislabelled turn has a negative margin. The
voices are the file-wide speaker embeddings when the diarizer supplies GE2E ones, else the mean of
the speaker's other turns in the segment (leave-one-out). The dialogue's score is the smallest
margin. GE2E separates voices well on clean wideband speech and poorly on telephone audio (see
the README), so the default threshold is permissive.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 256
SAMPLE_RATE = 16000


class Ge2eEmbedder:
    """The Resemblyzer GE2E speaker encoder, run on many clips in batched forward passes.

    Args:
        device: torch device for the LSTM (``"cpu"`` by default).
        num_threads: torch intra-op threads for this process (0 leaves torch's setting).
        batch_size: partials per LSTM call. The LSTM's activations cost ~0.5 MB a partial, so
            an unbounded batch over an hour-long recording's turns took gigabytes.
    """

    def __init__(self, device: str = "cpu", num_threads: int = 0, batch_size: int = 64):
        import torch
        from resemblyzer import VoiceEncoder

        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self._torch = torch
        self._encoder = VoiceEncoder(device=device, verbose=False)
        self._encoder.eval()
        self.batch_size = max(1, batch_size)

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised d-vectors of 16 kHz mono clips, shape ``(len(clips), 256)``.

        Each clip is volume-normalised as Resemblyzer's ``preprocess_wav`` does (its silence
        trimming is skipped: the clips are diarized speech), cut into 1.6 s partials at 1.3
        partials per second, and the partials of all clips go through the LSTM in batches; a clip's
        embedding is the normalised mean of its partials' (as ``embed_utterance``).
        """
        from resemblyzer import audio as ge2e_audio
        from resemblyzer.voice_encoder import VoiceEncoder

        if not clips:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        mels, owner = [], []
        for i, clip in enumerate(clips):
            wav = ge2e_audio.normalize_volume(np.asarray(clip, dtype=np.float32), -30,
                                              increase_only=True)
            wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), 1.3, 0.75)
            if wav_slices[-1].stop >= len(wav):
                wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
            mel = ge2e_audio.wav_to_mel_spectrogram(wav)
            for s in mel_slices:
                mels.append(mel[s])
                owner.append(i)
        with self._torch.no_grad():
            partials = np.concatenate([
                self._encoder(self._torch.from_numpy(np.stack(mels[i:i + self.batch_size])))
                .cpu().numpy()
                for i in range(0, len(mels), self.batch_size)])
        owner_arr = np.asarray(owner)
        out = np.zeros((len(clips), partials.shape[1]), dtype=np.float32)
        for i in range(len(clips)):
            mean = partials[owner_arr == i].mean(axis=0)
            out[i] = mean / max(np.linalg.norm(mean), 1e-12)
        return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def speaker_margin(embeddings: np.ndarray, roles: Sequence[str],
                   references: Mapping[str, np.ndarray] | None = None) -> float:
    """The smallest ``cos(turn, own voice) - cos(turn, other voice)`` over the turns.

    Args:
        embeddings: one d-vector per turn, shape ``(turns, dim)``.
        roles: the role (``"S1"``/``"S2"``) of each turn.
        references: a voice embedding per role (file-wide); without it, a role's voice is the
            mean of its other turns and the other role's voice the mean of all its turns.

    Returns:
        The margin, or NaN when no turn can be compared (e.g. one turn per role and no
        references).
    """
    roles = list(roles)
    if len(roles) != len(embeddings) or len(set(roles)) < 2:
        return math.nan
    emb = np.stack([_unit(e) for e in embeddings])
    margins = []
    for i, role in enumerate(roles):
        other_role = next(r for r in set(roles) if r != role)
        if references is not None:
            own, other = _unit(references[role]), _unit(references[other_role])
        else:
            mine = [j for j, r in enumerate(roles) if r == role and j != i]
            if not mine:
                continue
            own = _unit(emb[mine].mean(axis=0))
            other = _unit(emb[[j for j, r in enumerate(roles) if r == other_role]].mean(axis=0))
        margins.append(float(emb[i] @ own - emb[i] @ other))
    return min(margins) if margins else math.nan
