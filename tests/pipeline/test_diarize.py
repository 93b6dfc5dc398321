"""Diarization stage: pure parts, DER on real audio, 2-channel detection, backends, Beam transform.

DER is pyannote.metrics' DiarizationErrorRate with no collar and overlap scored. The audio is
conversations built from 16 real voices the design never saw as a test (``voice_conversations``:
split ``dev``, on which the threshold was fitted, and split ``heldout``, whose voices were kept
aside), the bundled real telephone call, and conversations re-assembled from its two voices.
Split ``final`` is never diarized here: it is kept for one last measurement.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.diarization import clustering, pieces, segmentation, timeline
from pipeline.diarize import DiarizeOptions, diarize, diarize_work, load_models
from pipeline.records import (
    Recording,
    RecordingAudio,
    RecordingWork,
    SpeakerSegment,
    SpeechRegion,
)
from tests.conftest import TEST_THREADS
from tests.pipeline import diar_conversations as conv


@pytest.fixture(scope="module")
def models():
    return load_models(DiarizeOptions(diar_num_threads=TEST_THREADS))


@pytest.fixture(scope="module")
def sample():
    return conv.load_sample()


def _seg(speaker, start, end, overlap=False, channel=0):
    return SpeakerSegment("r", speaker, start, end, overlap, channel)


def _work(audio: np.ndarray, speech=True, recording_id="rec") -> RecordingWork:
    audio = audio if audio.ndim == 2 else audio[None, :]
    duration = audio.shape[-1] / 16000
    recording = Recording(
        recording_id=recording_id,
        uri=f"mem://{recording_id}.wav",
        sample_rate=16000,
        num_channels=audio.shape[0],
        duration_s=duration,
    )
    regions = (SpeechRegion(recording_id, 0.0, duration),) if speech else ()
    return RecordingWork(recording=recording, audio=audio.astype(np.float32), speech=regions)


# --- pure parts ---------------------------------------------------------------------------------


def test_window_grid_covers_audio_and_aligns_to_frames():
    for num_samples in (1000, 160_000, 160_001, 16_000 * 95 + 7):
        starts = segmentation.window_starts(num_samples, segmentation.window_step_frames(1.0))
        assert starts[0] == 0 and np.all(starts % segmentation.FRAME_STEP_SAMPLES == 0)
        assert starts[-1] + segmentation.WINDOW_SAMPLES >= num_samples
        assert len(starts) == 1 or starts[-2] + segmentation.WINDOW_SAMPLES < num_samples


def test_powerset_to_multilabel_hard_and_soft():
    log_probs = np.log(np.array([[0.1, 0.05, 0.05, 0.05, 0.6, 0.1, 0.05]]))
    assert segmentation.powerset_to_multilabel(log_probs).tolist() == [[1, 1, 0]]
    soft = segmentation.powerset_to_multilabel(log_probs, soft=True)[0]
    np.testing.assert_allclose(soft, [0.75, 0.7, 0.2], atol=1e-6)


def test_hysteresis_gap_filling_and_short_runs():
    score = np.array([0, 0.6, 0.45, 0.45, 0.2, 0.6, 0.4, 0, 0, 0.7, 0])
    assert timeline.hysteresis(score, 0.5, 0.3).astype(int).tolist() == [
        0,
        1,
        1,
        1,
        0,
        1,
        1,
        0,
        0,
        1,
        0,
    ]
    assert timeline.hysteresis(score, 0.5, 0.5).sum() == 3
    assert timeline.fill_gaps(np.array([1, 0, 1, 0, 0, 0, 1], bool), 1).astype(int).tolist() == [
        1,
        1,
        1,
        0,
        0,
        0,
        1,
    ]
    assert timeline.drop_short(np.array([1, 0, 1, 1, 0], bool), 2).astype(int).tolist() == [
        0,
        0,
        1,
        1,
        0,
    ]


def test_activity_to_segments_splits_and_flags_overlap():
    activity = np.zeros((100, 2), bool)
    activity[10:60, 0] = True
    activity[50:80, 1] = True
    segments = timeline.activity_to_segments("r", activity, ["A", "B"])
    assert [(s.speaker, s.overlap) for s in segments] == [
        ("A", False),
        ("A", True),
        ("B", True),
        ("B", False),
    ]
    assert segments[0].end == segments[1].start  # contiguous sub-segments of one turn
    whole = timeline.activity_to_segments("r", activity, ["A", "B"], split_overlap=False)
    assert [(s.speaker, s.overlap) for s in whole] == [("A", True), ("B", True)]
    assert whole[0].start == pytest.approx(timeline.frame_start_s(10), abs=1e-3)


def test_rttm_round_trip_and_relabel(tmp_path):
    segments = [_seg("x", 1.0, 2.5), _seg("y", 2.0, 3.0), _seg("x", 4.0, 5.0, channel=1)]
    text = timeline.to_rttm("rec", segments)
    assert text.splitlines()[0] == "SPEAKER rec 1 1.000 1.500 <NA> <NA> x <NA> <NA>"
    path = tmp_path / "rec.rttm"
    path.write_text(text)
    back = timeline.read_rttm(str(path))["rec"]
    assert [(s.speaker, s.start, s.end, s.channel, s.overlap) for s in back] == [
        ("x", 1.0, 2.5, 0, True),
        ("y", 2.0, 3.0, 0, True),
        ("x", 4.0, 5.0, 1, False),
    ]
    _renamed, mapping = timeline.relabel_by_first_appearance(list(reversed(back)))
    assert mapping == {"x": "SPK0", "y": "SPK1"}
    with pytest.raises(ValueError, match="fields"):
        timeline.parse_rttm("SPEAKER rec 1 0.0")


def test_pieces_cut_at_voice_changes_pauses_and_overlap():
    """Three windows that agree: A speaks, B answers with no pause (latching), a long pause,
    B again overlapped by A at the end."""
    frames = segmentation.FRAMES_PER_WINDOW
    activity = np.zeros((3, frames, 3), bool)
    starts = np.array([0, 20, 40])
    for w, start in enumerate(starts):
        a, b = (w % 3), ((w + 1) % 3)  # local slots differ from window to window
        activity[w, 100 - start : 200 - start, a] = True  # A
        activity[w, 200 - start : 300 - start, b] = True  # B, no pause
        activity[w, 360 - start : 450 - start, b] = True  # B after a 1 s pause
        activity[w, 430 - start : 480 - start, a] = True  # A overlaps B's end
    evidence = pieces.frame_evidence(activity, starts, 40 + frames)
    assert evidence.change[195:206].max() >= 0.5 and evidence.change[250] == 0
    found = pieces.single_speaker_pieces(evidence, min_pause_frames=18)
    assert found == [(100, 200), (200, 300), (360, 430), (450, 480)]
    # a pause shorter than min_pause_frames between one voice's frames is bridged
    assert pieces.single_speaker_pieces(evidence, min_pause_frames=61)[1] == (200, 430)
    assert pieces.chunk(0, 250, 100) == [(0, 83), (83, 167), (167, 250)]


def test_constrained_clustering_threshold_links_and_counts():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    rows = np.stack([centres[k] + 0.3 * rng.normal(size=32) for k in (0, 0, 1, 1, 2, 2)])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    weights = np.ones(6)
    assert clustering.constrained_ahc(rows, weights, 0.5).tolist() == [0, 0, 1, 1, 2, 2]
    links = np.zeros((6, 6), bool)
    links[0, 1] = links[1, 0] = True  # heard talking at once: never one speaker
    assert len(set(clustering.constrained_ahc(rows, weights, 0.5, cannot_link=links)[:2])) == 2
    assert clustering.constrained_ahc(rows, weights, 0.5, num_speakers=2).max() == 1
    assert clustering.constrained_ahc(rows, weights, 0.5, max_speakers=1).max() == 0
    assert clustering.constrained_ahc(rows, weights, -1.0, min_speakers=3).max() == 2
    # a light cluster joins the closest heavy one
    labels = clustering.absorb_small(
        np.array([0, 0, 1, 1, 2, 2]), rows, np.array([5, 5, 5, 5, 0.2, 0.2]), 1.0
    )
    assert labels.max() == 1
    # ... unless it is unlike every heavy one: another voice, kept apart
    light = np.array([5, 5, 5, 5, 0.2, 0.2])
    centres = clustering.centroids(rows, light, np.array([0, 0, 1, 1, 2, 2]))
    best = float(np.max(centres[:2] @ centres[2]))
    for floor, speakers in ((best - 0.01, 2), (best + 0.01, 3)):
        labels = clustering.absorb_small(
            np.array([0, 0, 1, 1, 2, 2]), rows, light, 1.0, min_similarity=floor
        )
        assert labels.max() + 1 == speakers


def test_refinement_gives_a_backchannel_between_pauses_to_its_speaker(models):
    """A chunk that swallowed another person's short reply (the segmentation windows bridged
    the pauses around it) is split at the pauses the VAD hears, and the reply goes to the
    speaker its embedding is closest to; the first speaker's parts keep their label. Real
    voices of the dev split (two men)."""
    from pipeline.diarization import recipe
    from tests.pipeline.voice_conversations import load_voice

    fps = recipe._FPS
    first, other = load_voice("carlo").clips, load_voice("michael").clips
    a1, a2 = [c.audio for c in first if c.duration >= 1.5][:2]
    reply = next(c.audio for c in other if 0.5 <= c.duration <= 1.5)
    pause = np.zeros(int(0.6 * 16000), np.float32)
    audio = np.concatenate([a1, pause, reply, pause, a2])
    bounds = np.cumsum([0, len(a1), len(pause), len(reply), len(pause), len(a2)]) / 16000
    frames = int(len(audio) / 16000 * fps) + 1
    heard = np.zeros(frames, bool)
    for start, end in ((bounds[0], bounds[1]), (bounds[2], bounds[3]), (bounds[4], bounds[5])):
        heard[round(start * fps) : round(end * fps)] = True
    embedder = models.onnx.embedder
    centres = embedder.embed(
        [np.concatenate([a1, a2]), np.concatenate([c.audio for c in other if c.duration > 1.5][:3])]
    )
    chunks = np.array([[0, frames - 1]])
    out, labels, speaks = recipe.refine_chunks(
        audio, chunks, np.array([0]), np.array([True]), centres, heard, 0.1, embedder
    )
    assert labels.tolist() == [0, 1, 0] and speaks.all()
    reply_span = out[1] / fps
    assert reply_span[0] == pytest.approx(bounds[2], abs=0.05)
    assert reply_span[1] == pytest.approx(bounds[3], abs=0.05)
    # nothing to move: the chunk comes back as it was
    same, same_labels, _ = recipe.refine_chunks(
        np.concatenate([a1, pause, a2]),
        np.array([[0, 10]]),
        np.array([0]),
        np.array([True]),
        centres,
        np.ones(11, bool),
        0.1,
        embedder,
    )
    assert same.tolist() == [[0, 10]] and same_labels.tolist() == [0]


def test_refinement_grid_finds_a_reply_that_follows_without_a_pause(models):
    """A one-second reply that starts right where the other person stops: no pause, no change
    the windows heard, so nothing but the grid splits the chunk (``grid_joints``); its last
    stretch is the reply, and it takes the other speaker. Real voices of the dev split."""
    from pipeline.diarization import recipe
    from tests.pipeline.voice_conversations import load_voice

    fps = recipe._FPS
    first, other = load_voice("carlo").clips, load_voice("michael").clips
    a1 = next(c.audio for c in first if c.duration >= 2.2)[: int(2.0 * 16000)]
    reply = next(c.audio for c in other if c.duration >= 1.1)[: int(1.0 * 16000)]
    audio = np.concatenate([a1, reply])
    frames = round(3.0 * fps)
    embedder = models.onnx.embedder
    centres = embedder.embed(
        [
            np.concatenate([c.audio for c in first if c.duration > 1.5][1:4]),
            np.concatenate([c.audio for c in other if c.duration > 1.5][1:4]),
        ]
    )
    chunks = np.array([[0, frames]])
    heard = np.ones(frames + 1, bool)  # no pause, no change anywhere

    def refine(grid_s):
        joints = heard.copy()
        recipe.grid_joints(joints, chunks, round(grid_s * fps))
        return recipe.refine_chunks(
            audio, chunks, np.array([0]), np.array([True]), centres, joints, 0.1, embedder
        )

    same, same_labels, _ = refine(0.0)
    assert same.tolist() == chunks.tolist() and same_labels.tolist() == [0]
    out, labels, speaks = refine(1.0)
    assert labels.tolist() == [0, 0, 1] and speaks.all()
    assert out[2][0] / fps == pytest.approx(2.0, abs=0.05)


def test_options_validate():
    with pytest.raises(ValueError, match="diarization_backend"):
        DiarizeOptions(diarization_backend="nemo")
    with pytest.raises(ValueError, match="min_speakers"):
        DiarizeOptions(min_speakers=3, max_speakers=2)
    with pytest.raises(ValueError, match="diar_window_step_s"):
        DiarizeOptions(diar_window_step_s=12.0)
    with pytest.raises(ValueError, match="num_speakers"):
        DiarizeOptions(num_speakers=0)


# --- real audio ---------------------------------------------------------------------------------


def test_sample_der(models, sample, figure):
    wave, reference = sample
    result = diarize(wave, DiarizeOptions(), models, "sample")
    error, parts = conv.der(reference, result.segments)
    # measured (scripts/test_portability.sh) 4.4 % on the wav under every ISA and thread
    # variant; 9.9 % on its MP3 round trip (one 2 s turn of one woman given to the other), just
    # inside the bound: that variant's confusion is an open diarization problem, not a margin
    figure("sample_der", error, at_most=0.10, detail=parts)
    labels = [s.speaker for s in result.segments]
    assert sorted(set(labels)) == ["SPK0", "SPK1"] and labels[0] == "SPK0"
    # the reference has four overlaps (1.9 s): some of it is found and flagged
    assert 0.3 < sum(s.duration for s in result.segments if s.overlap) < 6.0
    assert set(result.embeddings) == {"SPK0", "SPK1"}
    assert all(v.shape == (192,) for v in result.embeddings.values())


@pytest.fixture(scope="module")
def voice_results(models):
    """DER and speaker counts of every built conversation of both splits (one run, shared)."""
    from pipeline.vad import VadOptions, detect_speech, load_vad_model
    from tests.pipeline.voice_conversations import conversations

    vad = load_vad_model()
    out = {}
    for split in ("dev", "heldout"):
        rows = []
        for c in conversations(split):
            speech = [
                SpeechRegion(c.name, a, b) for a, b in detect_speech(c.audio, vad, VadOptions())
            ]
            result = diarize(c.audio, DiarizeOptions(), models, c.name, speech)
            error, _ = conv.der(c.reference, result.segments)
            rows.append((c.name, error, len({s.speaker for s in result.segments}), len(c.voices)))
        out[split] = rows
    return out


def test_many_real_voices_dev_set(voice_results, figure):
    """The development set (10 voices, 18 conversations; measured: mean 8.7 %, max 14.0 %, every
    speaker count right). Bounds: +2.3 and +6 points of margin for other CPUs' arithmetic."""
    rows = voice_results["dev"]
    errors = [e for _, e, _, _ in rows]
    figure("dev_mean_der", np.mean(errors), at_most=0.11, detail=rows)
    figure("dev_max_der", max(errors), at_most=0.20, detail=rows)
    assert all(found == truth for _, _, found, truth in rows), rows


