"""Whole-pipeline throughput: today's defaults against the issue-16 defaults, or the plain baseline.

    python bench/bench_pipeline.py                 # the sample and a 20-minute conversation
    python bench/bench_pipeline.py --minutes 5     # a shorter generated conversation
    python bench/bench_pipeline.py --against plain # against bench/baseline_pipeline.py instead

Both run in this process, one after the other on the same files, with the default run's models.
``--against issue16`` (the default) runs the pipeline a second time with the settings that were
the defaults when issue 16 was filed (:data:`ISSUE16_DEFAULTS`: Whisper one window at a time on
two threads, diarization on one thread); ``--against plain`` runs the plain one-turn-at-a-time
baseline (bench/baseline_pipeline.py). Printed per file: per-stage seconds of both, the
pipeline's per-stage real-time factors (its own counters, bench/stage_times.py), model loading,
the share of the wall time outside the stages (Beam, writers, corpus, report), the real-time
factors with model loading excluded and included, the speed-up, and for the sample the WER of
each run's turns against the reference transcript (``pipeline/assets/sample.stm``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import baseline_pipeline  # noqa: E402
from bench.conversation import SAMPLE, make_conversation  # noqa: E402
from bench.stage_times import STAGES, StageTimes  # noqa: E402

# the defaults when issue 16 was filed, where they differ from today's
ISSUE16_DEFAULTS = ("--asr_parallel_windows=1", "--diar_num_threads=1")
SAMPLE_STM = Path(__file__).resolve().parents[1] / "pipeline" / "assets" / "sample.stm"


def run_pipeline(path: Path, output: Path, flags: tuple[str, ...] = ()) -> StageTimes:
    from pipeline.run import run

    started = time.perf_counter()
    run(["--runner=DirectRunner", f"--input={path}", f"--output={output}", "--quiet", *flags])
    return StageTimes.from_output(output, time.perf_counter() - started)


def sample_wer(output: Path) -> float:
    """WER of a sample run's turns (time order) against the sample's reference transcript."""
    from core.wer import word_error_rate
    from pipeline.output.run_files import read_table

    reference = " ".join(
        line.split(maxsplit=5)[5] for line in SAMPLE_STM.read_text().splitlines() if line.strip()
    )
    turns = sorted(read_table(str(output), "turns").to_pylist(), key=lambda t: t["start"])
    return word_error_rate(reference, " ".join(t["text"] for t in turns)).rate


def compare_defaults(files, tmp: Path) -> None:
    """Today's defaults against :data:`ISSUE16_DEFAULTS`, file by file."""
    for k, (name, path, seconds) in enumerate(files):
        # the old settings first: whatever the first run pays (imports, file cache) is theirs
        then = run_pipeline(path, tmp / f"then-{k}", ISSUE16_DEFAULTS)
        ours = run_pipeline(path, tmp / f"now-{k}")
        print(
            f"\n== {name}: today's defaults vs the issue-16 defaults ({' '.join(ISSUE16_DEFAULTS)})"
        )
        print(f"{'stage':>10} {'now s':>8} {'RTF':>7} {'then s':>8} {'RTF':>7} {'speed-up':>9}")
        for stage in STAGES:
            a, b = ours.stage_s[stage], then.stage_s[stage]
            print(
                f"{stage:>10} {a:>8.2f} {ours.rtf(stage):>7.4f} {b:>8.2f} {then.rtf(stage):>7.4f} "
                f"{b / a if a else float('nan'):>9.2f}"
            )
        for label, t in (("now", ours), ("then", then)):
            print(
                f"{label:>5}: wall {t.wall_s:.1f} s = stages {t.stages_s:.1f} + model loading "
                f"{t.load_s:.1f} + outside both {t.outside_s:.1f} ({t.outside_s / t.stages_s:.1%} "
                f"over the stages); RTF {t.stages_s / seconds:.3f} loading excluded, "
                f"{t.wall_s / seconds:.3f} included"
            )
        print(
            f"speed-up, model loading included: {then.wall_s / ours.wall_s:.2f}x "
            f"(stages alone {then.stages_s / ours.stages_s:.2f}x)"
        )
        if path == SAMPLE:
            print(
                f"sample WER: now {sample_wer(tmp / f'now-{k}'):.3f}, "
                f"then {sample_wer(tmp / f'then-{k}'):.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--against", choices=("issue16", "plain"), default="issue16")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = [("sample (30 s)", SAMPLE, 30.0)]
        if args.minutes > 0:
            conv = make_conversation(args.minutes, Path(tmp) / "conversation.wav")
            files.append((f"conversation ({args.minutes:g} min)", conv, args.minutes * 60))
        if args.against == "issue16":
            compare_defaults(files, Path(tmp))
            return
        models = baseline_pipeline.load_models()
        print(f"baseline model loading: {models.load_s:.1f} s (excluded)")
        for name, path, seconds in files:
            ours = run_pipeline(path, Path(tmp) / f"out-{len(name)}")
            started = time.perf_counter()
            base = baseline_pipeline.process_file(str(path), models)
            base_wall = time.perf_counter() - started
            ours_stages = ours.stages_s
            print(f"\n== {name}: {base.turns} turns, {base.dialogues} dialogues (baseline)")
            print(f"{'stage':>10} {'pipeline s':>11} {'RTF':>7} {'baseline s':>11} {'speed-up':>9}")
            for stage in STAGES:
                a, b = ours.stage_s[stage], base.stage_s.get(stage, 0.0)
                print(
                    f"{stage:>10} {a:>11.2f} {ours.rtf(stage):>7.4f} {b:>11.2f} "
                    f"{b / a if a else float('nan'):>9.2f}"
                )
            print(
                f"{'stages':>10} {ours_stages:>11.2f} {ours_stages / seconds:>7.4f} "
                f"{base_wall:>11.2f} {base_wall / ours_stages:>9.2f}"
            )
            print(
                f"pipeline wall {ours.wall_s:.1f} s: stages {ours_stages:.1f} s, model loading "
                f"{ours.load_s:.1f} s, outside both {ours.outside_s:.1f} s "
                f"({ours.outside_s / ours.wall_s:.1%} of the wall time, "
                f"{ours.outside_s / ours_stages:.1%} over the stages)"
            )
            print(
                f"real-time factor, loading excluded: pipeline {ours_stages / seconds:.3f}, "
                f"baseline {base_wall / seconds:.3f}"
            )


if __name__ == "__main__":
    main()
