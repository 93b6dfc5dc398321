"""What a run trains: the network configuration, token table, feature configuration and, with
``--init-from``, the initial weights (upstream ZipVoice → dialogue → stereo conversions).

The experiment directory keeps them as ``network.json``, ``tokens.txt``, ``features.json`` and
``train.json``, written once by rank 0 and read back by every rank (and by inference).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.training.options import VARIANT_OF_MODE, TrainOptions

logger = logging.getLogger(__name__)

# tags upstream is known to put among the 28 dialogue tokens (issue #134), after [S1]/[S2]
DIALOG_TAGS = (
    "[S1]",
    "[S2]",
    "[LAUGHS]",
    "[COUGHS]",
    "[SIGHS]",
    "[GASPS]",
    "[CLEARS THROAT]",
    "[SINGING]",
)


@dataclass(frozen=True)
class Setup:
    """What a run trains: network config, token table, feature config, initial weights."""

    network_config: Any
    tokens: Any  # model.tokenizer.TokenTable
    feature_config: Any
    init_state: dict[str, torch.Tensor] | None = None


def _table_from_dict(tokens: dict[str, int]):
    from model.tokenizer import TokenTable

    return TokenTable(tuple(sorted(tokens.items(), key=lambda kv: kv[1])))


def _with_dialog_tags(table, vocab_rows: int):
    """Adds [S1], [S2] and known tags at ids >= ``vocab_rows`` (upstream's extension)."""
    from model.tokenizer import TokenTable

    entries = list(table.entries)
    present = {token for token, _ in entries}
    next_id = max(vocab_rows, table.vocab_size)
    for tag in DIALOG_TAGS:
        if tag not in present:
            entries.append((tag, next_id))
            next_id += 1
    return TokenTable(tuple(entries))


def _load_init_source(options: TrainOptions):
    """(network config, token table, state dict) of ``--init-from``."""
    from model.network import checkpoint as ckpt

    source = options.init_from
    path = Path(source)
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=False)
        if "network_config" not in blob or "model" not in blob:
            raise ValueError(f"{path} is not a training checkpoint of model.train")
        from model.network.config import NetworkConfig

        config = NetworkConfig.from_dict(blob["network_config"])
        return config, _table_from_dict(blob["tokens"]), blob["model"]
    directory = ckpt.resolve_model_dir(source)
    loaded = ckpt.load_checkpoint(directory)
    state = {k: v.detach().cpu() for k, v in loaded.network.state_dict().items()}
    return loaded.config, _table_from_dict(loaded.tokens), state


def _adapt_init(config, table, state, mode: str, seed: int):
    """Converts an init source to the run's variant (zipvoice → dialog → dialog_stereo)."""
    from model.network import checkpoint as ckpt

    target = VARIANT_OF_MODE[mode]
    gen = torch.Generator().manual_seed(seed)
    if config.variant == target:
        return config, table, state
    if target in ("dialog", "dialog_stereo") and config.variant == "zipvoice":
        rows = config.vocab_size
        state = ckpt.dialog_from_zipvoice(state, generator=gen)
        table = _with_dialog_tags(table, rows)
        config = config.replace(
            variant="dialog",
            vocab_size=int(state["embed.weight"].shape[0]),
            spk_a_id=table.id_of("[S1]"),
            spk_b_id=table.id_of("[S2]"),
        )
        logger.info("init: zipvoice -> dialog, vocabulary %d -> %d", rows, config.vocab_size)
    if target == "dialog_stereo" and config.variant == "dialog":
        state = ckpt.init_stereo_from_dialog(state)
        config = config.replace(variant="dialog_stereo")
        logger.info("init: dialog -> dialog_stereo (projections duplicated)")
    if config.variant != target:
        raise ValueError(f"cannot train mode {mode!r} from a {config.variant!r} network")
    return config, table, state


