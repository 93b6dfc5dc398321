"""Corpus outputs: Lhotse cuts (mono, 2-channel, pseudo-stereo), Shar, ZipVoice TSV, splits by
recording, duplicate recordings; written by the WriteCorpusEntries transform from real sample audio."""

from __future__ import annotations

import dataclasses
import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.dialogue import DialogueOptions, segment_dialogues
from pipeline.errors import DUPLICATE
from pipeline.output.corpus import (
    CorpusOptions,
    WriteCorpusEntries,
    assign_split,
    duplicate_rejects,
    find_duplicates,
    to_entry,
    zipvoice_tsv_line,
)
from pipeline.records import Recording, RecordingWork, SpeakerSegment
from pipeline.stage import replace
from tests.pipeline.dialogue_fixtures import make_recording, sample_work


def _segmented(work: RecordingWork, opts: DialogueOptions | None = None) -> RecordingWork:
    dialogues, dturns, _ = segment_dialogues(
        work.recording, work.turns, work.diarization, opts or DialogueOptions()
    )
    return replace(work, dialogues=tuple(dialogues), dialogue_turns=tuple(dturns))


def _licensed(work: RecordingWork, licence: str, source: str = "", metadata: str = ""):
    """The work with its recording's provenance set (as pipeline.provenance sets it)."""
    rec = dataclasses.replace(work.recording, licence=licence, source=source, metadata=metadata)
    return replace(work, recording=rec)


def _stereo_work(path: str) -> RecordingWork:
    """The sample re-recorded as a 2-channel call: each speaker's diarized speech on its channel."""
    import soundfile as sf

    base = sample_work()
    mono = base.audio.mix()
    audio = np.zeros((2, mono.shape[0]), dtype=np.float32)
    channel_of = {"speaker90": 0, "speaker91": 1}
    for seg in base.diarization:
        i, j = int(seg.start * 16000), int(seg.end * 16000)
        audio[channel_of[seg.speaker], i:j] = mono[i:j]
    sf.write(path, audio.T, 16000)
    rec = dataclasses.replace(
        base.recording,
        recording_id="stereo-call",
        uri=path,
        num_channels=2,
        content_sha1="stereo-sha1",
    )
    diar = tuple(
        SpeakerSegment("stereo-call", s.speaker, s.start, s.end, channel=channel_of[s.speaker])
        for s in base.diarization
    )
    turns = tuple(
        dataclasses.replace(t, recording_id="stereo-call", channel=channel_of[t.speaker])
        for t in base.turns
    )
    return RecordingWork(recording=rec, audio=audio, diarization=diar, turns=turns)


# --- pure functions ----------------------------------------------------------------------------


def test_split_is_a_deterministic_function_of_the_recording():
    ids = [f"rec-{i:05d}" for i in range(20000)]
    splits = [assign_split(r, 0.05, 0.1) for r in ids]
    assert splits == [assign_split(r, 0.05, 0.1) for r in ids]
    assert abs(splits.count("dev") / len(ids) - 0.05) < 0.01
    assert abs(splits.count("test") / len(ids) - 0.1) < 0.01
    assert splits != [assign_split(r, 0.05, 0.1, salt="other") for r in ids]
    with pytest.raises(ValueError, match="dev_fraction"):
        CorpusOptions(dev_fraction=0.6, test_fraction=0.5)


def test_duplicates_keep_the_smallest_id():
    recs = [
        make_recording("b", content_sha1="x"),
        make_recording("a", content_sha1="x"),
        make_recording("c", content_sha1="y"),
        make_recording("d", content_sha1=""),
        make_recording("e", content_sha1=""),
    ]
    assert find_duplicates(recs) == {"b": "a"}
    work = _segmented(sample_work())
    rejects = duplicate_rejects(work.recording, work.dialogues, "a")
    assert [(r.reason, r.item_id) for r in rejects] == [(DUPLICATE, work.dialogues[0].dialogue_id)]