def test_many_real_voices_heldout_set(voice_results, figure):
    """Voices never used in design (6 voices, 11 conversations; measured: mean 9.9 %, max
    16.5 %). Margins +3.1 and +9.5 points. Speaker counts: 8 of 11 exact, and no conversation
    with fewer speakers than people. Two people merged into one speaker poison every dialogue
    they are in, one person split in two is caught by the role-purity check's cross-similarity
    or ends a dialogue early; so a small cluster unlike every big one is kept apart
    (``clustering.ABSORB_MARGIN``): here that costs one exact count (9 before) and leaves
    three conversations with one speaker too many, none with too few."""
    rows = voice_results["heldout"]
    errors = [e for _, e, _, _ in rows]
    figure("heldout_mean_der", np.mean(errors), at_most=0.13, detail=rows)
    figure("heldout_max_der", max(errors), at_most=0.26, detail=rows)
    assert all(found >= truth for _, _, found, truth in rows), rows
    assert sum(found == truth for _, _, found, truth in rows) >= 8, rows


def test_two_voice_conversation_der(models):
    audio, reference = conv.two_voice_conversation(seed=0)
    result = diarize(audio, DiarizeOptions(), models, "conv")
    error, parts = conv.der(reference, result.segments)
    assert error <= 0.10, parts


