"""Loading and saving network weights: upstream ZipVoice model directories, plain state
dicts, and our own checkpoint directories.

Every load is strict: keys are normalised through an explicit key map (DDP ``module.``
and ``torch.compile`` ``_orig_mod.`` prefixes, plus any caller-supplied renames), then
compared with the network; any missing, unexpected or mis-shaped key raises
:class:`CheckpointKeyError` listing all of them. Nothing is skipped silently.

Directory layouts:

* upstream: ``model.pt`` (a ``{"model": state_dict, ...}`` dict) or ``*.safetensors``,
  plus ``model.json`` and ``tokens.txt`` (``token<TAB>id`` per line);
* ours: ``model.safetensors`` + ``network.json`` (:class:`NetworkConfig`; its
  ``guidance_input`` marks a distilled dialogue student) + ``tokens.txt``. Optimizer
  state is the trainer's business.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from core.dialogue_script import SPEAKER_A_TAG, SPEAKER_B_TAG
from model.network.config import (
    DIALOG_EXTRA_TOKENS,
    UPSTREAM_SPK_A_ID,
    UPSTREAM_SPK_B_ID,
    NetworkConfig,
)
from model.network.zipvoice import DialogTTSNetwork

logger = logging.getLogger(__name__)

HUB_REPO_ID = "k2-fsa/ZipVoice"
HUB_MODEL_NAMES = ("zipvoice", "zipvoice_distill", "zipvoice_dialog", "zipvoice_dialog_stereo")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "network.json"
TOKENS_FILE = "tokens.txt"
UPSTREAM_CONFIG_FILE = "model.json"
UPSTREAM_CHECKPOINT_FILE = "model.pt"
PAD_TOKEN = "_"
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found, read or matched to a network."""


