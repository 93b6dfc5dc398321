"""Long test conversations built from the bundled real sample (for the scale benchmarks).

The 30 s two-speaker telephone call is repeated with its speech slightly re-timed and re-levelled
in each copy, so a 20-minute file keeps real voices, real turns and real silences.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE = Path(__file__).resolve().parents[1] / "pipeline" / "assets" / "sample.wav"


def make_conversation(minutes: float, path: Path, seed: int = 0) -> Path:
    """Write a ``minutes``-long 16 kHz conversation to ``path`` (streamed, bounded memory)."""
    audio, rate = sf.read(SAMPLE, dtype="float32")
    speech = audio[int(6.5 * rate) :]  # the sample's speech starts at 6.7 s
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * rate)
    written = 0
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        while written < total:
            gap = np.zeros(int(rng.uniform(0.3, 1.5) * rate), np.float32)
            piece = np.concatenate([gap, speech * rng.uniform(0.7, 1.0)])[: total - written]
            out.write(piece)
            written += len(piece)
    return path
