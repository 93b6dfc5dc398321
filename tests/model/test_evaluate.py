"""Evaluation metrics: logic on small inputs, then every metric on the bundled real dialogue.

The real-speech checks score the 30 s telephone sample against itself: its script comes from
``sample.stm`` (Diane -> [S1], Sheila -> [S2]) and its prompts are each speaker's own STM
segments cut from the sample. The models are the offline stand-ins (Whisper base, pyannote
segmentation-3.0 ONNX + GE2E, DNSMOS). One evaluator and one analysis of the sample are shared
by the module (the expensive part); scoring against scripts is cheap.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import soundfile as sf

from core.wer import align, error_counts
from model.evaluation.metrics.diarization import fill_unattributed, word_speakers
from model.evaluation.metrics.rtf import corpus_rtf, read_synthesis_times, real_time_factor
from model.evaluation.metrics.script import (
    ScriptTurn,
    parse_script,
    plain_text,
    speaker_texts,
    swap_speakers,
    to_script,
)
from model.evaluation.metrics.similarity import SpeakerPair, cp_sim
from model.evaluation.metrics.summary import summarise
from model.evaluation.metrics.testlist import parse_line, read_test_list
from model.evaluation.metrics.turns import diarized_turn_sequence, merge_turns, score_turns
from model.evaluation.metrics.wer import cp_wer, dialogue_wer
from pipeline.records import SpeakerSegment, Word
from tests.conftest import TEST_THREADS

SPEAKER_TAGS = {"Diane": "S1", "Sheila": "S2"}


def seg(speaker: str, start: float, end: float, overlap: bool = False) -> SpeakerSegment:
    return SpeakerSegment("r", speaker, start, end, overlap)


# ---------------------------------------------------------------- script and WER logic


def test_parse_script_is_lenient_and_drops_non_speech():
    turns = parse_script("Well [laughs] hi. [S2] (coughs) Hello <noise> there. [S1] [S1] Bye.")
    assert turns == (
        ScriptTurn("S1", "Well hi."),
        ScriptTurn("S2", "Hello there."),
        ScriptTurn("S1", "Bye."),
    )
    assert speaker_texts(turns) == {"S1": "Well hi. Bye.", "S2": "Hello there."}
    assert plain_text("[S1] a [S2] b") == "a b"
    assert parse_script(to_script(turns)) == turns
    assert swap_speakers(turns, [1])[1] == ScriptTurn("S1", "Hello there.")


def test_dialogue_wer_ignores_tags_case_and_punctuation():
    counts = dialogue_wer("[S1] Hello, there! [S2] I'm fine.", "hello there im fine")
    assert (counts.errors, counts.reference_units) == (0, 4)
    assert dialogue_wer("[S1] a b c [S2] d", "a x c").errors == 2


def test_cp_wer_takes_the_best_pairing_and_counts_missing_speakers():
    reference = {"S1": "one two three", "S2": "four five"}
    best = cp_wer(reference, {"SPK0": "four five", "SPK1": "one two tree"})
    assert best.counts.errors == 1 and best.counts.reference_units == 5
    assert dict(best.mapping) == {"S1": "SPK1", "S2": "SPK0"}
    assert best.worst_counts.errors > best.counts.errors
    # one hypothesis speaker: the other speaker's words are deleted there, inserted here
    single = cp_wer(reference, {"SPK0": "one two three four five"})
    assert (single.counts.deletions, single.counts.insertions) == (2, 2)
    assert dict(single.mapping) == {"S1": "SPK0", "S2": ""}
    # a third hypothesis speaker's words are insertions
    extra = cp_wer(reference, {"A": "one two three", "B": "four five", "C": "six"})
    assert extra.counts.errors == 1 and extra.counts.insertions == 1
    # cpWER is never below the WER of the joined texts in the best order
    assert (
        best.counts.errors
        >= error_counts(
            ["one", "two", "three", "four", "five"], ["one", "two", "tree", "four", "five"]
        ).errors
    )


def test_align_has_exactly_the_error_counts_of_pipeline_wer():
    rng = random.Random(0)
    vocab = list("abcde")
    for _ in range(200):
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
        pairs = align(ref, hyp)
        assert [i for i, _ in pairs if i is not None] == list(range(len(ref)))
        assert [j for _, j in pairs if j is not None] == list(range(len(hyp)))
        edits = sum(1 for i, j in pairs if i is None or j is None or ref[i] != hyp[j])
        assert edits == error_counts(ref, hyp).errors


# ---------------------------------------------------------------- turns, speakers, similarity


def test_diarized_turn_sequence_removes_short_flips_and_merges():
    segments = [
        seg("A", 0.0, 2.0),
        seg("B", 2.0, 2.1),
        seg("A", 2.1, 4.0),
        seg("A", 4.0, 4.5, overlap=True),
        seg("B", 4.0, 4.5, overlap=True),
        seg("B", 4.5, 6.0),
        seg("A", 6.2, 6.3),
        seg("B", 6.3, 7.0),
    ]
    assert [s for s, _ in diarized_turn_sequence(segments)] == ["A", "B"]
    assert [s for s, _ in diarized_turn_sequence(segments, min_turn_s=0.05)] == [
        "A",
        "B",
        "A",
        "B",
        "A",
        "B",
    ]


def test_word_speakers_and_fill():
    segments = [seg("A", 0.0, 1.0), seg("B", 1.0, 2.0)]
    words = [Word(0.1, 0.4, "x"), Word(0.8, 1.5, "y"), Word(5.0, 5.2, "z"), Word(2.3, 2.5, "w")]
    assert word_speakers(words, segments) == ["A", "B", None, "B"]
    assert fill_unattributed([None, "A", None, "B"]) == ["A", "A", "A", "B"]


def test_score_turns_counts_turns_on_the_right_speaker():
    turns = parse_script("[S1] hello there [S2] hi you [S1] bye now [S1] really")
    words = [
        Word(0.0, 0.4, "hello"),
        Word(0.4, 0.8, "there"),
        Word(1.0, 1.3, "hi"),
        Word(1.3, 1.6, "you"),
        Word(2.0, 2.3, "bye"),
        Word(2.3, 2.6, "now"),
        Word(2.6, 2.9, "really"),
    ]
    segments = [seg("X", 0.0, 0.9), seg("Y", 1.0, 1.7), seg("X", 2.0, 3.0)]
    speakers = word_speakers(words, segments)
    score = score_turns(turns, words, speakers, segments)
    assert (score.num_turns, score.turns_correct, score.accuracy) == (3, 3, 1.0)
    assert dict(score.mapping) == {"S1": "X", "S2": "Y"}
    assert (score.switches_expected, score.switches_found) == (2, 2)
    # the diarization gives the last turn to the wrong voice
    wrong = [seg("X", 0.0, 0.9), seg("Y", 1.0, 1.7), seg("Y", 2.0, 3.0)]
    score = score_turns(turns, words, word_speakers(words, wrong), wrong)
    assert score.turns_correct == 2 and score.switches_found == 1
    assert merge_turns(turns)[-1].text == "bye now really"


def test_cp_sim_is_the_better_pairing_mean_cosine():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 16))
    prompt = SpeakerPair(np.stack([a, b]), ("S1", "S2"))
    output = SpeakerPair(np.stack([b + 0.1 * a, a]), ("SPK0", "SPK1"))
    result = cp_sim(prompt, output)
    assert dict(result.mapping) == {"S1": "SPK1", "S2": "SPK0"}
    cos = np.array(result.cosine)
    assert result.score == pytest.approx((cos[0, 1] + cos[1, 0]) / 2, abs=1e-5)
    assert result.other_score == pytest.approx((cos[0, 0] + cos[1, 1]) / 2, abs=1e-5)
    assert result.score > result.other_score


# ---------------------------------------------------------------- lists, RTF, summary


def test_test_list_formats(tmp_path):
    (tmp_path / "p.wav").write_bytes(b"")
    path = tmp_path / "list.tsv"
    path.write_text(
        "a\t[S1] x [S2] y\tp.wav\t[S1] one [S2] two\n\n"
        "b\tx\ty\t/s1.wav\t/s2.wav\t[S1] three [S2] four\n"
    )
    merged, split = read_test_list(path)
    assert merged.merged_prompt and merged.prompt_wavs == (str(tmp_path / "p.wav"),)
    assert not split.merged_prompt and split.prompt_wavs == ("/s1.wav", "/s2.wav")
    assert split.text == "[S1] three [S2] four" and split.prompt_texts == ("x", "y")
    with pytest.raises(ValueError, match="4 .* or 6"):
        parse_line("a\tb\tc")
    path.write_text("a\tx\tp.wav\tt\na\tx\tp.wav\tt\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_test_list(path)


def test_rtf(tmp_path):
    assert real_time_factor(1.0, 4.0) == 0.25
    with pytest.raises(ValueError):
        real_time_factor(1.0, 0.0)
    times = tmp_path / "times.tsv"
    times.write_text("# name seconds\na\t2.0\nb 1.0\n")
    assert read_synthesis_times(times) == {"a": 2.0, "b": 1.0}
    assert corpus_rtf({"a": 2.0, "b": 1.0, "z": 9.0}, {"a": 10.0, "b": 20.0}) == 0.1
    times.write_text("a\tfast\n")
    with pytest.raises(ValueError, match="not a number"):
        read_synthesis_times(times)


def test_summary_uses_corpus_rates_and_limits_cpwer_length():
    def item(duration_s, wer_errors, cpwer_errors, words, synthesis_s):
        return {
            "duration_s": duration_s,
            "wer_errors": wer_errors,
            "cpwer_errors": cpwer_errors,
            "ref_words": words,
            "cpsim": 0.5,
            "cpsim_swapped": 0.2,
            "dnsmos_ovrl": 3.0,
            "dnsmos_sig": 3.5,
            "dnsmos_bak": 4.0,
            "turns_correct": 2,
            "num_turns": 4,
            "switches_found": 3,
            "switches_expected": 2,
            "synthesis_s": synthesis_s,
            "prompt_mode": "split",
        }

    items = [item(10.0, 1, 2, 10, 1.0), item(40.0, 9, 9, 90, 3.0)]
    s = summarise(items, model="m", cpwer_max_s=30.0)
    assert s.wer == pytest.approx(0.1)  # 10 errors / 100 words, not the mean of 0.1 and 0.1
    assert s.cpwer == pytest.approx(0.2) and s.cpwer_items == 1
    assert s.rtf == pytest.approx(0.08) and s.turn_accuracy == 0.5 and s.switch_error == 1.0
    assert s.prompt_mode == "split" and s.hours == pytest.approx(50 / 3600)


# ---------------------------------------------------------------- ASR windows


def test_speech_windows_cut_at_the_largest_pauses_and_pad_into_silence():
    from model.evaluation.metrics.asr import speech_windows

    assert speech_windows([], 10.0) == []
    assert speech_windows([(3.0, 10.0)], 60.0) == [(2.0, 11.0)]  # padded by 1 s
    assert speech_windows([(0.5, 4.0)], 4.1) == [(0.0, 4.1)]  # never past the clip
    regions = [(1.0, 8.0), (8.3, 20.0), (22.0, 29.0), (29.5, 45.0), (46.0, 50.0)]
    windows = speech_windows(regions, 60.0)
    # cut at the largest (2 s) pause; padding stops halfway to the next window
    assert windows == [(0.0, 21.0), (21.0, 51.0)]
    assert all(b - a <= 30.0 for a, b in windows)
    # one region longer than a window: equal parts, none over 30 s
    long = speech_windows([(0.0, 70.0)], 70.0)
    assert len(long) == 3 and all(b - a <= 30.0 for a, b in long)
    assert long[0][0] == 0.0 and long[-1][1] == 70.0


# ---------------------------------------------------------------- real speech


def _stm_rows(path):
    rows = []
    for line in path.read_text().splitlines():
        fields = line.split(None, 5)
        rows.append((fields[2], float(fields[3]), float(fields[4]), fields[5].strip()))
    return rows


@pytest.fixture(scope="module")
def sample(sample_wav, sample_stm):
    from model.evaluation.metrics.audio import load_mono_16k

    rows = _stm_rows(sample_stm)
    turns = tuple(ScriptTurn(SPEAKER_TAGS[spk], text) for spk, _, _, text in rows)
    spans = {spk: [(a, b) for s, a, b, _ in rows if s == spk] for spk in SPEAKER_TAGS}
    return {
        "audio": load_mono_16k(sample_wav),
        "turns": turns,
        "spans": spans,
        "starts": [a for _, a, _, _ in rows],
    }


@pytest.fixture(scope="module")
def evaluator():
    from model.evaluation.evaluate import EvalOptions, Evaluator

    return Evaluator(EvalOptions(asr_model="base", cpwer_mode="turns", num_threads=TEST_THREADS))


@pytest.fixture(scope="module")
def analysis(evaluator, sample):
    return evaluator.analyse(sample["audio"])


@pytest.fixture(scope="module")
def prompt(evaluator, sample):
    from model.evaluation.metrics.audio import cut
    from model.evaluation.metrics.similarity import split_pair

    return split_pair(
        cut(sample["audio"], sample["spans"]["Diane"]),
        cut(sample["audio"], sample["spans"]["Sheila"]),
        evaluator.embedder,
    )


def _true_labels(segments, sample_rttm):
    """Diarized label -> script speaker, by most time shared with the reference RTTM."""
    from tests.conftest import read_rttm

    ref = {"speaker90": "S1", "speaker91": "S2"}  # speaker90 talks first: Diane
    shared: dict[tuple[str, str], float] = {}
    for label in {s.speaker for s in segments}:
        for spk, a, b in read_rttm(sample_rttm):
            for s in segments:
                if s.speaker == label:
                    common = max(0.0, min(b, s.end) - max(a, s.start))
                    shared[(label, ref[spk])] = shared.get((label, ref[spk]), 0.0) + common
    return {
        label: max(("S1", "S2"), key=lambda t: shared.get((label, t), 0.0))
        for label in {s.speaker for s in segments}
    }


def test_sample_scored_against_itself(analysis, prompt, sample, sample_rttm, figure):
    from model.evaluation.evaluate import score_item

    script = to_script(sample["turns"])
    result = score_item(analysis, script, prompt, name="sample", cpwer_mode="turns")
    words = score_item(analysis, script, prompt, cpwer_mode="words")
    print(
        f"\nsample vs itself: WER {result.wer:.4f} ({result.wer_errors}/{result.ref_words}), "
        f"cpWER turns {result.cpwer:.4f} ({result.cpwer_errors}), cpWER words "
        f"{words.cpwer:.4f} ({words.cpwer_errors}), cpWER of the wrong pairing "
        f"{result.cpwer_swapped:.4f}; cpSIM {result.cpsim:.4f} vs swapped "
        f"{result.cpsim_swapped:.4f} (margin {result.cpsim - result.cpsim_swapped:.4f}), "
        f"cosine {result.cosine}; turns {result.turns_correct}/{result.num_turns}, switches "
        f"{result.switches_found}/{result.switches_expected}; DNSMOS OVRL "
        f"{result.dnsmos_ovrl:.3f} SIG {result.dnsmos_sig:.3f} BAK {result.dnsmos_bak:.3f}"
    )
    print(f"transcript: {result.transcript}")
    # WER is Whisper base's own error on this narrow-band call; the tags change nothing
    assert result.ref_words == len(plain_text(script).split())
    counts = dialogue_wer(plain_text(script), analysis.transcript.text)
    assert result.wer == counts.rate
    figure("wer", result.wer, at_most=0.3)
    # nothing invented: a looping decode added 110 words here (issue 20)
    figure("insertions", counts.insertions, at_most=3)
    # cpWER stays near the ASR error when the voices are attributed right (the wrong pairing
    # costs ~0.8). Measured (scripts/test_portability.sh): 0.012 on the wav under every ISA and
    # thread variant. On its MP3 round trip the diarizer gives one 2 s turn of Diane to Sheila
    # and the words gap is 0.148: a real attribution error, so that variant fails here (open).
    for mode, cp in (("turns", result), ("words", words)):
        figure(f"cpwer_minus_wer_{mode}", abs(cp.cpwer - result.wer), at_most=0.12)
        figure(f"cpwer_swap_gain_{mode}", cp.cpwer_swapped - cp.cpwer, at_least=0.5)
    # ... and the pairing it picks is the true one (found from the reference RTTM)
    truth = _true_labels(analysis.segments, sample_rttm)
    assert sorted(truth.values()) == ["S1", "S2"]
    true_pairs = tuple(sorted((ref, label) for label, ref in truth.items()))
    assert tuple(sorted(result.cpwer_mapping)) == true_pairs
    # cpSIM: the true speaker assignment is the best one and beats the swapped one
    assert tuple(sorted(result.cpsim_mapping)) == true_pairs
    figure("cpsim_margin", result.cpsim - result.cpsim_swapped, at_least=0.05)
    # turn-taking: nearly every turn on the right voice; the switch count is only as good as the
    # diarizer (it may miss the two 0.5 s "Hello?" at the start), see the RTTM test below
    figure("turn_accuracy", result.turn_accuracy, at_least=7 / 9)
    figure("switch_error", abs(result.switches_found - 8), at_most=2)
    figure("dnsmos_ovrl", result.dnsmos_ovrl, at_least=2.5, at_most=3.6)
    assert result.num_speakers_found == 2


def test_turn_metrics_on_the_reference_diarization(analysis, sample, sample_rttm, figure):
    """With the hand-made RTTM as the diarization, the sample's 9 turns / 8 switches come out
    exactly and Whisper's word times put the script's turns on the right speakers."""
    from tests.conftest import read_rttm

    segments = [seg(spk, a, b) for spk, a, b in read_rttm(sample_rttm)]
    words = analysis.transcript.words
    labels = fill_unattributed(word_speakers(words, segments))
    score = score_turns(sample["turns"], words, labels, segments)
    hypotheses: dict[str, list[str]] = {}
    for word, label in zip(words, labels):
        hypotheses.setdefault(label, []).append(word.text)
    cp = cp_wer(speaker_texts(sample["turns"]), {k: " ".join(v) for k, v in hypotheses.items()})
    wer = dialogue_wer(to_script(sample["turns"]), analysis.transcript.text)
    print(
        f"\nreference diarization: turns {score.turns_correct}/{score.num_turns}, switches "
        f"{score.switches_found}/{score.switches_expected}, cpWER (words) "
        f"{cp.counts.rate:.4f} vs WER {wer.rate:.4f}"
    )
    assert dict(cp.mapping) == {"S1": "speaker90", "S2": "speaker91"}
    figure(
        "cpwer_extra_errors", (cp.counts.errors - wer.errors) / wer.reference_units, at_most=0.08
    )
    assert (score.num_turns, score.switches_expected, score.switches_found) == (9, 8, 8)
    assert dict(score.mapping) == {"S1": "speaker90", "S2": "speaker91"}
    figure("turns_correct", score.turns_correct, at_least=8)


def test_speaker_swapped_script_raises_cpwer_not_wer(analysis, prompt, sample):
    from model.evaluation.evaluate import score_item

    true = score_item(analysis, to_script(sample["turns"]), prompt, cpwer_mode="turns")
    for indices in ([1, 4], [7], [0, 3, 6, 9, 12]):
        swapped = to_script(swap_speakers(sample["turns"], indices))
        for mode in ("turns", "words"):
            base = (
                true
                if mode == "turns"
                else score_item(analysis, to_script(sample["turns"]), prompt, cpwer_mode=mode)
            )
            result = score_item(analysis, swapped, prompt, cpwer_mode=mode)
            print(
                f"\ntags swapped on turns {indices} ({mode}): cpWER {base.cpwer:.4f} -> "
                f"{result.cpwer:.4f}, WER {base.wer:.4f} -> {result.wer:.4f}"
            )
            assert result.wer == base.wer
            assert result.cpwer_errors > base.cpwer_errors


def test_held_out_prompts_cpsim(evaluator, sample, sample_rttm, figure):
    """cpSIM with prompts and output disjoint in time: output = the call after 17.7 s, prompts =
    each speaker's STM segments before it (the honest case: GE2E on narrow-band speech)."""
    from model.evaluation.metrics.audio import SAMPLE_RATE, cut
    from model.evaluation.metrics.similarity import diarized_pair, split_pair

    cut_s = 17.7
    audio = sample["audio"]
    before = {
        spk: [(a, b) for a, b in spans if b <= cut_s] for spk, spans in sample["spans"].items()
    }
    prompt = split_pair(
        cut(audio, before["Diane"]), cut(audio, before["Sheila"]), evaluator.embedder
    )
    output = audio[int(cut_s * SAMPLE_RATE) :]
    segments = evaluator.diarizer(output)
    shifted = [
        SpeakerSegment("r", s.speaker, s.start + cut_s, s.end + cut_s, s.overlap) for s in segments
    ]
    truth = _true_labels(shifted, sample_rttm)
    result = cp_sim(prompt, diarized_pair(output, segments, evaluator.embedder))
    true_pairs = tuple(sorted((ref, label) for label, ref in truth.items()))
    print(
        f"\nheld-out prompts: cpSIM {result.score:.4f} vs swapped {result.other_score:.4f} "
        f"(margin {result.score - result.other_score:.4f}), cosine {result.cosine}, "
        f"pairing {result.mapping}, truth {true_pairs}"
    )
    assert sorted(truth.values()) == ["S1", "S2"]
    assert tuple(sorted(result.mapping)) == true_pairs
    figure("cpsim_margin_held_out", result.score - result.other_score, at_least=1e-6)


