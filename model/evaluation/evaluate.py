"""Evaluate generated dialogues: WER, cpWER, cpSIM, DNSMOS, turn-taking and RTF.

The protocol follows ZipVoice-Dialog's (paper §6, ``egs/zipvoice_dialog/run_eval.sh``) with
offline stand-in models (see :mod:`model.evaluation.metrics`):

- **WER**: Whisper transcript of the whole output against the script, tags and punctuation
  stripped, the pipeline's fixed normalisation (:mod:`core.text_norm`).
- **cpWER**: the output diarized into two speakers (the pipeline's ONNX diarizer); in ``words``
  mode (default) the whole-clip transcript's words are given to the diarized speaker they fall
  on, in ``turns`` mode each diarized turn (overlapped stretches and turns under ``min_turn_s``
  left out) is transcribed on its own; each speaker's words are concatenated and scored against
  each script speaker's words, minimum over the two pairings. ``words`` is the default because
  it keeps the paper's structure (WhisperD writes *one* transcript and its speaker tags split
  it, so cpWER - WER measures attribution errors only) and costs no second ASR pass; ``turns``
  adds the ASR errors of short, context-free pieces (on the bundled sample the two modes'
  cpWER - WER were about equal on average, each better on some excerpts).
- **cpSIM**: GE2E cosine of each diarized output speaker against its prompt speaker, the better
  pairing's mean; a merged prompt is diarized too.
- **DNSMOS** P.835 OVRL/SIG/BAK of the output; **turn accuracy** and **speaker switches**
  (:mod:`model.evaluation.metrics.turns`); **RTF** from given synthesis times.

Work is split in two: :meth:`Evaluator.analyse` runs the models on one output (script
independent), :func:`score_item` scores that analysis against a script (cheap, pure).

CLI::

    python -m model.evaluate --test-list list.tsv --res-dir DIR --out results.md \\
        [--model-name NAME --params 123M --synthesis-times times.tsv --append]

Python::

    >>> evaluator = Evaluator()                                          # doctest: +SKIP
    >>> evaluate_item("out.wav", "[S1] Hi. [S2] Hello.", ["s1.wav", "s2.wav"],
    ...               evaluator=evaluator)["wer"]                        # doctest: +SKIP
    0.0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.options import add_dataclass_args, dataclass_from_args, opt
from model.evaluation.metrics.asr import Transcript
from model.evaluation.metrics.quality import DnsmosScore
from model.evaluation.metrics.script import parse_script, speaker_texts
from model.evaluation.metrics.similarity import SpeakerPair
from model.evaluation.metrics.summary import Summary, summarise
from pipeline.api import SpeakerSegment

logger = logging.getLogger(__name__)

__all__ = [
    "AudioAnalysis",
    "EvalOptions",
    "Evaluator",
    "ItemResult",
    "ListResult",
    "evaluate_item",
    "evaluate_list",
    "main",
    "score_item",
]

CPWER_MODES = ("words", "turns")


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate.

    Attributes:
        asr_model: Whisper model (``base``, ``tiny.en``, a CTranslate2 directory).
        language: language code to force, or ``None`` (or ``auto``) to detect per clip.
        beam_size: Whisper beam width.
        cpwer_mode: ``words`` (whole-clip words attributed to diarized speakers) or ``turns``
            (re-transcribe each diarized turn).
        turn_max_gap_s: ``turns`` mode: same-speaker segments closer than this form one turn.
        min_turn_s: diarized turns with less speech are ignored when counting switches (and
            not transcribed in ``turns`` mode).
        dnsmos: compute DNSMOS.
        num_threads: threads for each model (onnxruntime, CTranslate2).
        device: Whisper device (``cpu``, ``cuda``, ``auto``).
        compute_type: CTranslate2 compute type.
    """

    asr_model: str = opt(
        "base", "Whisper model: base, tiny.en or a CTranslate2 directory", group="models"
    )
    language: str | None = opt(
        "en",
        "language to force (en, zh, ...) or 'auto' to detect per clip",
        aliases=("--lang",),
        group="models",
    )
    beam_size: int = opt(5, "Whisper beam width", group="models")
    cpwer_mode: str = opt(
        "words",
        "words: whole-clip words attributed to the diarized speakers; "
        "turns: re-transcribe each diarized turn",
        choices=CPWER_MODES,
        group="models",
    )
    turn_max_gap_s: float = 0.5
    min_turn_s: float = 0.3
    dnsmos: bool = opt(True, "compute DNSMOS", negations=("--no-dnsmos",), group="models")
    num_threads: int = opt(2, "threads per model", group="models")
    device: str = opt("cpu", "Whisper device: cpu, cuda, auto", group="models")
    compute_type: str = opt("int8", "CTranslate2 compute type", group="models")

    def __post_init__(self) -> None:
        if self.language == "auto":
            object.__setattr__(self, "language", None)
        if self.cpwer_mode not in CPWER_MODES:
            raise ValueError(f"cpwer_mode must be one of {CPWER_MODES}, got {self.cpwer_mode!r}")