def test_speakers_keep_their_label_across_long_absences(models):
    # every 20 turns one voice holds the floor for > 10 s: the other comes back after a silence
    # longer than a window, so only embeddings (not window votes) can give it its label back
    audio, reference = conv.long_conversation(minutes=2.5, seed=1)
    result = diarize(audio, DiarizeOptions(), models, "long")
    assert len({s.speaker for s in result.segments}) == 2
    error, parts = conv.der(reference, result.segments)
    assert error <= 0.10, parts


def test_max_speakers_caps_the_count(models):
    from tests.pipeline.voice_conversations import conversations

    three = next(c for c in conversations("dev") if len(c.voices) == 3)
    capped = diarize(three.audio, DiarizeOptions(max_speakers=2), models, "conv")
    assert len({s.speaker for s in capped.segments}) == 2


def test_num_speakers_forces_the_count(models, sample):
    wave, _ = sample
    result = diarize(wave, DiarizeOptions(num_speakers=1), models, "sample")
    assert {s.speaker for s in result.segments} == {"SPK0"}


def test_silence_gives_no_segments(models):
    quiet = np.random.default_rng(0).normal(scale=1e-4, size=16000 * 12).astype(np.float32)
    assert diarize(quiet, DiarizeOptions(), models).segments == []


# --- 2 channels ---------------------------------------------------------------------------------


