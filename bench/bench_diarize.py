"""Diarization on many real voices: DER per conversation and RTF per embedding model, and the
corpus's role purity and yield through the whole pipeline.

Usage::

    python bench/bench_diarize.py                                  # dev set, CAM++
    python bench/bench_diarize.py --sets dev heldout sample --embeddings campplus ecapa ge2e
    python bench/bench_diarize.py --sets heldout --purity          # + pipeline purity / yield
    python bench/bench_diarize.py --sets dev-short heldout-short   # word-length turns

Inputs: conversations built from the vendored real voices (``tests/assets/voices``, splits
``dev``, ``heldout`` and ``final`` with disjoint voices, exact references; see
``tests/pipeline/voice_conversations.py``) and the bundled telephone sample. ``final`` is for one
last measurement of a finished design: run it once, and tune nothing on it. DER =
pyannote.metrics, no collar, overlap scored. RTF = wall seconds of :func:`pipeline.diarize.diarize`
(models loaded before, one warm-up call; VAD regions from the pipeline's VAD, computed outside the
timing) / audio seconds.

``--purity`` writes the conversations as WAV files, runs the pipeline on them as a user would
(``pipeline.run.run``), with and without the role-purity guard, and with the quality filters
that do not concern speakers switched off (DNSMOS, ASR confidence, characters per second,
speaker share: the built conversations mix telephone prompts and read speech in five
languages), then judges every kept dialogue against the reference (``diar_scoring.py``).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.diarize import DiarizeOptions, diarize, load_models  # noqa: E402
from tests.pipeline import diar_conversations as conv  # noqa: E402
from tests.pipeline import diar_scoring  # noqa: E402

SR = 16000
RELAXED_FILTERS = diar_scoring.RELAXED_FILTERS


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets",
        nargs="+",
        default=["dev"],
        choices=["dev", "dev2", "dev-short", "heldout", "heldout-short", "final", "sample"],
    )
    parser.add_argument(
        "--embeddings",
        nargs="*",
        default=["campplus"],
        help="embedding models of the ONNX recipe (campplus, ecapa, ge2e, path)",
    )
    parser.add_argument("--threads", type=int, default=1, help="diar_num_threads")
    parser.add_argument(
        "--purity",
        action="store_true",
        help="also run the pipeline and report role purity and yield",
    )
    parser.add_argument("--keep", default="", help="--purity: keep inputs and outputs here")
    parser.add_argument(
        "--guards",
        nargs="+",
        default=["true", "false"],
        help="--purity: role-purity guard settings to run",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        help="extra DiarizeOptions field=value (repeatable)",
    )
    parser.add_argument(
        "--filter_option",
        action="append",
        default=[],
        help="--purity: extra pipeline option field=value for the filters (repeatable)",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=None,
        help="DiarizeOptions field=value of the baseline run, timed in the same "
        "process on the same audio (repeatable; default: the stage as it "
        "was before the ONNX CAM++, diar_embedding_runtime=torch); "
        "--baseline none skips it",
    )
    return parser.parse_args()


def cases(sets: list[str]) -> list[tuple[str, str, object, list]]:
    """``(set, name, audio, reference)`` of every conversation asked for."""
    out = []
    for name in sets:
        if name == "sample":
            audio, reference = conv.load_sample()
            out.append(("sample", "sample", audio, reference))
            continue
        from tests.pipeline.voice_conversations import conversations

        out += [(name, c.name, c.audio, c.reference) for c in conversations(name)]
    return out


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def vad_regions(audio) -> list:
    """The pipeline's own VAD stage on one array (the diarizer is gated by it in the pipeline)."""
    from pipeline.records import SpeechRegion
    from pipeline.vad import VadOptions, detect_speech, load_vad_model

    global _VAD
    _VAD = _VAD or load_vad_model()
    return [SpeechRegion("r", s, e) for s, e in detect_speech(audio, _VAD, VadOptions())]


_VAD = None


