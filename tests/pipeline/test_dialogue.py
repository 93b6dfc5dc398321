"""Dialogue segmentation: the cutting rules (pure functions) and the stage on the bundled sample."""

from __future__ import annotations

import itertools
import re

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import stereo
from pipeline.dialogue import (
    ONE_SPEAKER,
    THIRD_SPEAKER,
    TOO_FEW_SWITCHES,
    TOO_LONG,
    DialogueOptions,
    SegmentDialogues,
    clean_turn_text,
    dialogue_parts,
    join_words,
    segment_dialogues,
    tagged_text,
)
from pipeline.records import RecordingWork, SpeakerSegment, Word
from tests.pipeline.dialogue_fixtures import (
    make_recording,
    make_turn,
    reference_dialogue_turns,
    sample_work,
)

TAGGED = re.compile(r"^\[S1\]\S.*$")


def _segment(turns, opts=None, diarization=(), recording=None):
    recording = recording or make_recording()
    opts = opts or DialogueOptions()
    return segment_dialogues(recording, turns, diarization, opts)


def _words_at(*spans):
    """Words ``(start, end, text)``."""
    return [Word(a, b, " " + t) for a, b, t in spans]


# --- rules -------------------------------------------------------------------------------------


def test_tags_and_s1_is_whoever_speaks_first():
    turns = [
        make_turn("B", 1.0, 2.5, "Hi there."),
        make_turn("A", 3.0, 4.0, "Hello."),
        make_turn("B", 4.5, 6.0, "How are you?"),
    ]
    dialogues, dturns, rejects = _segment(turns)
    assert rejects == []
    (d,) = dialogues
    assert d.s1_speaker == "B" and d.s2_speaker == "A"
    assert d.text == "[S1]Hi there. [S2]Hello. [S1]How are you?"
    assert [t.role for t in dturns] == ["S1", "S2", "S1"]
    assert d.num_turns == 3 and d.dialogue_id == "rec-d0000"


def test_consecutive_same_speaker_turns_are_merged():
    turns = [
        make_turn("A", 1.0, 2.0, "One."),
        make_turn("A", 2.4, 3.5, "Two."),
        make_turn("B", 4.0, 5.0, "Three."),
        make_turn("B", 5.2, 6.0, "Four."),
    ]
    (d,), dturns, _ = _segment(turns)
    assert d.text == "[S1]One. Two. [S2]Three. Four."
    assert [(t.start, t.end) for t in dturns] == [(1.0, 3.5), (4.0, 6.0)]


def test_min_speaker_switches_rejects_and_counts():
    turns = [make_turn("A", 1.0, 3.0, "One two three."), make_turn("B", 3.5, 5.5, "Four five.")]
    dialogues, _, rejects = _segment(turns, DialogueOptions(min_speaker_switches=2))
    assert dialogues == []
    assert [r.reason for r in rejects] == [TOO_FEW_SWITCHES]
    assert rejects[0].item_id == "rec-d0000" and rejects[0].stage == "dialogue"
    dialogues, _, _ = _segment(turns, DialogueOptions(min_speaker_switches=1))
    assert len(dialogues) == 1


def test_one_speaker_and_third_speaker_and_long_pause_end_a_conversation():
    turns = [
        make_turn("A", 0.0, 4.0, "Only me talking here."),
        make_turn("B", 20.0, 22.0, "Later on."),
        make_turn("C", 22.5, 24.0, "Third."),
        make_turn("B", 24.5, 27.0, "Back to me."),
    ]
    dialogues, _, rejects = _segment(turns, DialogueOptions(min_dialogue_s=1.0))
    assert [r.reason for r in rejects] == [ONE_SPEAKER]  # A alone (then a 16 s pause)
    # B and C talk; C's entry does not end the window (B, C are the two speakers)
    assert len(dialogues) == 1 and {dialogues[0].s1_speaker, dialogues[0].s2_speaker} == {"B", "C"}
    # a third voice inside B/A talk starts a new conversation
    turns = [
        make_turn("A", 0.0, 2.0, "Hello you."),
        make_turn("B", 2.5, 4.5, "Hi there."),
        make_turn("C", 5.0, 7.0, "Me too."),
        make_turn("A", 7.5, 9.5, "Oh hi."),
    ]
    dialogues, _, _ = _segment(turns, DialogueOptions(min_dialogue_s=1.0))
    assert [(d.s1_speaker, d.s2_speaker) for d in dialogues] == [("A", "B"), ("C", "A")]


