"""Options of a training run (``TrainOptions``), the learning-rate schedules and per-step seeds.

The CLI that builds these options is :mod:`model.training.train`; the loop that uses them is
:mod:`model.training.trainer`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.options import opt
from model.training.data import DataOptions

MODES = ("dialog", "single", "stereo")
VARIANT_OF_MODE = {"dialog": "dialog", "single": "zipvoice", "stereo": "dialog_stereo"}
LR_SCHEDULES = ("fixed", "warmup", "cosine")
AMP_MODES = ("auto", "none", "bf16", "fp16")


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

    cuts: tuple[str, ...] = opt(help="training cuts manifest(s)", group="run")
    exp_dir: str = opt(help="experiment directory", group="run")
    config: str | None = opt(None, "tiny, base or a network.json path", group="run")
    mode: str = opt("dialog", "what the model speaks", choices=MODES, group="run")
    features: str | None = opt(
        None,
        "feature preset (default: by the network's mel dim)",
        choices=("upstream", "offline"),
        group="run",
    )
    tokens: str | None = opt(None, "tokens.txt (default: built from the cuts)", group="run")
    init_from: str | None = opt(
        None, "model dir / hub id / checkpoint-*.pt to initialise from", group="run"
    )
    num_steps: int = opt(60000, "total optimizer steps", group="optimisation")
    lr: float = opt(1e-4, "peak learning rate", group="optimisation")
    lr_schedule: str = opt(
        "fixed", "learning-rate schedule", choices=LR_SCHEDULES, group="optimisation"
    )
    warmup_steps: int = opt(500, "warm-up steps of warmup/cosine", group="optimisation")
    min_lr_ratio: float = opt(0.1, "final lr fraction of cosine", group="optimisation")
    weight_decay: float = opt(0.01, "AdamW weight decay", group="optimisation")
    grad_clip: float = opt(1.0, "max global gradient norm (0: off)", group="optimisation")
    amp: str = opt("auto", "mixed precision", choices=AMP_MODES, group="optimisation")
    ema_decay: float = opt(0.999, "EMA decay (0 disables)", group="optimisation")
    save_every: int = opt(1000, "steps between checkpoints", group="checkpoints and logs")
    keep_last: int = opt(3, "checkpoint-{step}.pt files kept", group="checkpoints and logs")
    log_every: int = opt(10, "steps between log lines", group="checkpoints and logs")
    valid_cuts: tuple[str, ...] = opt((), "validation manifest(s)", group="checkpoints and logs")
    max_valid_batches: int = opt(20, "validation batches used", group="checkpoints and logs")
    text_drop_prob: float = opt(
        0.2,
        "CFG text dropout probability",
        aliases=("--condition-drop-ratio",),
        group="optimisation",
    )
    se_loss_weight: float = opt(1.0, "speaker-exclusive loss weight (stereo)", group="optimisation")
    seed: int = opt(42, "base seed of all randomness", group="run")
    resume: bool = opt(False, "continue from checkpoint-last.pt", group="run")
    device: str = opt("auto", "device", choices=("auto", "cpu", "cuda"), group="run")
    num_threads: int = opt(0, "torch CPU threads (0: torch's default)", group="run")
    regularisation: str = opt(
        "upstream",
        "Zipformer dropout/layer-skip schedules as upstream, or off",
        choices=("upstream", "none"),
        group="optimisation",
    )
    ref_duration_s: float = opt(
        50.0,
        "upstream's reference batch seconds for those schedules",
        aliases=("--ref-duration",),
        group="optimisation",
    )
    batch_count_offset: float | None = opt(
        None,
        "added to the schedules' batch count (default: 100000 with --init-from, else 0)",
        group="optimisation",
    )
    log_progress: bool = opt(True, "tqdm bar on rank 0", negations=("--no-progress",), group="run")
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
        return cls(**run_options_fields(data, ("cuts", "valid_cuts")))


def run_options_fields(data: dict[str, Any], path_lists: tuple[str, ...]) -> dict[str, Any]:
    """A run's saved options (``train.json``, ``distill.json``) as constructor arguments: the
    nested :class:`DataOptions` rebuilt, the lists of paths ``path_lists`` as tuples."""
    data = dict(data)
    data["data"] = DataOptions(**data.get("data", {}))
    for key in path_lists:
        data[key] = tuple(data.get(key, ()))
    return data


# ------------------------------------------------------------------------------------------
# schedule and seeds


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
