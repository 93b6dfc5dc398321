"""Training step time and peak memory of the tiny and base networks on CPU, as ratios to tiny.

Usage example::

    python bench/bench_train.py                         # tiny and base, 2 x 8 s, 3 steps
    python bench/bench_train.py --configs tiny base --steps 3 --seconds 8 --batch 2 --threads 2

Each configuration runs in its own child process (so peak RSS is its own): build the dialogue
network, then ``--steps`` timed optimizer steps after one warm-up step, each exactly what
``model.training.train`` does per batch (draw t/noise/suffix mask/text dropout, forward through
:class:`model.network.flow.FlowMatchingLoss`, backward, clip, AdamW step). The batch is ``--batch``
utterances of ``--seconds`` seconds of log mel at the configuration's frame rate (tiny: offline
features, 86.1 frames/s, 80 mels; base: upstream features, 93.75 frames/s, 100 mels) with 12
tokens per second. Reported: parameters, median step seconds, frames per second of compute,
peak RSS and RSS growth over the post-import baseline (activations + optimizer state).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def get_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "base"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per utterance")
    parser.add_argument("--batch", type=int, default=2, help="utterances per batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(args: argparse.Namespace) -> dict:
    """Run one configuration in this process and return its measurements."""
    import torch

    from model.audio.features import FeatureConfig
    from model.network.config import preset
    from model.network.flow import FlowMatchingLoss, FlowOptions, draw_training_inputs
    from model.network.zipvoice import DialogTTSNetwork

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = preset(args.child, variant="dialog")
    features = FeatureConfig.preset("upstream" if config.feat_dim == 100 else "offline")
    frames = round(args.seconds * features.frame_rate_hz)
    network = DialogTTSNetwork(config)
    loss_fn = FlowMatchingLoss(network, FlowOptions.for_mode("dialog"))
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    feats = 0.1 * torch.randn(args.batch, frames, config.feat_dim)
    lens = torch.full((args.batch,), frames)
    num_tokens = round(12 * args.seconds)
    tokens = [
        [config.spk_a_id] + [3 + (i * 7 + b) % 300 for i in range(num_tokens)]
        for b in range(args.batch)
    ]
    generator = torch.Generator().manual_seed(0)
    baseline = _rss_mb()
    times = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        draw = draw_training_inputs(feats, lens, loss_fn.options, generator=generator)
        out = loss_fn(tokens, feats, lens, **vars(draw))
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    return {
        "config": args.child,
        "params_m": network.num_parameters() / 1e6,
        "step_s": step_s,
        "frames_per_s": args.batch * frames / step_s,
        "peak_rss_mb": _rss_mb(),
        "rss_growth_mb": _rss_mb() - baseline,
    }


def main(argv=None) -> None:
    args = get_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = []
    for name in args.configs:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--steps",
            str(args.steps),
            "--seconds",
            str(args.seconds),
            "--batch",
            str(args.batch),
            "--threads",
            str(args.threads),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ref = rows[0]
    print(
        f"batch {args.batch} x {args.seconds:g} s, {args.steps} timed steps, "
        f"{args.threads} threads (ratios vs {ref['config']})"
    )
    print(
        f"{'config':8} {'params M':>9} {'step s':>8} {'x':>6} {'frames/s':>9} "
        f"{'peak RSS MB':>12} {'x':>6} {'RSS growth MB':>14} {'x':>6}"
    )
    for row in rows:
        print(
            f"{row['config']:8} {row['params_m']:9.2f} {row['step_s']:8.3f} "
            f"{row['step_s'] / ref['step_s']:6.1f} {row['frames_per_s']:9.0f} "
            f"{row['peak_rss_mb']:12.0f} {row['peak_rss_mb'] / ref['peak_rss_mb']:6.1f} "
            f"{row['rss_growth_mb']:14.0f} "
            f"{row['rss_growth_mb'] / max(ref['rss_growth_mb'], 1e-9):6.1f}"
        )


if __name__ == "__main__":
    main()
