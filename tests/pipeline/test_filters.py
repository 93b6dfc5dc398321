"""Quality filters: each measure, each drop reason, batched DNSMOS against speechmos, and the
default filters on the bundled sample's real audio."""

from __future__ import annotations

import argparse
import dataclasses
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from core.bandwidth import estimate_bandwidth_hz
from pipeline.dialogue import DialogueOptions, segment_dialogues
from pipeline.filters import (
    CPS_OUT_OF_RANGE,
    LOW_ASR_CONFIDENCE,
    LOW_BANDWIDTH,
    LOW_DNSMOS,
    OVERLAP_RATIO,
    ROLE_IMPURE,
    SPEAKER_IMBALANCE,
    FilterDialogues,
    FilterOptions,
    cheap_checks,
    filter_dialogues,
    purity_limits,
)
from pipeline.quality.cps import CpsBounds, chars_per_second, count_chars
from pipeline.quality.dnsmos import DnsmosScorer, clip_windows
from pipeline.quality.role_purity import (
    THRESHOLDS,
    measure_pieces,
    purity_failure,
    role_measures,
    role_separation,
)
from pipeline.records import Dialogue, RecordingWork
from pipeline.stage import replace
from tests.pipeline.dialogue_fixtures import make_turn, sample_work


@pytest.fixture(scope="module")
def work() -> RecordingWork:
    w = sample_work()
    dialogues, dturns, _ = segment_dialogues(w.recording, w.turns, w.diarization, DialogueOptions())
    return replace(w, dialogues=tuple(dialogues), dialogue_turns=tuple(dturns))


@pytest.fixture(scope="module")
def dnsmos() -> DnsmosScorer:
    return DnsmosScorer()


@pytest.fixture(scope="module")
def embedder():
    from pipeline.diarization.campplus import CamPlusEmbedder

    return CamPlusEmbedder(num_threads=1)


# --- DNSMOS ------------------------------------------------------------------------------------


def test_batched_dnsmos_matches_speechmos_on_the_sample(work, figure):
    from speechmos import dnsmos as reference

    d = work.dialogues[0]
    clips = [work.audio.span(d.start, d.end), work.audio.span(10.0, 15.0)]  # long and tiled
    scores = DnsmosScorer(p808=True).score(clips)
    for c, score in zip(clips, scores):
        ref = reference.run(c, sr=16000)
        difference = max(
            abs(score.ovrl - ref["ovrl_mos"]),
            abs(score.sig - ref["sig_mos"]),
            abs(score.bak - ref["bak_mos"]),
            abs(score.p808 - ref["p808_mos"]),
        )
        figure("max_abs_diff_to_speechmos", difference, at_most=0.05)
    assert scores[0].num_windows == 7  # 23.4 s: windows 0..6 (the reference skips 7..14)


def test_spread_windows_keep_the_clip_score(work, dnsmos, figure):
    """The default run scores 3 evenly spread windows a dialogue: close to all of them."""
    from pipeline.quality.dnsmos import spread

    rows = np.arange(7)[:, None]
    assert spread(rows, 3)[:, 0].tolist() == [0, 3, 6] and spread(rows, 0).shape[0] == 7
    assert spread(rows, 9).shape[0] == 7
    clips = [work.audio.span(a, b) for a, b in [(0.0, 48.0), (5.0, 35.0), (6.0, 26.0)]]
    full = dnsmos.score(clips)
    capped = DnsmosScorer(max_windows=3).score(clips)
    for f, c in zip(full, capped):
        assert f.num_windows > 3 and c.num_windows == 3
        figure("ovrl_3_windows_vs_all", abs(f.ovrl - c.ovrl), at_most=0.06, detail=(f, c))
    with pytest.raises(ValueError):
        DnsmosScorer(max_windows=-1)


def test_windows_follow_the_reference_positions():
    x = np.arange(30 * 16000, dtype=np.float32) / 1e6
    w = clip_windows(x)
    assert w.shape == (7, 144160) and w[3, 0] == x[3 * 16000]
    assert clip_windows(np.ones(5 * 16000, dtype=np.float32)).shape == (1, 144160)  # 5 s → 10 s
    assert clip_windows(np.ones(16000, dtype=np.float32)).shape == (7, 144160)  # 1 s → 16 s