def test_dnsmos_drops_with_added_noise(evaluator, analysis, sample, figure):
    rng = np.random.default_rng(0)
    audio = sample["audio"]
    noisy = audio + rng.normal(scale=3 * np.std(audio), size=audio.shape).astype(np.float32)
    clean, degraded = analysis.dnsmos, evaluator.quality(noisy)
    print(
        f"\nDNSMOS clean OVRL {clean.ovrl:.3f} BAK {clean.bak:.3f}; with noise OVRL "
        f"{degraded.ovrl:.3f} BAK {degraded.bak:.3f}"
    )
    figure("ovrl_drop", clean.ovrl - degraded.ovrl, at_least=0.5)
    figure("bak_drop", clean.bak - degraded.bak, at_least=0.5)


def test_cli_writes_the_results_table(tmp_path, sample, sample_wav, figure):
    """``python -m model.evaluate`` on a merged-prompt test list: the first 14.3 s of the call
    (both voices) is the prompt, the rest stands for a generated dialogue."""
    from model.evaluation.evaluate import main
    from model.evaluation.metrics.audio import SAMPLE_RATE
    from model.evaluation.metrics.summary import Summary

    audio, split_s = sample["audio"], 14.3
    (tmp_path / "res").mkdir()
    sf.write(tmp_path / "prompt.wav", audio[: int(split_s * SAMPLE_RATE)], SAMPLE_RATE)
    sf.write(tmp_path / "res" / "d1.wav", audio[int(split_s * SAMPLE_RATE) :], SAMPLE_RATE)
    prompt_turns = [t for t, a in zip(sample["turns"], sample["starts"]) if a < split_s]
    rest = [t for t, a in zip(sample["turns"], sample["starts"]) if a >= split_s]
    rest = [ScriptTurn("S1" if t.speaker == "S2" else "S2", t.text) for t in rest]  # Sheila first
    (tmp_path / "list.tsv").write_text(
        f"d1\t{to_script(prompt_turns)}\tprompt.wav\t{to_script(rest)}\n"
        f"gone\t{to_script(prompt_turns)}\tprompt.wav\t[S1] never generated\n"
    )
    (tmp_path / "times.tsv").write_text("d1\t0.78\n")
    out = tmp_path / "results.md"
    earlier = Summary(
        model="earlier",
        params="1M",
        num_items=1,
        num_missing=0,
        hours=0.1,
        prompt_mode="merged",
        rtf=None,
        wer=0.5,
        cpwer=None,
        cpwer_items=0,
        cpwer_max_s=None,
        cpsim=None,
        cpsim_swapped=None,
        dnsmos_ovrl=None,
        dnsmos_sig=None,
        dnsmos_bak=None,
        turn_accuracy=None,
        switch_error=None,
    )
    (tmp_path / "results.md.runs.json").write_text(json.dumps({"runs": [earlier.to_dict()]}))
    status = main(
        [
            "--test-list",
            str(tmp_path / "list.tsv"),
            "--res-dir",
            str(tmp_path / "res"),
            "--out",
            str(out),
            "--json",
            str(tmp_path / "r.json"),
            "--model-name",
            "ours",
            "--params",
            "123M",
            "--synthesis-times",
            str(tmp_path / "times.tsv"),
            "--append",
            "--num-threads",
            str(TEST_THREADS),
        ]
    )
    assert status == 0
    text = out.read_text()
    print("\n" + text)
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    for column in ("Params", "RTF", "WER (%)", "cpWER (%)", "cpSIM", "DNSMOS OVRL"):
        assert column in header
    rows = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| ")
        and not line.startswith("| Model")
        and not line.startswith("| Item")
    }
    assert "earlier" in rows and "ours" in rows and "123M" in rows["ours"]
    assert "Whisper base" in text and "GE2E" in text and "not comparable" in text
    assert "Missing generated wavs: 1" in text
    report = json.loads((tmp_path / "r.json").read_text())
    item = report["items"][0]
    assert report["missing"] == ["gone"] and item["prompt_mode"] == "merged"
    assert item["rtf"] == pytest.approx(0.78 / item["duration_s"])
    assert f"{100 * report['summary']['wer']:.2f}" in rows["ours"]
    figure("wer", item["wer"], at_most=0.35)
    assert item["cpsim"] > item["cpsim_swapped"]