def _two_channel_call(wave, reference, crosstalk=0.01):
    """One reference speaker per channel, with the other at -40 dB on it (line echo)."""
    masks = np.zeros((2, len(wave)), np.float32)
    for seg in reference:
        c = 0 if seg.speaker == "speaker90" else 1
        masks[c, int(seg.start * 16000) : int(seg.end * 16000)] = 1.0
    return np.stack([wave * (masks[c] + crosstalk * (1 - masks[c])) for c in range(2)])


def test_speaker_per_channel_detection(sample):
    from pipeline.diarization.channels import is_speaker_per_channel

    wave, reference = sample
    assert is_speaker_per_channel(_two_channel_call(wave, reference))
    assert not is_speaker_per_channel(np.stack([wave, wave]))  # mono copied twice
    assert not is_speaker_per_channel(np.stack([wave, 0.3 * wave]))  # panned mix
    assert not is_speaker_per_channel(wave[None, :])


def test_two_channel_call_labels_channels(models, sample):
    wave, reference = sample
    result = diarize_work(_work(_two_channel_call(wave, reference)), DiarizeOptions(), models)
    assert {(s.speaker, s.channel) for s in result.segments} == {("SPK0", 0), ("SPK1", 1)}
    channel_ref = [
        dataclasses.replace(s, speaker="SPK0" if s.speaker == "speaker90" else "SPK1")
        for s in reference
    ]
    error, parts = conv.der(channel_ref, result.segments)
    assert error <= 0.05, parts
    # the other party's echo (-40 dB) is not taken for speech
    assert all(s.overlap is False for s in result.segments if 22.5 < s.start < 27.0)


