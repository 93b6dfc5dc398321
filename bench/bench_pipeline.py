"""Whole-pipeline throughput against the plain baseline (bench/baseline_pipeline.py).

    python bench/bench_pipeline.py                 # the bundled sample and a 20-minute conversation
    python bench/bench_pipeline.py --minutes 5     # a shorter generated conversation

Both run in this process, on the same files, with the default run's models and settings. Model
loading is excluded from the per-stage times and the real-time factor (it is printed apart).
Printed: per-stage seconds of both, the pipeline's per-stage real-time factors (its own counters,
bench/stage_times.py), its model loading and the share of its wall time spent outside the stages
(Beam, writers, corpus, report), the speed-up over the baseline and the real-time factors.
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


def run_pipeline(path: Path, output: Path) -> StageTimes:
    from pipeline.run import run

    started = time.perf_counter()
    run(["--runner=DirectRunner", f"--input={path}", f"--output={output}", "--quiet"])
    return StageTimes.from_output(output, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    args = parser.parse_args()
    models = baseline_pipeline.load_models()
    print(f"baseline model loading: {models.load_s:.1f} s (excluded)")
    with tempfile.TemporaryDirectory() as tmp:
        files = [("sample (30 s)", SAMPLE, 30.0)]
        if args.minutes > 0:
            conv = make_conversation(args.minutes, Path(tmp) / "conversation.wav")
            files.append((f"conversation ({args.minutes:g} min)", conv, args.minutes * 60))
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
