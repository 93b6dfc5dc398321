"""Provenance: the --input_metadata listing (CSV, JSONL) and <file>.json sidecars."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.ingest import _is_audio_candidate
from pipeline.provenance import (
    AttachProvenance,
    Provenance,
    ProvenanceOptions,
    listing_sha256,
    parse_listing,
    read_listing,
    read_sidecar,
    uri_key,
)
from pipeline.records import Recording, RecordingWork


def test_csv_listing_names_licence_source_and_free_fields(tmp_path):
    listing = tmp_path / "listing.csv"
    listing.write_text(
        "uri,licence,source,speakers,note\n"
        "calls/a.wav,CC-BY-4.0,radio archive,2,\n"
        f"{tmp_path}/b.mp3,,,3,no licence given\n"
        "gs://bucket/c.flac,CC0-1.0,field recording,,\n",
        encoding="utf-8",
    )
    rows = read_listing(str(listing))
    assert rows[str(tmp_path / "calls" / "a.wav")] == Provenance(
        "CC-BY-4.0", "radio archive", '{"speakers": "2"}'
    )  # a relative uri is relative to the listing's folder; empty fields are dropped
    assert rows[str(tmp_path / "b.mp3")] == Provenance(
        "", "", '{"note": "no licence given", "speakers": "3"}'
    )
    assert rows["gs://bucket/c.flac"].licence == "CC0-1.0"
    assert len(listing_sha256(str(listing))) == 64


def test_jsonl_listing_accepts_license_and_nested_fields(tmp_path):
    text = "\n".join(
        [
            json.dumps({"uri": "/data/a.wav", "license": "MIT", "tags": ["x", "y"], "n": 2}),
            "",
            json.dumps({"uri": "file:///data/b.wav", "licence": "CC-BY-SA-4.0"}),
        ]
    )
    rows = parse_listing(text, "listing.jsonl")
    assert rows["/data/a.wav"] == Provenance("MIT", "", '{"n": 2, "tags": ["x", "y"]}')
    assert rows[uri_key("file:///data/b.wav")].licence == "CC-BY-SA-4.0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("licence\nMIT\n", "without 'uri'"),
        ("uri,licence\na.wav,MIT\na.wav,CC0-1.0\n", "listed twice"),
    ],
)
def test_bad_listings_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_listing(text, "listing.csv", "/data")
    with pytest.raises(ValueError, match="not JSON"):
        parse_listing("{oops\n", "listing.jsonl")


def test_sidecar_next_to_a_file_and_sidecars_are_not_inputs(tmp_path):
    audio = tmp_path / "call.wav"
    (tmp_path / "call.wav.json").write_text(json.dumps({"licence": "MIT", "source": "s", "k": 1}))
    assert read_sidecar(str(audio)) == Provenance("MIT", "s", '{"k": 1}')
    assert read_sidecar(str(tmp_path / "other.wav")) is None
    assert not _is_audio_candidate(str(tmp_path / "call.wav.json"), from_directory=False)
    assert _is_audio_candidate(str(tmp_path / "notes.json"), from_directory=False)


def test_attach_provenance_prefers_the_listing_over_a_sidecar(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"licence": f"sidecar-{name}"}))
    listing = tmp_path / "listing.jsonl"
    listing.write_text(json.dumps({"uri": "a.wav", "licence": "listed", "source": "x"}) + "\n")
    works = [
        RecordingWork(Recording(name, str(tmp_path / name), 16000, 1, 1.0), np.zeros((1, 16)))
        for name in ("a.wav", "b.wav", "d.wav")
    ]
    with BeamTestPipeline() as p:
        out = (
            p
            | beam.Create(works)
            | AttachProvenance(ProvenanceOptions(input_metadata=str(listing)))
            | beam.Map(lambda w: (w.recording_id, w.recording.licence, w.recording.source))
        )
        assert_that(
            out,
            equal_to([("a.wav", "listed", "x"), ("b.wav", "sidecar-b.wav", ""), ("d.wav", "", "")]),
        )