# --- cheap measures ----------------------------------------------------------------------------


def _dialogue(**kw) -> Dialogue:
    base = {
        "dialogue_id": "rec-d0000",
        "recording_id": "rec",
        "start": 0.0,
        "end": 10.0,
        "text": "[S1]" + "a" * 60 + " [S2]" + "b" * 60,
        "language": "en",
        "num_turns": 2,
        "s1_speaker": "A",
        "s2_speaker": "B",
        "s1_s": 4.5,
        "s2_s": 4.5,
        "overlap_ratio": 0.0,
    }
    return Dialogue(**{**base, **kw})


def _noise(seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.05).astype(
        np.float32
    )


@pytest.mark.parametrize(
    "dialogue_kw, turn_kw, opts_kw, reason",
    [
        ({}, {"avg_logprob": -1.5}, {}, LOW_ASR_CONFIDENCE),
        ({}, {"no_speech_prob": 0.9}, {}, LOW_ASR_CONFIDENCE),
        ({"text": "[S1]a [S2]b"}, {}, {}, CPS_OUT_OF_RANGE),
        ({"text": "[S1]" + "a" * 400 + " [S2]b"}, {}, {}, CPS_OUT_OF_RANGE),
        ({"overlap_ratio": 0.5, "s1_s": 8.0, "s2_s": 8.0}, {}, {}, OVERLAP_RATIO),
        ({"s1_s": 8.7, "s2_s": 0.3}, {}, {}, SPEAKER_IMBALANCE),
        ({}, {}, {"min_dialogue_bandwidth_hz": 9000.0}, LOW_BANDWIDTH),
        ({}, {}, {}, None),
    ],
)
def test_cheap_checks_drop_with_their_reason(dialogue_kw, turn_kw, opts_kw, reason):
    d = _dialogue(**dialogue_kw)
    turns = [
        dataclasses.replace(make_turn("A", 0.0, 5.0, "x"), **turn_kw),
        dataclasses.replace(make_turn("B", 5.0, 10.0, "y"), **turn_kw),
    ]
    quality, failure = cheap_checks(d, turns, _noise(), FilterOptions(**opts_kw))
    assert (failure[0] if failure else None) == reason
    if reason:
        name = failure[1].split("=")[0]
        assert name in quality  # the message names the measure it failed on


def test_cps_counts_letters_and_digits_per_language():
    assert count_chars("[S1]Hello, world! [S2]Hi 2.") == 13
    assert count_chars("[S1]你好。[S2]是的") == 4
    assert chars_per_second("[S1]abcd", 2.0) == 2.0
    bounds = CpsBounds.parse("en=5:25,zh=1.5:10,*=3:30")
    assert bounds.for_language("en-US") == (5.0, 25.0)
    assert bounds.for_language("fr") == (3.0, 30.0)
    with pytest.raises(ValueError, match="lang=min:max"):
        CpsBounds.parse("en:5-25")
    with pytest.raises(ValueError, match="cps bound"):
        FilterOptions(cps_bounds="en=9:5")


def test_bandwidth_of_telephone_and_wideband_audio(work):
    import soxr

    assert (
        3300 <= estimate_bandwidth_hz(work.audio.mix(), 16000) <= 4100
    )  # the sample: a phone call
    noise = _noise(5.0).astype(np.float64)
    assert estimate_bandwidth_hz(noise, 16000) >= 7800
    for low in (8000, 12000):
        band = soxr.resample(soxr.resample(noise, 16000, low), low, 16000)
        assert abs(estimate_bandwidth_hz(band, 16000) - low / 2) < 300
    assert estimate_bandwidth_hz(np.zeros(16000), 16000) == 0.0


def test_embedding_batches_do_not_change_the_embeddings(work, embedder):
    """Clips are batched by equal length only: a clip's embedding never depends on the others."""
    turns = [t for t in work.turns if t.end - t.start >= 1.0][:4]
    clips = [work.audio.span(t.start, t.end) for t in turns]
    together = embedder.embed(clips + [clips[0][:16000], clips[1][:16000]])[:4]
    alone = np.stack([embedder.embed([c])[0] for c in clips])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together.shape == (4, 192)


