"""Export a dialogue TTS checkpoint (teacher or distilled student) to ONNX.

Usage example::

    python -m model.onnx_export --model-dir exp/dialog_distill --onnx-dir exp/onnx --int8
    python -m model.infer --checkpoint exp/onnx --onnx-int8 --device cpu ...

Two graphs, both with dynamic batch and length axes:

* ``text_encoder.onnx``: ``tokens (B, S) int64`` (prompt + target ids, each row followed
  by at least one pad id), ``tokens_lens (B,) int64`` (ids before the pad),
  ``features_lens (B,) int64`` (total frames, prompt + target) -> ``text_condition
  (B, T, C) float32`` with ``T = max(features_lens)``: embedding, text encoder,
  speaker-turn embedding and average upsampling, as ``DialogTTSNetwork.forward_text_train``.
* ``fm_decoder.onnx`` (the vector-field estimator): ``t (B,)``, ``xt (B, T, F)``,
  ``text_condition (B, T, C)``, ``speech_condition (B, T, F)``, ``padding_mask (B, T) bool``
  and, for a distilled network, ``guidance_scale (B,)`` -> ``velocity (B, T, F)``. The
  stereo network is exported at its stereo width (F = 2C).

``--int8`` adds ``*.int8.onnx`` copies with dynamic int8 weight quantisation
(``onnxruntime.quantization.quantize_dynamic``). ``onnx.json`` describes the export; the
checkpoint's ``network.json``, ``tokens.txt``, ``features.json`` and ``inference.json`` are
copied beside it, so the directory is all :mod:`model.export.onnx_runtime` needs.

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``,
opset 17). During the export the Zipformer's relative-position shift
(``model.network.zipformer.attention.relative_to_absolute``, an ``as_strided`` view with a
length-dependent offset that ONNX cannot express) is swapped for an equivalent gather
(:func:`relative_to_absolute_gather`, identical values).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from core.options import opt
from model.export.command import export_parser, run_export

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FILE = "onnx.json"
TEXT_ENCODER_FILE = "text_encoder.onnx"
FM_DECODER_FILE = "fm_decoder.onnx"
INT8_SUFFIX = ".int8.onnx"
OPSET = 17
EXPORTER = "torchscript (torch.onnx.export dynamo=False)"
COPIED_FILES = ("network.json", "tokens.txt", "features.json", "inference.json")
TEXT_INPUTS = ("tokens", "tokens_lens", "features_lens")
DECODER_INPUTS = ("t", "xt", "text_condition", "speech_condition", "padding_mask")


def int8_name(name: str) -> str:
    """``fm_decoder.onnx`` -> ``fm_decoder.int8.onnx``."""
    return name[: -len(".onnx")] + INT8_SUFFIX


def relative_to_absolute_gather(pos_scores: Tensor) -> Tensor:
    """Same values as ``model.network.zipformer.attention.relative_to_absolute``, by a gather.

    Args:
        pos_scores: ``(H, B, T, 2T-1)`` scores over offsets ``-(T-1) .. T-1``.

    Returns:
        ``(H, B, T, T)``; entry ``[h, b, i, j]`` is the score of offset ``j - i``.
    """
    heads, batch, seq_len, _ = pos_scores.shape
    rows = torch.arange(seq_len, device=pos_scores.device)
    index = rows.unsqueeze(0) - rows.unsqueeze(1) + (seq_len - 1)
    return torch.gather(pos_scores, 3, index.expand(heads, batch, seq_len, seq_len))


@contextlib.contextmanager
def traceable_attention() -> Iterator[None]:
    """Swaps the Zipformer's strided relative shift for the gather while exporting."""
    from model.network.zipformer import attention

    original = attention.relative_to_absolute
    attention.relative_to_absolute = relative_to_absolute_gather
    try:
        yield
    finally:
        attention.relative_to_absolute = original


# ------------------------------------------------------------------------------ wrappers


