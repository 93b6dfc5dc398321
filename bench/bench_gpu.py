"""Benchmark and check of the dialogue TTS network on a GPU (or, with small sizes, the CPU).

Four parts, each printing its figures (``--skip`` leaves parts out):

* ``parity``: the tiny upstream fixtures (``tests/fixtures/zipvoice-upstream/tiny_*.pt``, numbers
  upstream's own code produced on the CPU) through our network on the CPU and on ``--device``,
  float32 with TF32 off: the max abs difference of the text condition and of the velocity against
  upstream's, per device.
* ``train``: one training step on ``--device`` from the training-parity fixtures
  (``train_step_*.pt``): our loss (the trainer's :class:`FlowMatchingLoss`, every draw injected)
  and gradients against upstream's: loss relative difference, global gradient norm relative
  difference, and the worst per-tensor gradient statistic relative difference (the measure of
  ``tests/model/test_training_parity.py``), with the full gradients of the few stored tensors.
* ``speed``: the decoder of the base configuration (123 M parameters, random weights), a
  ``--prompt-seconds`` prompt + ``--seconds`` target at 24000/256 frames/s, batch 1, one
  classifier-free-guidance decoder call (batch 2) and full sampling at each of ``--steps``:
  warm-up, then best of ``--repeats``, synchronised; float32 and, with ``--bf16``, bfloat16
  autocast (the max abs difference of its output from float32's is printed). With
  ``--upstream-src`` (a directory holding upstream's ``zipvoice`` package, as for
  :mod:`bench.bench_upstream`), upstream's ``ZipVoiceDialog`` with the same weights is timed
  beside ours (our Euler sampler drives both) and the ratio printed.
* ``infer``: ``python -m model.infer --device DEVICE`` on a random-weight tiny checkpoint with a
  pinyin script, writing a wav: plumbing only (the output is noise-like, the weights are random).

Usage: ``python -m bench.bench_gpu --device cuda`` (a GPU box);
``python -m bench.bench_gpu --device cpu --seconds 1 --prompt-seconds 0.5 --steps 2 --repeats 1``
(a quick run of every path on the CPU).

Measured on one NVIDIA H200 (torch 2.11.0+cu130, float32 with TF32 off), defaults: parity max
errors 6e-7 to 2.6e-6 on both CPU and GPU; training step on the GPU: loss rel diff <= 7.1e-8,
gradient norm 6.6e-8, worst per-tensor gradient stat 7.4e-6 (the CPU test allows 1e-4); base
decoder, 1218 frames, CFG batch 2: one call 27.7 ms fp32 / 36.9 ms bf16 autocast, 16-step sampling
458 / 562 ms, 4 steps 118 / 156 ms (bf16 autocast is slower at this size;
why was not profiled), bf16 output within 4e-2 to 8e-2 of fp32 (max |v| 7 to 12).
The infer part needs PyAV, soundfile, soxr and pypinyin, and jieba (a machine without jieba can
put a stand-in on the path whose ``Tokenizer().cut`` splits into characters: for this script's
pinyin, tags, spaces and punctuation that gives jieba's tokens).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.bench_upstream import FRAME_RATE, add_timing_arguments, base_networks

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "zipvoice-upstream"
SAMPLE_WAV = REPO / "pipeline" / "assets" / "sample.wav"
PARITY_FIXTURES = ("zipvoice", "zipvoice_dialog", "zipvoice_dialog_stereo", "zipvoice_distill")
TRAIN_FIXTURES = ("zipvoice_dialog", "zipvoice_dialog_stereo")
GUIDANCE_SCALE = 1.5
# the infer plumbing check: pinyin overrides need no G2P engine (only pypinyin's tables)
INFER_TEXT = "[S1] <ni3><hao3>. [S2] <ni3><hao3>, <ni3><hao3> <ma5>?"
INFER_PROMPT_TEXT = "[S1] <wei2>? [S2] <wei2>?"
INFER_PROMPT_WINDOW_S = (6.58, 8.43)  # two short turns of the bundled sample


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _strict_float32() -> None:
    """Float32 means float32: no TF32 in matrix products or convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def _to(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())


# ----------------------------------------------------------------------------- parity


def _fixture_network(data: dict, turn_embedding: str = "parity"):
    from model.network.checkpoint import load_network_state
    from model.network.config import NetworkConfig, variant_from_upstream_class
    from model.network.zipvoice import DialogTTSNetwork

    config = NetworkConfig.from_upstream_json(
        data["config"],
        vocab_size=data["state_dict"]["embed.weight"].shape[0],
        variant=variant_from_upstream_class(data["class"]),
        turn_embedding=turn_embedding,
    )
    net = DialogTTSNetwork(config)
    load_network_state(net, data["state_dict"])
    return net