@dataclass(frozen=True)
class AudioAnalysis:
    """What the models found in one output (independent of its script).

    Attributes:
        duration_s: length of the audio.
        transcript: Whisper's whole-clip transcript with word times.
        segments: the two-speaker diarization.
        word_speakers: the diarized speaker of each transcript word.
        turn_texts: ``turns`` mode: each diarized speaker's re-transcribed turns, joined in time
            order (``None`` when not run).
        speakers: GE2E embeddings of the two diarized speakers.
        dnsmos: DNSMOS (``None`` when not run).
    """

    duration_s: float
    transcript: Transcript
    segments: tuple[SpeakerSegment, ...]
    word_speakers: tuple[str, ...]
    turn_texts: Mapping[str, str] | None
    speakers: SpeakerPair
    dnsmos: DnsmosScore | None

    def word_texts(self) -> dict[str, str]:
        """Each diarized speaker's whole-clip words, joined in time order."""
        out: dict[str, list[str]] = {s.speaker: [] for s in self.segments}
        for word, speaker in zip(self.transcript.words, self.word_speakers):
            out.setdefault(speaker, []).append(word.text)
        return {k: " ".join(v) for k, v in out.items()}


@dataclass(frozen=True)
class ItemResult:
    """Scores of one generated dialogue (rates are fractions; ``None``: not computed).

    Attributes:
        name: the item's name.
        duration_s: audio duration.
        prompt_mode: ``merged``, ``split`` or ``""`` (no prompt).
        ref_words: words in the script (after normalisation).
        wer: WER; ``wer_errors`` its edit count.
        cpwer: cpWER; ``cpwer_errors`` its edit count; ``cpwer_swapped`` the other pairing's rate.
        cpwer_mode: how speakers' words were obtained (``turns``/``words``).
        cpwer_mapping: ``(script speaker, diarized label)`` of cpWER's best pairing.
        cpsim: cpSIM; ``cpsim_swapped`` the other pairing's mean cosine; ``cosine`` the 2x2
            prompt x output matrix (output columns in diarized label order ``SPK0, SPK1``);
            ``cpsim_mapping`` the best pairing; ``cpsim_fallback`` True when a clip was not split
            in two.
        dnsmos_ovrl: DNSMOS OVRL (also ``dnsmos_sig``, ``dnsmos_bak``).
        num_turns: script turns; ``turns_correct`` those attributed right; ``turn_accuracy``.
        switches_expected: speaker changes in the script; ``switches_found`` in the diarization.
        num_speakers_found: diarized speakers.
        synthesis_s: given synthesis time; ``rtf`` = synthesis_s / duration_s.
        transcript: Whisper's whole-clip transcript.
        speaker_hypotheses: each script speaker's hypothesis words under the best pairing.
    """

    name: str
    duration_s: float
    prompt_mode: str
    ref_words: int
    wer: float
    wer_errors: int
    cpwer: float
    cpwer_errors: int
    cpwer_swapped: float
    cpwer_mode: str
    cpwer_mapping: tuple[tuple[str, str], ...]
    cpsim: float | None
    cpsim_swapped: float | None
    cosine: tuple[tuple[float, float], tuple[float, float]] | None
    cpsim_mapping: tuple[tuple[str, str], ...]
    cpsim_fallback: bool
    dnsmos_ovrl: float | None
    dnsmos_sig: float | None
    dnsmos_bak: float | None
    num_turns: int
    turns_correct: int
    turn_accuracy: float
    switches_expected: int
    switches_found: int
    num_speakers_found: int
    synthesis_s: float | None
    rtf: float | None
    transcript: str
    speaker_hypotheses: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ListResult:
    """All items of a test list and their summary row."""

    items: tuple[ItemResult, ...]
    summary: Summary
    missing: tuple[str, ...] = ()