class TextConditionGraph(nn.Module):
    """``DialogTTSNetwork.forward_text_train`` on padded tensors, in traceable ops.

    Args:
        network: the network whose text path is exported.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        config = network.config
        self.pad_id = config.pad_id
        self.spk_a_id = config.spk_a_id
        self.spk_b_id = config.spk_b_id
        self.turn_embedding = config.turn_embedding
        self.has_turns = getattr(network, "spk_embed", None) is not None

    def turn_rows(self, tokens: Tensor) -> Tensor:
        """``DialogTTSNetwork.turn_rows`` without ``cummax`` (no ONNX op): the last tag
        position at or before each token is a max over a lower-triangular mask."""
        from model.network.zipvoice import TAG_ROWS, UNTAGGED_ROW

        is_a = tokens == self.spk_a_id
        is_b = tokens == self.spk_b_id
        if self.turn_embedding == "parity":
            rows = torch.cumsum((is_a | is_b).to(torch.int64), dim=1) % 2
        else:
            minus_one = torch.full_like(tokens, -1)
            tag_row = torch.where(is_a, torch.full_like(tokens, TAG_ROWS["spk_a"]), minus_one)
            tag_row = torch.where(is_b, torch.full_like(tokens, TAG_ROWS["spk_b"]), tag_row)
            positions = torch.arange(tokens.size(1), device=tokens.device)
            tag_pos = torch.where(tag_row >= 0, positions.unsqueeze(0), minus_one)  # (B, S)
            before = positions.unsqueeze(1) >= positions.unsqueeze(0)  # (S, S): j <= i
            candidates = torch.where(
                before.unsqueeze(0), tag_pos.unsqueeze(1), torch.full_like(tag_pos, -1).unsqueeze(1)
            )
            last_tag = candidates.max(dim=2).values  # (B, S)
            rows = torch.where(
                last_tag >= 0,
                torch.gather(tag_row, 1, last_tag.clamp(min=0)),
                torch.full_like(tag_row, UNTAGGED_ROW),
            )
        return torch.where(tokens == self.pad_id, torch.full_like(rows, -1), rows)

    def forward(self, tokens: Tensor, tokens_lens: Tensor, features_lens: Tensor) -> Tensor:
        net = self.network
        positions = torch.arange(tokens.size(1), device=tokens.device)
        token_padding = positions.unsqueeze(0) >= tokens_lens.unsqueeze(1)
        embed = net.text_encoder(x=net.embed(tokens), t=None, padding_mask=token_padding)
        if self.has_turns:
            rows = self.turn_rows(tokens)
            turn = net.spk_embed(rows.clamp(min=0)) * (rows >= 0).unsqueeze(-1).to(embed.dtype)
            embed = embed + turn
        num_frames = features_lens.max()
        frames = torch.arange(num_frames, device=tokens.device).unsqueeze(0)  # (1, T)
        per_token = torch.div(features_lens, tokens_lens, rounding_mode="floor")
        covered = frames < (per_token * tokens_lens).unsqueeze(1)
        index = torch.div(frames, per_token.clamp(min=1).unsqueeze(1), rounding_mode="floor")
        index = torch.where(covered, index, tokens_lens.unsqueeze(1))  # (B, T)
        gather_index = index.unsqueeze(-1).expand(-1, -1, embed.size(2))
        return torch.gather(embed, 1, gather_index)


class DecoderGraph(nn.Module):
    """``forward_fm_decoder`` with ``(B,)`` time (and guidance) inputs.

    Args:
        network: the network whose vector-field estimator is exported.
        guidance_input: whether the graph takes a guidance scale.
    """

    def __init__(self, network: nn.Module, guidance_input: bool) -> None:
        super().__init__()
        self.network = network
        self.guidance_input = guidance_input

    def forward(
        self,
        t: Tensor,
        xt: Tensor,
        text_condition: Tensor,
        speech_condition: Tensor,
        padding_mask: Tensor,
        guidance_scale: Tensor | None = None,
    ) -> Tensor:
        x = torch.cat([xt, text_condition, speech_condition], dim=2)
        return self.network.fm_decoder(
            x=x,
            t=t,
            padding_mask=padding_mask,
            guidance_scale=guidance_scale if self.guidance_input else None,
        )


# ------------------------------------------------------------------------------ export


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        directory: the ONNX directory.
        files: graph name -> file name (fp32 and, with int8, the quantised copies).
        max_abs_diff: graph name -> max |onnxruntime - torch| on the check inputs.
        seconds: wall time.
    """

    directory: Path
    files: dict[str, str]
    max_abs_diff: dict[str, float]
    seconds: float