def test_third_speaker_diarized_inside_is_rejected():
    turns = [make_turn("A", 0.0, 2.0, "Hello you."), make_turn("B", 2.5, 4.5, "Hi there.")]
    diar = [
        SpeakerSegment("rec", "A", 0.0, 2.0),
        SpeakerSegment("rec", "B", 2.5, 4.5),
        SpeakerSegment("rec", "C", 1.0, 3.0),
    ]
    dialogues, _, rejects = _segment(turns, DialogueOptions(min_dialogue_s=1.0), diar)
    assert dialogues == [] and [r.reason for r in rejects] == [THIRD_SPEAKER]


def test_untranscribed_speech_of_a_speaker_ends_a_conversation():
    """B's reply that the recogniser heard no words in (no turn, but diarized, alone) sits
    between two turns of A: no dialogue may hold it inside A's merged turn."""
    turns = [
        make_turn("B", 0.0, 2.0, "Hello you."),
        make_turn("A", 2.5, 5.0, "Hi there."),
        make_turn("A", 6.0, 8.5, "And more."),
        make_turn("B", 9.0, 11.0, "Fine."),
    ]
    diar = [
        SpeakerSegment("rec", "B", 0.0, 2.0),
        SpeakerSegment("rec", "A", 2.5, 5.0),
        SpeakerSegment("rec", "B", 5.2, 5.8),
        SpeakerSegment("rec", "A", 6.0, 8.5),
        SpeakerSegment("rec", "B", 9.0, 11.0),
    ]
    opts = DialogueOptions(min_dialogue_s=1.0)
    dialogues, _, _ = _segment(turns, opts, diar)
    assert [(d.start, d.end) for d in dialogues] == [(0.0, 5.1), (5.9, 11.1)]
    # the reply cut in two by a blip of A's: still one stretch of 0.5 s
    split_reply = [
        SpeakerSegment("rec", "B", 5.2, 5.45),
        SpeakerSegment("rec", "A", 5.45, 5.46),
        SpeakerSegment("rec", "B", 5.46, 5.72),
    ]
    dialogues, _, _ = _segment(turns, opts, diar[:2] + split_reply + diar[3:])
    assert len(dialogues) == 2
    # overlapped, too short, or off: one dialogue as before
    for changed, options in (
        ([SpeakerSegment("rec", "B", 5.2, 5.8, overlap=True)], opts),
        ([SpeakerSegment("rec", "B", 5.2, 5.4)], opts),
        (diar[2:3], DialogueOptions(min_dialogue_s=1.0, max_untranscribed_s=0.0)),
    ):
        dialogues, _, _ = _segment(turns, options, diar[:2] + changed + diar[3:])
        assert len(dialogues) == 1 and dialogues[0].num_turns == 3


def test_max_duration_cuts_at_pauses_and_inside_a_turn_between_words():
    # A speaks 40 s with a 0.5 s pause at 20 s; B answers: the long turn must be cut there
    words = [Word(float(t), t + 0.9, f" w{t}") for t in range(20)] + [
        Word(t + 0.5, t + 1.4, f" w{t}") for t in range(20, 40)
    ]
    turns = [make_turn("A", 0.0, 40.4, "x", words=words), make_turn("B", 41.0, 44.0, "Okay then.")]
    opts = DialogueOptions(max_dialogue_s=25.0, min_cut_pause_s=0.3)
    dialogues, _, rejects = _segment(turns, opts)
    assert [r.reason for r in rejects] == [ONE_SPEAKER]  # the first 20 s: A alone
    (d,) = dialogues
    assert d.duration <= 25.0 and d.start >= 19.9
    assert d.text.startswith("[S1]w20 w21") and d.text.endswith("[S2]Okay then.")


def test_speech_without_a_pause_longer_than_max_is_rejected_too_long():
    words = [Word(t * 0.5, t * 0.5 + 0.45, " la") for t in range(80)]  # 40 s, no pause
    turns = [make_turn("A", 0.0, 40.0, "la", words=words), make_turn("B", 41.0, 43.0, "Yes.")]
    dialogues, _, rejects = _segment(turns, DialogueOptions(max_dialogue_s=30.0))
    assert dialogues == [] and TOO_LONG in [r.reason for r in rejects]


def test_text_is_made_safe_for_the_tag_tokenizer():
    assert clean_turn_text("[laughter] Yes <um> sure_thing ] ok") == "Yes sure thing ok"
    assert join_words([Word(0, 1, " Hello,"), Word(1, 2, " you.")]) == "Hello, you."
    assert join_words([Word(0, 1, "你好"), Word(1, 2, "吗")], "zh") == "你好吗"


