"""Peak memory, time and where the time goes, for the whole pipeline on long conversations.

    python bench/bench_long_files.py                          # 10 and 20 minutes
    python bench/bench_long_files.py --minutes 10 20 60       # memory flat in length
    python bench/bench_long_files.py --minutes 10 360         # a 6-hour file: peak RSS under 3 GB
    python bench/bench_long_files.py --workers 4 --minutes 5  # 2 worker processes against 1

Each run is a fresh process (the default DirectRunner, model loading included), so its peak RSS
is its own; the conversations are the bundled sample's re-timed copies concatenated to the length
asked (bench/conversation.py). Printed per length: time, real-time factor, peak RSS against the
first length's, and the stages' own times from metrics.json: each stage's RTF, model loading and
the share of the wall time outside the stages. Targets (issue 16): peak RSS at 60 minutes within
10 % of the 10-minute figure, and the 6-hour file under 3 GB.

``--workers N`` runs N files of ``--minutes[0]`` minutes each, once with one worker and once with
``--direct_num_workers=2 --direct_running_mode=multi_processing``, and prints the throughput
ratio (target at least 1.6x where the machine has the cores for two workers; ``--flags`` passes
more options to both runs, e.g. thread counts).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.conversation import make_conversation  # noqa: E402
from bench.stage_times import StageTimes  # noqa: E402

CHILD = """
import json, resource, sys, time
from pipeline.run import run
started = time.time()
summary = run(["--runner=DirectRunner", "--quiet", "--input=" + sys.argv[1],
               "--output=" + sys.argv[2], *sys.argv[3:]])
print(json.dumps({"elapsed_s": time.time() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_peak_rss_mb":
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "dialogues": summary["dialogues"], "turns": summary["turns"]}))
"""

RSS_FLAT = 0.10  # peak RSS of the longest file within 10 % of the shortest's
RSS_CEILING_MB = 3 * 1024  # the 6-hour file under 3 GB
TWO_WORKERS = 1.6  # two workers at least 1.6x the throughput of one


def run_child(inputs: str, output: Path, flags: list[str]) -> dict:
    """One pipeline run in a fresh process: its figures and its stage times."""
    repo = Path(__file__).resolve().parents[1]
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, inputs, str(output), *flags],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.time() - started
    result["times"] = StageTimes.from_output(output, result["elapsed_s"]).to_dict()
    return result


def lengths(args, tmp: Path) -> None:
    rows = []
    for minutes in args.minutes:
        wav = make_conversation(minutes, tmp / f"conv{minutes:g}.wav")
        result = run_child(str(wav), tmp / f"out{minutes:g}", args.flags)
        wav.unlink()
        result["minutes"] = minutes
        rows.append(result)
        print(json.dumps(result), flush=True)
        times = StageTimes.from_dict(result["times"])
        print(f"\n== {minutes:g} minutes")
        print("\n".join(times.lines()), flush=True)
    base = rows[0]
    print(
        f"\n{'minutes':>8} {'time s':>8} {'RTF':>6} {'time ratio':>10} {'length ratio':>12} "
        f"{'peak RSS MB':>12} {'RSS ratio':>9} {'outside':>8}"
    )
    for row in rows:
        times = StageTimes.from_dict(row["times"])
        print(
            f"{row['minutes']:>8g} {row['elapsed_s']:>8.1f} "
            f"{row['elapsed_s'] / (row['minutes'] * 60):>6.3f} "
            f"{row['elapsed_s'] / base['elapsed_s']:>10.2f} "
            f"{row['minutes'] / base['minutes']:>12.2f} {row['peak_rss_mb']:>12.0f} "
            f"{row['peak_rss_mb'] / base['peak_rss_mb']:>9.2f} "
            f"{times.outside_s / times.wall_s:>8.1%}"
        )
    last = rows[-1]
    if len(rows) > 1:
        growth = last["peak_rss_mb"] / base["peak_rss_mb"] - 1
        verdict = "yes" if growth <= RSS_FLAT else "NO"
        print(
            f"peak RSS at {last['minutes']:g} min is {growth:+.1%} of the {base['minutes']:g}-min "
            f"figure (within {RSS_FLAT:.0%}: {verdict})"
        )
    for row in rows:
        if row["minutes"] >= 360:
            verdict = "yes" if row["peak_rss_mb"] < RSS_CEILING_MB else "NO"
            print(
                f"{row['minutes'] / 60:g}-hour file: peak RSS {row['peak_rss_mb']:.0f} MB "
                f"(under {RSS_CEILING_MB} MB: {verdict})"
            )


def workers(args, tmp: Path) -> None:
    folder = tmp / "files"
    folder.mkdir()
    minutes = args.minutes[0]
    for k in range(args.workers):
        make_conversation(minutes, folder / f"conv{k}.wav", seed=k)
    audio_s = args.workers * minutes * 60
    runs = {
        "1 worker": ["--direct_num_workers=1"],
        "2 workers": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    }
    throughput = {}
    for name, flags in runs.items():
        result = run_child(str(folder / "*.wav"), tmp / f"out-{name[0]}", flags + args.flags)
        throughput[name] = audio_s / result["elapsed_s"]
        print(json.dumps({"run": name, **result}), flush=True)
        print(
            f"{name}: {args.workers} files of {minutes:g} min in {result['elapsed_s']:.1f} s, "
            f"{throughput[name]:.2f} audio s per s, peak RSS {result['peak_rss_mb']:.0f} MB "
            f"(workers {result['workers_peak_rss_mb']:.0f} MB)",
            flush=True,
        )
    ratio = throughput["2 workers"] / throughput["1 worker"]
    verdict = "yes" if ratio >= TWO_WORKERS else "NO"
    print(f"two workers / one: {ratio:.2f}x (at least {TWO_WORKERS}x: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 20])
    parser.add_argument(
        "--workers", type=int, default=0, help="files for the two-worker throughput check"
    )
    parser.add_argument(
        "--flags", type=shlex.split, default=[], help="more pipeline options for every run"
    )
    parser.add_argument("--tmp", default=None, help="scratch folder (default: the temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        (workers if args.workers else lengths)(args, Path(tmp))


if __name__ == "__main__":
    main()
