"""Benchmark: cost of one flow-matching decoder evaluation (NFE) of DialogTTSNetwork.

Prints, per preset, the time of one CFG-doubled decoder pass over ``--seconds`` of audio,
the implied real-time factor of a ``--steps``-step sampler, and the ratio against a
baseline run in the same process: a plain ``nn.TransformerEncoder`` of the decoder's width
and total depth over the same frames (so machine speed cancels out of the ratio).

Usage: ``python -m bench.bench_network --presets tiny base --seconds 10 --threads 2``
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from torch import nn


def _decode(net, t, xt, text, speech) -> None:
    with torch.inference_mode():
        net.forward_fm_decoder(t, xt, text, speech)


def _encode(encoder: nn.Module, hidden: torch.Tensor) -> None:
    with torch.inference_mode():
        encoder(hidden)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    """Runs the benchmark (see the module docstring)."""
    from model.network.config import preset
    from model.network.zipvoice import DialogTTSNetwork

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument("--variant", default="dialog")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--frame-rate", type=float, default=None, help="default: 93.75 (base), 86.13 (tiny)"
    )
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"threads={args.threads} audio={args.seconds:.1f}s steps={args.steps} (CFG: batch 2)")
    for name in args.presets:
        config = preset(name, variant=args.variant)
        frame_rate = args.frame_rate or (24000 / 256 if config.feat_dim == 100 else 22050 / 256)
        frames = int(args.seconds * frame_rate)
        net = DialogTTSNetwork(config).eval()
        width = config.feat_dim * config.num_channels
        xt = torch.randn(2, frames, width)
        text = torch.randn(2, frames, config.feat_dim)
        speech = torch.randn(2, frames, width)
        t = torch.full((2, 1, 1), 0.5)

        ours = functools.partial(_decode, net, t, xt, text, speech)

        depth = sum(config.fm_decoder_num_layers)
        layer = nn.TransformerEncoderLayer(
            config.fm_decoder_dim,
            config.fm_decoder_num_heads,
            config.fm_decoder_feedforward_dim,
            dropout=0.0,
            batch_first=True,
        )
        baseline_net = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False).eval()
        hidden = torch.randn(2, frames, config.fm_decoder_dim)

        baseline = functools.partial(_encode, baseline_net, hidden)

        t_ours = _time(ours, args.repeats)
        t_base = _time(baseline, args.repeats)
        rtf = t_ours * args.steps / args.seconds
        print(
            f"{name:5s} params={net.num_parameters() / 1e6:7.2f}M frames={frames:5d} "
            f"nfe={t_ours * 1e3:8.1f} ms rtf@{args.steps}={rtf:6.3f} "
            f"vanilla-transformer({depth}L)={t_base * 1e3:8.1f} ms ratio={t_ours / t_base:5.2f}"
        )


if __name__ == "__main__":
    main()
