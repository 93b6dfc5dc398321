"""The vendored real voices load, the splits are big enough and disjoint, conversations are sound.

Fast (decodes ~15 minutes of Opus once per process); no model runs here, and none may run on
the `final` split before its one measurement.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.pipeline import voice_conversations as vc


@pytest.fixture(scope="module")
def built() -> dict[str, list[vc.Conversation]]:
    return {split: vc.conversations(split) for split in (*vc.SPLITS, *vc.SHORT_SPLITS)}


def _genders(split: str) -> list[str]:
    return [vc.voice_info(v)["gender"] for v in vc.voice_ids(split)]


def test_vendored_voices_load_and_meet_the_minima():
    dev, held, final = _genders("dev"), _genders("heldout"), _genders("final")
    assert len(dev) >= 10 and dev.count("m") >= 5 and dev.count("f") >= 5
    assert len(held) >= 6 and held.count("m") >= 2 and held.count("f") >= 2
    assert len(final) >= 6 and final.count("m") >= 3 and final.count("f") >= 3
    assert len(dev) + len(held) + len(final) == len(vc.voice_ids()) >= 23
    for a, b in itertools.combinations(vc.SPLITS, 2):
        assert not set(vc.voice_ids(a)) & set(vc.voice_ids(b)), (a, b)
    for voice_id in vc.voice_ids():
        voice = vc.load_voice(voice_id)
        assert voice.gender in ("m", "f") and voice.split in vc.SPLITS
        assert voice.material_s >= 9.0, voice_id
        for clip in voice.clips:
            assert clip.audio.dtype == np.float32 and np.isfinite(clip.audio).all()
            assert clip.duration >= (0.4 if clip.short else 0.8) - 0.05


def test_conversation_counts_per_split(built):
    def kinds(convs, n):
        return ["".join(sorted(c.genders)) for c in convs if len(c.voices) == n]

    dev2, dev3 = kinds(built["dev"], 2), kinds(built["dev"], 3)
    assert len(dev2) >= 12 and dev2.count("mm") >= 4 and dev2.count("ff") >= 4 and len(dev3) >= 3
    held2, held3 = kinds(built["heldout"], 2), kinds(built["heldout"], 3)
    assert len(held2) >= 6 and held2.count("mm") >= 2 and held2.count("ff") >= 2 and len(held3) >= 2
    fin2, fin3 = kinds(built["final"], 2), kinds(built["final"], 3)
    assert len(fin2) >= 6 and fin2.count("mm") >= 2 and fin2.count("ff") >= 1 and len(fin3) >= 2
    assert fin2.count("fm") >= 2


def test_final_split_keeps_look_alike_voices_apart(built):
    """kl_ukr and kl_eng sound alike to CAM++ (scripts/fetch_voices.py): never in one
    conversation, so that a 'final' reference never holds one person twice."""
    assert all({"kl_ukr", "kl_eng"} - set(c.voices) for c in built["final"])


def test_conversations_are_sound(built):
    for split, convs in built.items():
        allowed = set(vc.voice_ids(vc.voices_split_of(split)))
        for conv in convs:
            assert set(conv.voices) <= allowed, conv.name
            assert conv.audio.dtype == np.float32 and conv.audio.ndim == 1
            assert 35.0 <= conv.duration <= 90.0, (conv.name, conv.duration)
            assert len(conv.reference) >= 10, (conv.name, len(conv.reference))
            assert {s.speaker for s in conv.reference} == set(conv.voices), conv.name
            assert conv.channel in conv.name and conv.channel in ("tel", "wb")
            for seg in conv.reference:
                assert seg.recording_id == conv.name
                assert 0.0 <= seg.start < seg.end <= conv.duration + 1e-6
                assert 0.1 - 0.01 <= seg.duration <= vc.MAX_TURN_S + 1e-3
                # a reference segment holds audio
                piece = conv.audio[int(seg.start * vc.SAMPLE_RATE) : int(seg.end * vc.SAMPLE_RATE)]
                assert np.sqrt(np.mean(piece**2)) > 0.01
            by_speaker: dict[str, list] = {}
            for seg in conv.reference:  # a voice never overlaps itself
                by_speaker.setdefault(seg.speaker, []).append(seg)
            for segs in by_speaker.values():
                segs.sort(key=lambda s: s.start)
                assert all(a.end <= b.start for a, b in itertools.pairwise(segs))
            assert conv.overlap_s() < 0.1 * conv.duration


def test_build_is_deterministic(built, tmp_path):
    again = vc.conversations("heldout")
    for a, b in zip(built["heldout"], again):
        assert a.name == b.name and a.reference == b.reference
        np.testing.assert_array_equal(a.audio, b.audio)
    conv = again[0]
    vc.write_rttm(conv, tmp_path / "c.rttm")
    from pipeline.diarization.timeline import parse_rttm

    parsed = parse_rttm((tmp_path / "c.rttm").read_text())[conv.name]
    assert [(s.speaker, s.start) for s in parsed] == [(s.speaker, s.start) for s in conv.reference]


def test_short_turn_variants_are_word_length_turns_of_the_same_pairs(built):
    """dev-short / heldout-short: the same voices and pairs as dev / heldout, every turn one or
    two fragments of 0.4-1.5 s (exchanges of single words, where an embedding hears little)."""
    for short, base in vc.SHORT_SPLITS.items():
        assert [c.voices for c in built[short]] == [c.voices for c in built[base]]
        lengths = np.array([s.duration for c in built[short] for s in c.reference])
        assert np.median(lengths) <= 1.2 and lengths.max() <= 2 * vc.FRAGMENT_S[1] + 0.31
        normal = np.array([s.duration for c in built[base] for s in c.reference])
        assert np.median(normal) >= 1.5 * np.median(lengths)
        for conv in built[short]:
            assert len(conv.reference) >= 20, (conv.name, len(conv.reference))