def score_item(
    analysis: AudioAnalysis,
    script: str,
    prompt: SpeakerPair | None = None,
    name: str = "",
    cpwer_mode: str = "words",
    prompt_mode: str = "",
    synthesis_s: float | None = None,
    min_turn_s: float = 0.3,
) -> ItemResult:
    """Score an analysed output against its script and prompt speakers (no model runs here).

    Args:
        analysis: from :meth:`Evaluator.analyse`.
        script: ``[S1] ... [S2] ...``.
        prompt: the prompt speakers' embeddings (``None``: no cpSIM).
        name: the item's name.
        cpwer_mode: ``words`` or ``turns`` (needs ``analysis.turn_texts``).
        prompt_mode: ``merged`` or ``split``, recorded with the result.
        synthesis_s: time taken to synthesise the output (for the RTF).
        min_turn_s: see :func:`model.evaluation.metrics.turns.diarized_turn_sequence`.

    Raises:
        ValueError: ``turns`` mode without turn transcripts in the analysis.
    """
    from model.evaluation.metrics.similarity import cp_sim
    from model.evaluation.metrics.turns import score_turns
    from model.evaluation.metrics.wer import cp_wer, dialogue_wer

    turns = parse_script(script)
    wer = dialogue_wer(script, analysis.transcript.text)
    if cpwer_mode == "turns":
        if analysis.turn_texts is None:
            raise ValueError("cpwer_mode 'turns' needs an analysis made in 'turns' mode")
        hypotheses = dict(analysis.turn_texts)
    elif cpwer_mode == "words":
        hypotheses = analysis.word_texts()
    else:
        raise ValueError(f"cpwer_mode must be one of {CPWER_MODES}, got {cpwer_mode!r}")
    cp = cp_wer(speaker_texts(turns), hypotheses)
    sim = cp_sim(prompt, analysis.speakers) if prompt is not None else None
    turn_score = score_turns(
        turns,
        analysis.transcript.words,
        analysis.word_speakers,
        analysis.segments,
        min_turn_s=min_turn_s,
    )
    dns = analysis.dnsmos
    return ItemResult(
        name=name,
        duration_s=round(analysis.duration_s, 3),
        prompt_mode=prompt_mode,
        ref_words=wer.reference_units,
        wer=wer.rate,
        wer_errors=wer.errors,
        cpwer=cp.counts.rate,
        cpwer_errors=cp.counts.errors,
        cpwer_swapped=cp.worst_counts.rate,
        cpwer_mode=cpwer_mode,
        cpwer_mapping=cp.mapping,
        cpsim=sim.score if sim else None,
        cpsim_swapped=sim.other_score if sim else None,
        cosine=sim.cosine if sim else None,
        cpsim_mapping=sim.mapping if sim else (),
        cpsim_fallback=bool(sim and sim.fallback),
        dnsmos_ovrl=dns.ovrl if dns else None,
        dnsmos_sig=dns.sig if dns else None,
        dnsmos_bak=dns.bak if dns else None,
        num_turns=turn_score.num_turns,
        turns_correct=turn_score.turns_correct,
        turn_accuracy=turn_score.accuracy,
        switches_expected=turn_score.switches_expected,
        switches_found=turn_score.switches_found,
        num_speakers_found=len({s.speaker for s in analysis.segments}),
        synthesis_s=synthesis_s,
        rtf=(
            synthesis_s / analysis.duration_s
            if synthesis_s is not None and analysis.duration_s > 0
            else None
        ),
        transcript=analysis.transcript.text,
        speaker_hypotheses={ref: hypotheses.get(hyp, "") for ref, hyp in cp.mapping if ref},
    )