def der_table(all_cases, embedding: str, threads: int, extra: dict) -> float:
    """Print DER per conversation and per set; returns the stage's RTF."""
    opts = DiarizeOptions(embedding_model=embedding, diar_num_threads=threads, **extra)
    models = load_models(opts)
    diarize(all_cases[0][2][: SR * 12], opts, models)  # warm-up
    per_set: dict[str, list[float]] = {}
    audio_s = wall_s = 0.0
    print(f"\n## embedding {embedding} ({threads} thread(s)) {extra or ''}")
    print(
        f"{'set':8s} {'conversation':40s} {'audio_s':>7s} {'DER %':>6s} {'miss':>5s} "
        f"{'FA':>5s} {'conf':>5s} {'spk':>3s} {'ref':>3s}"
    )
    for set_name, name, audio, reference in all_cases:
        speech = vad_regions(audio)
        started = time.perf_counter()
        result = diarize(audio, opts, models, name, speech)
        wall_s += time.perf_counter() - started
        audio_s += len(audio) / SR
        error, parts = conv.der(reference, result.segments)
        per_set.setdefault(set_name, []).append(error)
        print(
            f"{set_name:8s} {name:40s} {len(audio) / SR:7.1f} {100 * error:6.1f} "
            f"{100 * parts['miss']:5.1f} {100 * parts['false_alarm']:5.1f} "
            f"{100 * parts['confusion']:5.1f} {len({s.speaker for s in result.segments}):3d} "
            f"{len({s.speaker for s in reference}):3d}",
            flush=True,
        )
    for set_name, errors in per_set.items():
        print(
            f"{set_name:8s} mean DER {100 * statistics.mean(errors):5.1f} %   "
            f"max {100 * max(errors):5.1f} %   ({len(errors)} conversations)"
        )
    print(f"diarize RTF {wall_s / audio_s:.4f} ({audio_s:.0f} s of audio)")
    return wall_s / audio_s


def purity_table(
    all_cases, extra_args: list[str], keep: str = "", guards: tuple[str, ...] = ("true", "false")
) -> None:
    import pandas as pd
    import soundfile as sf

    from pipeline.run import run

    with tempfile.TemporaryDirectory() as scratch:
        tmp = keep or scratch
        inputs = Path(tmp) / "in"
        inputs.mkdir(parents=True, exist_ok=True)
        references = {}
        for _set, name, audio, reference in all_cases:
            sf.write(inputs / f"{name}.wav", audio, SR, subtype="PCM_16")
            references[name] = reference
        for guard in guards:
            out = Path(tmp) / f"out_{guard}"
            started = time.perf_counter()
            run(
                [
                    "--runner=DirectRunner",
                    f"--input={inputs}",
                    f"--output={out}",
                    f"--role_purity={guard}",
                    *RELAXED_FILTERS,
                    *extra_args,
                ]
            )
            wall = time.perf_counter() - started
            rejects = pd.read_parquet(out / "rejects")
            scored = diar_scoring.corpus_purity(out, references)
            for verdict in scored.impure:
                print(f"  impure: {verdict}")
            impure = int((rejects.reason == "role_impure").sum())
            print(
                f"role_purity={guard:5s}: kept {scored.dialogues:3d} dialogues, "
                f"{scored.kept_s:6.1f} s; purity {100 * scored.purity:5.1f} % of kept time; "
                f"yield {100 * scored.yield_:5.1f} % of two-person speech; impure from "
                f"3-person: {scored.three_person_mixed}; role_impure rejects {impure}; "
                f"wall {wall:.0f} s",
                flush=True,
            )
            sets = dict.fromkeys(set_name for set_name, *_ in all_cases)
            for set_name in sets if len(sets) > 1 else ():
                names = [name for s, name, *_ in all_cases if s == set_name]
                part = diar_scoring.corpus_purity(out, {n: references[n] for n in names})
                print(
                    f"  {set_name:8s}: kept {part.kept_s:6.1f} s; purity "
                    f"{100 * part.purity:5.1f} %; yield {100 * part.yield_:5.1f} %; impure from "
                    f"3-person: {part.three_person_mixed}",
                    flush=True,
                )


def main() -> None:
    args = get_args()
    logging.basicConfig(level=logging.WARNING)
    all_cases = cases(args.sets)
    extra = dict(_value_pair(o) for o in args.option)
    baseline = args.baseline if args.baseline is not None else ["diar_embedding_runtime=torch"]
    baseline = {} if baseline == ["none"] else dict(_value_pair(o) for o in baseline)
    for embedding in args.embeddings:
        rtf = der_table(all_cases, embedding, args.threads, extra)
        if baseline:
            base = der_table(all_cases, embedding, args.threads, {**extra, **baseline})
            print(
                f"\nRTF ratio {rtf / base:.2f} ({embedding}: {rtf:.4f} against the baseline "
                f"{baseline}: {base:.4f}, same process, same audio)"
            )
    if args.purity:
        pipeline_args = [f"--{k}={v}" for k, v in extra.items()]
        pipeline_args += [f"--{o}" for o in args.filter_option]
        purity_table(all_cases, pipeline_args, args.keep, tuple(args.guards))


def _value_pair(text: str):
    key, _, value = text.partition("=")
    return key, _value(value)


if __name__ == "__main__":
    main()