def parity(devices: list[torch.device]) -> dict[str, float]:
    """Max abs differences from upstream's outputs, per fixture and device."""
    figures = {}
    print("== parity: tiny upstream fixtures, eval mode, float32 (TF32 off)")
    for name in PARITY_FIXTURES:
        data = torch.load(FIXTURES / f"tiny_{name}.pt", weights_only=True)
        out = data["outputs"]
        for device in devices:
            net = _fixture_network(data).eval().to(device)
            inputs = _to(data["inputs"], device)
            with torch.no_grad():
                text_condition, padding_mask = net.forward_text_train(
                    inputs["tokens"], inputs["features_lens"]
                )
                velocity = net.forward_fm_decoder(
                    t=inputs["t"],
                    xt=inputs["xt"],
                    text_condition=text_condition,
                    speech_condition=inputs["speech_condition"],
                    padding_mask=padding_mask,
                    guidance_scale=inputs.get("guidance_scale"),
                )
            if not torch.equal(padding_mask.cpu(), out["padding_mask"]):
                raise AssertionError(f"{name} on {device}: padding mask differs from upstream's")
            tc_err = _max_abs(text_condition, out["text_condition"])
            v_err = _max_abs(velocity, out["velocity"])
            scale = float(out["velocity"].abs().max())
            figures[f"{name}/{device.type}/text_condition"] = tc_err
            figures[f"{name}/{device.type}/velocity"] = v_err
            print(
                f"{name:24s} {device.type:4s} max|text_condition - upstream| {tc_err:.2e}  "
                f"max|velocity - upstream| {v_err:.2e}  (max|velocity| {scale:.2f})"
            )
    return figures


# ----------------------------------------------------------------------------- training step


def _probe(name: str, shape) -> torch.Tensor:
    """The fixture script's fixed probe of a parameter (a seeded normal tensor)."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(name)) % (2**31)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _grad_stats(name: str, grad: torch.Tensor) -> torch.Tensor:
    g = grad.detach().double().cpu()
    return torch.stack([g.sum(), g.norm(), g.abs().max(), (g * _probe(name, g.shape)).sum()])


def _stat_error(ours: torch.Tensor, ref: torch.Tensor, numel: int, scale: float) -> float:
    """Largest stat difference in units of ``scale``, each stat's bound on the difference norm."""
    root = math.sqrt(numel)
    bounds = torch.tensor([root, 1.0, 1.0, root], dtype=torch.float64)
    return float(((ours - ref).abs() / bounds).max()) / scale


def train_step(device: torch.device) -> dict[str, float]:
    """Our loss and gradients on ``device`` against upstream's committed numbers."""
    from model.network.flow import FlowMatchingLoss, FlowOptions
    from model.network.zipformer.positional import CompactRelPositionalEncoding

    figures = {}
    print(f"== training step on {device.type}: loss and gradients vs upstream's (float32)")
    for name in TRAIN_FIXTURES:
        reference = torch.load(FIXTURES / f"train_step_{name}.pt", weights_only=True)
        tiny = torch.load(FIXTURES / reference["source"], weights_only=True)
        net = _fixture_network(tiny)
        for module in net.modules():
            if isinstance(module, CompactRelPositionalEncoding):
                module.dropout_rate = 0.0
        net = net.train().to(device)
        inputs = _to(reference["inputs"], device)
        stereo = inputs["se_weight"] is not None
        options = FlowOptions.for_mode(
            "stereo" if stereo else "dialog",
            text_drop_prob=inputs["condition_drop_ratio"],
            se_loss_weight=inputs["se_weight"] if stereo else 0.0,
        )
        loss_fn = FlowMatchingLoss(net, options)
        draws = {k: inputs[k] for k in ("t", "noise", "target_mask", "text_keep")}
        loss = loss_fn(inputs["tokens"], inputs["features"], inputs["features_lens"], **draws)
        loss = loss["loss"]
        loss.backward()
        _synchronize(device)
        grads = {
            n: (torch.zeros_like(p) if p.grad is None else p.grad).detach().cpu()
            for n, p in net.named_parameters()
        }
        expected = float(reference["loss"])
        loss_value = float(loss.detach())
        loss_rel = abs(loss_value - expected) / abs(expected)
        total = float(reference["grad_norm"])
        ours_total = math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads.values()))
        norm_rel = abs(ours_total - total) / total
        stat_worst = 0.0
        for pname, ref in reference["grad_stats"].items():
            scale = max(float(ref[1]), 1e-6 * total)
            err = _stat_error(_grad_stats(pname, grads[pname]), ref, grads[pname].numel(), scale)
            stat_worst = max(stat_worst, err)
        full_worst = max(
            float((grads[pname].double() - ref.double()).norm() / ref.double().norm())
            for pname, ref in reference["grads"].items()
        )
        figures.update(
            {
                f"{name}/loss_rel": loss_rel,
                f"{name}/grad_norm_rel": norm_rel,
                f"{name}/grad_stats_rel": stat_worst,
                f"{name}/key_grads_rel": full_worst,
            }
        )
        print(
            f"{name:24s} loss {loss_value:.6f} (upstream {expected:.6f}) rel diff {loss_rel:.2e}; "
            f"grad norm rel diff {norm_rel:.2e}; worst per-tensor gradient stat rel diff "
            f"{stat_worst:.2e} over {len(grads)} tensors; full stored gradients "
            f"({len(reference['grads'])}) rel diff {full_worst:.2e}"
        )
    return figures


