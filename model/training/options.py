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