def test_options_are_validated():
    with pytest.raises(ValueError, match="max_dialogue_s"):
        DialogueOptions(max_dialogue_s=61)
    with pytest.raises(ValueError, match="min_dialogue_s"):
        DialogueOptions(min_dialogue_s=10, max_dialogue_s=5)
    DialogueOptions(max_dialogue_s=60)


@st.composite
def _conversations(draw):
    """Random two-or-three-speaker conversations with word timings."""
    turns, t = [], 0.0
    for i in range(draw(st.integers(1, 14))):
        t += draw(st.sampled_from([0.05, 0.1, 0.25, 0.4, 1.0, 4.0]))
        words, w = [], t
        for j in range(draw(st.integers(1, 12))):
            dur = draw(st.floats(0.1, 0.8))
            words.append(Word(w, w + dur, f" w{i}n{j}"))
            w += dur + draw(st.sampled_from([0.0, 0.05, 0.1, 0.35, 0.7]))
        speaker = draw(st.sampled_from(["A", "B", "B", "A", "C"]))
        turns.append(
            make_turn(
                speaker, t, words[-1].end, "".join(x.text for x in words).strip(), words=words
            )
        )
        t = words[-1].end
    max_s = draw(st.sampled_from([4.0, 8.0, 15.0]))
    return turns, DialogueOptions(min_dialogue_s=1.0, max_dialogue_s=max_s)


@settings(max_examples=60, deadline=None)
@given(_conversations())
def test_property_no_word_is_cut_and_limits_hold(case):
    turns, opts = case
    dialogues, dturns, _ = _segment(turns, opts)
    words = [(w, t.speaker) for t in turns for w in t.words]
    for d in dialogues:
        assert opts.min_dialogue_s <= d.duration <= opts.max_dialogue_s + 1e-9
        inside = [(w, s) for w, s in words if w.end > d.start and w.start < d.end]
        # no word straddles a boundary, and every word inside is in the text, in order
        assert all(d.start <= w.start and w.end <= d.end for w, _ in inside)
        assert {s for _, s in inside} == {d.s1_speaker, d.s2_speaker}
        assert re.sub(r"\[S[12]\]", " ", d.text).split() == [
            w.text.strip() for w, _ in sorted(inside, key=lambda x: x[0].start)
        ]
        assert TAGGED.match(d.text)
        roles = [t.role for t in dturns if t.dialogue_id == d.dialogue_id]
        assert all(a != b for a, b in itertools.pairwise(roles))  # merged: roles alternate
        assert len(roles) - 1 >= opts.min_speaker_switches


# --- stereo ------------------------------------------------------------------------------------


def test_two_channel_input_with_one_speaker_per_channel_is_stereo():
    rec = make_recording(num_channels=2)
    turns = [
        make_turn("L", 0.0, 2.0, "Left one.", channel=0),
        make_turn("R", 2.5, 4.0, "Right one.", channel=1),
        make_turn("L", 4.5, 6.0, "Left two.", channel=0),
    ]
    diar = [SpeakerSegment("rec", t.speaker, t.start, t.end, channel=t.channel) for t in turns]
    (d,), dturns, _ = _segment(turns, diarization=diar, recording=rec)
    assert d.channel_layout == stereo.STEREO
    assert [(t.role, t.channel) for t in dturns] == [("S1", 0), ("S2", 1), ("S1", 0)]
    # the same talk diarized on one channel is mono, or pseudo-stereo when asked
    mono_diar = [SpeakerSegment("rec", s.speaker, s.start, s.end) for s in diar]
    (d,), _, _ = _segment(turns, diarization=mono_diar, recording=rec)
    assert d.channel_layout == stereo.MONO
    (d,), dturns, _ = _segment(turns, DialogueOptions(pseudo_stereo=True), mono_diar, rec)
    assert d.channel_layout == stereo.PSEUDO_STEREO
    assert [t.channel for t in dturns] == [0, 1, 0]


def test_pseudo_stereo_routes_each_speaker_to_its_channel():
    sr = 16000
    mono = np.ones(4 * sr, dtype=np.float32)
    out = stereo.render_pseudo_stereo(mono, sr, 10.0, {"S1": [(10.0, 11.0)], "S2": [(12.0, 13.0)]})
    assert out.shape == (2, 4 * sr)
    assert out[0, int(0.5 * sr)] == 1.0 and out[1, int(0.5 * sr)] == 0.0
    assert out[0, int(2.5 * sr)] == 0.0 and out[1, int(2.5 * sr)] == 1.0
    assert out[:, int(3.5 * sr)].max() == 0.0  # nobody speaks: both channels silent