# ---------------------------------------------------------------- the evaluation's ASR


def _retimed_conversation(audio, rows, seed: int = 0):
    """Every STM line of the sample twice, shuffled, each in one of three voices (the real one
    and two resampled, pitch-shifted ones) at one of three levels, with 0.3-1.2 s pauses, a 5 s
    silence halfway and 2 s of silence at both ends; returns (audio, reference text)."""
    import soxr

    from model.evaluation.metrics.audio import SAMPLE_RATE

    rng = np.random.default_rng(seed)
    order = [*rng.permutation(len(rows)), *rng.permutation(len(rows))]
    pieces, texts = [np.zeros(2 * SAMPLE_RATE, np.float32)], []
    for k, index in enumerate(order):
        _, start, end, text = rows[index]
        piece = audio[int((start - 0.05) * SAMPLE_RATE) : int((end + 0.05) * SAMPLE_RATE)]
        factor = (1.0, 0.88, 1.12)[int(rng.integers(3))]
        if factor != 1.0:  # played back at the same rate: pitch and tempo times `factor`
            piece = soxr.resample(piece, SAMPLE_RATE, round(SAMPLE_RATE / factor))
        pieces.append(piece * (0.5, 1.0, 2.0)[int(rng.integers(3))])
        texts.append(text)
        pause = 5.0 if k == len(rows) - 1 else rng.uniform(0.3, 1.2)
        pieces.append(np.zeros(round(pause * SAMPLE_RATE), np.float32))
    pieces.append(np.zeros(2 * SAMPLE_RATE, np.float32))
    out = np.concatenate(pieces).astype(np.float32)
    return np.clip(out, -1.0, 1.0), " ".join(texts)