class CheckpointKeyError(CheckpointError):
    """State-dict keys or shapes do not match the network.

    Attributes:
        missing: Keys the network has and the state dict lacks.
        unexpected: Keys the state dict has and the network lacks.
        mismatched: ``(key, checkpoint_shape, network_shape)`` triples.
    """

    def __init__(
        self,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {missing}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {unexpected}")
        if mismatched:
            parts.append(
                f"{len(mismatched)} shape mismatches: "
                + ", ".join(f"{k} {a} (checkpoint) vs {b} (network)" for k, a, b in mismatched)
            )
        super().__init__("state dict does not match the network; " + "; ".join(parts))


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A network restored from a checkpoint directory.

    Attributes:
        network: The network, in eval mode, on the requested device.
        config: Its configuration.
        tokens: The token table (token -> id) found beside the weights.
        directory: The directory it came from.
    """

    network: DialogTTSNetwork
    config: NetworkConfig
    tokens: dict[str, int]
    directory: Path


# ---------------------------------------------------------------------- token tables


def read_token_table(path: str | Path) -> dict[str, int]:
    """Reads ``token<TAB>id`` lines (upstream's ``tokens.txt``).

    Raises:
        CheckpointError: On a malformed line or a duplicate token.
    """
    table: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            token, sep, id_text = line.rpartition("\t")
            if not sep or not id_text.strip().lstrip("-").isdigit():
                raise CheckpointError(f"{path}:{line_no}: expected 'token<TAB>id', got {line!r}")
            if token in table:
                raise CheckpointError(f"{path}:{line_no}: duplicate token {token!r}")
            table[token] = int(id_text)
    return table


def write_token_table(table: Mapping[str, int], path: str | Path) -> None:
    """Writes ``table`` as ``token<TAB>id`` lines, ordered by id."""
    lines = [f"{tok}\t{idx}\n" for tok, idx in sorted(table.items(), key=lambda kv: kv[1])]
    Path(path).write_text("".join(lines), encoding="utf-8")


# ---------------------------------------------------------------------- state dicts


GUIDANCE_EMBED_KEY = "fm_decoder.guidance_scale_embed.weight"


def detect_variant(state_dict: Mapping[str, Tensor]) -> str:
    """Infers the variant from the parameter names of an (upstream or our) state dict.

    A guidance embedding makes a single-speaker dict upstream's ``distill``; on a dialogue
    dict (turn embedding, stereo projections) it marks a distilled dialogue student, whose
    variant stays ``dialog``/``dialog_stereo`` (see :func:`has_guidance_embed`).
    """
    keys = set(normalize_keys(state_dict))
    if "fm_decoder.in_proj.0.weight" in keys:
        return "dialog_stereo"
    if "spk_embed.weight" in keys:
        return "dialog"
    if GUIDANCE_EMBED_KEY in keys:
        return "distill"
    return "zipvoice"


def has_guidance_embed(state_dict: Mapping[str, Tensor]) -> bool:
    """Whether the decoder embeds a guidance scale (``NetworkConfig.guidance_input``)."""
    return GUIDANCE_EMBED_KEY in normalize_keys(state_dict)


def normalize_keys(
    state_dict: Mapping[str, Tensor], key_map: Mapping[str, str] | None = None
) -> dict[str, Tensor]:
    """Strips wrapper prefixes and applies explicit renames.

    A prefix from ``("module.", "_orig_mod.")`` is stripped when every key carries it.
    ``key_map`` maps checkpoint names to network names; a mapped name that is absent
    from the state dict raises, so a map never hides a missing key.

    Raises:
        CheckpointError: When a ``key_map`` source key is absent or two keys collide.
    """
    out = dict(state_dict)
    changed = True
    while changed and out:
        changed = False
        for prefix in _STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                changed = True
    for src, dst in (key_map or {}).items():
        if src not in out:
            raise CheckpointError(f"key map source {src!r} is not in the state dict")
        if dst in out and dst != src:
            raise CheckpointError(f"key map target {dst!r} already exists in the state dict")
        out[dst] = out.pop(src)
    return out


def check_state_dict(network: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raises :class:`CheckpointKeyError` unless keys and shapes match exactly."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(expected[k].shape))
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(missing, unexpected, mismatched)


def load_network_state(
    network: torch.nn.Module,
    state_dict: Mapping[str, Tensor],
    key_map: Mapping[str, str] | None = None,
) -> None:
    """Normalises, checks and loads ``state_dict`` into ``network`` (strict)."""
    normalized = normalize_keys(state_dict, key_map)
    check_state_dict(network, normalized)
    network.load_state_dict(normalized, strict=True)


def read_state_dict(path: str | Path, *, weights_only: bool = True) -> dict[str, Tensor]:
    """Reads weights from a ``.safetensors`` file or a torch file.

    A torch file may hold a plain state dict, upstream's ``{"model": state_dict, ...}``
    or a ``{"state_dict": ...}`` dict (as our fixtures do).

    Args:
        path: The file.
        weights_only: Passed to ``torch.load``; keep True for untrusted files.

    Raises:
        CheckpointError: When the file holds no recognisable state dict.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises several types for unpicklable content
        raise CheckpointError(
            f"cannot read {path} with weights_only={weights_only}: {exc}"
        ) from exc
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, Tensor) for v in inner.values())
            ):
                return dict(inner)
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj)
    raise CheckpointError(f"{path} holds no state dict (plain, 'model' or 'state_dict')")


# ---------------------------------------------------------------------- transformations


