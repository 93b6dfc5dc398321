"""The training loop that training and distillation share: one process of a (torchrun) job.

:class:`TrainingLoop` owns what does not depend on the objective: the process group, the
per-step seeds, the optimizer update (AMP scaler, gradient clipping, schedule), the log, the
checkpoint cadence, the resume state (optimizer, schedule, scaler, data position, RNGs) and the
replica check of DDP. A subclass builds its networks and data and supplies
:meth:`~TrainingLoop.compute_loss` (one batch's loss) and :meth:`~TrainingLoop.save`
(its checkpoint directory): :class:`model.training.trainer.Trainer` (flow matching) and
:class:`model.training.distill.Distiller` (few-step distillation).

Every step's randomness is derived from ``(seed, step, rank)`` and the data position is saved as
(epoch, batches consumed), so a resumed run continues exactly like the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.inference.synthesis import resolve_device
from model.training.options import step_seed

logger = logging.getLogger(__name__)


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


@contextlib.contextmanager
def process_run(
    device_opt: str, exp_dir: Path, log_name: str, num_threads: int = 0
) -> Iterator[DistContext]:
    """One rank's run: threads, process group and ``log/<log_name>.log``, undone on exit.

    Args:
        device_opt: ``auto``, ``cpu`` or ``cuda``.
        exp_dir: the experiment directory (rank 0 creates ``log/`` there).
        log_name: the log file's stem.
        num_threads: torch intra-op threads (0: leave as is).

    Yields:
        The process's :class:`DistContext`.
    """
    threads_before = torch.get_num_threads()
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    ctx = init_distributed(device_opt)
    handler = None
    try:
        if ctx.is_main:
            (exp_dir / "log").mkdir(parents=True, exist_ok=True)
            handler = _add_file_log(exp_dir / "log" / f"{log_name}.log")
        yield ctx
        barrier(ctx)  # every rank done before any tears the group down
    finally:
        torch.set_num_threads(threads_before)  # a run may sit inside a bigger process
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        if ctx.world_size > 1:
            import gc

            import torch.distributed as dist

            gc.collect()  # drop DDP reducers (and their gloo work) before the group goes
            dist.destroy_process_group()


def _add_file_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def all_mean(values: list[float], ctx: DistContext) -> list[float]:
    """The mean of each value over the ranks."""
    if ctx.world_size == 1:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return (tensor / ctx.world_size).tolist()


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` (``none``, ``auto``, ``bf16``, ``fp16``) on ``device``."""
    if amp == "none":
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return torch.bfloat16 if amp == "bf16" else torch.float16


def rng_state() -> dict[str, Any]:
    """The global RNGs' states (torch, numpy, python, CUDA)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file, so a crash never leaves half a checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def wrap_for_ranks(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when there is more than one rank."""
    if ctx.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    # some parameters sit out some steps: stereo alternates the stereo and mono projections,
    # upstream's regularisation skips the positional-score branch; frozen ones are not synced
    return DistributedDataParallel(
        module,
        device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        find_unused_parameters=True,
    )


@dataclass(frozen=True)
class LoopSettings:
    """What the loop itself is configured by (both commands' options map onto it).

    Attributes:
        num_steps: run until this many optimizer steps.
        log_every: steps between log records.
        save_every: steps between checkpoints.
        seed: base seed of the per-step draws.
        grad_clip: max gradient norm (0 = off).
        log_progress: a tqdm bar on rank 0.
        log_name: ``log/<log_name>.jsonl`` holds the records.
    """

    num_steps: int
    log_every: int
    save_every: int
    seed: int
    grad_clip: float
    log_progress: bool
    log_name: str

    @classmethod
    def of(cls, options: Any, log_name: str) -> LoopSettings:
        """The settings from a command's options (fields of the same names)."""
        names = ("num_steps", "log_every", "save_every", "seed", "grad_clip", "log_progress")
        return cls(**{name: getattr(options, name) for name in names}, log_name=log_name)


