"""Benchmark: batched DNSMOS (pipeline.quality.dnsmos) against ``speechmos.dnsmos.run`` per clip.

Both run in this process on the same clips cut from the bundled sample (the filter stage's
situation: the dialogues of one recording). The baseline is what a user of the package does:
``speechmos.dnsmos.run(clip, 16000)`` per clip (P.835 and P.808). Printed: seconds per variant,
the speed-up over the baseline, the largest OVRL difference, and the peak RSS growth.

Usage: ``python bench/bench_dnsmos.py [--repeats 2] [--threads 0]``
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "pipeline" / "assets" / "sample.wav"
# (start, end) seconds: dialogue-like spans of the sample, 3.5 s to 30 s
SPANS = [(6.6, 10.1), (6.6, 14.3), (14.3, 26.3), (6.6, 26.6), (6.58, 30.0), (0.0, 30.0)]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="best of N (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import soundfile as sf
    from speechmos import dnsmos as reference

    from pipeline.quality.dnsmos import DnsmosScorer, clip_windows

    audio, sr = sf.read(SAMPLE, dtype="float32")
    clips = [audio[int(a * sr) : int(b * sr)] for a, b in SPANS]
    windows = sum(clip_windows(c).shape[0] for c in clips)
    print(
        f"{len(clips)} clips, {sum(len(c) for c in clips) / sr:.1f} s of audio, "
        f"{windows} DNSMOS windows; best of {args.repeats}"
    )

    reference.run(clips[0], sr)  # load the reference models outside the timing
    rss0 = _rss_mb()
    base_s, base = _timed(lambda: [reference.run(c, sr) for c in clips], args.repeats)
    base_ovrl = np.array([r["ovrl_mos"] for r in base])
    print(
        f"{'speechmos.dnsmos.run per clip (P.835+P.808)':48s} {base_s:7.2f} s   1.00x  "
        f"peak RSS +{_rss_mb() - rss0:5.0f} MB"
    )

    variants = [
        ("batched, P.835+P.808, 4 windows/call", True, 4),
        ("batched, P.835 only, 1 window/call", False, 1),
        ("batched, P.835 only, 4 windows/call (default)", False, 4),
        (f"batched, P.835 only, all {windows} windows in 1 call", False, windows),
    ]
    for name, p808, batch in variants:
        scorer = DnsmosScorer(p808=p808, num_threads=args.threads, max_batch_windows=batch)
        scorer.score(clips[:1])  # warm-up
        rss0 = _rss_mb()
        seconds, scores = _timed(lambda s=scorer: s.score(clips), args.repeats)
        diff = np.max(np.abs(np.array([s.ovrl for s in scores]) - base_ovrl))
        print(
            f"{name:48s} {seconds:7.2f} s  {base_s / seconds:5.2f}x  peak RSS "
            f"+{_rss_mb() - rss0:5.0f} MB  max|dOVRL|={diff:.2g}"
        )


if __name__ == "__main__":
    main()
