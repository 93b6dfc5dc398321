"""Vocoders: HiFi-GAN resynthesis of real speech, Griffin-Lim, Vocos plumbing (random weights)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from model.audio.features import FeatureConfig, MelExtractor
from model.audio.vocoder import VocosNet, load_vocoder, vocode_channels

logger = logging.getLogger(__name__)

EXCERPT_S = (7.0, 13.0)  # 6 s of the bundled call with both speakers talking


@pytest.fixture(scope="module")
def speech_22k(sample_wav: Path) -> torch.Tensor:
    import soundfile as sf
    import soxr

    audio, sample_rate = sf.read(sample_wav, dtype="float32")
    assert sample_rate == 16000 and audio.ndim == 1
    excerpt = audio[int(EXCERPT_S[0] * sample_rate) : int(EXCERPT_S[1] * sample_rate)]
    return torch.from_numpy(np.ascontiguousarray(soxr.resample(excerpt, sample_rate, 22050)))


def test_hifigan_resynthesis_of_real_speech(speech_22k: torch.Tensor, figure):
    vocoder = load_vocoder("hifigan")
    assert vocoder.sample_rate == 22050
    assert vocoder.feature_config == FeatureConfig.offline()
    extractor = MelExtractor(vocoder.feature_config)
    mel = extractor(speech_22k)
    wave = vocoder(mel.unsqueeze(0))
    assert wave.shape == (1, vocoder.num_samples(len(mel))) == (1, len(mel) * 256)
    assert wave.abs().max() <= 1.0 and wave.std() > 0.01
    resynthesised = extractor(wave[0])
    l1 = (resynthesised - mel).abs().mean().item()
    logger.info("HiFi-GAN resynthesis log-mel L1 %.3f", l1)
    figure("resynthesis_log_mel_l1", l1, at_most=0.5)
    # a mel of silence gives (near) silence: the network follows its input
    quiet = vocoder(torch.full((1, 40, 80), np.log(1e-5)))
    assert quiet.abs().mean() < 0.1 * wave.abs().mean()


def test_griffinlim_length_and_consistency(speech_22k: torch.Tensor):
    vocoder = load_vocoder("griffinlim")
    extractor = MelExtractor(vocoder.feature_config)
    mel = extractor(speech_22k[: 2 * 22050])
    wave = vocoder(mel)
    assert wave.shape == (1, len(mel) * vocoder.feature_config.hop_length)
    assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0
    l1 = (extractor(wave[0]) - mel).abs().mean().item()
    logger.info("Griffin-Lim log-mel L1 %.3f", l1)
    assert l1 < 1.0
    assert torch.equal(vocoder(mel), wave)  # seeded: deterministic

    upstream = load_vocoder("griffinlim:upstream")
    assert upstream.sample_rate == 24000
    stereo = vocode_channels(upstream, torch.full((2, 12, 200), -4.0))
    assert stereo.shape == (2, 2, 12 * 256)


VOCOS_CONFIG = """\
feature_extractor:
  class_path: vocos.feature_extractors.MelSpectrogramFeatures
  init_args:
    sample_rate: 24000
    n_fft: 1024
    hop_length: 256
    n_mels: 100
    padding: center
backbone:
  class_path: vocos.models.VocosBackbone
  init_args:
    input_channels: 100
    dim: 64
    intermediate_dim: 96
    num_layers: 2
head:
  class_path: vocos.heads.ISTFTHead
  init_args:
    dim: 64
    n_fft: 1024
    hop_length: 256
    padding: center
"""


def test_vocos_from_local_folder_random_weights(tmp_path: Path):
    net = VocosNet(
        {"input_channels": 100, "dim": 64, "intermediate_dim": 96, "num_layers": 2},
        {"dim": 64, "n_fft": 1024, "hop_length": 256, "padding": "center"},
    )
    state = net.state_dict()
    # the checkpoint names of charactr/vocos-mel-24khz, plus its feature-extractor buffers
    for name in (
        "backbone.embed.weight",
        "backbone.convnext.1.gamma",
        "backbone.convnext.0.pwconv2.bias",
        "backbone.final_layer_norm.weight",
        "head.out.weight",
        "head.istft.window",
    ):
        assert name in state
    state["feature_extractor.mel_spec.spectrogram.window"] = torch.hann_window(1024)
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.yaml").write_text(VOCOS_CONFIG)

    vocoder = load_vocoder(str(tmp_path))
    assert vocoder.feature_config == FeatureConfig.upstream()
    mel = torch.randn(2, 50, 100) - 3
    wave = vocoder(mel)
    assert wave.shape == (2, vocoder.num_samples(50)) == (2, 49 * 256)
    assert torch.isfinite(wave).all()
    with torch.no_grad():
        assert torch.allclose(wave, net(mel.transpose(1, 2)), atol=1e-6)


def test_vocos_hub_failure_is_explained(monkeypatch):
    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(RuntimeError, match="local"):
        load_vocoder("charactr/vocos-mel-24khz")


def test_unknown_vocoder_and_bad_mel():
    with pytest.raises(ValueError):
        load_vocoder("wavenet")
    with pytest.raises(ValueError):
        load_vocoder("griffinlim")(torch.zeros(1, 10, 100))