def test_evaluation_asr_reads_a_retimed_multi_voice_conversation(
    evaluator, sample, sample_stm, figure
):
    """The evaluation's Whisper on 26 turns of three voices (75 s, 4-5 VAD windows): every
    window read once, no loop and no invented text."""
    rows = _stm_rows(sample_stm)
    audio, reference = _retimed_conversation(sample["audio"], rows)
    transcript = evaluator.recognizer.transcribe(audio)
    counts = dialogue_wer(reference, transcript.text)
    print(
        f"\nre-timed conversation ({len(audio) / 16000:.1f} s, windows "
        f"{transcript.windows}): WER {counts.rate:.3f} ({counts})\n{transcript.text}"
    )
    assert len(transcript.windows) >= 3
    assert all(b - a <= 30.0 for a, b in transcript.windows)
    figure("wer", counts.rate, at_most=0.3)
    figure("insertions", counts.insertions, at_most=6)
    words = [w.start for w in transcript.words]
    assert words == sorted(words) and len(words) == len(transcript.text.split())


def test_evaluation_asr_gives_no_text_without_speech(evaluator):
    rng = np.random.default_rng(0)
    silence = np.zeros(16000 * 12, np.float32)
    hiss = (0.003 * rng.standard_normal(16000 * 12)).astype(np.float32)
    for audio in (silence, hiss):
        transcript = evaluator.recognizer.transcribe(audio)
        assert (transcript.text, transcript.words, transcript.windows) == ("", (), ())