class TrainingLoop(ABC):
    """The optimizer loop of one process, independent of the objective.

    A subclass sets, in its ``__init__`` after calling this one: ``network`` (the trained
    module, whose parameters the optimizer holds), ``model`` (the module whose forward
    :meth:`compute_loss` calls, :func:`wrap_for_ranks` applied), ``optimizer``, optionally
    ``scheduler`` and ``scaler``, and ``stream`` plus ``make_stream(state)`` (a
    :class:`model.training.data.BatchStream` factory, for resuming).

    Args:
        settings: the loop's settings.
        ctx: this process's place in the job.
        exp_dir: the experiment directory.
    """

    #: per-step scalars averaged over each logging window (and the ranks)
    window_keys: tuple[str, ...] = ("loss", "grad_norm")
    #: per-step scalars logged as their value at the window's last step
    last_keys: tuple[str, ...] = ("lr",)

    def __init__(self, settings: LoopSettings, ctx: DistContext, exp_dir: Path) -> None:
        self.settings, self.ctx, self.exp_dir = settings, ctx, exp_dir
        self.step = 0
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=False)
        self.amp: torch.dtype | None = None
        self.network: torch.nn.Module
        self.model: torch.nn.Module
        self.optimizer: torch.optim.Optimizer
        self.stream: Any
        self.make_stream: Callable[[dict[str, Any] | None], Any]

    # -------------------------------------------------------------- what a subclass supplies

    @abstractmethod
    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """One batch's loss (``"loss"``, with gradient) and diagnostics (floats or tensors).

        Called in training mode with the global RNGs seeded for this step; ``generator`` (a
        CPU generator of the same seed) makes the objective's own draws.
        """

    @abstractmethod
    def save(self) -> None:
        """Write the checkpoint directory and the resume state (rank 0 only)."""

    def after_update(self, step: int) -> None:  # noqa: B027 (an optional hook)
        """Hook after the optimizer update of ``step`` (an EMA, for instance)."""

    def after_save(self) -> None:  # noqa: B027 (an optional hook)
        """Hook on rank 0 after each :meth:`save` (a validation pass, for instance)."""

    def describe(self, record: dict[str, float]) -> str:
        """The log line of a record."""
        return f"step {record['step']} loss {record['loss']:.5f} lr {record['lr']:.2e}"

    def use_data(self, dataset: Any, cuts: Any, data_options: Any) -> None:
        """Batches of ``cuts`` through ``dataset``, this rank's shard, resumable."""
        from model.training.data import BatchStream, make_sampler

        def make_stream(state: dict[str, Any] | None) -> BatchStream:
            return BatchStream(
                dataset,
                make_sampler(cuts, data_options),
                rank=self.ctx.rank,
                world_size=self.ctx.world_size,
                num_workers=data_options.num_workers,
                state=state,
            )

        self.make_stream = make_stream
        self.stream = make_stream(None)

    # -------------------------------------------------------------- state

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (:meth:`loop_state` and the subclass's own)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""

    def resume(self, path: Path) -> None:
        """Continue from the resume state saved at ``path``."""
        self.load_state_dict(torch.load(path, map_location=self.ctx.device, weights_only=False))
        logger.info("resumed from %s at step %d", path, self.step)

    def loop_state(self) -> dict[str, Any]:
        """The loop's part of the resume state."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "sampler": self.stream.state_dict(),
            "rng": rng_state(),
        }

    def load_loop_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`loop_state` output."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.stream = self.make_stream(state["sampler"])
        set_rng_state(state["rng"])

    # -------------------------------------------------------------- one update

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast at the run's AMP dtype (a no-op without AMP)."""
        return torch.autocast(
            self.ctx.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
        )

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimizer update on ``batch``; returns its scalars."""
        step = self.step
        seed = step_seed(self.settings.seed, step, self.ctx.rank)
        # the networks' own randomness (dropout: torch; layer skipping: python's random)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        generator = torch.Generator().manual_seed(seed)
        self.model.train()
        out = self.compute_loss(batch, generator)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.settings.grad_clip if self.settings.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), max_norm)
        if torch.isfinite(grad_norm) or self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # fp16: skipped by the scaler on inf/nan
        else:
            logger.warning("step %d: non-finite gradient norm, update skipped", step)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            self.scheduler.step()
        self.after_update(step)
        self.step += 1
        scalars = {key: float(value) for key, value in out.items() if key != "loss"}
        return {
            "loss": float(out["loss"].detach()),
            **scalars,
            "grad_norm": float(grad_norm),
            "lr": lr,
        }

    # -------------------------------------------------------------- the loop

    def fit(self) -> list[dict[str, float]]:
        """Run to ``num_steps``, logging and checkpointing on the way; returns the records."""
        from tqdm import tqdm

        settings, ctx = self.settings, self.ctx
        log_path = self.exp_dir / "log" / f"{settings.log_name}.jsonl"
        bar = tqdm(
            total=settings.num_steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (ctx.is_main and settings.log_progress),
        )
        records: list[dict[str, float]] = []
        window: list[dict[str, float]] = []
        tick = time.perf_counter()
        batches = iter(self.stream)
        while self.step < settings.num_steps:
            stats = self.train_step(next(batches))
            window.append(stats)
            bar.update(1)
            if self.step % settings.log_every == 0 or self.step == settings.num_steps:
                means = [float(np.mean([w[k] for w in window])) for k in self.window_keys]
                record = {
                    "step": self.step,
                    "epoch": self.stream.epoch,
                    **dict(zip(self.window_keys, all_mean(means, ctx))),
                    **{key: stats[key] for key in self.last_keys},
                    "steps_per_s": len(window) / max(time.perf_counter() - tick, 1e-9),
                }
                records.append(record)
                if ctx.is_main:
                    with open(log_path, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    logger.info("%s, %.2f steps/s", self.describe(record), record["steps_per_s"])
                window, tick = [], time.perf_counter()
            if self.step % settings.save_every == 0 or self.step == settings.num_steps:
                self.checkpoint()
        bar.close()
        self.check_replicas()
        return records

    def checkpoint(self) -> None:
        """Save on rank 0 (then :meth:`after_save`) while the other ranks wait."""
        if self.ctx.is_main:
            self.save()
            self.after_save()
        barrier(self.ctx)

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