def test_no_vad_speech_means_no_segments(models, sample):
    wave, _ = sample
    result = diarize_work(_work(wave, speech=False), DiarizeOptions(), models)
    assert result.segments == [] and result.embeddings == {}


# --- other embedding models (plumbing only: random weights; pyannote: test_pyannote_backend.py)


def _export_random_onnx(path, waveform_input: bool):
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package (dev extra)")
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(1 if waveform_input else 80, 24)

        def forward(self, x):
            x = x[..., None] if waveform_input else x
            return self.proj(x).mean(dim=1)

    shape = (1, 16000) if waveform_input else (1, 200, 80)
    torch.onnx.export(
        Tiny(),
        (torch.randn(*shape),),
        str(path),
        input_names=["feats"],
        output_names=["embs"],
        dynamic_axes={"feats": {1: "T"}},
        dynamo=False,
    )
    return str(path)


@pytest.mark.parametrize("waveform_input", [False, True])
def test_onnx_embedding_model_by_path(tmp_path, sample, waveform_input):
    wave, _ = sample
    path = _export_random_onnx(tmp_path / "emb.onnx", waveform_input)
    opts = DiarizeOptions(embedding_model=path)
    result = diarize(wave, opts, load_models(opts), "sample")
    assert result.segments and all(v.shape == (24,) for v in result.embeddings.values())
    with pytest.raises(FileNotFoundError, match="ge2e"):
        load_models(DiarizeOptions(embedding_model=str(tmp_path / "missing.onnx")))


# --- the Beam transform -------------------------------------------------------------------------


def test_beam_transform_main_and_rejects(sample):
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.diarize import Diarize

    wave, _ = sample
    works = [
        _work(wave, recording_id="call"),
        _work(wave[: 16000 * 5], speech=False, recording_id="quiet"),
    ]
    # its scratch audio is gone and it cannot be decoded again (no URI): a stage_error
    gone = RecordingAudio.from_file("/nonexistent/broken.f32", 1, 16000)
    broken = dataclasses.replace(_work(wave[:16000], recording_id="broken"), audio=gone)
    with TestPipeline() as p:
        outputs = p | beam.Create(works + [broken]) | Diarize(DiarizeOptions())
        summary = outputs.main | beam.Map(
            lambda w: (
                w.recording_id,
                len({s.speaker for s in w.diarization}),
                sorted(w.speaker_embeddings or {}),
                tuple(r.reason for r in w.rejects),
            )
        )
        assert_that(
            summary,
            equal_to(
                [
                    ("call", 2, ["SPK0", "SPK1"], ()),
                    ("quiet", 0, [], ()),
                    ("broken", 0, [], ("stage_error",)),
                ]
            ),
            label="CheckMain",
        )
        reasons = outputs.rejects | beam.Map(lambda r: (r.recording_id, r.stage, r.reason))
        assert_that(reasons, equal_to([("broken", "diarize", "stage_error")]), label="CheckRejects")