# ----------------------------------------------------------------------------- speed


def _best_of(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device):
    """Best wall time of ``repeats`` calls (each synchronised) and the last output."""
    best, out = float("inf"), None
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        out = fn()
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def speed(
    device: torch.device,
    *,
    prompt_seconds: float,
    seconds: float,
    steps: list[int],
    repeats: int,
    bf16: bool,
    upstream_src: str | None,
    seed: int = 0,
) -> dict[str, float]:
    """Decoder call and sampling times of the base network (and upstream's, if given)."""
    from model.network.flow import sample

    upstream, ours, config = base_networks(upstream_src, seed)
    if upstream is not None:
        upstream = upstream.to(device)
    ours = ours.to(device)

    prompt_frames = int(prompt_seconds * FRAME_RATE)
    frames = prompt_frames + int(seconds * FRAME_RATE)
    gen = torch.Generator().manual_seed(seed + 1)
    speech = torch.randn(1, frames, config.feat_dim, generator=gen)
    speech[:, prompt_frames:] = 0.0
    inputs = {
        "noise": torch.randn(1, frames, config.feat_dim, generator=gen),
        "text_condition": torch.randn(1, frames, config.feat_dim, generator=gen),
        "speech_condition": speech,
        "padding_mask": torch.zeros(1, frames, dtype=torch.bool),
    }
    inputs = _to(inputs, device)
    pair = {
        "t": torch.full((2, 1, 1), 0.5, device=device),
        "xt": inputs["noise"].repeat(2, 1, 1),
        "text_condition": torch.cat(
            [torch.zeros_like(inputs["text_condition"]), inputs["text_condition"]]
        ),
        "speech_condition": inputs["speech_condition"].repeat(2, 1, 1),
        "padding_mask": inputs["padding_mask"].repeat(2, 1),
    }

    def precision(dtype: torch.dtype | None):
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def case(net, steps_or_none: int | None, dtype: torch.dtype | None) -> Callable:
        def run() -> torch.Tensor:
            with torch.inference_mode(), precision(dtype):
                if steps_or_none is None:
                    out = net.forward_fm_decoder(**pair)
                else:
                    out = sample(
                        net,
                        num_steps=steps_or_none,
                        guidance_scale=GUIDANCE_SCALE,
                        **inputs,
                    )
            return out.float()

        return run

    params = sum(p.numel() for p in ours.parameters()) / 1e6
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"== speed on {device.type} ({name}): base dialog network ({params:.1f} M parameters), "
        f"{frames} frames ({prompt_seconds:g} s prompt + {seconds:g} s), CFG batch 2, "
        f"warm-up then best of {repeats}; torch {torch.__version__}; "
        f"upstream: {upstream_src or 'not given (no --upstream-src)'}"
    )
    figures = {}
    dtypes: list[tuple[str, torch.dtype | None]] = [("fp32", None)]
    if bf16:
        dtypes.append(("bf16", torch.bfloat16))
    for label, steps_or_none in [("decoder call", None)] + [
        (f"sample {s} steps", s) for s in steps
    ]:
        reference = None
        for dtype_name, dtype in dtypes:
            fn = case(ours, steps_or_none, dtype)
            fn()  # warm-up: allocator, kernels' first launch, autotuning
            seconds_ours, out = _best_of(fn, repeats, device)
            figures[f"{label}/{dtype_name}/ours"] = seconds_ours
            line = f"{label:16s} {dtype_name} ours {seconds_ours * 1e3:9.1f} ms"
            if reference is None:
                reference = out
            else:
                line += f"  max|{dtype_name} - fp32| {_max_abs(out, reference):.2e}"
                line += f" (max|fp32| {float(reference.abs().max()):.2f})"
            if upstream is not None:
                fn_up = case(upstream, steps_or_none, dtype)
                fn_up()
                seconds_up, out_up = _best_of(fn_up, repeats, device)
                figures[f"{label}/{dtype_name}/upstream"] = seconds_up
                line += (
                    f"  upstream {seconds_up * 1e3:9.1f} ms  upstream/ours "
                    f"{seconds_up / seconds_ours:5.2f}x  max|ours - upstream| "
                    f"{_max_abs(out, out_up):.2e}"
                )
            print(line)
    return figures