class Evaluator:
    """The metric models, loaded once: Whisper, the two-speaker diarizer, GE2E, DNSMOS.

    Args:
        options: what to load and how to run it.
    """

    def __init__(self, options: EvalOptions = EvalOptions()):
        from model.evaluation.metrics.asr import Recognizer
        from model.evaluation.metrics.diarization import TwoSpeakerDiarizer
        from model.evaluation.metrics.quality import QualityScorer

        self.options = options
        started = time.perf_counter()
        self.recognizer = Recognizer(
            options.asr_model,
            language=options.language,
            beam_size=options.beam_size,
            device=options.device,
            compute_type=options.compute_type,
            cpu_threads=options.num_threads,
        )
        self.diarizer = TwoSpeakerDiarizer(num_threads=options.num_threads)
        self.embedder = self.diarizer.embedder
        self.quality = QualityScorer(num_threads=options.num_threads) if options.dnsmos else None
        logger.info("evaluation models loaded in %.1f s", time.perf_counter() - started)

    def model_names(self) -> dict[str, str]:
        """What computes each metric, for the results file."""
        asr = (
            f"Whisper {self.recognizer.name} (faster-whisper {self.options.compute_type}, "
            "silero-VAD windows, guarded decoding)"
        )
        names = {
            "WER": asr,
            "cpWER": f"pyannote segmentation-3.0 ONNX + GE2E clustering (2 speakers) + {asr}, "
            f"{self.options.cpwer_mode} mode",
            "cpSIM": "GE2E d-vector (Resemblyzer 0.1.4) on the same diarization",
            "turns": "same diarization + Whisper word times",
        }
        if self.quality is not None:
            names["DNSMOS"] = "DNSMOS P.835 (speechmos ONNX)"
        return names

    def analyse(self, samples: np.ndarray) -> AudioAnalysis:
        """Run the models on one 16 kHz mono output."""
        from model.evaluation.metrics.audio import SAMPLE_RATE
        from model.evaluation.metrics.diarization import fill_unattributed, word_speakers
        from model.evaluation.metrics.similarity import diarized_pair

        samples = np.asarray(samples, dtype=np.float32)
        segments = self.diarizer(samples)
        transcript = self.recognizer.transcribe(samples)
        labels = fill_unattributed(word_speakers(transcript.words, segments))
        turn_texts = (
            self._turn_texts(samples, segments) if self.options.cpwer_mode == "turns" else None
        )
        speakers = diarized_pair(samples, segments, self.embedder)
        dnsmos = self.quality(samples) if self.quality is not None and len(samples) else None
        return AudioAnalysis(
            duration_s=len(samples) / SAMPLE_RATE,
            transcript=transcript,
            segments=segments,
            word_speakers=tuple(labels),
            turn_texts=turn_texts,
            speakers=speakers,
            dnsmos=dnsmos,
        )

    def _turn_texts(
        self, samples: np.ndarray, segments: Sequence[SpeakerSegment]
    ) -> dict[str, str]:
        """Each diarized speaker's turns transcribed one by one, joined in time order.

        Overlapped stretches are left out (both voices are in them, and a piece read for each
        speaker doubles its words) and so are turns under ``min_turn_s`` (Whisper invents text
        on slivers: "Thank you." on a 0.5 s piece of the bundled sample).
        """
        from model.evaluation.metrics.audio import SAMPLE_RATE
        from pipeline.api import plan_turns

        clean = [s for s in segments if not s.overlap]
        spans = plan_turns(clean, [], max_gap_s=self.options.turn_max_gap_s, max_chunk_s=30.0)
        spans = sorted(
            (t for t in spans if t.duration >= self.options.min_turn_s),
            key=lambda t: (t.start, t.speaker),
        )
        chunks = [samples[int(t.start * SAMPLE_RATE) : int(t.end * SAMPLE_RATE)] for t in spans]
        texts = self.recognizer.transcribe_turns(chunks, [t.start for t in spans])
        out: dict[str, list[str]] = {s.speaker: [] for s in segments}
        for span, text in zip(spans, texts):
            if text:
                out[span.speaker].append(text)
        return {k: " ".join(v) for k, v in out.items()}

    def prompt_speakers(self, prompt_wavs: Sequence[str | os.PathLike]) -> SpeakerPair:
        """Prompt speaker embeddings: two split prompts, or one merged prompt diarized."""
        from model.evaluation.metrics.audio import load_mono_16k
        from model.evaluation.metrics.similarity import diarized_pair, split_pair

        audio = [load_mono_16k(p) for p in prompt_wavs]
        if len(audio) == 2:
            return split_pair(audio[0], audio[1], self.embedder)
        if len(audio) == 1:
            return diarized_pair(audio[0], self.diarizer(audio[0]), self.embedder)
        raise ValueError(f"one merged or two split prompts, got {len(audio)}")


