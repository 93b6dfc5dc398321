"""Log-mel features: upstream ZipVoice parity (24 kHz / 100 mels) and HiFi-GAN's (22.05 kHz / 80)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from model.audio.features import FeatureConfig, MelExtractor, mel_filterbank, num_frames
from tests.upstream import upstream_fixture_dir

FIXTURE = upstream_fixture_dir() / "mel_vocosfbank.pt"
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def upstream_mel() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.mark.parametrize(
    "wave_key, feature_key", [("waveform", "features"), ("stereo_waveform", "stereo_features")]
)
def test_upstream_features_match_zipvoice(upstream_mel: dict, wave_key: str, feature_key: str):
    config = FeatureConfig.upstream()
    assert upstream_mel["sampling_rate"] == config.sample_rate
    features = MelExtractor(config)(upstream_mel[wave_key])
    expected = upstream_mel[feature_key]
    assert features.shape == expected.shape
    error = (features - expected).abs().max().item()
    logger.info("upstream %s max abs error %.3g", wave_key, error)
    assert error < 1e-4


def test_stereo_is_channels_side_by_side(upstream_mel: dict):
    extractor = MelExtractor(FeatureConfig.offline())
    stereo = torch.stack([upstream_mel["waveform"], 0.5 * upstream_mel["waveform"].flip(0)])
    both = extractor(stereo)
    assert both.shape[1] == 160
    assert torch.equal(both[:, :80], extractor(stereo[0]))
    assert torch.equal(both[:, 80:], extractor(stereo[1]))


@pytest.mark.parametrize("preset", ["upstream", "offline"])
def test_frame_count_follows_lhotse(preset: str):
    from lhotse.utils import compute_num_frames

    config = FeatureConfig.preset(preset)
    extractor = MelExtractor(config)
    generator = torch.Generator().manual_seed(0)
    for num_samples in (600, 1000, 1023, 1024, 1151, 1152, 5000, 22050, 24000):
        expected = compute_num_frames(
            num_samples / config.sample_rate,
            config.hop_length / config.sample_rate,
            config.sample_rate,
        )
        assert (
            extractor.num_frames(num_samples)
            == num_frames(num_samples, config.hop_length)
            == expected
        )
        wave = 0.1 * torch.randn(num_samples, generator=generator)
        features = extractor(wave)
        assert features.shape == (expected, config.n_mels)
        assert torch.isfinite(features).all()


def test_offline_features_match_hifigan_recipe():
    """Independent numpy/librosa computation of HiFi-GAN's meldataset.mel_spectrogram recipe."""
    import librosa

    config = FeatureConfig.offline()
    rng = np.random.default_rng(0)
    t = np.arange(2 * config.sample_rate) / config.sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (
        1 + np.sin(2 * np.pi * 3 * t)
    ) + 0.01 * rng.standard_normal(t.size)
    wave = wave.astype(np.float32)
    pad = (config.n_fft - config.hop_length) // 2
    padded = np.pad(wave, (pad, pad), mode="reflect")
    spec = librosa.stft(
        padded, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False
    )
    magnitude = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    filters = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    expected = np.log(np.maximum(filters @ magnitude, 1e-5)).T  # (frames, 80)
    features = MelExtractor(config)(torch.from_numpy(wave)).numpy()
    assert features.shape[1] == 80
    frames = min(len(features), len(expected))
    assert abs(len(features) - len(expected)) <= 1
    assert np.abs(features[:frames] - expected[:frames]).max() < 1e-3


def test_filterbanks_match_librosa():
    import librosa

    slaney = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    assert np.abs(mel_filterbank(FeatureConfig.offline()).numpy() - slaney.T).max() < 1e-7
    htk = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=100, htk=True, norm=None)
    assert np.abs(mel_filterbank(FeatureConfig.upstream()).numpy() - htk.T).max() < 1e-4


def test_config_json_round_trip_and_validation():
    for preset in ("upstream", "offline"):
        config = FeatureConfig.preset(preset)
        assert FeatureConfig.from_json(config.to_json()) == config
        assert config.feat_scale == 0.1 and config.hop_length == 256
    assert FeatureConfig.upstream().frame_rate_hz == 93.75
    with pytest.raises(ValueError):
        FeatureConfig.preset("bogus")
    with pytest.raises(ValueError):
        dataclasses.replace(FeatureConfig.upstream(), mel_scale="bark")
    with pytest.raises(ValueError):
        FeatureConfig.from_dict({**FeatureConfig.upstream().to_dict(), "extra": 1})


def test_bad_input_shape_raises():
    with pytest.raises(ValueError):
        MelExtractor(FeatureConfig.upstream())(torch.zeros(1, 2, 3000))