# ----------------------------------------------------------------------------- infer CLI


def _write_random_tiny_checkpoint(directory: Path) -> Path:
    """A random-weight tiny dialogue checkpoint whose vocabulary covers the pinyin script."""
    from model.audio.features import FeatureConfig
    from model.network.checkpoint import save_checkpoint
    from model.network.config import preset
    from model.network.zipvoice import DialogTTSNetwork
    from model.tokenizer import build_vocabulary

    table = build_vocabulary([INFER_TEXT, INFER_PROMPT_TEXT])
    torch.manual_seed(0)
    config = preset(
        "tiny",
        variant="dialog",
        vocab_size=table.vocab_size,
        pad_id=table.pad_id,
        spk_a_id=table.id_of("[S1]"),
        spk_b_id=table.id_of("[S2]"),
    )
    save_checkpoint(DialogTTSNetwork(config), directory, dict(table.entries))
    (directory / "features.json").write_text(FeatureConfig.offline().to_json())
    return directory


def infer_cli(device: torch.device, workdir: Path, num_steps: int) -> dict[str, float]:
    """Runs ``python -m model.infer`` on ``device`` and reads the wav back (plumbing only)."""
    import soundfile as sf

    print(f"== python -m model.infer --device {device} (random-weight tiny model: plumbing only)")
    checkpoint = _write_random_tiny_checkpoint(workdir / "tiny_random")
    audio, rate = sf.read(SAMPLE_WAV, dtype="float32")
    start, end = (int(s * rate) for s in INFER_PROMPT_WINDOW_S)
    prompt = workdir / "prompt.wav"
    sf.write(prompt, audio[start:end], rate)
    out = workdir / "out.wav"
    command = [
        sys.executable,
        "-m",
        "model.infer",
        "--checkpoint",
        str(checkpoint),
        "--text",
        INFER_TEXT,
        "--prompt-wav",
        str(prompt),
        "--prompt-text",
        INFER_PROMPT_TEXT,
        "--out",
        str(out),
        "--device",
        str(device),
        "--num-step",
        str(num_steps),
        "--vocoder",
        "griffinlim",
    ]
    print("$ " + " ".join(command))
    start_s = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start_s
    for line in (proc.stdout + proc.stderr).splitlines()[-6:]:
        print("  " + line)
    if proc.returncode != 0:
        raise RuntimeError(f"model.infer exited with {proc.returncode}")
    written, written_rate = sf.read(out, dtype="float32", always_2d=True)
    seconds = written.shape[0] / written_rate
    print(
        f"wrote {out.name}: {seconds:.2f} s, {written.shape[1]} channel(s), {written_rate} Hz, "
        f"peak {float(abs(written).max()):.3f}, finite {bool(torch.isfinite(torch.from_numpy(written)).all())}; "
        f"CLI wall time {elapsed:.1f} s (process start and model load included)"
    )
    return {"infer/seconds_of_audio": seconds, "infer/wall_s": elapsed}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Runs the parts (see the module docstring); returns 1 if one of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_timing_arguments(parser)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="fp32 timings only")
    parser.add_argument("--infer-steps", type=int, default=4)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["parity", "train", "speed", "infer"]
    )
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    _strict_float32()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    devices = [torch.device("cpu")] + ([device] if device.type != "cpu" else [])
    parts: dict[str, Callable[[], dict[str, float]]] = {
        "parity": lambda: parity(devices),
        "train": lambda: train_step(device),
        "speed": lambda: speed(
            device,
            prompt_seconds=args.prompt_seconds,
            seconds=args.seconds,
            steps=args.steps,
            repeats=args.repeats,
            bf16=args.bf16,
            upstream_src=args.upstream_src,
        ),
    }
    figures: dict[str, float] = {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        parts["infer"] = lambda: infer_cli(device, Path(tmp), args.infer_steps)
        for name, run in parts.items():
            if name in args.skip:
                continue
            try:
                figures.update(run())
            except Exception as error:  # report and go on with the other parts
                failed.append(name)
                print(f"!! {name} failed: {type(error).__name__}: {error}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    if failed:
        print(f"failed parts: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