def extend_vocab(
    state_dict: Mapping[str, Tensor],
    extra: int = DIALOG_EXTRA_TOKENS,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Grows ``embed.weight`` by ``extra`` rows, as upstream does before dialogue training.

    The existing rows are kept at their ids; the new rows (ids ``V .. V+extra-1``, e.g.
    ``[S1]`` = 360 and ``[S2]`` = 361) are drawn from N(0, 1), ``nn.Embedding``'s
    initialisation (upstream keeps the fresh model's rows). Returns a new dict.
    """
    if extra < 0:
        raise ValueError(f"extra must be >= 0, got {extra}")
    out = normalize_keys(state_dict)
    if "embed.weight" not in out:
        raise CheckpointError("state dict has no embed.weight")
    weight = out["embed.weight"]
    new_rows = torch.randn(extra, weight.shape[1], generator=generator, dtype=torch.float32).to(
        dtype=weight.dtype, device=weight.device
    )
    out["embed.weight"] = torch.cat([weight, new_rows], dim=0)
    return out


def add_turn_embedding(
    state_dict: Mapping[str, Tensor], *, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """Adds a fresh ``spk_embed.weight`` (2 x feat_dim, N(0, 0.1)) to a single-speaker dict.

    Raises:
        CheckpointError: When the dict already has one.
    """
    out = normalize_keys(state_dict)
    if "spk_embed.weight" in out:
        raise CheckpointError("state dict already has spk_embed.weight")
    feat_dim = out["text_encoder.out_proj.weight"].shape[0]
    ref = out["text_encoder.out_proj.weight"]
    out["spk_embed.weight"] = (torch.randn(2, feat_dim, generator=generator) * 0.1).to(
        dtype=ref.dtype, device=ref.device
    )
    return out


def dialog_from_zipvoice(
    state_dict: Mapping[str, Tensor],
    extra: int = DIALOG_EXTRA_TOKENS,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """A ``dialog`` state dict initialised from a single-speaker ``zipvoice`` one
    (upstream's ``load_checkpoint_extend_vocab_size``): vocab + ``extra``, fresh turn table."""
    if detect_variant(state_dict) != "zipvoice":
        raise CheckpointError(f"expected a zipvoice state dict, got {detect_variant(state_dict)}")
    return add_turn_embedding(
        extend_vocab(state_dict, extra, generator=generator), generator=generator
    )


def init_stereo_from_dialog(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A ``dialog_stereo`` state dict initialised from a mono ``dialog`` one (upstream rule).

    * ``fm_decoder.in_proj.1`` = the mono input projection (300 -> D);
    * ``fm_decoder.in_proj.0`` takes ``[x_L | x_R | text | speech_L | speech_R]``: the
      noisy and speech column blocks are halved and duplicated, the text block copied;
      the bias is copied;
    * ``fm_decoder.out_proj.1`` = the mono output projection; ``out_proj.0`` stacks it
      twice (left and right mel), bias included.

    Everything else is copied unchanged. Returns a new dict.
    """
    src = normalize_keys(state_dict)
    if detect_variant(src) != "dialog":
        raise CheckpointError(f"expected a dialog state dict, got {detect_variant(src)}")
    out = dict(src)
    w_in = out.pop("fm_decoder.in_proj.weight")
    b_in = out.pop("fm_decoder.in_proj.bias")
    w_out = out.pop("fm_decoder.out_proj.weight")
    b_out = out.pop("fm_decoder.out_proj.bias")
    feat_dim = w_out.shape[0]
    if w_in.shape[1] != 3 * feat_dim:
        raise CheckpointError(f"in_proj width {w_in.shape[1]} != 3 x feat_dim {feat_dim}")
    noisy, text, speech = w_in.split(feat_dim, dim=1)
    out["fm_decoder.in_proj.0.weight"] = torch.cat(
        [noisy / 2, noisy / 2, text, speech / 2, speech / 2], dim=1
    )
    out["fm_decoder.in_proj.0.bias"] = b_in.clone()
    out["fm_decoder.in_proj.1.weight"] = w_in
    out["fm_decoder.in_proj.1.bias"] = b_in
    out["fm_decoder.out_proj.0.weight"] = torch.cat([w_out, w_out], dim=0)
    out["fm_decoder.out_proj.0.bias"] = torch.cat([b_out, b_out], dim=0)
    out["fm_decoder.out_proj.1.weight"] = w_out
    out["fm_decoder.out_proj.1.bias"] = b_out
    return out


# ---------------------------------------------------------------------- directories


def _special_ids(tokens: Mapping[str, int]) -> dict[str, int]:
    return {
        "pad_id": tokens.get(PAD_TOKEN, 0),
        "spk_a_id": tokens.get(SPEAKER_A_TAG, UPSTREAM_SPK_A_ID),
        "spk_b_id": tokens.get(SPEAKER_B_TAG, UPSTREAM_SPK_B_ID),
    }


def _find_upstream_weights(directory: Path, checkpoint_name: str | None) -> Path:
    if checkpoint_name is not None:
        path = directory / checkpoint_name
        if not path.is_file():
            raise CheckpointError(f"{path} does not exist")
        return path
    if (directory / UPSTREAM_CHECKPOINT_FILE).is_file():
        return directory / UPSTREAM_CHECKPOINT_FILE
    candidates = sorted(directory.glob("*.safetensors"))
    if len(candidates) == 1:
        return candidates[0]
    raise CheckpointError(
        f"{directory}: need {UPSTREAM_CHECKPOINT_FILE} or exactly one *.safetensors "
        f"(found {[c.name for c in candidates]}); pass checkpoint_name"
    )


def load_upstream_model_dir(
    model_dir: str | Path,
    *,
    variant: str | None = None,
    checkpoint_name: str | None = None,
    turn_embedding: str = "tag",
    device: torch.device | str = "cpu",
    weights_only: bool = True,
) -> LoadedCheckpoint:
    """Builds a network from an upstream model directory and loads its weights strictly.

    The vocabulary size comes from ``embed.weight``; pad, ``[S1]`` and ``[S2]`` ids from
    ``tokens.txt`` (upstream's defaults 0/360/361 when absent).

    Args:
        model_dir: Directory with ``model.json``, ``tokens.txt`` and the weights.
        variant: Expected variant; inferred from the parameter names when None.
        checkpoint_name: Weights file name (default ``model.pt`` or the one
            ``*.safetensors``).
        turn_embedding: ``"tag"`` or ``"parity"`` (see ``model.network.zipvoice``).
        device: Target device.
        weights_only: Passed to ``torch.load``.

    Raises:
        CheckpointError: Missing files, a variant mismatch, a token table that does not
            fit the embedding, or (:class:`CheckpointKeyError`) key/shape mismatches.
    """
    directory = Path(model_dir)
    for name in (UPSTREAM_CONFIG_FILE, TOKENS_FILE):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory / name} does not exist")
    weights_path = _find_upstream_weights(directory, checkpoint_name)
    state_dict = normalize_keys(read_state_dict(weights_path, weights_only=weights_only))
    found = detect_variant(state_dict)
    if variant is not None and variant != found:
        raise CheckpointError(f"{weights_path} holds a {found!r} network, not {variant!r}")
    tokens = read_token_table(directory / TOKENS_FILE)
    vocab_size = int(state_dict["embed.weight"].shape[0])
    if tokens and max(tokens.values()) >= vocab_size:
        raise CheckpointError(
            f"{directory / TOKENS_FILE} has ids up to {max(tokens.values())} but the "
            f"embedding has {vocab_size} rows"
        )
    if len(tokens) != vocab_size:
        logger.warning(
            "%s has %d entries for %d embedding rows",
            directory / TOKENS_FILE,
            len(tokens),
            vocab_size,
        )
    model_json = json.loads((directory / UPSTREAM_CONFIG_FILE).read_text(encoding="utf-8"))
    config = NetworkConfig.from_upstream_json(
        model_json,
        vocab_size=vocab_size,
        variant=found,
        turn_embedding=turn_embedding,
        **_special_ids(tokens),
    ).replace(guidance_input=has_guidance_embed(state_dict))
    network = DialogTTSNetwork(config)
    load_network_state(network, state_dict)
    network.to(device).eval()
    logger.info(
        "loaded upstream %s network (%d parameters) from %s",
        found,
        network.num_parameters(),
        weights_path,
    )
    return LoadedCheckpoint(network, config, tokens, directory)


def save_checkpoint(
    network: DialogTTSNetwork,
    directory: str | Path,
    tokens: Mapping[str, int] | str | Path,
) -> Path:
    """Writes our checkpoint directory: weights, ``network.json`` and ``tokens.txt``.

    Args:
        network: The network (weights are saved from CPU copies).
        directory: Created if needed; existing files of the same names are replaced.
        tokens: The token table, or a path to a ``tokens.txt`` to copy.

    Returns:
        The directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table = read_token_table(tokens) if isinstance(tokens, (str, Path)) else dict(tokens)
    if table and max(table.values()) >= network.config.vocab_size:
        raise CheckpointError("token table has ids beyond the network's vocabulary")
    weights = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(weights, str(tmp))
    tmp.replace(directory / WEIGHTS_FILE)
    network.config.to_json(directory / CONFIG_FILE)
    write_token_table(table, directory / TOKENS_FILE)
    return directory


def load_checkpoint(
    directory: str | Path,
    *,
    device: torch.device | str = "cpu",
    turn_embedding: str | None = None,
) -> LoadedCheckpoint:
    """Loads our checkpoint directory, or an upstream one when ``network.json`` is absent.

    Args:
        directory: The checkpoint directory.
        device: Target device.
        turn_embedding: Overrides the saved turn-embedding rule when given.
    """
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        if (directory / UPSTREAM_CONFIG_FILE).is_file():
            return load_upstream_model_dir(
                directory, device=device, turn_embedding=turn_embedding or "tag"
            )
        raise CheckpointError(f"{directory} has neither {CONFIG_FILE} nor {UPSTREAM_CONFIG_FILE}")
    config = NetworkConfig.from_json(directory / CONFIG_FILE)
    if turn_embedding is not None:
        config = config.replace(turn_embedding=turn_embedding)
    network = DialogTTSNetwork(config)
    load_network_state(network, read_state_dict(directory / WEIGHTS_FILE))
    network.to(device).eval()
    tokens = read_token_table(directory / TOKENS_FILE)
    return LoadedCheckpoint(network, config, tokens, directory)


def resolve_model_dir(
    name_or_path: str | Path,
    *,
    repo_id: str = HUB_REPO_ID,
    checkpoint_name: str = UPSTREAM_CHECKPOINT_FILE,
    cache_dir: str | Path | None = None,
) -> Path:
    """A local model directory, downloading ``<repo_id>/<name>/`` from the Hugging Face
    hub when ``name_or_path`` is not an existing directory.

    ``name_or_path`` may be a directory, a model name (``"zipvoice_dialog"``) or
    ``"<repo_id>/<model name>"`` (``"k2-fsa/ZipVoice/zipvoice_dialog"``).

    Raises:
        CheckpointError: When the hub cannot be reached (e.g. offline) or lacks the files.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name.startswith(repo_id + "/"):
        name = name[len(repo_id) + 1 :]
    elif name.count("/") >= 2:
        owner, repo, name = name.split("/", 2)
        repo_id = f"{owner}/{repo}"
    if not name or "/" in name:
        raise CheckpointError(f"{name_or_path!r} is neither a directory nor a hub model name")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise CheckpointError(
            f"{name_or_path!r} is not a local directory and huggingface_hub is not installed"
        ) from exc
    local = None
    try:
        for filename in (checkpoint_name, UPSTREAM_CONFIG_FILE, TOKENS_FILE):
            local = hf_hub_download(repo_id, filename=f"{name}/{filename}", cache_dir=cache_dir)
    except Exception as exc:  # network errors, missing entries, offline mode
        raise CheckpointError(
            f"cannot fetch {name}/ from the Hugging Face hub repo {repo_id!r} "
            f"(offline or missing files: {type(exc).__name__}: {exc}); pass a local model "
            f"directory holding {checkpoint_name}, {UPSTREAM_CONFIG_FILE} and {TOKENS_FILE}"
        ) from exc
    return Path(local).parent


def parameter_shapes(network: torch.nn.Module) -> dict[str, list[int]]:
    """Every state-dict key of ``network`` with its shape (as lists, JSON-ready)."""
    return {k: list(v.shape) for k, v in network.state_dict().items()}


def summarize(state_dict: Mapping[str, Any]) -> str:
    """One line: number of tensors and elements, and the detected variant."""
    tensors = [v for v in state_dict.values() if isinstance(v, Tensor)]
    return (
        f"{len(tensors)} tensors, {sum(t.numel() for t in tensors)} elements, "
        f"variant {detect_variant(state_dict)}"
    )
