"""Benchmark: CPU real-time factor of few-step (distilled) dialogue synthesis, torch vs onnxruntime.

For each preset (``tiny``, ``base``; random weights: speed only), one process times the
acoustic model (text encoder + Euler sampler; no vocoder, no prompt feature extraction) for
one dialogue of ``--prompt-s`` + ``--target-s`` seconds of audio:

* teacher, ``--teacher-steps`` (16) steps with classifier-free guidance (batch doubled),
  the baseline (ratio 1.00);
* distilled student, each of ``--student-steps`` (4, 8) steps, one pass per step;

each on torch and on onnxruntime (fp32 graphs exported by ``model.export.onnx_export``; with
``--int8`` also the int8 graphs). RTF = model seconds / generated (target) seconds;
``speed-up`` = baseline seconds / row seconds, so machine speed cancels out.

Usage: ``python -m bench.bench_fewstep --presets tiny base --threads 2``
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import torch

FRAME_RATE_HZ = {"base": 24000 / 256, "tiny": 22050 / 256}


def _synthesize(
    network, tokens, features_lens, prompt, prompt_lens, *, steps, guidance, distill
) -> None:
    from model.network.flow import sample_with_prompt

    with torch.inference_mode():
        sample_with_prompt(
            network,
            tokens=tokens,
            prompt_features=prompt,
            prompt_features_lens=prompt_lens,
            features_lens=features_lens,
            num_steps=steps,
            guidance_scale=guidance,
            distill=distill,
        )


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, onnxruntime graph set-up)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_preset(name: str, args: argparse.Namespace, workdir: Path) -> list[tuple]:
    """All rows of one preset: ``(preset, model, steps, backend, seconds, rtf)``."""
    from model.export.onnx_export import export_network
    from model.export.onnx_runtime import OnnxNetwork
    from model.network.config import preset
    from model.network.student import student_from_teacher
    from model.network.zipvoice import DialogTTSNetwork

    torch.manual_seed(0)
    config = preset(name, variant="dialog")
    teacher = DialogTTSNetwork(config).eval()
    student = student_from_teacher(teacher).eval()
    rate = FRAME_RATE_HZ[name]
    prompt_frames = round(args.prompt_s * rate)
    total = prompt_frames + round(args.target_s * rate)
    # ~14 tokens/s of speech, like the dialogue sample's phone rate
    n_prompt, n_target = round(args.prompt_s * 14), round(args.target_s * 14)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 300, (n_prompt + n_target,), generator=gen).tolist()
    ids[0], ids[n_prompt] = config.spk_a_id, config.spk_a_id
    ids[n_prompt // 2], ids[n_prompt + n_target // 2] = config.spk_b_id, config.spk_b_id
    inputs = {
        "tokens": [ids],
        "features_lens": torch.tensor([total]),
        "prompt": torch.randn(1, prompt_frames, config.feat_dim, generator=gen) * 0.3,
        "prompt_lens": torch.tensor([prompt_frames]),
    }
    backends: list[tuple[str, object, object]] = [("torch", teacher, student)]
    if not args.skip_onnx:
        started = time.perf_counter()
        exported = {}
        for role, net in (("teacher", teacher), ("student", student)):
            exported[role] = export_network(
                net, workdir / f"{name}-{role}", int8=args.int8, check=False
            ).directory
        print(f"  [{name}] ONNX export of teacher + student: {time.perf_counter() - started:.1f} s")
        threads = args.threads
        backends.append(
            (
                "onnxruntime",
                OnnxNetwork(exported["teacher"], num_threads=threads),
                OnnxNetwork(exported["student"], num_threads=threads),
            )
        )
        if args.int8:
            backends.append(
                (
                    "onnxruntime-int8",
                    OnnxNetwork(exported["teacher"], int8=True, num_threads=threads),
                    OnnxNetwork(exported["student"], int8=True, num_threads=threads),
                )
            )
    rows = []
    for backend, teacher_net, student_net in backends:
        runs = [("teacher", teacher_net, args.teacher_steps, 1.5, False)]
        runs += [("student", student_net, s, 1.5, True) for s in args.student_steps]
        for role, net, steps, guidance, distill in runs:
            run = functools.partial(
                _synthesize,
                net,
                inputs["tokens"],
                inputs["features_lens"],
                inputs["prompt"],
                inputs["prompt_lens"],
                steps=steps,
                guidance=guidance,
                distill=distill,
            )
            seconds = _time(run, args.repeats)
            rows.append((name, role, steps, backend, seconds, seconds / args.target_s))
    return rows


def main() -> None:
    """Runs the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument("--prompt-s", type=float, default=3.0)
    parser.add_argument("--target-s", type=float, default=7.0)
    parser.add_argument("--teacher-steps", type=int, default=16)
    parser.add_argument("--student-steps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--int8", action="store_true", help="also time the int8 graphs")
    parser.add_argument("--skip-onnx", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"threads={args.threads} prompt={args.prompt_s:.1f}s target={args.target_s:.1f}s "
        f"repeats={args.repeats}; acoustic model only (no vocoder); random weights"
    )
    with tempfile.TemporaryDirectory(prefix="bench_fewstep_") as tmp:
        for name in args.presets:
            rows = bench_preset(name, args, Path(tmp))
            baseline = next(r[4] for r in rows if r[1] == "teacher" and r[3] == "torch")
            print(
                f"{'preset':<6} {'model':<8} {'steps':>5} {'backend':<17} {'seconds':>8} "
                f"{'RTF':>7} {'speed-up':>8}"
            )
            for preset_name, role, steps, backend, seconds, rtf in rows:
                print(
                    f"{preset_name:<6} {role:<8} {steps:>5} {backend:<17} {seconds:>8.3f} "
                    f"{rtf:>7.3f} {baseline / seconds:>7.2f}x"
                )


if __name__ == "__main__":
    main()
