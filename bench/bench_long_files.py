"""Peak memory and time of the whole pipeline on 10-, 20- and 60-minute conversations.

    python bench/bench_long_files.py                 # 10 and 20 minutes
    python bench/bench_long_files.py --minutes 10 20 60

Each length runs in a fresh process (the default DirectRunner, model loading included), so its
peak RSS is its own. Memory should stay flat in file length (well under 3 GB) and time linear:
the ratios against the shortest file are printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.conversation import make_conversation  # noqa: E402

CHILD = """
import json, resource, sys, time
from pipeline.run import run
started = time.time()
summary = run(["--runner=DirectRunner", "--input=" + sys.argv[1], "--output=" + sys.argv[2]])
print(json.dumps({"elapsed_s": time.time() - started,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "dialogues": summary["dialogues"], "turns": summary["turns"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 20])
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            wav = make_conversation(minutes, Path(tmp) / f"conv{minutes:g}.wav")
            started = time.time()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(wav), f"{tmp}/out{minutes:g}"],
                cwd=repo,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result.update(minutes=minutes, wall_s=time.time() - started)
            rows.append(result)
            print(json.dumps(result), flush=True)
    base = rows[0]
    print(
        f"\n{'minutes':>8} {'time s':>8} {'RTF':>6} {'time ratio':>10} {'length ratio':>12} "
        f"{'peak RSS MB':>12} {'RSS ratio':>9}"
    )
    for row in rows:
        print(
            f"{row['minutes']:>8g} {row['elapsed_s']:>8.1f} "
            f"{row['elapsed_s'] / (row['minutes'] * 60):>6.3f} "
            f"{row['elapsed_s'] / base['elapsed_s']:>10.2f} "
            f"{row['minutes'] / base['minutes']:>12.2f} {row['peak_rss_mb']:>12.0f} "
            f"{row['peak_rss_mb'] / base['peak_rss_mb']:>9.2f}"
        )


if __name__ == "__main__":
    main()
