"""Export one of our checkpoint directories in upstream ZipVoice's layout.

``python -m model.export_upstream --model-dir exp/x --out dir`` writes what upstream's
``infer_zipvoice_dialog`` (and ``infer_zipvoice`` / ``onnx_export``) load from a model dir:

* ``model.pt``: ``{"model": state_dict}`` (upstream's ``load_checkpoint`` reads ``["model"]``,
  strictly); parameter names are already upstream's.
* ``model.json``: ``{"model": <constructor arguments>, "feature": {"type": "vocos",
  "sampling_rate": 24000}}``; upstream adds ``vocab_size``, ``pad_id``, ``spk_a_id`` and
  ``spk_b_id`` from the token table.
* ``tokens.txt``: ``token<TAB>id``; upstream's tokenizer takes ``vocab_size = len(table)``, the
  pad id from ``_`` and the speaker ids from ``[S1]`` / ``[S2]``. Ids of the embedding that our
  table leaves unused get placeholder tokens (``<unused N>``), so the sizes agree.

Refused, because upstream's code would compute something else: a network with a guidance-scale
input (a distilled student), the ``distill`` variant, features other than upstream's (100-bin
Vocos mels at 24 kHz), a token table whose pad / ``[S1]`` / ``[S2]`` ids are not the network's.

The turn embedding: upstream picks each token's ``spk_embed`` row by counting speaker tags (odd
count: row 1); our default (``turn_embedding="tag"``) keys it on the tag (``[S1]`` row 1,
``[S2]`` row 0). The weights are the same table; the two rules give the same rows, so the same
outputs, whenever the tags of prompt + text alternate starting with ``[S1]`` (upstream's CLI
requires text starting with ``[S1]``; a split prompt ``[S1]…[S2]…`` keeps the alternation). They
differ for text starting with ``[S2]``, repeated tags, or a prompt with an odd number of turns.
The export of a ``tag`` model is therefore refused unless ``--allow-turn-rule-difference`` says
that its users will give upstream only such inputs; a ``parity`` model exports as is.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.options import opt
from model.export.command import export_parser, run_export

logger = logging.getLogger(__name__)

UPSTREAM_FEAT_DIM = 100
UPSTREAM_FEATURE = {"type": "vocos", "sampling_rate": 24000}
UPSTREAM_CLASSES = {
    "zipvoice": "ZipVoice",
    "dialog": "ZipVoiceDialog",
    "dialog_stereo": "ZipVoiceDialogStereo",
}
PLACEHOLDER = "<unused {}>"


class ExportRefused(ValueError):
    """The network would not behave the same in upstream's code."""


@dataclass(frozen=True)
class UpstreamExportArgs:
    """The command line of ``python -m model.export_upstream`` (one flag per field)."""

    model_dir: str = opt(
        help="our checkpoint dir (model.safetensors, network.json)", group="export"
    )
    out: str = opt(help="output dir (model.pt, model.json, tokens.txt)", group="export")
    allow_turn_rule_difference: bool = opt(
        False,
        "export a tag-keyed turn embedding although upstream counts tags (same outputs only "
        "for tags alternating from [S1])",
        group="export",
    )


@dataclass(frozen=True)
class UpstreamExport:
    """What :func:`export_upstream` wrote."""

    directory: Path
    upstream_class: str
    files: tuple[str, ...]


def upstream_token_table(tokens: dict[str, int], vocab_size: int) -> dict[str, int]:
    """Our table completed to ``vocab_size`` entries with placeholders for unused ids."""
    if any(i < 0 or i >= vocab_size for i in tokens.values()):
        raise ExportRefused(f"token ids outside the embedding's {vocab_size} rows")
    if len(set(tokens.values())) != len(tokens):
        raise ExportRefused("the token table maps two tokens to one id")
    used = set(tokens.values())
    table = dict(tokens)
    for i in range(vocab_size):
        if i not in used:
            name = PLACEHOLDER.format(i)
            if name in table:
                raise ExportRefused(f"the token table already holds {name!r}")
            table[name] = i
    return table


