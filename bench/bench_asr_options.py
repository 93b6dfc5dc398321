"""Whisper decoding options against word error rate: beam 5 or greedy, guards off or on.

Usage::

    python bench/bench_asr_options.py                      # Whisper base, int8, 2 threads
    python bench/bench_asr_options.py --beams 5 1 --guards off on --sets sample english
    python bench/bench_asr_options.py --asr_model tiny.en --sets sample english --detail

Each option set is the ASR stage as the pipeline runs it (:class:`pipeline.asr.stage.AsrEngine`
and :func:`pipeline.asr.stage.transcribe_work`: turn planning, padding, packing into shared 30 s
windows, words handed back by time, word timestamps on), with ``--asr_beam_size`` and
``--asr_guards`` (:class:`pipeline.asr.whisper.DecodeGuards`: openai-whisper's temperature
fallback and no-speech guard) varied. All engines are loaded and warmed up once on the sample in
one process; then every recording is transcribed by each option set in turn, so load from other
jobs on the machine falls on all of them alike.

Recordings, the diarization being the reference turns:

* ``sample``: the bundled sample (``pipeline/assets/sample.wav``, turns from ``sample.rttm``,
  reference text from ``sample.stm``), scored as in ``tests/pipeline/test_asr.py``;
* ``english`` and ``other``: two-voice conversations built here from the vendored real voices
  (``tests/assets/voices``, splits ``dev`` and ``heldout``; ``final`` is never used), ONLY clips
  with a transcript: the two voices alternate turn by turn (a turn is one clip, or a few clips of
  one voice 0.15-0.35 s apart), 0.3-0.8 s of silence between turns. Each clip is used once
  (there is about 105 s of transcribed English and 90 s of French, Italian and Russian outside
  ``final``); the layout is seeded by ``--seed``, so every run builds the same audio. The
  ``other`` conversations pair two languages (only one voice per language has transcripts), so
  their windows mix languages, while Whisper identifies one language per packed window.

WER = word errors / reference words over a set (:func:`core.wer.corpus_error_rate`, text
normalised by :func:`core.text_norm.normalize_text`); a recording's hypothesis is its turns'
text in time order against its reference text in time order (as the sample test scores it). Also
printed for the conversations: the turn-level WER (each turn against its own reference, so a word
handed to the neighbouring turn costs twice), by the language of the turn's voice. Time: wall and CPU seconds of ``transcribe_work``
(models loaded before); RTF = seconds / seconds of recording; the ratio is against the first
option set (beam 5, guards off: today's default). Empty turns: turns rejected ``no_transcript``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.text_norm import tokenize  # noqa: E402
from core.wer import ErrorCounts, corpus_error_rate  # noqa: E402
from pipeline.asr.stage import NO_TRANSCRIPT, AsrEngine, AsrOptions, transcribe_work  # noqa: E402
from pipeline.records import Recording, RecordingWork, SpeakerSegment  # noqa: E402
from tests.pipeline import voice_conversations as vc  # noqa: E402

SR = 16000
ASSETS = REPO / "pipeline" / "assets"
SETS = ("sample", "english", "other")

# Who talks with whom. A voice's transcribed clips are dealt, in a seeded order, among the
# conversations it takes part in, so no clip is heard twice.
ENGLISH_PAIRS = (
    ("allison", "michael"),
    ("mfa_us", "allison"),
    ("michael", "mfa_uk"),
    ("librivox_ss", "allison"),
    ("mfa_us", "michael"),
)
OTHER_PAIRS = (
    ("june", "carlo"),  # fr-CA, it-IT
    ("ivr_ru", "june"),  # ru-RU, fr-CA
    ("carlo", "ivr_ru"),
)
TURN_GAP_S = (0.3, 0.8)
CLIP_GAP_S = (0.15, 0.35)  # between clips of one turn (below --asr_merge_gap_s: one turn)
EDGE_S = 0.5  # silence before the first and after the last turn


@dataclass
class Case:
    """One recording: its work item, reference turns (time order) and set name."""

    set: str
    work: RecordingWork
    references: list[str]

    @property
    def duration(self) -> float:
        return self.work.recording.duration_s


@dataclass
class Outcome:
    """What one option set did on one set of recordings."""

    counts: list[ErrorCounts] = field(default_factory=list)  # per recording, whole text
    turn_counts: dict[str, list[ErrorCounts]] = field(default_factory=dict)  # by language
    wall_s: float = 0.0
    cpu_s: float = 0.0
    audio_s: float = 0.0
    turns: int = 0
    empty: int = 0
    hypotheses: list[str] = field(default_factory=list)

    def wer(self) -> ErrorCounts:
        return sum(self.counts, ErrorCounts())

    def turn_wer(self, language: str | None = None) -> ErrorCounts:
        return sum(
            (c for lang, cs in self.turn_counts.items() if language in (None, lang) for c in cs),
            ErrorCounts(),
        )


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asr_model", default="base")
    parser.add_argument("--compute_type", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beams", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--guards", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--seed", type=int, default=16, help="layout of the conversations")
    parser.add_argument("--detail", action="store_true", help="print every hypothesis")
    return parser.parse_args()


def make_work(name: str, audio: np.ndarray, segments: list[tuple[str, float, float]]):
    recording = Recording(
        recording_id=name,
        uri=f"bench://{name}.wav",
        sample_rate=SR,
        num_channels=1,
        duration_s=len(audio) / SR,
    )
    diarization = tuple(SpeakerSegment(name, spk, s, e) for spk, s, e in segments)
    return RecordingWork(
        recording=recording, audio=audio[None, :].astype(np.float32), diarization=diarization
    )


def sample_case() -> Case:
    audio, rate = sf.read(str(ASSETS / "sample.wav"), dtype="float32")
    assert rate == SR and audio.ndim == 1
    segments = []
    for line in (ASSETS / "sample.rttm").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start = float(parts[3])
            segments.append((parts[7], start, start + float(parts[4])))
    rows = [line.split(None, 5) for line in (ASSETS / "sample.stm").read_text().splitlines()]
    rows = sorted((r for r in rows if len(r) == 6), key=lambda r: float(r[3]))
    # the STM's utterances are not the RTTM's turns: one reference text for the whole sample
    return Case("sample", make_work("sample", audio, segments), [" ".join(r[5] for r in rows)])


def transcribed_clips(voice_id: str) -> list[vc.Clip]:
    return [c for c in vc.load_voice(voice_id).clips if c.transcript]


def deal_clips(pairs, rng: np.random.Generator) -> list[dict[str, list[vc.Clip]]]:
    """Each voice's transcribed clips, shuffled, dealt round-robin over its conversations."""
    dealt: list[dict[str, list[vc.Clip]]] = [{a: [], b: []} for a, b in pairs]
    for voice in sorted({v for pair in pairs for v in pair}):
        clips = transcribed_clips(voice)
        mine = [i for i, pair in enumerate(pairs) if voice in pair]
        for k, index in enumerate(rng.permutation(len(clips))):
            dealt[mine[k % len(mine)]][voice].append(clips[index])
    return dealt