def test_role_measures_and_failures():
    a, b, c = np.eye(3)
    pure = role_measures(np.stack([a, b, a, b]), ["S1", "S2", "S1", "S2"])
    assert pure["role_margin"] == pytest.approx(1.0)
    assert pure["role_self_similarity"] == pytest.approx(1.0)
    assert pure["role_cross_similarity"] == pytest.approx(0.0)
    limits = THRESHOLDS["campplus"]
    assert purity_failure(pure, limits) is None
    swapped = role_measures(np.stack([a, b, b, b]), ["S1", "S2", "S1", "S2"])
    assert purity_failure(swapped, limits) is not None
    third = role_measures(np.stack([a, b, c, b, a]), ["S1", "S2", "S1", "S2", "S1"])
    assert "role_self_similarity" in purity_failure(third, limits)
    one = role_measures(np.stack([a, a * 0.9 + b * 0.1]), ["S1", "S2"])  # one voice, two roles
    assert math.isnan(one["role_margin"]) and "role_cross_similarity" in purity_failure(one, limits)
    # one role embedded: nothing to compare; dropped when the filter asks for checked roles
    single = role_measures(np.stack([a]), ["S1"])
    assert purity_failure(single, limits) is None
    assert "cannot be checked" in purity_failure(single, limits, unchecked_fails=True)
    assert purity_failure(pure, limits, unchecked_fails=True) is None


def test_one_turn_per_role_needs_roles_clearly_apart():
    """With one turn per role nothing can be compared within a role: the cross similarity alone
    decides, under a stricter limit than with more turns."""
    limits = THRESHOLDS["campplus"]
    a, b = np.eye(2)
    alike = a * 0.45 + b * np.sqrt(1 - 0.45**2)  # cos 0.45 with a: under 0.55, over 0.40
    one_each = role_measures(np.stack([a, alike]), ["S1", "S2"])
    assert math.isnan(one_each["role_separation"])
    assert one_each["role_cross_similarity"] == pytest.approx(0.45)
    assert "one turn per role" in purity_failure(one_each, limits)
    apart = a * 0.2 + b * np.sqrt(1 - 0.2**2)
    assert purity_failure(role_measures(np.stack([a, apart]), ["S1", "S2"]), limits) is None
    # with a second turn in a role the ordinary limit applies
    more = {**one_each, "role_separation": 0.3, "role_margin": 0.1, "role_self_similarity": 0.9}
    assert purity_failure(more, limits) is None
    relaxed = purity_limits(FilterOptions(max_role_cross_similarity_one_turn=0.5), "campplus")
    assert purity_failure(one_each, relaxed) is None


def test_role_separation_is_near_zero_when_one_voice_holds_both_roles():
    """Noisy pieces (short turns) of one voice split over two roles: the separation is near 0;
    two voices as noisy are separated. The limit alone rejects a dialogue whose other measures
    pass (the case of one person split in two roles on read letters)."""
    rng = np.random.default_rng(0)
    voice, other = np.eye(192)[0], np.eye(192)[1]

    def pieces(centre, count):
        rows = centre + rng.normal(0.0, 0.15, (count, 192))
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    roles = ["S1", "S2"] * 4
    turns = list(range(8))
    one = pieces(voice, 8)
    two = np.stack([row for pair in zip(pieces(voice, 4), pieces(other, 4)) for row in pair])
    assert abs(role_separation(one, roles, turns)) < 0.05
    assert role_separation(two, roles, turns) > 0.15
    passing = {
        "role_margin": 0.05,
        "role_self_similarity": 0.4,
        "role_cross_similarity": 0.4,
        "role_separation": 0.3,
    }
    one_person = {**passing, "role_separation": 0.02}
    # recorded, not a limit by default; --min_role_separation makes it one
    assert purity_failure(one_person, THRESHOLDS["campplus"]) is None
    limits = purity_limits(FilterOptions(min_role_separation=0.15), "campplus")
    assert limits.min_separation == 0.15
    assert purity_failure(passing, limits) is None
    assert "role_separation" in purity_failure(one_person, limits)
    # pieces of one turn are never compared: one turn per role leaves it unmeasured
    assert math.isnan(role_separation(two[:4], ["S1", "S1", "S2", "S2"], [0, 0, 1, 1]))
    measures, _ = measure_pieces(two[:4], ["S1", "S1", "S2", "S2"], [0, 0, 1, 1])
    assert math.isnan(measures["role_separation"])


