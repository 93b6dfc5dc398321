"""Few-step (distilled) dialogue networks: the guided student, its saved inference defaults,
and one loader for teacher and student checkpoint directories.

Upstream's ZipVoice-Distill adds a guidance-scale embedding (``fm_decoder.
guidance_scale_embed``: sinusoidal(w) -> bias-free linear, initial scale 0.1, added to the
time embedding) to the single-speaker network: upstream's ``distill`` variant, which has
no speaker-turn embedding and no stereo projections. A distilled *dialogue* network is a
:class:`~model.network.zipvoice.DialogTTSNetwork` of the ``dialog`` or ``dialog_stereo`` variant
with ``NetworkConfig.guidance_input`` set, i.e. the same embedding under upstream's
parameter name; :class:`GuidedDialogNetwork` builds one from a teacher's configuration.
(A single-speaker teacher distils into the plain ``distill`` variant.)

A student checkpoint directory is an ordinary one (``model.safetensors``, ``network.json``
with the teacher's variant and ``"guidance_input": true``, ``tokens.txt``,
``features.json``) plus ``inference.json``::

    {"num_step": 4, "guidance_scale": 1.5, "t_shift": 0.5, "guidance_input": true, ...}

``network.json``'s ``guidance_input`` makes the network take the guidance scale as an
input (one pass per step, no CFG doubling: the network's ``takes_guidance_input``), so
``model.network.checkpoint.load_checkpoint`` builds the right network and loads it strictly;
``inference.json`` repeats it for students saved before that flag existed.
``num_step``/``guidance_scale``/``t_shift`` are the defaults the inference CLI uses when
the user gives none (:mod:`model.inference.defaults` reads and writes the file).
:func:`load_model` reads any of these directories (and plain teacher ones, which have no
``inference.json``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.inference.defaults import (
    InferenceDefaults,
    read_inference_defaults,
    write_inference_defaults,
)
from model.network.checkpoint import GUIDANCE_EMBED_KEY
from model.network.config import NetworkConfig
from model.network.zipvoice import DialogTTSNetwork

logger = logging.getLogger(__name__)

GUIDANCE_KEY = GUIDANCE_EMBED_KEY
GUIDANCE_EMBED_INIT_SCALE = 0.1
"""Initial scale of the new guidance embedding (upstream's), so the student starts close
to the teacher's conditional velocity."""


# ------------------------------------------------------------------------------ networks


class GuidedDialogNetwork(DialogTTSNetwork):
    """A dialogue (mono or stereo) network whose decoder also embeds a guidance scale.

    Identical to :class:`DialogTTSNetwork` for ``config`` with ``guidance_input=True``
    (``fm_decoder.guidance_scale_embed``, upstream's name and initialisation), which its
    saved ``network.json`` carries, so ``model.network.checkpoint.load_checkpoint`` loads it
    strictly too. The embedding is drawn after the rest of the network, so a seed gives
    the same weights as a teacher of ``config`` plus the new embedding.

    Args:
        config: A ``dialog`` or ``dialog_stereo`` configuration.
        guidance_init_scale: initial scale of the new embedding (upstream: 0.1).
    """

    def __init__(
        self, config: NetworkConfig, guidance_init_scale: float = GUIDANCE_EMBED_INIT_SCALE
    ) -> None:
        if config.variant not in ("dialog", "dialog_stereo"):
            raise ValueError(
                f"GuidedDialogNetwork is for dialog/dialog_stereo; a {config.variant!r} "
                "teacher distils into the 'distill' variant"
            )
        super().__init__(config.replace(guidance_input=False))
        self.config = config.replace(guidance_input=True)
        from model.network.zipformer.encoder import GUIDANCE_SCALE_EMBED_DIM
        from model.network.zipformer.scaling import scaled_linear

        self.fm_decoder.guidance_scale_embed = scaled_linear(
            GUIDANCE_SCALE_EMBED_DIM,
            config.time_embed_dim,
            bias=False,
            initial_scale=guidance_init_scale,
        )


def takes_guidance_input(network: Any) -> bool:
    """Whether ``network`` takes the guidance scale as an input (a distilled network).

    The network's own ``takes_guidance_input`` property: ``DialogTTSNetwork`` (its
    decoder's guidance embedding) and :class:`model.export.onnx_runtime.OnnxNetwork` (its decoder
    graph's inputs) answer it; anything else is not distilled.
    """
    return bool(getattr(network, "takes_guidance_input", False))


def build_student(teacher_config: NetworkConfig) -> DialogTTSNetwork:
    """A fresh student network for a teacher configuration.

    ``dialog``/``dialog_stereo`` -> :class:`GuidedDialogNetwork`; ``zipvoice`` (or an
    already distilled ``distill``) -> the ``distill`` variant.
    """
    if teacher_config.variant in ("dialog", "dialog_stereo"):
        return GuidedDialogNetwork(teacher_config)
    return DialogTTSNetwork(teacher_config.replace(variant="distill"))


def student_from_teacher(
    teacher: DialogTTSNetwork, *, guidance_init_scale: float = GUIDANCE_EMBED_INIT_SCALE
) -> DialogTTSNetwork:
    """A student initialised from ``teacher``.

    Every teacher weight is copied. The guidance embedding, unless the teacher already has
    one (a stage-1 student as the stage-2 starting point), is drawn from the global RNG as
    ``scaled_linear`` does, times ``guidance_init_scale`` (upstream: 0.1; 0 starts the
    student exactly at the teacher's conditional velocity for every w).

    Args:
        teacher: the trained network.
        guidance_init_scale: scale of the new embedding's initial weights.
    """
    student = build_student(teacher.config)
    if guidance_init_scale != GUIDANCE_EMBED_INIT_SCALE:
        with torch.no_grad():
            student.fm_decoder.guidance_scale_embed.weight.mul_(
                guidance_init_scale / GUIDANCE_EMBED_INIT_SCALE
            )
    own = student.state_dict()
    source = teacher.state_dict()
    missing = sorted(set(own) - set(source) - {GUIDANCE_KEY})
    unexpected = sorted(set(source) - set(own))
    if missing or unexpected:
        raise ValueError(f"teacher/student mismatch: missing {missing}, unexpected {unexpected}")
    merged = {k: source.get(k, own[k]).detach().clone() for k in own}
    student.load_state_dict(merged, strict=True)
    return student.to(teacher.device)


# ------------------------------------------------------------------------------ loading


@dataclass(frozen=True)
class LoadedModel:
    """A teacher or student network with what inference needs.

    Attributes:
        network: The network (eval mode).
        config: Its configuration (the teacher's variant for a dialogue student).
        tokens: Token table (token -> id).
        directory: Where it came from.
        defaults: Sampling defaults (``inference.json``, else upstream's per variant).
        guidance_input: The network takes the guidance scale as input.
    """

    network: DialogTTSNetwork
    config: NetworkConfig
    tokens: dict[str, int]
    directory: Path
    defaults: InferenceDefaults

    @property
    def guidance_input(self) -> bool:
        """Whether sampling passes w to the network (``flow.sample(..., distill=True)``)."""
        return takes_guidance_input(self.network)


def build_network(config: NetworkConfig) -> DialogTTSNetwork:
    """The network of a saved configuration: :class:`GuidedDialogNetwork` for a dialogue
    student (``guidance_input``), else :class:`DialogTTSNetwork`."""
    if config.guidance_input and config.is_dialog:
        return GuidedDialogNetwork(config)
    return DialogTTSNetwork(config)


def load_model(directory: str | Path, *, device: torch.device | str = "cpu") -> LoadedModel:
    """Loads a teacher or a distilled student checkpoint directory (strict keys).

    Our directories are built from ``network.json`` (whose ``guidance_input`` marks a
    student) by :func:`build_network`; upstream ones go through
    :func:`model.network.checkpoint.load_checkpoint`. Students saved before ``network.json`` had
    that flag are recognised by their ``inference.json``. Without ``inference.json`` the
    defaults are upstream's for the variant.

    Raises:
        model.network.checkpoint.CheckpointError: missing files or key/shape mismatches.
    """
    from model.network import checkpoint as ckpt

    directory = Path(directory)
    defaults = read_inference_defaults(directory)
    if not (directory / ckpt.CONFIG_FILE).is_file():
        loaded = ckpt.load_checkpoint(directory, device=device)
        network, config, tokens = loaded.network, loaded.config, loaded.tokens
    else:
        config = NetworkConfig.from_json(directory / ckpt.CONFIG_FILE)
        if defaults is not None and defaults.guidance_input and not config.guidance_input:
            config = config.replace(guidance_input=True)  # a student saved without the flag
        network = build_network(config)
        ckpt.load_network_state(network, ckpt.read_state_dict(directory / ckpt.WEIGHTS_FILE))
        network.to(device).eval()
        tokens = ckpt.read_token_table(directory / ckpt.TOKENS_FILE)
    if defaults is None:
        defaults = InferenceDefaults.for_variant(config.variant)
    return LoadedModel(network, network.config, tokens, directory, defaults)


def save_model(
    network: DialogTTSNetwork,
    directory: str | Path,
    tokens: dict[str, int] | str | Path,
    defaults: InferenceDefaults,
    *,
    features_json: str | Path | None = None,
) -> Path:
    """Writes a checkpoint directory (:func:`model.network.checkpoint.save_checkpoint`) plus
    ``inference.json`` and, when given, a copy of ``features.json``."""
    from model.network.checkpoint import save_checkpoint

    directory = save_checkpoint(network, directory, tokens)
    if features_json is not None and Path(features_json).is_file():
        target = directory / "features.json"
        if Path(features_json).resolve() != target.resolve():
            target.write_text(Path(features_json).read_text(encoding="utf-8"), encoding="utf-8")
    write_inference_defaults(defaults, directory)
    return directory