def evaluate_item(
    wav: str | os.PathLike | np.ndarray,
    script: str,
    prompt_wavs: Sequence[str | os.PathLike] = (),
    evaluator: Evaluator | None = None,
    name: str = "",
    synthesis_s: float | None = None,
) -> dict[str, Any]:
    """Evaluate one generated dialogue.

    Args:
        wav: the generated audio (a path, or a 16 kHz mono array).
        script: its script, ``[S1] ... [S2] ...``.
        prompt_wavs: one merged prompt or the two split prompts (empty: no cpSIM).
        evaluator: loaded models (``None`` loads them with default options: slow).
        name: the item's name.
        synthesis_s: time taken to synthesise it (for the RTF).

    Returns:
        :class:`ItemResult` as a dict.
    """
    from model.evaluation.metrics.audio import load_mono_16k

    evaluator = evaluator or Evaluator()
    samples = wav if isinstance(wav, np.ndarray) else load_mono_16k(wav)
    prompt = evaluator.prompt_speakers(prompt_wavs) if prompt_wavs else None
    mode = {1: "merged", 2: "split"}.get(len(prompt_wavs), "")
    analysis = evaluator.analyse(samples)
    return score_item(
        analysis,
        script,
        prompt,
        name=name,
        cpwer_mode=evaluator.options.cpwer_mode,
        prompt_mode=mode,
        synthesis_s=synthesis_s,
        min_turn_s=evaluator.options.min_turn_s,
    ).to_dict()


def evaluate_list(
    test_list: str | os.PathLike,
    res_dir: str | os.PathLike,
    evaluator: Evaluator | None = None,
    synthesis_times: Mapping[str, float] | None = None,
    model_name: str = "",
    params: str = "",
    rtf: float | None = None,
    cpwer_max_s: float | None = None,
) -> ListResult:
    """Evaluate every item of a ZipVoice-Dialog test list whose ``<res_dir>/<name>.wav`` exists.

    Args:
        test_list: 4-column (merged prompt) or 6-column (split prompts) TSV.
        res_dir: folder of generated wavs.
        evaluator: loaded models (``None`` loads them with default options).
        synthesis_times: seconds of synthesis per item name (for the RTF).
        model_name: the system's name in the summary row.
        params: the system's size in the summary row.
        rtf: a measured RTF to report instead of one from ``synthesis_times``.
        cpwer_max_s: only items at most this long enter the corpus cpWER.

    Returns:
        Per-item results, the summary, and the names whose wav was missing.
    """
    from model.evaluation.metrics.testlist import read_test_list

    evaluator = evaluator or Evaluator()
    times = dict(synthesis_times or {})
    items: list[ItemResult] = []
    missing: list[str] = []
    test_items = read_test_list(test_list)
    for index, item in enumerate(test_items, 1):
        wav = Path(res_dir) / f"{item.name}.wav"
        if not wav.is_file():
            logger.warning("%s: generated wav %s not found, skipped", item.name, wav)
            missing.append(item.name)
            continue
        started = time.perf_counter()
        result = evaluate_item(
            wav,
            item.text,
            item.prompt_wavs,
            evaluator,
            name=item.name,
            synthesis_s=times.get(item.name),
        )
        items.append(ItemResult(**result))
        logger.info(
            "[%d/%d] %s: WER %.3f cpWER %.3f cpSIM %s (%.1f s)",
            index,
            len(test_items),
            item.name,
            result["wer"],
            result["cpwer"],
            result["cpsim"],
            time.perf_counter() - started,
        )
    summary = summarise(
        [i.to_dict() for i in items],
        model=model_name,
        params=params,
        num_missing=len(missing),
        cpwer_max_s=cpwer_max_s,
        rtf=rtf,
        models=evaluator.model_names(),
    )
    return ListResult(items=tuple(items), summary=summary, missing=tuple(missing))


