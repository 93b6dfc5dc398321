"""CAM++ speaker embeddings: the ONNX export agrees with the torch module, and both tell real
voices apart (vendored voices of the dev split, not the bundled sample's)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.pipeline.voice_conversations import load_voice

VOICES = ("allison", "june", "michael", "carlo")  # two women, two men, telephone prompts


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    out = {}
    for voice in VOICES:
        long = [c.audio for c in load_voice(voice).clips if c.duration >= 1.0]
        out[voice] = long[:4]
    return out


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    import os

    from pipeline.diarization.campplus import CamPlusEmbedder

    previous = os.environ.get("OPENDIALOG_CACHE")
    os.environ["OPENDIALOG_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # a fresh export
    try:
        onnx = CamPlusEmbedder(num_threads=1, runtime="onnx")
    finally:
        if previous is None:
            os.environ.pop("OPENDIALOG_CACHE")
        else:
            os.environ["OPENDIALOG_CACHE"] = previous
    return {"onnx": onnx, "torch": CamPlusEmbedder(num_threads=1, runtime="torch")}


def test_onnx_export_matches_the_torch_module(embedders, clips):
    assert embedders["onnx"].runtime == "onnx", "the export fell back to torch"
    waves = [w for voice in VOICES for w in clips[voice]] + [np.zeros(500, np.float32)]
    onnx, torch = embedders["onnx"].embed(waves), embedders["torch"].embed(waves)
    assert onnx.shape == torch.shape == (len(waves), 192)
    # float32 kernels of two runtimes: measured max |diff| 1.4e-5 on unit vectors
    assert np.abs(onnx - torch).max() < 1e-3
    assert np.min(np.sum(onnx * torch, axis=1)) > 0.9999


def test_embeddings_separate_real_voices(embedders, clips):
    """Every clip is closer to the other clips of its voice than to any other voice's."""
    rows, owner = [], []
    for voice in VOICES:
        rows.append(embedders["onnx"].embed(clips[voice]))
        owner += [voice] * len(clips[voice])
    emb = np.concatenate(rows)
    sims = emb @ emb.T
    owner = np.array(owner)
    for i in range(len(emb)):
        same = sims[i, (owner == owner[i]) & (np.arange(len(emb)) != i)]
        other = sims[i, owner != owner[i]]
        assert same.mean() > other.max(), (owner[i], same.mean(), other.max())


def test_batch_does_not_change_a_row(embedders, clips):
    """A waveform's embedding is the same alone and among others of other lengths."""
    embedder = embedders["onnx"]
    waves = clips["allison"] + clips["carlo"]
    together = embedder.embed(waves)
    alone = np.concatenate([embedder.embed([w]) for w in waves])
    assert np.abs(together - alone).max() < 1e-5
