"""ASR real-time factor: batched turn decoding vs unbatched, in one process, same turns.

Usage example::

    python bench/bench_asr.py                      # Whisper base, int8, 2 threads, beam 5
    python bench/bench_asr.py --asr_model tiny.en --repeat 3 --beam_size 1

The turns are the bundled sample's reference turns (``pipeline/assets/sample.rttm``, 10 turns in
30 s), repeated ``--repeat`` times. RTF = compute seconds / seconds of *recording* (what the
pipeline pays per hour of input). Runs, all after one warm-up call:

* ``batched``: :class:`pipeline.asr.whisper.WhisperBatchTranscriber`, ``--batch_size`` turns/call;
* ``unbatched``: the same code with batch size 1;
* ``side_by_side``: batch size 1, ``--threads`` one-thread model replicas decoding that many
  chunks at once (the pipeline's CPU default, ``--asr_parallel_windows``); its text is checked
  against ``unbatched``;
* ``fw_per_turn``: ``WhisperModel.transcribe`` once per turn (faster-whisper's sequential path,
  its own language detection per call; the usual way to transcribe turns one by one);
* ``fw_whole_file``: ``BatchedInferencePipeline`` over the whole recording (VAD chunks, no
  per-turn language ID or metrics): what per-turn decoding costs against file-level decoding.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asr_model", default="base")
    parser.add_argument("--compute_type", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam_size", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2, help="copies of the sample's turns")
    parser.add_argument("--pad_s", type=float, default=0.2)
    parser.add_argument("--no_word_timestamps", action="store_true")
    return parser.parse_args()


def load_turns(pad_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    audio, rate = sf.read(str(REPO / "pipeline/assets/sample.wav"), dtype="float32")
    assert rate == SR
    spans = []
    for line in (REPO / "pipeline/assets/sample.rttm").read_text().splitlines():
        parts = line.split()
        start = float(parts[3])
        spans.append((max(0.0, start - pad_s), min(30.0, start + float(parts[4]) + pad_s)))
    return audio, spans


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) spent in ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    args = get_args()
    from faster_whisper import BatchedInferencePipeline

    from pipeline.asr.models import load_whisper, resolve_asr_model
    from pipeline.asr.whisper import WhisperBatchTranscriber

    path, sha = resolve_asr_model(args.asr_model)
    model = load_whisper(path, "cpu", args.compute_type, args.threads)
    audio, spans = load_turns(args.pad_s)
    chunks = [audio[int(s * SR) : int(e * SR)] for s, e in spans] * args.repeat
    offsets = [s for s, _ in spans] * args.repeat
    recording_s = len(audio) / SR * args.repeat
    words = not args.no_word_timestamps
    batched = WhisperBatchTranscriber(model, args.beam_size, args.batch_size, words)
    single = WhisperBatchTranscriber(model, args.beam_size, 1, words)
    batched.transcribe(chunks[:2], offsets[:2])  # warm-up
    replicas = load_whisper(path, "cpu", args.compute_type, 1, replicas=args.threads)
    side = WhisperBatchTranscriber(replicas, args.beam_size, 1, words, parallel=args.threads)
    side.transcribe(chunks[:2], offsets[:2])  # warm-up
    texts: dict[str, list[str]] = {}

    def keep(name, run):
        def call():
            texts[name] = [r.text for r in run()]

        return call

    def per_turn():
        for chunk in chunks:
            list(
                model.transcribe(
                    chunk,
                    beam_size=args.beam_size,
                    word_timestamps=words,
                    vad_filter=False,
                    condition_on_previous_text=False,
                )[0]
            )

    def whole_file():
        pipe = BatchedInferencePipeline(model)
        for _ in range(args.repeat):
            list(
                pipe.transcribe(
                    audio,
                    beam_size=args.beam_size,
                    batch_size=args.batch_size,
                    word_timestamps=words,
                )[0]
            )

    seconds = {
        "batched": timed(lambda: batched.transcribe(chunks, offsets)),
        "unbatched": timed(keep("unbatched", lambda: single.transcribe(chunks, offsets))),
        "side_by_side": timed(keep("side_by_side", lambda: side.transcribe(chunks, offsets))),
        "fw_per_turn": timed(per_turn),
        "fw_whole_file": timed(whole_file),
    }
    print(
        f"model {args.asr_model} ({path}, sha256 {sha[:12]}), {args.compute_type}, "
        f"{args.threads} threads, beam {args.beam_size}, word timestamps {words}"
    )
    print(f"{len(chunks)} turns, {recording_s:.0f} s of recording")
    # CPU seconds are steadier than wall time on a shared machine; both are printed
    for name, (wall, cpu) in seconds.items():
        print(
            f"{name:>14}: wall {wall:7.2f} s  RTF {wall / recording_s:.3f}  |  "
            f"CPU {cpu:7.2f} s  CPU-RTF {cpu / recording_s:.3f}"
        )

    def ratio(a: str, b: str) -> str:
        return (
            f"{seconds[a][0] / seconds[b][0]:.2f}x wall, {seconds[a][1] / seconds[b][1]:.2f}x CPU"
        )

    print(f"unbatched / batched = {ratio('unbatched', 'batched')}")
    same = texts["unbatched"] == texts["side_by_side"]
    print(f"unbatched / side_by_side = {ratio('unbatched', 'side_by_side')} (same text: {same})")
    print(f"fw_per_turn / batched = {ratio('fw_per_turn', 'batched')}")
    print(
        f"batched / fw_whole_file = {ratio('batched', 'fw_whole_file')} "
        "(the price of per-turn windows)"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
