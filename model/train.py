"""Train the dialogue TTS model with flow matching.

Usage example::

    python -m model.train --cuts data/cuts.jsonl.gz --exp-dir exp/dialog --config tiny \\
        --num-steps 20000 --max-duration 200 --lr 1e-4 --lr-schedule fixed
    # continue after an interruption (exact: same batches, randomness and optimizer state)
    python -m model.train --cuts data/cuts.jsonl.gz --exp-dir exp/dialog --resume
    # 2 processes (gloo on CPU, nccl on GPU)
    torchrun --nproc_per_node 2 -m model.train --cuts ... --exp-dir ... --config base
    # dialogue training from a single-speaker upstream ZipVoice directory (vocab + 28)
    python -m model.train --cuts ... --exp-dir ... --init-from /models/zipvoice --mode dialog

The experiment directory holds everything inference needs and everything resume needs:
``network.json``, ``tokens.txt``, ``features.json`` (feature configuration), ``train.json``
(these options), ``model.safetensors`` (EMA weights, or the raw ones without EMA; so
``model.checkpoint.load_checkpoint(exp_dir)`` works), ``checkpoint-{step}.pt`` (the last
``--keep-last``), ``checkpoint-last.pt`` and ``best-valid.pt`` (with ``--valid-cuts``), and
``log/train.jsonl`` (one JSON line of scalars per ``--log-every`` steps) and ``log/train.log``.

Every step's randomness (t, noise, masks, text dropout, and the network's dropout through the
global RNG) is derived from ``(seed, step, rank)``, and the data position is saved as
(epoch, batches consumed), so a resumed run continues exactly like the uninterrupted one.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.data import DataOptions
from model.flow import FlowMatchingLoss, FlowOptions, draw_training_inputs

logger = logging.getLogger(__name__)

MODES = ("dialog", "single", "stereo")
VARIANT_OF_MODE = {"dialog": "dialog", "single": "zipvoice", "stereo": "dialog_stereo"}
LR_SCHEDULES = ("fixed", "warmup", "cosine")
AMP_MODES = ("auto", "none", "bf16", "fp16")
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
CHECKPOINT_LAST = "checkpoint-last.pt"
BEST_VALID = "best-valid.pt"
_VALID_STREAM = 1_000_000  # "rank" of the validation draws in step_seed


@dataclass(frozen=True)
class TrainOptions:
    """Everything a training run is configured by (saved as ``train.json``).

    Attributes:
        cuts: training CutSet manifests.
        exp_dir: experiment directory.
        config: network preset (``tiny``/``base``), a ``network.json`` path, or a JSON
            ``{"preset": "tiny", <field overrides>}`` (vocabulary and tag ids then come from
            the token table); None with ``init_from`` (the source's configuration is used).
        mode: ``dialog``, ``single`` or ``stereo``.
        features: feature preset (``upstream``/``offline``); None picks by the mel dim.
        tokens: a ``tokens.txt``; None takes the init source's, or builds one from the cuts.
        init_from: upstream/our model dir, hub id, or our ``checkpoint-*.pt`` to start from.
        num_steps: total optimizer steps.
        lr: peak learning rate.
        lr_schedule: ``fixed`` (upstream dialog: 1e-4), ``warmup`` (linear warm-up then
            constant) or ``cosine`` (warm-up then cosine decay to ``min_lr_ratio``·lr).
        warmup_steps: warm-up length for ``warmup``/``cosine``.
        min_lr_ratio: final lr fraction for ``cosine``.
        weight_decay: AdamW weight decay.
        grad_clip: max global gradient norm (0 disables clipping).
        amp: ``auto`` (bf16 on a bf16-capable GPU, else none), ``none``, ``bf16``, ``fp16``.
        ema_decay: EMA decay of the averaged model; 0 disables the EMA.
        save_every: steps between checkpoints.
        keep_last: ``checkpoint-{step}.pt`` files kept.
        log_every: steps between log lines.
        valid_cuts: optional validation manifests (loss every ``save_every`` steps).
        max_valid_batches: validation batches used.
        text_drop_prob: CFG text-condition dropout.
        se_loss_weight: speaker-exclusive loss weight (stereo).
        seed: base seed of all randomness.
        resume: continue from ``exp_dir/checkpoint-last.pt``.
        device: ``auto``, ``cpu`` or ``cuda``.
        num_threads: torch CPU threads (0: torch's default).
        regularisation: ``upstream``: the Zipformer's scheduled dropout / layer skipping follow
            upstream's batch-count schedules (``set_batch_count``); ``none``: they stay off
            (for memorisation tests and tiny data).
        ref_duration_s: upstream's reference batch duration: the schedules see
            ``step * max_duration * world_size / ref_duration_s + batch_count_offset``.
        batch_count_offset: added to that count; None = 100000 with ``init_from`` (upstream's
            dialogue fine-tuning: schedules at their final values), else 0.
        log_progress: show a tqdm bar on rank 0.
        data: batching options.
    """

    cuts: tuple[str, ...]
    exp_dir: str
    config: str | None = None
    mode: str = "dialog"
    features: str | None = None
    tokens: str | None = None
    init_from: str | None = None
    num_steps: int = 60000
    lr: float = 1e-4
    lr_schedule: str = "fixed"
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    amp: str = "auto"
    ema_decay: float = 0.999
    save_every: int = 1000
    keep_last: int = 3
    log_every: int = 10
    valid_cuts: tuple[str, ...] = ()
    max_valid_batches: int = 20
    text_drop_prob: float = 0.2
    se_loss_weight: float = 1.0
    seed: int = 42
    resume: bool = False
    device: str = "auto"
    num_threads: int = 0
    regularisation: str = "upstream"
    ref_duration_s: float = 50.0
    batch_count_offset: float | None = None
    log_progress: bool = True
    data: DataOptions = dataclasses.field(default_factory=DataOptions)

    def __post_init__(self) -> None:
        if not self.cuts:
            raise ValueError("cuts: give at least one manifest")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: expected one of {MODES}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}: expected one of {LR_SCHEDULES}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r}: expected one of {AMP_MODES}")
        if self.regularisation not in ("upstream", "none"):
            raise ValueError(f"regularisation={self.regularisation!r}: expected upstream or none")
        if self.ref_duration_s <= 0:
            raise ValueError(f"ref_duration_s={self.ref_duration_s}: need > 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: expected auto, cpu or cuda")
        for name in ("num_steps", "save_every", "log_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: need >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: need 0 <= decay < 1 (0 = off)")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: need > 0")
        if self.config is None and self.init_from is None and not self.resume:
            raise ValueError("give --config (tiny, base or a network.json) or --init-from")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainOptions:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["data"] = DataOptions(**data.get("data", {}))
        for key in ("cuts", "valid_cuts"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


# ------------------------------------------------------------------------------------------
# schedule, seeds, distributed


def lr_factor(step: int, options: TrainOptions) -> float:
    """Multiplier of ``options.lr`` at 0-based ``step``."""
    if options.lr_schedule == "fixed":
        return 1.0
    warm = max(options.warmup_steps, 1)
    if step < options.warmup_steps:
        return (step + 1) / warm
    if options.lr_schedule == "warmup":
        return 1.0
    span = max(options.num_steps - options.warmup_steps, 1)
    progress = min((step - options.warmup_steps) / span, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return options.min_lr_ratio + (1.0 - options.min_lr_ratio) * cosine


def step_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed for one (step, rank), independent across steps and ranks."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass(frozen=True)
class _Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_opt: str) -> _Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_opt == "cuda" or (device_opt == "auto" and torch.cuda.is_available())
    if device_opt == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but CUDA is not available")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return _Dist(rank, world_size, local_rank, device)


def _barrier(ctx: _Dist) -> None:
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _all_mean(values: list[float], ctx: _Dist) -> list[float]:
    if ctx.world_size == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return (tensor / ctx.world_size).tolist()


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "none":
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


# ------------------------------------------------------------------------------------------
# experiment setup (network config, tokens, features, initial weights)


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
    from model import checkpoint as ckpt

    source = options.init_from
    path = Path(source)
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=False)
        if "network_config" not in blob or "model" not in blob:
            raise ValueError(f"{path} is not a training checkpoint of model.train")
        from model.config import NetworkConfig

        config = NetworkConfig.from_dict(blob["network_config"])
        return config, _table_from_dict(blob["tokens"]), blob["model"]
    directory = ckpt.resolve_model_dir(source)
    loaded = ckpt.load_checkpoint(directory)
    state = {k: v.detach().cpu() for k, v in loaded.network.state_dict().items()}
    return loaded.config, _table_from_dict(loaded.tokens), state


def _adapt_init(config, table, state, mode: str, seed: int):
    """Converts an init source to the run's variant (zipvoice → dialog → dialog_stereo)."""
    from model import checkpoint as ckpt

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
    from model.data import cut_text, load_cuts
    from model.tokenizer import build_vocabulary

    logger.info("no --tokens and no --init-from: building the token table from the cuts")
    cuts = load_cuts(options.cuts, options.data)
    texts = (cut_text(cut, options.mode) for cut in cuts)
    return build_vocabulary(texts, mode="emilia" if options.mode == "single" else "dialog")


def _network_config(options: TrainOptions, table):
    from model.config import NetworkConfig, preset

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
    from model.features import FeatureConfig

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


def _write_setup(exp_dir: Path, setup: Setup, options: TrainOptions) -> None:
    exp_dir.mkdir(parents=True, exist_ok=True)
    setup.network_config.to_json(exp_dir / "network.json")
    setup.tokens.save(exp_dir / "tokens.txt")
    (exp_dir / "features.json").write_text(setup.feature_config.to_json() + "\n")
    (exp_dir / "train.json").write_text(json.dumps(options.to_dict(), indent=1) + "\n")


def _read_setup(exp_dir: Path) -> Setup:
    from model.config import NetworkConfig
    from model.features import FeatureConfig
    from model.tokenizer import TokenTable

    return Setup(
        NetworkConfig.from_json(exp_dir / "network.json"),
        TokenTable.load(exp_dir / "tokens.txt"),
        FeatureConfig.from_json((exp_dir / "features.json").read_text()),
    )


# ------------------------------------------------------------------------------------------
# checkpoints


def _rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _rotate(exp_dir: Path, keep_last: int) -> None:
    saved = sorted(exp_dir.glob("checkpoint-[0-9]*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    for old in saved[:-keep_last]:
        old.unlink()


# ------------------------------------------------------------------------------------------
# the run


class Trainer:
    """One process's training state and loop (built by :func:`run`)."""

    def __init__(self, options: TrainOptions, setup: Setup, ctx: _Dist) -> None:
        from model.data import BatchStream, DialogTTSDataset, load_cuts, make_sampler
        from model.ema import ModelEma
        from model.features import MelExtractor
        from model.network import DialogTTSNetwork
        from model.tokenizer import Tokenizer

        self.options, self.setup, self.ctx = options, setup, ctx
        self.exp_dir = Path(options.exp_dir)
        torch.manual_seed(options.seed)
        self.network = DialogTTSNetwork(setup.network_config)
        if setup.init_state is not None:
            from model.checkpoint import load_network_state

            load_network_state(self.network, setup.init_state)
        self.network.to(ctx.device)
        self.flow_options = FlowOptions.for_mode(
            options.mode,
            text_drop_prob=options.text_drop_prob,
            se_loss_weight=options.se_loss_weight,
        )
        self.loss_fn = FlowMatchingLoss(self.network, self.flow_options)
        self.model: torch.nn.Module = self.loss_fn
        if ctx.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            # some parameters sit out some steps: stereo alternates the stereo and mono
            # projections, and upstream's regularisation skips the positional-score branch
            self.model = DistributedDataParallel(
                self.loss_fn,
                device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=options.lr,
            betas=(0.9, 0.98),
            weight_decay=options.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, options)
        )
        self.amp_dtype = _amp_dtype(options.amp, ctx.device)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp_dtype == torch.float16)
        # the averaged model lives on rank 0, the only one that saves
        use_ema = options.ema_decay > 0 and ctx.is_main
        self.ema = ModelEma(self.network, options.ema_decay) if use_ema else None
        self.step = 0
        self.best_valid = math.inf
        self.tokenizer = Tokenizer(
            setup.tokens, mode="emilia" if options.mode == "single" else "dialog"
        )
        on_the_fly = options.data.on_the_fly_feats
        extractor = MelExtractor(setup.feature_config) if on_the_fly else None
        self.dataset = DialogTTSDataset(
            self.tokenizer,
            extractor,
            mode=options.mode,
            feat_scale=setup.feature_config.feat_scale,
            on_the_fly_feats=on_the_fly,
        )
        cuts = load_cuts(options.cuts, options.data)
        self.stream = BatchStream(
            self.dataset,
            make_sampler(cuts, options.data),
            rank=ctx.rank,
            world_size=ctx.world_size,
            num_workers=options.data.num_workers,
        )
        self._make_stream = lambda state: BatchStream(
            self.dataset,
            make_sampler(cuts, options.data),
            rank=ctx.rank,
            world_size=ctx.world_size,
            num_workers=options.data.num_workers,
            state=state,
        )

    # -------------------------------------------------------------- checkpoint I/O

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (and the setup, to build the network again)."""
        return {
            "model": self.network.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "sampler": self.stream.state_dict(),
            "best_valid": self.best_valid,
            "rng": _rng_state(),
            "network_config": self.setup.network_config.to_dict(),
            "feature_config": self.setup.feature_config.to_dict(),
            "tokens": dict(self.setup.tokens.entries),
            "train_options": self.options.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        from model.checkpoint import load_network_state

        load_network_state(self.network, state["model"])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError("the checkpoint has no EMA state: resume with --ema-decay 0")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_valid = float(state.get("best_valid", math.inf))
        self.stream = self._make_stream(state["sampler"])
        _set_rng_state(state["rng"])

    def averaged_network(self) -> torch.nn.Module:
        """A copy of the network with the EMA weights (the network itself without EMA)."""
        if self.ema is None:
            return self.network
        net = copy.deepcopy(self.network)
        net.load_state_dict(self.ema.state_dict_for(net))
        return net

    def save(self) -> None:
        """Write ``checkpoint-{step}.pt``, ``checkpoint-last.pt`` and ``model.safetensors``."""
        from model.checkpoint import save_checkpoint

        path = self.exp_dir / f"checkpoint-{self.step}.pt"
        _atomic_save(self.state_dict(), path)
        tmp = self.exp_dir / (CHECKPOINT_LAST + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(self.exp_dir / CHECKPOINT_LAST)
        _rotate(self.exp_dir, self.options.keep_last)
        save_checkpoint(self.averaged_network(), self.exp_dir, dict(self.setup.tokens.entries))
        logger.info("saved %s", path)

    # -------------------------------------------------------------- steps

    def _features_for(self, batch: dict[str, Any], step: int) -> torch.Tensor:
        if self.options.mode == "stereo" and step % 2 == 0:
            # updates 1, 3, 5, ... (step 0, 2, ...) use the two channels, the others the mix
            return batch["stereo_features"]
        return batch["features"]

    def batch_count(self, step: int) -> float:
        """The batch count upstream's Zipformer schedules see at ``step``."""
        options = self.options
        offset = options.batch_count_offset
        if offset is None:
            offset = 100000.0 if options.init_from is not None else 0.0
        scale = options.data.max_duration_s * self.ctx.world_size / options.ref_duration_s
        return step * scale + offset

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimizer update on ``batch``; returns its scalars."""
        ctx, step = self.ctx, self.step
        seed = step_seed(self.options.seed, step, ctx.rank)
        # the network's own randomness (dropout: torch; layer skipping: python's random)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        generator = torch.Generator().manual_seed(seed)
        if self.options.regularisation == "upstream":
            from model.zipformer import set_batch_count

            set_batch_count(self.network, self.batch_count(step))
        features = self._features_for(batch, step).to(ctx.device, non_blocking=True)
        lens = batch["features_lens"].to(ctx.device)
        draw = draw_training_inputs(features, lens, self.flow_options, generator=generator)
        self.model.train()
        with torch.autocast(
            ctx.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            out = self.model(batch["tokens"], features, lens, **vars(draw))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.options.grad_clip if self.options.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm)
        if torch.isfinite(grad_norm) or self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # fp16: skipped by the scaler on inf/nan
        else:
            logger.warning("step %d: non-finite gradient norm, update skipped", step)
        self.scaler.update()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.network, step)
        self.step += 1
        return {
            "loss": float(out["loss"].detach()),
            "fm_loss": float(out["fm_loss"]),
            "se_loss": float(out["se_loss"]),
            "grad_norm": float(grad_norm),
            "lr": lr,
            "frames": float(lens.sum()),
            "stereo": float(features.size(-1) != self.setup.network_config.feat_dim),
        }

    @torch.no_grad()
    def validation_loss(self, cuts_paths: tuple[str, ...]) -> float:
        """Mean flow loss on the validation cuts with fixed draws (same every call)."""
        from model.data import BatchStream, load_cuts, make_sampler

        data = dataclasses.replace(self.options.data, shuffle=False)
        stream = BatchStream(self.dataset, make_sampler(load_cuts(cuts_paths, data), data))
        self.loss_fn.eval()
        losses = []
        for index, batch in enumerate(stream):
            if index >= self.options.max_valid_batches or stream.epoch > 0:
                break
            # fixed draws: the same batches get the same t/noise/masks at every evaluation
            generator = torch.Generator().manual_seed(
                step_seed(self.options.seed, index, _VALID_STREAM)
            )
            features = batch["features"].to(self.ctx.device)
            lens = batch["features_lens"].to(self.ctx.device)
            draw = draw_training_inputs(features, lens, self.flow_options, generator=generator)
            out = self.loss_fn(batch["tokens"], features, lens, **vars(draw))
            losses.append(float(out["fm_loss"]))
        self.loss_fn.train()
        return float(np.mean(losses)) if losses else math.nan

    def check_replicas(self) -> None:
        """Raise if the DDP replicas' weights differ (they must stay identical)."""
        if self.ctx.world_size == 1:
            return
        import torch.distributed as dist

        total = torch.zeros(1, dtype=torch.float64, device=self.ctx.device)
        for p in self.network.parameters():
            total += p.detach().double().sum()
        gathered = [torch.zeros_like(total) for _ in range(self.ctx.world_size)]
        dist.all_gather(gathered, total)
        values = [float(g) for g in gathered]
        if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
            raise RuntimeError(f"DDP replicas diverged: parameter sums {values}")
        logger.info("replicas in sync (parameter sum %.6f on %d ranks)", values[0], len(values))

    # -------------------------------------------------------------- loop

    def fit(self) -> None:
        """Train to ``num_steps``, logging and checkpointing on the way."""
        from tqdm import tqdm

        options, ctx = self.options, self.ctx
        log_path = self.exp_dir / "log" / "train.jsonl"
        bar = tqdm(
            total=options.num_steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (ctx.is_main and options.log_progress),
        )
        window: list[dict[str, float]] = []
        tick = time.perf_counter()
        batches = iter(self.stream)
        while self.step < options.num_steps:
            stats = self.train_step(next(batches))
            window.append(stats)
            bar.update(1)
            if self.step % options.log_every == 0 or self.step == options.num_steps:
                keys = ("loss", "fm_loss", "se_loss", "grad_norm")
                means = _all_mean([float(np.mean([w[k] for w in window])) for k in keys], ctx)
                elapsed = time.perf_counter() - tick
                record = {
                    "step": self.step,
                    "epoch": self.stream.epoch,
                    **dict(zip(keys, means)),
                    "lr": stats["lr"],
                    "frames": stats["frames"],
                    "stereo": stats["stereo"],
                    "steps_per_s": len(window) / max(elapsed, 1e-9),
                }
                if ctx.is_main:
                    with open(log_path, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    logger.info(
                        "step %d loss %.4f lr %.2e grad-norm %.3f %.2f steps/s",
                        self.step,
                        record["loss"],
                        record["lr"],
                        record["grad_norm"],
                        record["steps_per_s"],
                    )
                window, tick = [], time.perf_counter()
            if self.step % options.save_every == 0 or self.step == options.num_steps:
                self._checkpoint()
        bar.close()
        self.check_replicas()

    def _checkpoint(self) -> None:
        if self.ctx.is_main:
            self.save()
            if self.options.valid_cuts:
                loss = self.validation_loss(self.options.valid_cuts)
                logger.info("step %d validation loss %.4f", self.step, loss)
                with open(self.exp_dir / "log" / "valid.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": self.step, "valid_loss": loss}) + "\n")
                if loss < self.best_valid:
                    self.best_valid = loss
                    shutil.copyfile(
                        self.exp_dir / f"checkpoint-{self.step}.pt", self.exp_dir / BEST_VALID
                    )
        _barrier(self.ctx)


def run(options: TrainOptions) -> Path:
    """Train in this process (one rank of a torchrun job, or alone).

    Args:
        options: the run's options.

    Returns:
        The experiment directory.

    Raises:
        ValueError, FileNotFoundError: bad options, caught before any weights are loaded.
    """
    for path in (*options.cuts, *options.valid_cuts):
        if not Path(path).is_file():
            raise FileNotFoundError(f"cuts manifest not found: {path}")
    exp_dir = Path(options.exp_dir)
    last = exp_dir / CHECKPOINT_LAST
    if options.resume and not last.is_file():
        raise FileNotFoundError(f"--resume: {last} does not exist")
    if not options.resume and last.is_file():
        raise ValueError(f"{exp_dir} already holds checkpoints: pass --resume or a new --exp-dir")
    threads_before = torch.get_num_threads()
    if options.num_threads > 0:
        torch.set_num_threads(options.num_threads)
    ctx = _init_distributed(options.device)
    handler = None
    try:
        if ctx.is_main:
            (exp_dir / "log").mkdir(parents=True, exist_ok=True)
            handler = _add_file_log(exp_dir / "log" / "train.log")
        if options.resume:
            setup = _read_setup(exp_dir)
        else:
            full = prepare_setup(options) if ctx.is_main else None
            if full is not None:
                _write_setup(exp_dir, full, options)
            _barrier(ctx)
            setup = _read_setup(exp_dir)
            if full is not None and full.init_state is not None:
                # only rank 0 loads the weights: DDP broadcasts them to the other ranks
                setup = dataclasses.replace(setup, init_state=full.init_state)
        trainer = Trainer(options, setup, ctx)
        if options.resume:
            trainer.load_state_dict(torch.load(last, map_location=ctx.device, weights_only=False))
            logger.info("resumed from %s at step %d", last, trainer.step)
        logger.info(
            "rank %d/%d on %s: %d parameters, amp=%s",
            ctx.rank,
            ctx.world_size,
            ctx.device,
            trainer.network.num_parameters(),
            trainer.amp_dtype,
        )
        trainer.fit()
    finally:
        torch.set_num_threads(threads_before)  # run() may be called inside a bigger process
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        if ctx.world_size > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return exp_dir


def _add_file_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


# ------------------------------------------------------------------------------------------
# CLI


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser (flags accept ``-`` or ``_``)."""
    parser = argparse.ArgumentParser(
        prog="python -m model.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def add(group, *names: str, **kw):
        flags = []
        for name in names:  # --exp-dir and --exp_dir (house style: Beam-like underscores)
            flags += [name] if "-" not in name[2:] else [name, "--" + name[2:].replace("-", "_")]
        group.add_argument(*flags, **kw)

    d = TrainOptions.__dataclass_fields__
    dd = DataOptions()
    run_group = parser.add_argument_group("run")
    add(run_group, "--cuts", nargs="+", required=True, help="training cuts manifest(s)")
    add(run_group, "--exp-dir", required=True, help="experiment directory")
    add(run_group, "--config", default=None, help="tiny, base or a network.json path")
    add(run_group, "--mode", choices=MODES, default="dialog")
    add(
        run_group,
        "--features",
        choices=("upstream", "offline"),
        default=None,
        help="feature preset (default: by the network's mel dim)",
    )
    add(run_group, "--tokens", default=None, help="tokens.txt (default: built from the cuts)")
    add(
        run_group,
        "--init-from",
        default=None,
        help="model dir / hub id / checkpoint-*.pt to initialise from",
    )
    add(run_group, "--resume", action="store_true", help="continue from checkpoint-last.pt")
    add(run_group, "--seed", type=int, default=d["seed"].default)
    add(run_group, "--device", choices=("auto", "cpu", "cuda"), default="auto")
    add(run_group, "--num-threads", type=int, default=0, help="torch CPU threads (0: default)")
    add(run_group, "--no-progress", action="store_true", help="no tqdm bar")
    opt = parser.add_argument_group("optimisation")
    add(opt, "--num-steps", type=int, default=d["num_steps"].default)
    add(opt, "--lr", type=float, default=d["lr"].default)
    add(opt, "--lr-schedule", choices=LR_SCHEDULES, default=d["lr_schedule"].default)
    add(opt, "--warmup-steps", type=int, default=d["warmup_steps"].default)
    add(opt, "--min-lr-ratio", type=float, default=d["min_lr_ratio"].default)
    add(opt, "--weight-decay", type=float, default=d["weight_decay"].default)
    add(opt, "--grad-clip", type=float, default=d["grad_clip"].default)
    add(opt, "--amp", choices=AMP_MODES, default=d["amp"].default)
    add(opt, "--ema-decay", type=float, default=d["ema_decay"].default, help="0 disables")
    add(
        opt,
        "--condition-drop-ratio",
        "--text-drop-prob",
        type=float,
        default=d["text_drop_prob"].default,
        help="CFG text dropout probability",
    )
    add(opt, "--se-loss-weight", type=float, default=d["se_loss_weight"].default)
    add(
        opt,
        "--regularisation",
        choices=("upstream", "none"),
        default="upstream",
        help="Zipformer dropout/layer-skip schedules as upstream, or off",
    )
    add(
        opt,
        "--ref-duration",
        type=float,
        default=d["ref_duration_s"].default,
        help="upstream's reference batch seconds for those schedules",
    )
    add(
        opt,
        "--batch-count-offset",
        type=float,
        default=None,
        help="added to the schedules' batch count (default: 100000 with --init-from, else 0)",
    )
    ck = parser.add_argument_group("checkpoints and logs")
    add(ck, "--save-every", type=int, default=d["save_every"].default)
    add(ck, "--keep-last", type=int, default=d["keep_last"].default)
    add(ck, "--log-every", type=int, default=d["log_every"].default)
    add(ck, "--valid-cuts", nargs="+", default=[])
    add(ck, "--max-valid-batches", type=int, default=d["max_valid_batches"].default)
    data = parser.add_argument_group("data")
    add(
        data,
        "--max-duration",
        type=float,
        default=dd.max_duration_s,
        help="seconds of audio per batch and process",
    )
    add(data, "--num-buckets", type=int, default=dd.num_buckets)
    add(data, "--min-cut-duration", type=float, default=dd.min_cut_duration_s)
    add(data, "--max-cut-duration", type=float, default=dd.max_cut_duration_s)
    add(data, "--no-shuffle", action="store_true")
    add(
        data,
        "--precomputed-feats",
        action="store_true",
        help="read lhotse feature storage instead of computing mels on the fly",
    )
    add(data, "--num-workers", type=int, default=dd.num_workers)
    return parser


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """Typed options from parsed arguments."""
    data = DataOptions(
        max_duration_s=args.max_duration,
        num_buckets=args.num_buckets,
        min_cut_duration_s=args.min_cut_duration,
        max_cut_duration_s=args.max_cut_duration,
        shuffle=not args.no_shuffle,
        seed=args.seed,
        on_the_fly_feats=not args.precomputed_feats,
        num_workers=args.num_workers,
    )
    return TrainOptions(
        cuts=tuple(args.cuts),
        exp_dir=args.exp_dir,
        config=args.config,
        mode=args.mode,
        features=args.features,
        tokens=args.tokens,
        init_from=args.init_from,
        num_steps=args.num_steps,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        amp=args.amp,
        ema_decay=args.ema_decay,
        save_every=args.save_every,
        keep_last=args.keep_last,
        log_every=args.log_every,
        valid_cuts=tuple(args.valid_cuts),
        max_valid_batches=args.max_valid_batches,
        text_drop_prob=args.condition_drop_ratio,
        se_loss_weight=args.se_loss_weight,
        seed=args.seed,
        resume=args.resume,
        device=args.device,
        num_threads=args.num_threads,
        regularisation=args.regularisation,
        ref_duration_s=args.ref_duration,
        batch_count_offset=args.batch_count_offset,
        log_progress=not args.no_progress,
        data=data,
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (bad options: 2, no traceback)."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from model.checkpoint import CheckpointError

    try:
        options = options_from_args(args)
        run(options)
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"model.train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