# --- models on the sample ----------------------------------------------------------------------


def test_default_filters_keep_the_sample_dialogue(work, dnsmos, embedder, figure):
    kept, kept_turns, rejects = filter_dialogues(work, FilterOptions(), dnsmos, embedder)
    assert rejects == [] and len(kept) == 1
    assert kept_turns == list(work.dialogue_turns)
    q = kept[0].quality
    figure("dnsmos_ovrl", q["dnsmos_ovrl"], at_least=FilterOptions().min_dnsmos_ovrl)
    assert 5 <= q["cps"] <= 25
    assert 3300 <= kept[0].bandwidth_hz <= 4100 and kept[0].sample_rate == 16000
    assert q["role_margin"] > THRESHOLDS["campplus"].min_margin
    assert kept[0].text == work.dialogues[0].text


def test_dnsmos_and_role_filters_drop_with_their_reason(work, dnsmos, embedder):
    _, _, rejects = filter_dialogues(work, FilterOptions(min_dnsmos_ovrl=4.5), dnsmos, None)
    assert [r.reason for r in rejects] == [LOW_DNSMOS]
    assert rejects[0].message.startswith("dnsmos_ovrl=") and rejects[0].stage == "filters"
    # a turn labelled with the wrong speaker: S1's longest turn given to S2
    turns = list(work.dialogue_turns)
    i = max(
        (k for k, t in enumerate(turns) if t.role == "S1"),
        key=lambda k: turns[k].end - turns[k].start,
    )
    turns[i] = dataclasses.replace(turns[i], role="S2")
    swapped = replace(work, dialogue_turns=tuple(turns))
    whole = FilterOptions(min_dnsmos_ovrl=0.0, role_trim_min_s=0.0)
    kept, kept_turns, rejects = filter_dialogues(swapped, whole, dnsmos, embedder)
    assert kept == [] == kept_turns and [r.reason for r in rejects] == [ROLE_IMPURE]
    assert (rejects[0].start, rejects[0].end) == (work.dialogues[0].start, work.dialogues[0].end)

    # trimmed instead: the swapped turn is dropped, the parts around it are filtered again
    trim = FilterOptions(min_dnsmos_ovrl=0.0)
    kept, kept_turns, rejects = filter_dialogues(swapped, trim, dnsmos, embedder)
    assert rejects[0].reason == ROLE_IMPURE and "dropped" in rejects[0].message
    assert (rejects[0].start, rejects[0].end) == (turns[i].start, turns[i].end)
    assert {t.dialogue_id for t in kept_turns} == {d.dialogue_id for d in kept}
    assert all(t.start >= turns[i].end or t.end <= turns[i].start for t in kept_turns)
    for d in kept:
        assert d.dialogue_id.startswith(work.dialogues[0].dialogue_id + "-")
        # NaN where each role has one embedded turn: nothing to compare it with
        assert not d.quality["role_margin"] < THRESHOLDS["campplus"].min_margin
        assert d.quality["role_cross_similarity"] <= THRESHOLDS["campplus"].max_cross_similarity
        assert d.text.startswith("[S1]") and "[S2]" in d.text
    # every second of the dialogue is kept in a part or named by a reject
    covered = sum(d.end - d.start for d in kept) + sum(r.end - r.start for r in rejects)
    assert kept and covered >= 0.5 * (work.dialogues[0].end - work.dialogues[0].start)


def test_a_role_that_cannot_be_checked_drops_the_dialogue(work, dnsmos, embedder):
    """No turn long enough to embed: the roles cannot be compared, so the dialogue is dropped
    unless the user keeps such dialogues."""
    unchecked = FilterOptions(min_dnsmos_ovrl=0.0, purity_min_turn_s=60.0)
    kept, _, rejects = filter_dialogues(work, unchecked, dnsmos, embedder)
    assert kept == [] and [r.reason for r in rejects] == [ROLE_IMPURE]
    assert "cannot be checked" in rejects[0].message
    keep = dataclasses.replace(unchecked, keep_unchecked_roles=True)
    kept, _, rejects = filter_dialogues(work, keep, dnsmos, embedder)
    assert rejects == [] and len(kept) == 1
    assert math.isnan(kept[0].quality["role_cross_similarity"])


