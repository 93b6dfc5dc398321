"""Flow-matching training on the shared loop: the network, its loss, EMA, validation, checkpoints.

:class:`Trainer` is built by :func:`model.training.train.run`; the loop itself (seeds, update,
AMP, DDP, logs, resume) is :class:`model.training.loop.TrainingLoop`. Every step's randomness (t,
noise, masks, text dropout, and the network's own dropout/layer skipping through the global RNGs)
is derived from ``(seed, step, rank)``, so a resumed run continues exactly like the
uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.network.flow import FlowMatchingLoss, FlowOptions, draw_training_inputs
from model.training.loop import (
    DistContext,
    LoopSettings,
    TrainingLoop,
    amp_dtype,
    atomic_save,
    wrap_for_ranks,
)
from model.training.options import TrainOptions, lr_factor, step_seed
from model.training.run_config import Setup

logger = logging.getLogger(__name__)

CHECKPOINT_LAST = "checkpoint-last.pt"
BEST_VALID = "best-valid.pt"
_VALID_STREAM = 1_000_000  # "rank" of the validation draws in step_seed


def _rotate(exp_dir: Path, keep_last: int) -> None:
    saved = sorted(exp_dir.glob("checkpoint-[0-9]*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    for old in saved[:-keep_last]:
        old.unlink()


OPTIMIZER_BETAS = (0.9, 0.98)


def build_optimizer(
    network: torch.nn.Module, options: TrainOptions
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The trainer's optimizer (AdamW over every parameter) and its learning-rate schedule."""
    optimizer = torch.optim.AdamW(
        network.parameters(),
        lr=options.lr,
        betas=OPTIMIZER_BETAS,
        weight_decay=options.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, options))
    return optimizer, scheduler


# ------------------------------------------------------------------------------------------
# the run


class Trainer(TrainingLoop):
    """One process's flow-matching training (built by :func:`model.training.train.run`)."""

    window_keys = ("loss", "fm_loss", "se_loss", "grad_norm")
    last_keys = ("lr", "frames", "stereo")

    def __init__(self, options: TrainOptions, setup: Setup, ctx: DistContext) -> None:
        from model.audio.features import MelExtractor
        from model.network.zipvoice import DialogTTSNetwork
        from model.tokenizer import Tokenizer
        from model.training.data import DialogTTSDataset, load_cuts
        from model.training.ema import ModelEma

        super().__init__(LoopSettings.of(options, "train"), ctx, Path(options.exp_dir))
        self.options, self.setup = options, setup
        torch.manual_seed(options.seed)
        self.network = DialogTTSNetwork(setup.network_config)
        if setup.init_state is not None:
            from model.network.checkpoint import load_network_state

            load_network_state(self.network, setup.init_state)
        self.network.to(ctx.device)
        self.flow_options = FlowOptions.for_mode(
            options.mode,
            text_drop_prob=options.text_drop_prob,
            se_loss_weight=options.se_loss_weight,
        )
        self.loss_fn = FlowMatchingLoss(self.network, self.flow_options)
        self.model = wrap_for_ranks(self.loss_fn, ctx)
        self.optimizer, self.scheduler = build_optimizer(self.network, options)
        self.amp = amp_dtype(options.amp, ctx.device)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp == torch.float16)
        # the averaged model lives on rank 0, the only one that saves
        use_ema = options.ema_decay > 0 and ctx.is_main
        self.ema = ModelEma(self.network, options.ema_decay) if use_ema else None
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
        self.use_data(self.dataset, load_cuts(options.cuts, options.data), options.data)

    # -------------------------------------------------------------- checkpoint I/O

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (and the setup, to build the network again)."""
        return {
            "model": self.network.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            **self.loop_state(),
            "best_valid": self.best_valid,
            "network_config": self.setup.network_config.to_dict(),
            "feature_config": self.setup.feature_config.to_dict(),
            "tokens": dict(self.setup.tokens.entries),
            "train_options": self.options.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        from model.network.checkpoint import load_network_state

        load_network_state(self.network, state["model"])
        if self.ema is not None:
            if state["ema"] is None:
                raise ValueError("the checkpoint has no EMA state: resume with --ema-decay 0")
            self.ema.load_state_dict(state["ema"])
        self.best_valid = float(state.get("best_valid", math.inf))
        self.load_loop_state(state)

    def averaged_network(self) -> torch.nn.Module:
        """A copy of the network with the EMA weights (the network itself without EMA)."""
        if self.ema is None:
            return self.network
        net = copy.deepcopy(self.network)
        net.load_state_dict(self.ema.state_dict_for(net))
        return net

    def save(self) -> None:
        """Write ``checkpoint-{step}.pt``, ``checkpoint-last.pt`` and ``model.safetensors``."""
        from model.network.checkpoint import save_checkpoint

        path = self.exp_dir / f"checkpoint-{self.step}.pt"
        atomic_save(self.state_dict(), path)
        tmp = self.exp_dir / (CHECKPOINT_LAST + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(self.exp_dir / CHECKPOINT_LAST)
        _rotate(self.exp_dir, self.options.keep_last)
        save_checkpoint(self.averaged_network(), self.exp_dir, dict(self.setup.tokens.entries))
        logger.info("saved %s", path)

    def after_save(self) -> None:
        """The validation loss of the saved step; the best one is kept as ``best-valid.pt``."""
        if not self.options.valid_cuts:
            return
        loss = self.validation_loss(self.options.valid_cuts)
        logger.info("step %d validation loss %.4f", self.step, loss)
        with open(self.exp_dir / "log" / "valid.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": self.step, "valid_loss": loss}) + "\n")
        if loss < self.best_valid:
            self.best_valid = loss
            shutil.copyfile(self.exp_dir / f"checkpoint-{self.step}.pt", self.exp_dir / BEST_VALID)

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

    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """Upstream's flow-matching loss (plus the stereo separation loss) of one batch."""
        if self.options.regularisation == "upstream":
            from model.network.zipformer import set_batch_count

            set_batch_count(self.network, self.batch_count(self.step))
        features = self._features_for(batch, self.step).to(self.ctx.device, non_blocking=True)
        lens = batch["features_lens"].to(self.ctx.device)
        draw = draw_training_inputs(features, lens, self.flow_options, generator=generator)
        with self.autocast():
            out = self.model(batch["tokens"], features, lens, **vars(draw))
        return {
            "loss": out["loss"],
            "fm_loss": out["fm_loss"],
            "se_loss": out["se_loss"],
            "frames": lens.sum(),
            "stereo": float(features.size(-1) != self.setup.network_config.feat_dim),
        }

    def after_update(self, step: int) -> None:
        """Update the EMA of the weights."""
        if self.ema is not None:
            self.ema.update(self.network, step)

    def describe(self, record: dict[str, float]) -> str:
        """``step N loss L lr R grad-norm G``."""
        return (
            f"step {record['step']} loss {record['loss']:.4f} lr {record['lr']:.2e} "
            f"grad-norm {record['grad_norm']:.3f}"
        )

    @torch.no_grad()
    def validation_loss(self, cuts_paths: tuple[str, ...]) -> float:
        """Mean flow loss on the validation cuts with fixed draws (same every call)."""
        from model.training.data import BatchStream, load_cuts, make_sampler

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