# --- the bundled sample ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work() -> RecordingWork:
    return sample_work()


def test_sample_yields_the_reference_dialogue(work):
    dialogues, dturns, rejects = segment_dialogues(
        work.recording, work.turns, work.diarization, DialogueOptions()
    )
    assert rejects == [] and len(dialogues) == 1
    d = dialogues[0]
    assert {d.s1_speaker, d.s2_speaker} == {"speaker90", "speaker91"}
    reference = reference_dialogue_turns()
    assert [t.text for t in dturns] == [text for _, text in reference]
    roles = {name: t.role for (name, _), t in zip(reference, dturns)}
    assert roles == {"Diane": "S1", "Sheila": "S2"}
    assert d.text == " ".join(f"[{roles[n]}]{text}" for n, text in reference)
    assert 0.0 < d.overlap_ratio < 0.2 and d.s1_s > 5 and d.s2_s > 5
    assert d.sample_rate == 16000 and d.channel_layout == "mono"


def test_sample_with_short_max_is_cut_only_at_pauses(work):
    opts = DialogueOptions(max_dialogue_s=10.0)
    dialogues, _, _ = segment_dialogues(work.recording, work.turns, work.diarization, opts)
    assert len(dialogues) >= 2
    words = [w for t in work.turns for w in t.words]
    for d in dialogues:
        assert d.duration <= 10.0
        assert not any(w.start < d.start < w.end or w.start < d.end < w.end for w in words)
    kept_text = " ".join(re.sub(r"\[S[12]\]", " ", d.text) for d in dialogues).split()
    assert len(kept_text) > 0.7 * sum(len(t.text.split()) for t in work.turns)


def test_segment_dialogues_transform(work):
    with BeamTestPipeline() as p:
        out = (
            p
            | beam.Create([work])
            | "SegmentDialogues"
            >> SegmentDialogues(DialogueOptions(max_dialogue_s=10.0), split_fn=lambda rid: "dev")
        )
        assert_that(
            out.main
            | beam.Map(lambda w: sorted({d.split for d in w.dialogues}) + [len(w.dialogues) >= 2]),
            equal_to([["dev", True]]),
            label="CheckMain",
        )
        assert_that(out.rejects | beam.Map(lambda r: r.stage), equal_to([]), label="CheckRejects")


def test_dialogue_parts_around_a_dropped_turn():
    w = sample_work()
    dialogues, dturns, _ = segment_dialogues(w.recording, w.turns, w.diarization, DialogueOptions())
    dialogue = max(dialogues, key=lambda d: d.num_turns)
    turns = [t for t in dturns if t.dialogue_id == dialogue.dialogue_id]
    assert len(turns) >= 6
    drop = 3
    parts = dialogue_parts(dialogue, turns, drop, w.diarization, min_dialogue_s=1.0)
    assert [p.dialogue_id for p, _ in parts] == [
        dialogue.dialogue_id + "-1",
        dialogue.dialogue_id + "-2",
    ]
    (before, before_turns), (after, after_turns) = parts
    assert [t.text for t in before_turns] == [t.text for t in turns[:drop]]
    assert [t.text for t in after_turns] == [t.text for t in turns[drop + 1 :]]
    cut = turns[drop]
    assert before.start == dialogue.start and before_turns[-1].end <= before.end <= max(
        cut.start, before_turns[-1].end
    )
    assert (
        after.end == dialogue.end
        and min(cut.end, after_turns[0].start) <= after.start <= after_turns[0].start
    )
    for part, pturns in parts:
        roles = [t.role for t in pturns]
        assert roles[0] == "S1" and all(a != b for a, b in itertools.pairwise(roles))
        assert [t.index for t in pturns] == list(range(len(pturns)))
        assert {t.dialogue_id for t in pturns} == {part.dialogue_id}
        assert part.num_turns == len(pturns) and part.text == tagged_text(pturns)
        assert part.s1_speaker == pturns[0].speaker != part.s2_speaker
        assert 0 < part.s1_s <= part.duration and 0 < part.s2_s <= part.duration
    # a side with one speaker, or one shorter than asked, is no dialogue
    assert [p.dialogue_id for p, _ in dialogue_parts(dialogue, turns, 1, w.diarization, 1.0)] == [
        dialogue.dialogue_id + "-2"
    ]
    assert dialogue_parts(dialogue, turns, drop, w.diarization, min_dialogue_s=60.0) == []