def test_zipvoice_tsv_line_format():
    line = zipvoice_tsv_line("rec-d0000", "[S1]Hi\tthere. [S2]Hello.", "/a b/x.wav", 1.5, 9.25)
    assert line.split("\t") == [
        "rec-d0000",
        "[S1]Hi there. [S2]Hello.",
        "/a b/x.wav",
        "1.500",
        "9.250",
    ]
    with pytest.raises(ValueError, match=r"\[S1\]"):
        zipvoice_tsv_line("x", "[S2]Hi.", "x.wav", 0, 1)


# --- the transform on real audio ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """WriteCorpusEntries over: the sample (mono), a byte-identical copy under another id (duplicate),
    a pseudo-stereo rendering of the sample (no licence), and a real-speech 2-channel call."""
    tmp = tmp_path_factory.mktemp("corpus")
    out = str(tmp / "out")
    mono = _segmented(_licensed(sample_work(), "CC-BY-4.0", "a podcast", '{"episode": 7}'))
    dup = _segmented(_licensed(sample_work(recording_id="zz-copy"), "CC-BY-4.0"))
    pseudo = _segmented(
        sample_work(recording_id="pseudo-call"), DialogueOptions(pseudo_stereo=True)
    )
    pseudo = replace(
        pseudo, recording=dataclasses.replace(pseudo.recording, content_sha1="pseudo-sha1")
    )
    stereo = _segmented(_licensed(_stereo_work(str(tmp / "stereo.wav")), "CC0-1.0", "a call"))
    works = [mono, dup, pseudo, stereo]
    # this salt puts the three recordings in three different splits
    opts = CorpusOptions(
        write_shar=True, corpus_shards=2, dev_fraction=0.3, test_fraction=0.3, split_salt="f"
    )
    with BeamTestPipeline() as p:
        outputs = (
            p
            | beam.Create(works)
            | "DropAudio" >> beam.Map(to_entry)
            | "WriteCorpus" >> WriteCorpusEntries(out, opts)
        )
        assert_that(
            outputs.rejects | beam.Map(lambda r: (r.recording_id, r.reason)),
            equal_to([("zz-copy", DUPLICATE)]),
            label="CheckRejects",
        )
        assert_that(
            outputs.main
            | beam.Map(lambda s: sorted((k, v["num_dialogues"]) for k, v in s["splits"].items())),
            equal_to([[("dev", 1), ("test", 1), ("train", 1)]]),
            label="CheckMain",
        )
    split_of = {w.recording_id: assign_split(w.recording_id, 0.3, 0.3, "f") for w in works}
    return out, {w.recording_id: w for w in works}, split_of


def _load_cuts(out: str) -> dict[str, object]:
    """Every cut of every split manifest, by recording id (checks the split it is filed in)."""
    import lhotse

    cuts = {}
    for split in ("train", "dev", "test"):
        path = os.path.join(out, "lhotse", f"cuts_{split}.jsonl.gz")
        if os.path.exists(path):
            for cut in lhotse.load_manifest(path):
                assert cut.custom["split"] == split
                cuts[cut.custom["recording_id"]] = cut
    return cuts


@pytest.mark.filterwarnings("ignore:You are using DynamicBucketingSampler with an eagerly")
def test_cuts_load_and_feed_the_bucketing_sampler(corpus):
    import lhotse
    from lhotse.dataset import DynamicBucketingSampler

    out, works, split_of = corpus
    by_rec = _load_cuts(out)
    assert set(by_rec) == {"sample-00000000", "pseudo-call", "stereo-call"}
    assert {rid: c.custom["split"] for rid, c in by_rec.items()} == {
        rid: split_of[rid] for rid in by_rec
    }  # split by recording, files by split
    assert type(by_rec["sample-00000000"]).__name__ == "MonoCut"
    assert type(by_rec["stereo-call"]).__name__ == "MultiCut"
    assert type(by_rec["pseudo-call"]).__name__ == "MultiCut"
    for rid, cut in by_rec.items():
        d = works[rid].dialogues[0]
        turns = [t for t in works[rid].dialogue_turns if t.dialogue_id == d.dialogue_id]
        assert cut.id == d.dialogue_id and cut.sampling_rate == 24000
        assert cut.duration == pytest.approx(d.duration, abs=1e-3)
        assert cut.custom["text"] == d.text and cut.custom["text"].startswith("[S1]")
        assert cut.custom["quality"] == {k: v for k, v in d.quality.items()}
        assert [(s.speaker, s.text, s.language) for s in cut.supervisions] == [
            (t.role, t.text, "en") for t in turns
        ]
        assert cut.custom["channel_layout"] == d.channel_layout
        assert (cut.custom["licence"], cut.custom["source"]) == (d.licence, d.source)
        assert d.licence == works[rid].recording.licence
    assert by_rec["sample-00000000"].custom["metadata"] == {"episode": 7}
    cuts = lhotse.load_manifest(
        os.path.join(out, "lhotse", f"cuts_{split_of['stereo-call']}.jsonl.gz")
    )
    cuts = cuts + lhotse.load_manifest(
        os.path.join(out, "lhotse", f"cuts_{split_of['sample-00000000']}.jsonl.gz")
    )
    sampler = DynamicBucketingSampler(
        cuts, max_duration=60.0, num_buckets=2, shuffle=True, seed=0, duration_bins=[15.0]
    )
    seen = [c.id for batch in sampler for c in batch]
    assert sorted(seen) == sorted(c.id for c in cuts)


def test_two_channel_call_gives_a_two_channel_cut_with_each_speaker_on_its_channel(corpus):
    out, _, split_of = corpus
    cuts = _load_cuts(out)
    cut = cuts["stereo-call"]
    assert cut.custom["channel_layout"] == "stereo" and cut.channel == [0, 1]
    audio = cut.load_audio()
    assert audio.shape == (2, round(cut.duration * 24000))
    totals = np.zeros((2, 2))  # [turn's channel, other channel] energy, by role
    for sup in cut.supervisions:  # each turn's energy is mostly on its own channel
        i, j = int(sup.start * 24000), int(sup.end * 24000)
        own = np.sum(audio[sup.channel, i:j] ** 2)
        other = np.sum(audio[1 - sup.channel, i:j] ** 2)
        assert own > other, sup  # (the other speaker may overlap a little)
        totals[0 if sup.speaker == "S1" else 1] += (own, other)
    assert np.all(totals[:, 0] > 5 * totals[:, 1])  # RTTM and STM disagree a little
    assert {s.speaker: s.channel for s in cut.supervisions} == {"S1": 0, "S2": 1}
    pseudo = cuts["pseudo-call"]
    audio = pseudo.load_audio()
    assert audio.shape[0] == 2 and pseudo.custom["channel_layout"] == "pseudo_stereo"
    assert os.path.exists(os.path.join(out, "audio", split_of["pseudo-call"], f"{pseudo.id}.flac"))
    s1 = next(s for s in pseudo.supervisions if s.speaker == "S1" and s.duration > 1)
    i, j = int(s1.start * 24000), int(s1.end * 24000)
    assert np.sum(audio[0, i:j] ** 2) > 5 * np.sum(audio[1, i:j] ** 2)


def test_shar_shards_load_back_with_audio(corpus):
    from lhotse import CutSet

    out, _, _ = corpus
    shar = [
        c
        for split in ("train", "dev", "test")
        for c in CutSet.from_shar(in_dir=os.path.join(out, "shar", split))
    ]
    assert sorted(c.custom["recording_id"] for c in shar) == [
        "pseudo-call",
        "sample-00000000",
        "stereo-call",
    ]
    for cut in shar:
        audio = cut.load_audio()
        assert cut.sampling_rate == 24000
        assert audio.shape[-1] == pytest.approx(cut.duration * 24000, abs=2)
        assert audio.shape[0] == (2 if cut.custom["channel_layout"] != "mono" else 1)
        assert np.abs(audio).max() > 0.01


def test_zipvoice_tsv_and_corpus_summary(corpus):
    out, works, _ = corpus
    rows = []
    for split in ("train", "dev", "test"):
        with open(os.path.join(out, "zipvoice", f"{split}.tsv"), encoding="utf-8") as f:
            rows += [line.rstrip("\n").split("\t") for line in f]
    assert sorted(r[0] for r in rows) == sorted(
        w.dialogues[0].dialogue_id for rid, w in works.items() if rid != "zz-copy"
    )
    for _uid, text, wav, start, end in rows:
        assert text.startswith("[S1]") and os.path.exists(wav)
        assert 0 <= float(start) < float(end)
    with open(os.path.join(out, "corpus.json"), encoding="utf-8") as f:
        summary = json.load(f)
    assert set(summary["splits"]) == {"train", "dev", "test"}
    layouts = {k for e in summary["splits"].values() for k in e["hours_by_layout"]}
    assert layouts == {"mono", "stereo", "pseudo_stereo"}


def test_recording_record_is_enough_for_a_remote_uri():
    from pipeline.output.corpus import lhotse_recording

    rec = Recording("r", "gs://bucket/a.flac", 44100, 2, 10.0)
    lrec = lhotse_recording(rec)
    assert lrec.sources[0].type == "url" and lrec.num_samples == 441000
    assert lrec.channel_ids == [0, 1]


# --- the Hugging Face export (pipeline.output.hf_export, hf_card) ------------------------------


def _write_tables(out: str, works) -> None:
    """The Parquet tables of these works, as WriteTables writes them (the export joins them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.output.tables import recording_rows
    from pipeline.records import TABLES, table_schema

    rows = {table: [] for table in TABLES}
    for work in works:
        for table, table_rows in recording_rows(work).items():
            if table in rows:
                rows[table] += table_rows
    for table in TABLES:
        os.makedirs(os.path.join(out, table), exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(rows[table], schema=table_schema(table)),
            os.path.join(out, table, "part-00000-of-00001.parquet"),
        )


def test_hugging_face_export_loads_and_its_clips_are_the_cuts_audio(corpus, tmp_path):
    """Three clips (mono, pseudo-stereo, stereo) decode through ``datasets`` (torchcodec) and equal
    the Lhotse cuts' audio at the corpus rate, quantised to 16 bits, sample for sample."""
    import datasets
    import yaml

    from pipeline.output.hf_export import clip_pcm16
    from pipeline.output.interop import main

    out, works, split_of = corpus
    _write_tables(out, works.values())
    export = tmp_path / "hf"
    assert main(["to-hf", "--output-dir", out, "--out", str(export), "--shard-rows", "1"]) == 0
    datasets.disable_progress_bars()
    loaded = datasets.load_dataset(str(export), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["dev", "test", "train"]
    assert loaded["train"].features["audio"] == datasets.Audio(sampling_rate=24000)
    cuts = _load_cuts(out)
    assert len(cuts) == 3
    for rid, cut in cuts.items():
        ds = loaded[split_of[rid]]
        assert len(ds) == 1
        row = ds[0]
        samples = row["audio"].get_all_samples()
        decoded = samples.data.numpy()
        expected = clip_pcm16(cut).astype(np.float32) / 32768
        assert samples.sample_rate == 24000 and decoded.shape == expected.shape
        assert decoded.shape[0] == (1 if cut.custom["channel_layout"] == "mono" else 2)
        np.testing.assert_array_equal(decoded, expected)  # sample for sample
        assert np.abs(decoded - cut.load_audio()).max() <= 1 / 32768  # the 16-bit step
        d = works[rid].dialogues[0]
        assert (row["id"], row["text"], row["channel_layout"]) == (
            d.dialogue_id,
            d.text,
            d.channel_layout,
        )
        assert [(t["role"], t["text"]) for t in row["turns"]] == [
            (t.role, t.text) for t in works[rid].dialogue_turns
        ]
        assert row["turns"][0]["start"] == pytest.approx(
            works[rid].dialogue_turns[0].start - d.start
        )
        assert row["speakers"] == {"s1": d.s1_speaker, "s2": d.s2_speaker}
        assert row["quality"]["other_speaker_s"] == d.quality["other_speaker_s"]
        assert (row["licence"], row["source"]) == (d.licence, d.source)
        assert row["recording_id"] == rid and row["source_uri"] == works[rid].recording.uri
    card = (export / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == ["cc-by-4.0", "cc0-1.0", "unknown"]
    assert header["language"] == ["en"] and header["size_categories"] == ["n<1K"]
    assert {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]} == {
        "train": 1,
        "dev": 1,
        "test": 1,
    }
    assert "**Warning: 1 of 4 input files have no licence**" in card
    assert "| CC-BY-4.0 | 1 |" in card and "| CC0-1.0 | 1 |" in card
