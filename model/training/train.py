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
``model.network.checkpoint.load_checkpoint(exp_dir)`` works), ``checkpoint-{step}.pt`` (the last
``--keep-last``), ``checkpoint-last.pt`` and ``best-valid.pt`` (with ``--valid-cuts``), and
``log/train.jsonl`` (one JSON line of scalars per ``--log-every`` steps) and ``log/train.log``.

Every step's randomness is derived from ``(seed, step, rank)`` and the data position is saved
as (epoch, batches consumed), so a resumed run continues exactly like the uninterrupted one.
Modules: :mod:`model.training.options` (options, lr schedules, seeds),
:mod:`model.training.run_config` (network config, tokens, features, initial weights),
:mod:`model.training.trainer` (the objective), :mod:`model.training.loop` (the loop it shares with
distillation); this one is the CLI and :func:`run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from model.training.command import check_run_paths, command_parser, run_command
from model.training.loop import barrier, process_run
from model.training.options import TrainOptions, lr_factor, step_seed
from model.training.run_config import prepare_setup, read_setup, write_setup
from model.training.trainer import CHECKPOINT_LAST, Trainer

logger = logging.getLogger(__name__)

__all__ = ["TrainOptions", "Trainer", "get_parser", "lr_factor", "main", "run", "step_seed"]


def run(options: TrainOptions) -> Path:
    """Train in this process (one rank of a torchrun job, or alone).

    Args:
        options: the run's options.

    Returns:
        The experiment directory.

    Raises:
        ValueError, FileNotFoundError: bad options, caught before any weights are loaded.
    """
    exp_dir = check_run_paths(
        (*options.cuts, *options.valid_cuts),
        options.exp_dir,
        CHECKPOINT_LAST,
        options.resume,
        "checkpoints",
    )
    last = exp_dir / CHECKPOINT_LAST
    with process_run(options.device, exp_dir, "train", options.num_threads) as ctx:
        if options.resume:
            setup = read_setup(exp_dir)
        else:
            full = prepare_setup(options) if ctx.is_main else None
            if full is not None:
                write_setup(exp_dir, full, options)
            barrier(ctx)
            setup = read_setup(exp_dir)
            if full is not None and full.init_state is not None:
                # only rank 0 loads the weights: DDP broadcasts them to the other ranks
                setup = dataclasses.replace(setup, init_state=full.init_state)
        trainer = Trainer(options, setup, ctx)
        if options.resume:
            trainer.resume(last)
        logger.info(
            "rank %d/%d on %s: %d parameters, amp=%s",
            ctx.rank,
            ctx.world_size,
            ctx.device,
            trainer.network.num_parameters(),
            trainer.amp,
        )
        trainer.fit()
        del trainer  # drop the DDP reducer (and its gloo work) before the group goes
    return exp_dir


# ------------------------------------------------------------------------------------------
# CLI


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser: one flag per :class:`TrainOptions` field, plus the
    upstream-compatible aliases declared on the fields."""
    return command_parser("model.train", __doc__.split("\n\n")[0], TrainOptions)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (bad options: 2, no traceback)."""
    return run_command("model.train", get_parser(), TrainOptions, run, argv)


if __name__ == "__main__":
    sys.exit(main())