def build_conversation(
    name: str, voices: tuple[str, str], clips: dict[str, list[vc.Clip]], rng: np.random.Generator
) -> Case:
    """The two voices alternate; each has as many turns as the voice with fewer clips."""
    n_turns = min(len(clips[v]) for v in voices)
    first = int(rng.integers(2))
    order = [voices[(first + i) % 2] for i in range(2 * n_turns)]
    grouped = {v: np.array_split(np.arange(len(clips[v])), n_turns) for v in voices}
    pieces: list[np.ndarray] = [np.zeros(round(EDGE_S * SR), np.float32)]
    segments, references = [], []
    t = EDGE_S
    for k, voice in enumerate(order):
        if k:
            gap = np.zeros(round(rng.uniform(*TURN_GAP_S) * SR), np.float32)
            pieces.append(gap)
            t += len(gap) / SR
        start, texts = t, []
        for j, index in enumerate(grouped[voice][k // 2]):
            clip = clips[voice][index]
            if j:
                pause = np.zeros(round(rng.uniform(*CLIP_GAP_S) * SR), np.float32)
                pieces.append(pause)
                t += len(pause) / SR
            pieces.append(clip.audio.astype(np.float32))
            t += clip.duration
            texts.append(clip.transcript or "")
        segments.append((voice, round(start, 3), round(t, 3)))
        references.append(" ".join(texts))
    pieces.append(np.zeros(round(EDGE_S * SR), np.float32))
    audio = np.concatenate(pieces)
    return Case("", make_work(name, audio, segments), references)


def conversation_cases(set_name: str, pairs, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    dealt = deal_clips(pairs, rng)
    cases = []
    for i, (pair, clips) in enumerate(zip(pairs, dealt)):
        case = build_conversation(f"{set_name}-{i + 1:02d}-{pair[0]}-{pair[1]}", pair, clips, rng)
        case.set = set_name
        cases.append(case)
    return cases


def check_splits(pairs) -> None:
    for voice in {v for pair in pairs for v in pair}:
        split = vc.voice_info(voice)["split"]
        assert split in ("dev", "heldout"), f"{voice} is in split {split}: not for tuning"


def score(case: Case, turns, rejects, outcome: Outcome) -> None:
    turns = sorted(turns, key=lambda t: t.start)
    hypothesis = " ".join(t.text for t in turns)
    outcome.counts.append(corpus_error_rate([(" ".join(case.references), hypothesis)]))
    outcome.hypotheses.append(hypothesis)
    outcome.turns += len(turns) + len(rejects)
    outcome.empty += sum(r.reason == NO_TRANSCRIPT for r in rejects)
    if case.set != "sample":  # one planned turn per reference turn (no same-speaker neighbours)
        assert len(turns) + len(rejects) == len(case.references), case.work.recording_id
        by_index = {int(t.turn_id.rsplit("-t", 1)[1]): t.text for t in turns}
        for i, (ref, seg) in enumerate(zip(case.references, case.work.diarization)):
            language = vc.voice_info(seg.speaker)["language"].split("-")[0]
            counts = corpus_error_rate([(ref, by_index.get(i, ""))])
            outcome.turn_counts.setdefault(language, []).append(counts)


def brief(c: ErrorCounts) -> str:
    return (
        f"{c.errors}/{c.reference_units}: {c.substitutions} sub, {c.deletions} del, "
        f"{c.insertions} ins"
    )


class Recorder:
    """Counts the windows a transcriber decoded, fell back on and judged silence (wraps
    ``transcribe_windows`` of one engine's Whisper; what it returns is passed on unchanged)."""

    def __init__(self, engine: AsrEngine):
        self.windows = self.fallbacks = self.silent = 0
        inner = engine.whisper.transcribe_windows

        def transcribe_windows(windows, defer_languages=frozenset()):
            results = inner(windows, defer_languages)
            self.windows += len(results)
            self.fallbacks += sum(r.temperature > 0 for r in results)
            self.silent += sum(r.skipped for r in results)
            return results

        engine.whisper.transcribe_windows = transcribe_windows


def main() -> None:
    args = get_args()
    cases: list[Case] = []
    if "sample" in args.sets:
        cases.append(sample_case())
    if "english" in args.sets:
        check_splits(ENGLISH_PAIRS)
        cases += conversation_cases("english", ENGLISH_PAIRS, args.seed)
    if "other" in args.sets:
        check_splits(OTHER_PAIRS)
        cases += conversation_cases("other", OTHER_PAIRS, args.seed + 1)
    sets = [s for s in SETS if any(c.set == s for c in cases)]

    print(f"model {args.asr_model}, {args.compute_type}, {args.threads} threads, packed turns")
    for s in sets:
        mine = [c for c in cases if c.set == s]
        words = sum(len(tokenize(" ".join(c.references))) for c in mine)
        print(
            f"set {s}: {len(mine)} recordings, {sum(c.duration for c in mine):.1f} s of audio, "
            f"{sum(len(c.work.diarization) for c in mine)} reference turns, {words} words"
        )
        for c in mine:
            voices = sorted({seg.speaker for seg in c.work.diarization})
            print(
                f"    {c.work.recording_id}: {c.duration:.1f} s, "
                f"{len(c.work.diarization)} turns, {'/'.join(voices)}"
            )

    configs = [(beam, guard == "on") for beam in args.beams for guard in args.guards]
    names = [f"beam {b}, guards {'on' if g else 'off'}" for b, g in configs]
    engines, recorders = [], []
    warm = sample_case()
    for beam, guards in configs:
        opts = AsrOptions(
            asr_model=args.asr_model,
            asr_compute_type=args.compute_type,
            asr_threads=args.threads,
            asr_beam_size=beam,
            asr_guards=guards,
        )
        engine = AsrEngine(opts)
        transcribe_work(warm.work, engine, opts)  # warm-up, not counted
        engines.append(engine)
        recorders.append(Recorder(engine))

    outcomes = {(n, s): Outcome() for n in names for s in sets}
    for case in cases:
        for name, engine in zip(names, engines):
            wall, cpu = time.perf_counter(), time.process_time()
            turns, rejects = transcribe_work(case.work, engine, engine.opts)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            outcome = outcomes[(name, case.set)]
            outcome.wall_s += wall
            outcome.cpu_s += cpu
            outcome.audio_s += case.duration
            score(case, turns, rejects, outcome)
        print(f"done {case.work.recording_id}", flush=True)

    print()
    for name, recorder in zip(names, recorders):
        print(f"== {name}")
        print(
            f"   windows decoded {recorder.windows}, with temperature fallback "
            f"{recorder.fallbacks}, judged silence {recorder.silent} (warm-up not counted)"
        )
        for s in sets:
            o = outcomes[(name, s)]
            line = (
                f"   {s:>8}: WER {o.wer().rate:6.1%} ({brief(o.wer())}), "
                f"empty turns {o.empty}/{o.turns}, wall {o.wall_s:.1f} s, CPU {o.cpu_s:.1f} s"
            )
            if o.turn_counts:
                line += (
                    f", turn-level WER {o.turn_wer().rate:.1%} ("
                    + ", ".join(
                        f"{lang} {o.turn_wer(lang).rate:.1%} of {o.turn_wer(lang).reference_units}"
                        for lang in sorted(o.turn_counts)
                    )
                    + ")"
                )
            print(line)
            if args.detail:
                for case, hyp in zip([c for c in cases if c.set == s], o.hypotheses):
                    print(f"      {case.work.recording_id}: {hyp}")

    base = names[0]
    totals = {
        n: (
            sum(outcomes[(n, s)].wall_s for s in sets),
            sum(outcomes[(n, s)].cpu_s for s in sets),
            sum(outcomes[(n, s)].empty for s in sets),
        )
        for n in names
    }
    audio_s = sum(outcomes[(base, s)].audio_s for s in sets)
    turns = sum(outcomes[(base, s)].turns for s in sets)
    header = ["option set", *[f"WER {s}" for s in sets]]
    header += ["empty turns", "ASR wall s", "RTF", "CPU s", "CPU RTF", f"x {base} (wall / CPU)"]
    print()
    print(
        f"{audio_s:.1f} s of audio, {turns} turns; words: "
        + ", ".join(f"{s} {outcomes[(base, s)].wer().reference_units}" for s in sets)
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for n in names:
        wall, cpu, empty = totals[n]
        row = [n, *[f"{outcomes[(n, s)].wer().rate:.1%}" for s in sets]]
        row += [
            f"{empty}/{turns}",
            f"{wall:.1f}",
            f"{wall / audio_s:.3f}",
            f"{cpu:.1f}",
            f"{cpu / audio_s:.3f}",
            f"{wall / totals[base][0]:.2f} / {cpu / totals[base][1]:.2f}",
        ]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