@dataclass(frozen=True)
class EvaluateArgs:
    """The command line of ``python -m model.evaluate`` (one flag per field, those of
    :class:`EvalOptions` included).

    Attributes:
        test_list: the test list the outputs were generated from.
        res_dir: folder of ``<name>.wav`` outputs.
        out: markdown results file.
        json: also write per-item results and the summary as JSON here.
        append: keep the rows of earlier runs in ``out``.
        model_name, params: the table row's system name and size.
        synthesis_times: ``name<TAB>seconds`` file for the RTF.
        rtf: a measured RTF to report instead.
        cpwer_max_s: only items at most this long enter the cpWER.
        scoring: the models and how they run.
    """

    test_list: str = opt(
        help="TSV: 'name, prompt_text, prompt_wav, text' (merged prompt) or "
        "'name, spk1_text, spk2_text, spk1_wav, spk2_wav, text' (split)",
        group="input/output",
    )
    res_dir: str = opt(help="folder holding <name>.wav outputs", group="input/output")
    out: str = opt("results.md", "markdown results file", group="input/output")
    json: str | None = opt(
        None, "also write per-item results and the summary as JSON here", group="input/output"
    )
    append: bool = opt(
        False,
        "keep the rows of earlier runs in --out (kept in <out>.runs.json); "
        "a run of the same --model-name replaces its row",
        group="input/output",
    )
    model_name: str = opt("", "system name for the table row", group="table")
    params: str = opt("", "system size for the table, e.g. 123M", group="table")
    synthesis_times: str | None = opt(
        None, "file of 'name<TAB>seconds' synthesis times (for the RTF)", group="table"
    )
    rtf: float | None = opt(
        None, "a measured RTF to report (instead of --synthesis-times)", group="table"
    )
    cpwer_max_s: float | None = opt(
        None, "only items at most this long enter the cpWER (the paper: 30)", group="table"
    )
    scoring: EvalOptions = dataclasses.field(default_factory=EvalOptions)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.evaluate",
        description="Score generated dialogues (WER, cpWER, cpSIM, DNSMOS, turns, RTF) and write "
        "a markdown table in the layout of ZipVoice-Dialog's Table 4. Offline models: "
        "Whisper, pyannote segmentation-3.0 ONNX + GE2E, DNSMOS.",
    )
    add_dataclass_args(parser, EvaluateArgs, kebab=True)
    return parser


def _load_runs(path: Path) -> list[Summary]:
    if not path.is_file():
        return []
    return [Summary.from_dict(row) for row in json.loads(path.read_text())["runs"]]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    from model.evaluation.metrics.report import main_table, render
    from model.evaluation.metrics.rtf import read_synthesis_times

    args = dataclass_from_args(EvaluateArgs, _parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = args.scoring
    if options.num_threads > 0:
        import torch

        torch.set_num_threads(options.num_threads)
    times = read_synthesis_times(args.synthesis_times) if args.synthesis_times else None
    result = evaluate_list(
        args.test_list,
        args.res_dir,
        Evaluator(options),
        times,
        model_name=args.model_name,
        params=args.params,
        rtf=args.rtf,
        cpwer_max_s=args.cpwer_max_s,
    )
    if not result.items:
        logger.error("no generated wav of %s found in %s", args.test_list, args.res_dir)
        return 1
    out = Path(args.out)
    runs_path = out.with_name(out.name + ".runs.json")
    runs = _load_runs(runs_path) if args.append else []
    runs = [r for r in runs if r.model != result.summary.model] + [result.summary]
    out.parent.mkdir(parents=True, exist_ok=True)
    runs_path.write_text(json.dumps({"runs": [r.to_dict() for r in runs]}, indent=1))
    out.write_text(render(runs, [i.to_dict() for i in result.items], str(args.test_list)))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "summary": result.summary.to_dict(),
                    "missing": list(result.missing),
                    "items": [i.to_dict() for i in result.items],
                },
                indent=1,
                ensure_ascii=False,
            )
        )
    print(main_table([result.summary]))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