def test_filter_dialogues_transform():
    w = sample_work()
    dialogues, dturns, _ = segment_dialogues(
        w.recording, w.turns, w.diarization, DialogueOptions(max_dialogue_s=10.0)
    )
    # two short dialogues (one DNSMOS window each): one passes, one is too unbalanced
    w = replace(w, dialogues=tuple(dialogues[:2]), dialogue_turns=tuple(dturns))
    opts = FilterOptions(role_purity=False, min_speaker_share=0.3, min_dnsmos_ovrl=2.0)
    with BeamTestPipeline() as p:
        out = p | beam.Create([w]) | "FilterDialogues" >> FilterDialogues(opts)
        assert_that(
            out.main
            | beam.Map(
                lambda x: (
                    [d.dialogue_id for d in x.dialogues],
                    sorted({t.dialogue_id for t in x.dialogue_turns}),
                    all("dnsmos_ovrl" in d.quality for d in x.dialogues),
                )
            ),
            equal_to([([dialogues[1].dialogue_id], [dialogues[1].dialogue_id], True)]),
            label="CheckMain",
        )
        assert_that(
            out.rejects | beam.Map(lambda r: (r.item_id, r.reason)),
            equal_to([(dialogues[0].dialogue_id, SPEAKER_IMBALANCE)]),
            label="CheckRejects",
        )


def test_option_names_are_unique_across_the_pipeline():
    from pipeline.options import CurateOptions

    parser = argparse.ArgumentParser()
    CurateOptions._add_argparse_args(parser)  # argparse raises on a duplicate flag
    flags = {a.dest for a in parser._actions}
    assert {"min_dnsmos_ovrl", "pseudo_stereo", "max_dialogue_s", "corpus_sample_rate"} <= flags