def _build_vocabulary(options: TrainOptions):
    from model.tokenizer import build_vocabulary
    from model.training.data import cut_text, load_cuts

    logger.info("no --tokens and no --init-from: building the token table from the cuts")
    cuts = load_cuts(options.cuts, options.data)
    texts = (cut_text(cut, options.mode) for cut in cuts)
    return build_vocabulary(texts, mode="emilia" if options.mode == "single" else "dialog")


def _network_config(options: TrainOptions, table):
    from model.network.config import NetworkConfig, preset

    variant = VARIANT_OF_MODE[options.mode]
    ids = {"vocab_size": table.vocab_size, "pad_id": table.pad_id}
    if variant != "zipvoice":
        ids.update(spk_a_id=table.id_of("[S1]"), spk_b_id=table.id_of("[S2]"))
        if ids["spk_a_id"] is None or ids["spk_b_id"] is None:
            raise ValueError("the token table lacks [S1]/[S2], which dialogue training needs")
    if options.config in ("tiny", "base"):
        return preset(options.config, variant=variant, **ids)
    path = Path(options.config)
    if not path.is_file():
        raise FileNotFoundError(f"--config {options.config}: not a preset and not a file")
    data = json.loads(path.read_text(encoding="utf-8"))
    base = data.pop("preset", None)
    if base is not None:  # {"preset": "tiny", <overrides>}: vocabulary from the token table
        return preset(base, variant=variant, **{**ids, **data})
    config = NetworkConfig.from_dict(data)
    if config.variant != variant:
        raise ValueError(
            f"{path} is a {config.variant!r} network; mode {options.mode!r} trains {variant!r}"
        )
    if config.vocab_size < table.vocab_size:
        raise ValueError(
            f"{path}: vocab_size {config.vocab_size} < token table's {table.vocab_size}"
        )
    return config


def _feature_config(options: TrainOptions, feat_dim: int):
    from model.audio.features import FeatureConfig

    name = options.features or {100: "upstream", 80: "offline"}.get(feat_dim)
    if name is None:
        raise ValueError(f"no feature preset has {feat_dim} mel bins; pass --features")
    config = FeatureConfig.preset(name)
    if config.n_mels != feat_dim:
        raise ValueError(f"features {name!r} have {config.n_mels} mels, the network {feat_dim}")
    return config


def prepare_setup(options: TrainOptions) -> Setup:
    """Resolve the network configuration, token table, features and initial weights.

    Raises:
        ValueError, FileNotFoundError: inconsistent options (named in the message).
    """
    from model.tokenizer import TokenTable

    state = None
    if options.init_from is not None:
        config, table, state = _load_init_source(options)
        config, table, state = _adapt_init(config, table, state, options.mode, options.seed)
        if options.tokens is not None:
            raise ValueError("--tokens and --init-from: the init source's table must be used")
        if options.config is not None:
            logger.warning("--config %s ignored: --init-from gives the network", options.config)
    else:
        table = TokenTable.load(options.tokens) if options.tokens else _build_vocabulary(options)
        config = _network_config(options, table)
    features = _feature_config(options, config.feat_dim)
    return Setup(config, table, features, state)


def write_setup(exp_dir: Path, setup: Setup, options: TrainOptions) -> None:
    exp_dir.mkdir(parents=True, exist_ok=True)
    setup.network_config.to_json(exp_dir / "network.json")
    setup.tokens.save(exp_dir / "tokens.txt")
    (exp_dir / "features.json").write_text(setup.feature_config.to_json() + "\n")
    (exp_dir / "train.json").write_text(json.dumps(options.to_dict(), indent=1) + "\n")


def read_setup(exp_dir: Path) -> Setup:
    from model.audio.features import FeatureConfig
    from model.network.config import NetworkConfig
    from model.tokenizer import TokenTable

    return Setup(
        NetworkConfig.from_json(exp_dir / "network.json"),
        TokenTable.load(exp_dir / "tokens.txt"),
        FeatureConfig.from_json((exp_dir / "features.json").read_text()),
    )
