"""Typed configuration of the dialogue TTS network, with JSON I/O and presets.

:class:`NetworkConfig` holds exactly the fields of upstream ZipVoice's ``model.json``
``"model"`` section plus what upstream takes from its tokenizer or model class
(vocabulary size, pad id, speaker-tag ids, variant) and our turn-embedding rule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

VARIANTS = ("zipvoice", "dialog", "dialog_stereo", "distill")
TURN_EMBEDDINGS = ("tag", "parity")

UPSTREAM_VOCAB_SIZE = 360
"""Rows of ``embed.weight`` in the released single-speaker checkpoints."""
DIALOG_EXTRA_TOKENS = 28
"""Rows upstream appends for the dialogue models ([S1], [S2], non-verbal tags...)."""
UPSTREAM_SPK_A_ID = 360
UPSTREAM_SPK_B_ID = 361

UPSTREAM_CLASS_TO_VARIANT = {
    "ZipVoice": "zipvoice",
    "ZipVoiceDialog": "dialog",
    "ZipVoiceDialogStereo": "dialog_stereo",
    "ZipVoiceDistill": "distill",
}

UPSTREAM_MODEL_FIELDS = (
    "fm_decoder_downsampling_factor",
    "fm_decoder_num_layers",
    "fm_decoder_cnn_module_kernel",
    "fm_decoder_feedforward_dim",
    "fm_decoder_num_heads",
    "fm_decoder_dim",
    "text_encoder_num_layers",
    "text_encoder_feedforward_dim",
    "text_encoder_cnn_module_kernel",
    "text_encoder_num_heads",
    "text_encoder_dim",
    "query_head_dim",
    "value_head_dim",
    "pos_head_dim",
    "pos_dim",
    "time_embed_dim",
    "text_embed_dim",
    "feat_dim",
)

_TUPLE_FIELDS = (
    "fm_decoder_downsampling_factor",
    "fm_decoder_num_layers",
    "fm_decoder_cnn_module_kernel",
)


def variant_from_upstream_class(class_name: str) -> str:
    """Maps an upstream model class name (e.g. ``"ZipVoiceDialog"``) to our variant."""
    try:
        return UPSTREAM_CLASS_TO_VARIANT[class_name]
    except KeyError:
        raise ValueError(
            f"unknown upstream class {class_name!r}; known: {sorted(UPSTREAM_CLASS_TO_VARIANT)}"
        ) from None


@dataclass(frozen=True)
class NetworkConfig:
    """Configuration of :class:`model.network.zipvoice.DialogTTSNetwork`.

    Defaults are upstream's released 123 M-parameter configuration (``base``) for the
    dialogue variant.

    Attributes:
        fm_decoder_downsampling_factor: Per-stack time downsampling (U-Net shaped).
        fm_decoder_num_layers: Layers per decoder stack.
        fm_decoder_cnn_module_kernel: Conv kernel per decoder stack.
        fm_decoder_feedforward_dim: Decoder feed-forward width.
        fm_decoder_num_heads: Decoder attention heads.
        fm_decoder_dim: Decoder channels.
        text_encoder_num_layers: Text encoder layers.
        text_encoder_feedforward_dim: Text encoder feed-forward width.
        text_encoder_cnn_module_kernel: Text encoder conv kernel.
        text_encoder_num_heads: Text encoder attention heads.
        text_encoder_dim: Text encoder channels.
        query_head_dim: Query/key size per head (both Zipformers).
        value_head_dim: Value size per head.
        pos_head_dim: Positional query size per head.
        pos_dim: Relative positional encoding size.
        time_embed_dim: Sinusoidal time embedding size.
        text_embed_dim: Token embedding size.
        feat_dim: Mel bins per channel.
        vocab_size: Rows of the token embedding.
        pad_id: Padding token id.
        variant: ``"zipvoice"``, ``"dialog"``, ``"dialog_stereo"`` or ``"distill"``.
        spk_a_id: Id of the ``[S1]`` token (dialogue variants).
        spk_b_id: Id of the ``[S2]`` token (dialogue variants).
        turn_embedding: ``"tag"`` (speaker from the last tag, default) or ``"parity"``
            (upstream's running tag count mod 2). See ``model.network.zipvoice``.
        guidance_input: The decoder embeds the guidance scale (``fm_decoder.
            guidance_scale_embed``): a few-step distilled network that takes w as an input.
            Always true for the ``distill`` variant (upstream's single-speaker student);
            ``model.training.distill`` sets it on the ``dialog``/``dialog_stereo`` students it writes.
    """

    fm_decoder_downsampling_factor: tuple[int, ...] = (1, 2, 4, 2, 1)
    fm_decoder_num_layers: tuple[int, ...] = (2, 2, 4, 4, 4)
    fm_decoder_cnn_module_kernel: tuple[int, ...] = (31, 15, 7, 15, 31)
    fm_decoder_feedforward_dim: int = 1536
    fm_decoder_num_heads: int = 4
    fm_decoder_dim: int = 512
    text_encoder_num_layers: int = 4
    text_encoder_feedforward_dim: int = 512
    text_encoder_cnn_module_kernel: int = 9
    text_encoder_num_heads: int = 4
    text_encoder_dim: int = 192
    query_head_dim: int = 32
    value_head_dim: int = 12
    pos_head_dim: int = 4
    pos_dim: int = 48
    time_embed_dim: int = 192
    text_embed_dim: int = 192
    feat_dim: int = 100
    vocab_size: int = UPSTREAM_VOCAB_SIZE + DIALOG_EXTRA_TOKENS
    pad_id: int = 0
    variant: str = "dialog"
    spk_a_id: int = UPSTREAM_SPK_A_ID
    spk_b_id: int = UPSTREAM_SPK_B_ID
    turn_embedding: str = "tag"
    guidance_input: bool = False

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, int):
                value = (value,)
            object.__setattr__(self, name, tuple(int(v) for v in value))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.variant == "distill":
            object.__setattr__(self, "guidance_input", True)
        elif self.variant == "zipvoice" and self.guidance_input:
            raise ValueError(
                "a single-speaker network with a guidance input is the 'distill' "
                "variant, not 'zipvoice' with guidance_input"
            )
        object.__setattr__(self, "guidance_input", bool(self.guidance_input))
        if self.turn_embedding not in TURN_EMBEDDINGS:
            raise ValueError(
                f"turn_embedding must be one of {TURN_EMBEDDINGS}, got {self.turn_embedding!r}"
            )
        n = len(self.fm_decoder_downsampling_factor)
        for name in ("fm_decoder_num_layers", "fm_decoder_cnn_module_kernel"):
            if len(getattr(self, name)) not in (1, n):
                raise ValueError(f"{name} needs 1 or {n} entries, got {getattr(self, name)}")
        if self.pos_dim % 2:
            raise ValueError(f"pos_dim must be even, got {self.pos_dim}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id {self.pad_id} outside vocab of {self.vocab_size}")
        if self.is_dialog:
            ids = (self.spk_a_id, self.spk_b_id)
            if len({*ids, self.pad_id}) != 3:
                raise ValueError(f"spk_a_id, spk_b_id and pad_id must differ: {ids}, {self.pad_id}")
            if max(ids) >= self.vocab_size or min(ids) < 0:
                raise ValueError(f"speaker tag ids {ids} outside vocab of {self.vocab_size}")

    @property
    def is_dialog(self) -> bool:
        """Whether the variant has the speaker-turn embedding."""
        return self.variant in ("dialog", "dialog_stereo")

    @property
    def num_channels(self) -> int:
        """Audio channels the decoder can generate at most (2 for stereo)."""
        return 2 if self.variant == "dialog_stereo" else 1

    def replace(self, **changes: Any) -> NetworkConfig:
        """Returns a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def upstream_model_dict(self) -> dict[str, Any]:
        """The upstream ``model.json`` ``"model"`` section for this configuration."""
        out = {}
        for name in UPSTREAM_MODEL_FIELDS:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Builds a config from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown NetworkConfig fields: {unknown}")
        return cls(**dict(data))

    def to_json(self, path: str | Path) -> None:
        """Writes :meth:`to_dict` as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> NetworkConfig:
        """Reads a file written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_upstream_json(
        cls,
        model_json: Mapping[str, Any],
        *,
        vocab_size: int,
        variant: str = "zipvoice",
        pad_id: int = 0,
        spk_a_id: int = UPSTREAM_SPK_A_ID,
        spk_b_id: int = UPSTREAM_SPK_B_ID,
        turn_embedding: str = "tag",
    ) -> NetworkConfig:
        """Builds a config from upstream's ``model.json`` (whole file or its ``"model"``).

        Upstream takes the vocabulary size, pad and speaker-tag ids from ``tokens.txt``
        and the variant from the model class, so they are passed separately here.

        Raises:
            ValueError: When a ``"model"`` field is missing or unknown.
        """
        section = model_json.get("model", model_json)
        missing = [k for k in UPSTREAM_MODEL_FIELDS if k not in section]
        unknown = sorted(set(section) - set(UPSTREAM_MODEL_FIELDS))
        if missing or unknown:
            raise ValueError(f"upstream model.json: missing {missing}, unknown {unknown}")
        return cls(
            **{k: section[k] for k in UPSTREAM_MODEL_FIELDS},
            vocab_size=vocab_size,
            pad_id=pad_id,
            variant=variant,
            spk_a_id=spk_a_id,
            spk_b_id=spk_b_id,
            turn_embedding=turn_embedding,
        )


def default_vocab_size(variant: str) -> int:
    """Upstream's vocabulary size for ``variant``: 360, +28 for the dialogue models."""
    if variant in ("dialog", "dialog_stereo"):
        return UPSTREAM_VOCAB_SIZE + DIALOG_EXTRA_TOKENS
    return UPSTREAM_VOCAB_SIZE


_PRESETS: dict[str, dict[str, Any]] = {
    # upstream's released configuration (zipvoice_base.json), 123 M parameters
    "base": {},
    # ~1.8 M parameters, for the offline 22.05 kHz / 80-bin mel features and CPU tests
    "tiny": {
        "fm_decoder_num_layers": (1, 1, 1, 1, 1),
        "fm_decoder_feedforward_dim": 256,
        "fm_decoder_dim": 96,
        "text_encoder_num_layers": 2,
        "text_encoder_feedforward_dim": 128,
        "text_encoder_dim": 64,
        "time_embed_dim": 96,
        "text_embed_dim": 64,
        "feat_dim": 80,
    },
}

PRESETS = tuple(_PRESETS)


def preset(name: str, *, variant: str = "dialog", **overrides: Any) -> NetworkConfig:
    """A named configuration (``"tiny"`` or ``"base"``) for ``variant``.

    ``vocab_size`` defaults to upstream's (360, or 388 for the dialogue variants);
    any field can be overridden.

    Raises:
        ValueError: For an unknown preset name.
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {PRESETS}")
    fields = {"variant": variant, "vocab_size": default_vocab_size(variant)}
    fields.update(_PRESETS[name])
    fields.update(overrides)
    return NetworkConfig(**fields)