def test_pieces_find_the_next_voice_inside_a_long_turn(embedder):
    """The commonest purity fault: the first second or two of the next speaker labelled with the
    turn before. The whole turn still sounds like its role; its pieces do not. Real voices of
    the dev split (two men on a telephone channel)."""
    from pipeline.quality.role_purity import measure_pieces, turn_pieces
    from tests.pipeline.voice_conversations import load_voice

    sr = 16000
    first = [c.audio for c in load_voice("carlo").clips if c.duration >= 1.6]
    second = [c.audio for c in load_voice("michael").clips if c.duration >= 1.6]
    gap = np.zeros(sr // 5, np.float32)
    # S1 S2 S1 S2, the last S2 turn opening with 1.6 s of S1's voice
    turns = [
        ("S1", np.concatenate([first[0], gap, first[1]])),
        ("S2", np.concatenate([second[0], gap, second[1]])),
        ("S1", np.concatenate([first[2], gap, first[3]])),
        ("S2", np.concatenate([first[4][: int(1.6 * sr)], second[2], gap, second[3]])),
    ]
    whole = embedder.embed([audio for _, audio in turns])
    measures, per_turn = measure_pieces(whole, [r for r, _ in turns], range(len(turns)))
    assert measures["role_margin"] > 0  # whole turns: the fault does not show
    pieces, roles, owners = [], [], []
    for k, (role, audio) in enumerate(turns):
        for a, b in turn_pieces(0.0, len(audio) / sr, 1.5, 1.0):
            pieces.append(audio[round(a * sr) : round(b * sr)])
            roles.append(role)
            owners.append(k)
    measures, per_turn = measure_pieces(embedder.embed(pieces), roles, owners)
    assert measures["role_margin"] < 0
    assert min(per_turn, key=per_turn.get) == 3  # and it points at the right turn
    assert all(per_turn[k] > 0 for k in (0, 1, 2))


def _exchange_with_a_reply(swallowed: bool) -> RecordingWork:
    """Two real voices of the dev split (two men, telephone channel) taking turns with 0.5 s
    pauses; in the middle an 0.8 s reply of the second man between two stretches of the first.
    ``swallowed``: the diarization gave that reply to the first man's turn (the short-turn fault
    of dev-short), else it is a turn of its own. Speech regions from the real VAD."""
    from pipeline.records import SpeakerSegment, SpeechRegion
    from pipeline.vad import VadOptions, detect_speech, load_vad_model
    from tests.pipeline.dialogue_fixtures import make_recording
    from tests.pipeline.voice_conversations import load_voice

    sr = 16000
    first = [c.audio for c in load_voice("carlo").clips if c.duration >= 1.6]
    second = [c.audio for c in load_voice("michael").clips if c.duration >= 1.6]
    pause = np.zeros(sr // 2, np.float32)
    before, reply, after = (
        first[2][: 16 * sr // 10],
        second[5][: 8 * sr // 10],
        first[3][: 16 * sr // 10],
    )
    middle = (
        [("A", [before, pause, reply, pause, after])]
        if swallowed
        else [("A", [before]), ("B", [reply]), ("A", [after])]
    )
    layout = [
        ("A", [first[0]]),
        ("B", [second[0]]),
        ("A", [first[1]]),
        ("B", [second[1]]),
        *middle,
        ("B", [second[2]]),
        ("A", [first[4]]),
        ("B", [second[3]]),
    ]
    audio, turns, segments, t = [pause], [], [], len(pause) / sr
    for speaker, stretches in layout:
        wave = np.concatenate(stretches)
        end = t + len(wave) / sr
        turns.append(make_turn(speaker, t, end, "hello there " * max(1, round(end - t))))
        segments.append(SpeakerSegment("rec", speaker, t, end))
        audio += [wave, pause]
        t = end + len(pause) / sr
    audio = np.concatenate(audio)
    speech = detect_speech(audio, load_vad_model(), VadOptions())
    rec = make_recording(duration_s=len(audio) / sr)
    dialogues, dturns, _ = segment_dialogues(rec, turns, segments, DialogueOptions())
    return RecordingWork(
        recording=rec,
        audio=audio[None],
        speech=tuple(SpeechRegion("rec", a, b) for a, b in speech),
        diarization=tuple(segments),
        turns=tuple(turns),
        dialogues=tuple(dialogues),
        dialogue_turns=tuple(dturns),
    )


def test_a_reply_swallowed_between_pauses_fails_the_part_margin(dnsmos, embedder):
    """The fault of exchanges of one-second turns: a short reply of the other person, between
    two pauses, inside a turn. Equal 1.5 s pieces split the reply across two pieces and miss it;
    the turn's stretches between pauses find it, and the trim drops that turn."""
    relaxed = {
        "min_dnsmos_ovrl": 0.0,
        "min_dialogue_avg_logprob": -99.0,
        "max_dialogue_no_speech_prob": 1.0,
        "cps_bounds": "*=0:1000",
        "min_speaker_share": 0.0,
    }
    limit = THRESHOLDS["campplus"].min_part_margin
    clean = _exchange_with_a_reply(swallowed=False)
    kept, _, rejects = filter_dialogues(clean, FilterOptions(**relaxed), dnsmos, embedder)
    assert rejects == [] and len(kept) == 1
    assert kept[0].quality["role_part_margin"] > limit + 0.1

    faulty = _exchange_with_a_reply(swallowed=True)
    (dialogue,) = faulty.dialogues
    without_parts = FilterOptions(**relaxed, min_role_part_margin=-1.0)
    kept, _, rejects = filter_dialogues(faulty, without_parts, dnsmos, embedder)
    assert rejects == [] and kept[0].quality["role_margin"] > THRESHOLDS["campplus"].min_margin
    assert kept[0].quality["role_part_margin"] < limit - 0.05  # measured, not judged

    whole = FilterOptions(**relaxed, role_trim_min_s=0.0)
    kept, _, rejects = filter_dialogues(faulty, whole, dnsmos, embedder)
    assert kept == [] and [r.reason for r in rejects] == [ROLE_IMPURE]
    assert rejects[0].message.startswith("role_part_margin=")

    kept, kept_turns, rejects = filter_dialogues(faulty, FilterOptions(**relaxed), dnsmos, embedder)
    swallowing = max(faulty.dialogue_turns, key=lambda t: t.end - t.start)
    assert (rejects[0].start, rejects[0].end) == (swallowing.start, swallowing.end)
    assert len(kept) == 2 and all(d.dialogue_id.startswith(dialogue.dialogue_id) for d in kept)
    assert all(t.end <= swallowing.start or t.start >= swallowing.end for t in kept_turns)