def example_inputs(
    network: nn.Module, *, batch: int = 2, num_tokens: int = 11, num_frames: int = 53, seed: int = 0
) -> dict[str, Any]:
    """Random but valid inputs for both graphs (used for tracing and for checks).

    Returns:
        ``{"text": (tokens, tokens_lens, features_lens), "decoder": (t, xt, text_condition,
        speech_condition, padding_mask[, guidance_scale])}`` as torch tensors; the rows
        have different token and frame counts, and both speaker tags occur.
    """
    from model.network.student import takes_guidance_input

    config = network.config
    gen = torch.Generator().manual_seed(seed)
    lens = [max(2, num_tokens - 3 * i) for i in range(batch)]
    rows = []
    for n in lens:
        ids = torch.randint(1, config.vocab_size, (n,), generator=gen)
        ids[ids == config.pad_id] = 1 if config.pad_id != 1 else 2
        if config.is_dialog:
            ids[0] = config.spk_a_id
            ids[n // 2] = config.spk_b_id
        rows.append(ids.tolist() + [config.pad_id] * (max(lens) + 1 - n))
    tokens = torch.tensor(rows, dtype=torch.int64)
    tokens_lens = torch.tensor(lens, dtype=torch.int64)
    features_lens = torch.tensor(
        [max(n + 1, num_frames - 7 * i) for i, n in enumerate(lens)], dtype=torch.int64
    )
    width = config.feat_dim * config.num_channels
    frames = int(features_lens.max())
    padding_mask = torch.arange(frames).unsqueeze(0) >= features_lens.unsqueeze(1)
    decoder = [
        torch.rand(batch, generator=gen),
        torch.randn(batch, frames, width, generator=gen),
        torch.randn(batch, frames, config.feat_dim, generator=gen) * 0.3,
        torch.randn(batch, frames, width, generator=gen) * 0.3,
        padding_mask,
    ]
    if takes_guidance_input(network):
        decoder.append(torch.rand(batch, generator=gen) * 3.0)
    return {"text": (tokens, tokens_lens, features_lens), "decoder": tuple(decoder)}


def _export_graph(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_name: str,
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-derived Python ints
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=input_names,
            output_names=[output_name],
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 weight quantisation of an ONNX file (onnxruntime.quantization).

    Only ``MatMul``/``Gemm`` weights are quantised (the linear layers, nearly all the
    parameters); convolutions stay fp32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    return target


def export_network(
    network: nn.Module, onnx_dir: str | Path, *, int8: bool = False, check: bool = True
) -> OnnxExport:
    """Exports a network's two graphs to ``onnx_dir`` (see the module docstring).

    Args:
        network: a ``DialogTTSNetwork`` (or the distilled ``GuidedDialogNetwork``).
        onnx_dir: output directory (created).
        int8: also write dynamically quantised ``*.int8.onnx`` copies.
        check: run the fp32 graphs on onnxruntime against torch on fresh inputs (other
            batch and lengths than the traced ones) and record the max abs difference.

    Returns:
        The export record (also written to ``onnx.json``).
    """
    from model.network.student import takes_guidance_input

    start = time.perf_counter()
    onnx_dir = Path(onnx_dir)
    onnx_dir.mkdir(parents=True, exist_ok=True)
    network = network.to("cpu").eval()
    guidance_input = takes_guidance_input(network)
    inputs = example_inputs(network)
    text_graph = TextConditionGraph(network).eval()
    decoder_graph = DecoderGraph(network, guidance_input).eval()
    decoder_names = list(DECODER_INPUTS) + (["guidance_scale"] if guidance_input else [])
    bt = {0: "batch", 1: "frames"}
    with torch.no_grad(), traceable_attention():
        _export_graph(
            text_graph,
            inputs["text"],
            onnx_dir / TEXT_ENCODER_FILE,
            list(TEXT_INPUTS),
            "text_condition",
            {
                "tokens": {0: "batch", 1: "tokens"},
                "tokens_lens": {0: "batch"},
                "features_lens": {0: "batch"},
                "text_condition": bt,
            },
        )
        axes = {name: dict(bt) for name in decoder_names}
        axes.update(t={0: "batch"}, velocity=dict(bt))
        if guidance_input:
            axes["guidance_scale"] = {0: "batch"}
        _export_graph(
            decoder_graph,
            inputs["decoder"],
            onnx_dir / FM_DECODER_FILE,
            decoder_names,
            "velocity",
            axes,
        )
    files = {"text_encoder": TEXT_ENCODER_FILE, "fm_decoder": FM_DECODER_FILE}
    if int8:
        for name in ("text_encoder", "fm_decoder"):
            target = int8_name(files[name])
            quantize_int8(onnx_dir / files[name], onnx_dir / target)
            files[f"{name}_int8"] = target
    diffs: dict[str, float] = {}
    if check:
        diffs = check_export(network, onnx_dir)
    config = network.config
    meta = {
        "format_version": FORMAT_VERSION,
        "exporter": EXPORTER,
        "opset": OPSET,
        "torch_version": torch.__version__,
        "variant": config.variant,
        "guidance_input": guidance_input,
        "feat_dim": config.feat_dim,
        "decoder_width": config.feat_dim * config.num_channels,
        "pad_id": config.pad_id,
        "num_parameters": sum(p.numel() for p in network.parameters()),
        "files": files,
        "decoder_inputs": decoder_names,
        "text_inputs": list(TEXT_INPUTS),
        "check_max_abs_diff": diffs,
    }
    (onnx_dir / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    config.to_json(onnx_dir / "network.json")
    seconds = time.perf_counter() - start
    logger.info(
        "exported %s network to %s in %.1f s (check: %s)", config.variant, onnx_dir, seconds, diffs
    )
    return OnnxExport(onnx_dir, files, diffs, seconds)


def check_export(network: nn.Module, onnx_dir: str | Path) -> dict[str, float]:
    """Max |onnxruntime − torch| of both fp32 graphs on inputs unlike the traced ones."""
    import numpy as np
    import onnxruntime as ort

    onnx_dir = Path(onnx_dir)
    inputs = example_inputs(network, batch=3, num_tokens=17, num_frames=91, seed=1)
    text_graph = TextConditionGraph(network).eval()
    decoder_graph = DecoderGraph(network, len(inputs["decoder"]) == 6).eval()
    out = {}
    with torch.no_grad():
        ref_text = text_graph(*inputs["text"]).numpy()
        ref_v = decoder_graph(*inputs["decoder"]).numpy()
    options = ort.SessionOptions()
    for name, ref, args, names in (
        ("text_encoder", ref_text, inputs["text"], TEXT_INPUTS),
        ("fm_decoder", ref_v, inputs["decoder"], DECODER_INPUTS + ("guidance_scale",)),
    ):
        session = ort.InferenceSession(
            str(onnx_dir / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        feeds = {n: a.numpy() for n, a in zip(names, args)}
        got = session.run(None, feeds)[0]
        out[name] = float(np.abs(got - ref).max())
    return out


def export_onnx(
    model_dir: str | Path, onnx_dir: str | Path, *, int8: bool = False, check: bool = True
) -> OnnxExport:
    """Exports a checkpoint directory (teacher or distilled student) to ``onnx_dir``.

    Copies ``network.json``, ``tokens.txt``, ``features.json`` and ``inference.json``
    (those present) beside the graphs.
    """
    from model.network.student import load_model

    model_dir = Path(model_dir)
    loaded = load_model(model_dir, device="cpu")
    onnx_dir = Path(onnx_dir)
    onnx_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        if (model_dir / name).is_file() and name != "network.json":
            shutil.copyfile(model_dir / name, onnx_dir / name)
    if not (model_dir / "tokens.txt").is_file():
        from model.network.checkpoint import write_token_table

        write_token_table(loaded.tokens, onnx_dir / "tokens.txt")
    if not (onnx_dir / "inference.json").is_file():
        from model.inference.defaults import write_inference_defaults

        write_inference_defaults(loaded.defaults, onnx_dir)
    return export_network(loaded.network, onnx_dir, int8=int8, check=check)


# ------------------------------------------------------------------------------ CLI


@dataclass(frozen=True)
class ExportArgs:
    """The command line of ``python -m model.onnx_export`` (one flag per field)."""

    model_dir: str = opt(help="checkpoint dir (teacher or distilled student)", group="export")
    onnx_dir: str = opt(help="output dir", group="export")
    int8: bool = opt(False, "also write int8 copies", group="export")
    check: bool = opt(
        True, "compare onnxruntime with torch", negations=("--no-check",), group="export"
    )


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser: one flag per :class:`ExportArgs` field."""
    return export_parser("model.onnx_export", __doc__.split("\n\n")[0], ExportArgs)


def _export(args: ExportArgs) -> dict[str, Any]:
    result = export_onnx(args.model_dir, args.onnx_dir, int8=args.int8, check=args.check)
    return {
        "onnx_dir": str(result.directory),
        "files": result.files,
        "max_abs_diff": result.max_abs_diff,
        "seconds": round(result.seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (bad input: 2, no traceback)."""
    return run_export("model.onnx_export", get_parser(), ExportArgs, _export, argv)


if __name__ == "__main__":
    sys.exit(main())