def check_exportable(config, tokens: dict[str, int], *, allow_turn_rule_difference: bool) -> str:
    """The upstream class for ``config``; raises :class:`ExportRefused` where outputs differ."""
    from core.dialogue_script import SPEAKER_A_TAG, SPEAKER_B_TAG
    from model.network.checkpoint import PAD_TOKEN

    if config.variant not in UPSTREAM_CLASSES:
        raise ExportRefused(f"variant {config.variant!r} has no upstream counterpart here")
    if config.guidance_input:
        raise ExportRefused("a network with a guidance-scale input (a distilled student)")
    if config.feat_dim != UPSTREAM_FEAT_DIM:
        raise ExportRefused(
            f"{config.feat_dim}-bin features: upstream's inference computes 100-bin Vocos mels "
            "at 24 kHz"
        )
    if tokens.get(PAD_TOKEN) != config.pad_id:
        raise ExportRefused(
            f"upstream takes the pad id from {PAD_TOKEN!r} ({tokens.get(PAD_TOKEN)}), "
            f"the network pads with {config.pad_id}"
        )
    if config.is_dialog:
        ids = (tokens.get(SPEAKER_A_TAG), tokens.get(SPEAKER_B_TAG))
        if ids != (config.spk_a_id, config.spk_b_id):
            raise ExportRefused(
                f"upstream takes the speaker ids from {SPEAKER_A_TAG}/{SPEAKER_B_TAG} {ids}, "
                f"the network uses {(config.spk_a_id, config.spk_b_id)}"
            )
        if config.turn_embedding != "parity" and not allow_turn_rule_difference:
            raise ExportRefused(
                "the network keys its turn embedding on the tag; upstream counts tags, which "
                "gives other rows for text starting with [S2], repeated tags or a prompt with "
                "an odd number of turns (same outputs when tags alternate from [S1]); pass "
                "--allow-turn-rule-difference to export anyway"
            )
    return UPSTREAM_CLASSES[config.variant]


def export_upstream(
    model_dir: str | Path, out: str | Path, *, allow_turn_rule_difference: bool = False
) -> UpstreamExport:
    """Write ``model.pt``, ``model.json`` and ``tokens.txt`` of ``model_dir`` into ``out``."""
    from model.network.checkpoint import load_checkpoint, write_token_table

    loaded = load_checkpoint(model_dir)
    config = loaded.config
    upstream_class = check_exportable(
        config, dict(loaded.tokens), allow_turn_rule_difference=allow_turn_rule_difference
    )
    table = upstream_token_table(dict(loaded.tokens), config.vocab_size)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in loaded.network.state_dict().items()}
    torch.save({"model": state}, directory / "model.pt")
    model_json = {"model": config.upstream_model_dict(), "feature": dict(UPSTREAM_FEATURE)}
    (directory / "model.json").write_text(json.dumps(model_json, indent=1) + "\n", encoding="utf-8")
    write_token_table(table, directory / "tokens.txt")
    if config.is_dialog and config.turn_embedding != "parity":
        logger.warning(
            "exported a tag-keyed turn embedding: upstream's code counts tags (same outputs "
            "when the tags of prompt + text alternate starting with [S1])"
        )
    return UpstreamExport(directory, upstream_class, ("model.pt", "model.json", "tokens.txt"))


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser: one flag per :class:`UpstreamExportArgs` field."""
    return export_parser("model.export_upstream", __doc__.split("\n\n")[0], UpstreamExportArgs)


def _export(args: UpstreamExportArgs) -> dict[str, Any]:
    result = export_upstream(
        args.model_dir, args.out, allow_turn_rule_difference=args.allow_turn_rule_difference
    )
    return {
        "out": str(result.directory),
        "upstream_class": result.upstream_class,
        "files": list(result.files),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (bad input: 2, no traceback)."""
    return run_export("model.export_upstream", get_parser(), UpstreamExportArgs, _export, argv)
