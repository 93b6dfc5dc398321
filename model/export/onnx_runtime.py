"""Run an exported dialogue TTS model (``python -m model.onnx_export``) on onnxruntime.

:class:`OnnxNetwork` stands in for :class:`model.network.zipvoice.DialogTTSNetwork` wherever the
sampler and the inference code use one: ``forward_text_train``,
``forward_text_inference_gt_duration``, ``forward_text_inference_ratio_duration``,
``predict_total_frames`` and ``forward_fm_decoder`` take and return torch tensors, but the
text encoder and the vector-field estimator run on onnxruntime. So
``model.network.flow.sample``/``sample_with_prompt`` (Euler, CFG, or the distilled one-pass step)
work unchanged; feature extraction and the vocoder stay in torch.

>>> loaded = load_onnx_model("exp/onnx")                     # doctest: +SKIP
>>> x1 = sample_with_prompt(loaded.network, tokens=..., ...,  # doctest: +SKIP
...                         num_steps=loaded.defaults.num_step,
...                         guidance_scale=loaded.defaults.guidance_scale,
...                         distill=loaded.guidance_input)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.network.config import NetworkConfig
from model.network.zipvoice import PromptedTextMixin, make_pad_mask, pad_token_lists

logger = logging.getLogger(__name__)


def _flat(value: Tensor | float, batch: int) -> np.ndarray:
    """A scalar, ``(B,)`` or ``(B, 1, 1)`` value as a ``(B,)`` float32 array."""
    array = torch.as_tensor(value).detach().to("cpu", torch.float32).reshape(-1)
    if array.numel() == 1:
        array = array.repeat(batch)
    if array.numel() != batch:
        raise ValueError(f"expected a scalar or {batch} values, got {array.numel()}")
    return array.numpy()


class OnnxNetwork(PromptedTextMixin):
    """The exported text path and decoder behind ``DialogTTSNetwork``'s inference API.

    ``predict_total_frames`` and the ``forward_text_inference_*`` paths come from
    :class:`model.network.zipvoice.PromptedTextMixin`, on top of :meth:`forward_text_train`.

    Args:
        onnx_dir: directory written by :func:`model.export.onnx_export.export_onnx`.
        int8: use the ``*.int8.onnx`` graphs.
        num_threads: onnxruntime intra-op threads (None: onnxruntime's default).
        providers: onnxruntime execution providers (default CPU).
    """

    def __init__(
        self,
        onnx_dir: str | Path,
        *,
        int8: bool = False,
        num_threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort

        from model.export.onnx_export import FORMAT_VERSION, META_FILE

        self.directory = Path(onnx_dir)
        meta_path = self.directory / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} does not exist (run python -m model.onnx_export)")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: format_version {self.meta.get('format_version')}, "
                f"expected {FORMAT_VERSION}"
            )
        self.config = NetworkConfig.from_json(self.directory / "network.json")
        self.feat_dim = self.config.feat_dim
        self.pad_id = self.config.pad_id
        self.guidance_input = bool(self.meta["guidance_input"])
        self.decoder_width = int(self.meta["decoder_width"])
        self.int8 = int8
        files = self.meta["files"]
        suffix = "_int8" if int8 else ""
        missing = [n for n in ("text_encoder", "fm_decoder") if n + suffix not in files]
        if missing:
            raise FileNotFoundError(
                f"{self.directory}: no {'int8 ' if int8 else ''}graphs for "
                f"{missing} (export with --int8)"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        self.text_session = ort.InferenceSession(
            str(self.directory / files["text_encoder" + suffix]), options, providers=list(providers)
        )
        self.decoder_session = ort.InferenceSession(
            str(self.directory / files["fm_decoder" + suffix]), options, providers=list(providers)
        )
        self.decoder_inputs = tuple(i.name for i in self.decoder_session.get_inputs())

    # ------------------------------------------------------------ torch-module look-alikes

    @property
    def device(self) -> torch.device:
        """Inputs and outputs are CPU tensors."""
        return torch.device("cpu")

    def num_parameters(self) -> int:
        """Parameters of the exported torch network (from ``onnx.json``)."""
        return int(self.meta.get("num_parameters", 0))

    @property
    def takes_guidance_input(self) -> bool:
        """Whether the decoder graph takes the guidance scale (an exported student)."""
        return self.guidance_input

    def eval(self) -> OnnxNetwork:
        """No-op (for code that calls ``network.eval()``)."""
        return self

    def to(self, *args: Any, **kwargs: Any) -> OnnxNetwork:
        """No-op: onnxruntime sessions stay where they were created."""
        return self

    # ------------------------------------------------------------ text path

    def text_condition(
        self, tokens: np.ndarray, tokens_lens: np.ndarray, features_lens: np.ndarray
    ) -> np.ndarray:
        """Runs ``text_encoder.onnx`` on int64 arrays; returns ``(B, T, C)`` float32."""
        return self.text_session.run(
            None,
            {
                "tokens": np.ascontiguousarray(tokens, dtype=np.int64),
                "tokens_lens": np.ascontiguousarray(tokens_lens, dtype=np.int64),
                "features_lens": np.ascontiguousarray(features_lens, dtype=np.int64),
            },
        )[0]

    def forward_text_train(
        self, tokens: Sequence[Sequence[int]], features_lens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """As ``DialogTTSNetwork.forward_text_train``: ``(text_condition, padding_mask)``."""
        padded = pad_token_lists(tokens, self.pad_id).numpy()
        tokens_lens = np.array([len(seq) for seq in tokens], dtype=np.int64)
        lens = torch.as_tensor(features_lens).to("cpu", torch.int64)
        condition = torch.from_numpy(self.text_condition(padded, tokens_lens, lens.numpy()))
        return condition, make_pad_mask(lens, condition.size(1))

    # ------------------------------------------------------------ decoder

    def forward_fm_decoder(
        self,
        t: Tensor | float,
        xt: Tensor,
        text_condition: Tensor,
        speech_condition: Tensor,
        padding_mask: Tensor | None = None,
        guidance_scale: Tensor | float | None = None,
    ) -> Tensor:
        """As ``DialogTTSNetwork.forward_fm_decoder``, on onnxruntime.

        Raises:
            ValueError: a guidance scale for a graph without that input, none for one with
                it, or a feature width the graph was not exported for.
        """
        batch, frames, width = xt.shape
        if width != self.decoder_width:
            raise ValueError(f"the exported decoder takes width {self.decoder_width}, got {width}")
        if padding_mask is None:
            padding_mask = torch.zeros(batch, frames, dtype=torch.bool)
        feeds = {
            "t": _flat(t, batch),
            "xt": xt.detach().to("cpu", torch.float32).numpy(),
            "text_condition": text_condition.detach().to("cpu", torch.float32).numpy(),
            "speech_condition": speech_condition.detach().to("cpu", torch.float32).numpy(),
            "padding_mask": padding_mask.detach().to("cpu", torch.bool).numpy(),
        }
        if self.guidance_input:
            if guidance_scale is None:
                raise ValueError("this distilled graph needs guidance_scale")
            feeds["guidance_scale"] = _flat(guidance_scale, batch)
        elif guidance_scale is not None:
            raise ValueError("guidance_scale is an input of distilled graphs only")
        velocity = self.decoder_session.run(None, feeds)[0]
        return torch.from_numpy(velocity).to(xt.dtype)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("OnnxNetwork has no training forward; use forward_fm_decoder")


@dataclass(frozen=True)
class LoadedOnnxModel:
    """An exported model ready for sampling (mirrors ``model.network.student.LoadedModel``).

    Attributes:
        network: the onnxruntime-backed network.
        config: its configuration.
        tokens: token table (token -> id).
        directory: the ONNX directory.
        defaults: sampling defaults (``inference.json``, else upstream's per variant).
    """

    network: OnnxNetwork
    config: NetworkConfig
    tokens: dict[str, int]
    directory: Path
    defaults: Any  # model.inference.defaults.InferenceDefaults

    @property
    def guidance_input(self) -> bool:
        """Whether sampling passes w to the network (``flow.sample(..., distill=True)``)."""
        return self.network.guidance_input


def load_onnx_model(
    onnx_dir: str | Path, *, int8: bool = False, num_threads: int | None = None
) -> LoadedOnnxModel:
    """Opens an ONNX directory with its token table and sampling defaults."""
    from model.inference.defaults import inference_defaults
    from model.network.checkpoint import read_token_table

    network = OnnxNetwork(onnx_dir, int8=int8, num_threads=num_threads)
    directory = Path(onnx_dir)
    defaults = inference_defaults(directory, network.config.variant)
    tokens = read_token_table(directory / "tokens.txt")
    return LoadedOnnxModel(network, network.config, tokens, directory, defaults)


def is_onnx_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds an export of :mod:`model.export.onnx_export` (``onnx.json``)."""
    from model.export.onnx_export import META_FILE

    return (Path(directory) / META_FILE).is_file()


def load_onnx_network(
    directory: str | Path,
    device: str = "cpu",
    *,
    int8: bool = False,
    num_threads: int | None = None,
) -> OnnxNetwork:
    """The network of an ONNX directory, shaped like ``model.inference.synthesis.load_network``'s.

    Args:
        directory: the ONNX directory.
        device: only ``"cpu"`` (or ``"auto"``) is served; onnxruntime runs on the CPU here.
        int8: use the int8 graphs.
        num_threads: onnxruntime intra-op threads.

    Raises:
        ValueError: another device.
    """
    if str(device) not in ("cpu", "auto"):
        raise ValueError(f"ONNX models run on the CPU here, not {device!r}")
    return OnnxNetwork(directory, int8=int8, num_threads=num_threads)
