"""The training loop of one process: optimizer, schedule, AMP, EMA, DDP, checkpoints, logs.

:class:`Trainer` is built by :func:`model.training.train.run`. Every step's randomness (t, noise, masks,
text dropout, and the network's own dropout/layer skipping through the global RNGs) is derived
from ``(seed, step, rank)``, and the data position is saved as (epoch, batches consumed), so a
resumed run continues exactly like the uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.inference.synthesis import resolve_device
from model.network.flow import FlowMatchingLoss, FlowOptions, draw_training_inputs
from model.training.options import TrainOptions, lr_factor, step_seed
from model.training.run_config import Setup

logger = logging.getLogger(__name__)

CHECKPOINT_LAST = "checkpoint-last.pt"
BEST_VALID = "best-valid.pt"
_VALID_STREAM = 1_000_000  # "rank" of the validation draws in step_seed


@dataclass(frozen=True)
class DistContext:
    """Where this process runs: its rank among ``world_size`` (torchrun's env vars) and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0


def init_distributed(device_opt: str) -> DistContext:
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK, pick the device, join the process group.

    Args:
        device_opt: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.

    Returns:
        The context (gloo backend on CPU, nccl on CUDA, no group for one process).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(resolve_device(device_opt, mps=False))
    use_cuda = device.type == "cuda"
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, device)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _all_mean(values: list[float], ctx: DistContext) -> list[float]:
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

    def __init__(self, options: TrainOptions, setup: Setup, ctx: DistContext) -> None:
        from model.audio.features import MelExtractor
        from model.network.zipvoice import DialogTTSNetwork
        from model.tokenizer import Tokenizer
        from model.training.data import BatchStream, DialogTTSDataset, load_cuts, make_sampler
        from model.training.ema import ModelEma

        self.options, self.setup, self.ctx = options, setup, ctx
        self.exp_dir = Path(options.exp_dir)
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
        from model.network.checkpoint import load_network_state

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
        from model.network.checkpoint import save_checkpoint

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
            from model.network.zipformer import set_batch_count

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
        barrier(self.ctx)
