"""Interop: our corpus → ZipVoice TSV and OpenDialog jsonl, and OpenDialog → our cuts."""

from __future__ import annotations

import json

import pytest
from lhotse import CutSet

from core.dialogue_script import dialogue_text
from pipeline.output.interop import from_opendialog, main, to_opendialog, zipvoice_tsv_lines


@pytest.fixture(scope="module")
def corpus_cuts(sample_run):
    parts = sorted((sample_run.output / "lhotse").glob("cuts_*.jsonl.gz"))
    cuts = CutSet.from_cuts(c for p in parts for c in CutSet.from_file(p))
    assert len(cuts) >= 1, "the sample yields a dialogue"
    return cuts


def test_zipvoice_tsv_lines(corpus_cuts):
    lines = list(zipvoice_tsv_lines(corpus_cuts))
    assert len(lines) == len(corpus_cuts)
    for line, cut in zip(lines, corpus_cuts):
        cut_id, text, wav, start, end = line.split("\t")
        assert cut_id == cut.id and text.startswith("[S1]") and "[S2]" in text
        assert wav.endswith("sample.wav")
        assert abs(float(end) - float(start) - cut.duration) < 0.01


def test_opendialog_round_trip(corpus_cuts, tmp_path):
    assert to_opendialog(corpus_cuts, tmp_path) == len(corpus_cuts)
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {c.id for c in corpus_cuts}
    imported = from_opendialog(tmp_path / "manifest.jsonl")
    for original in corpus_cuts:
        back = imported[original.id]
        assert dialogue_text(back) == dialogue_text(original)
        assert abs(back.duration - original.duration) < 0.01
        assert back.load_audio().shape[1] == pytest.approx(original.load_audio().shape[1], abs=2)
    out = tmp_path / "imported.jsonl.gz"
    assert (
        main(["from-opendialog", "--manifest", str(tmp_path / "manifest.jsonl"), "--out", str(out)])
        == 0
    )
    assert len(CutSet.from_file(out)) == len(corpus_cuts)


def test_bad_opendialog_manifest_is_a_clear_error(tmp_path, capsys):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "x", "text": "[S2] hi", "path": "a.wav"}) + "\n")
    assert (
        main(
            ["from-opendialog", "--manifest", str(manifest), "--out", str(tmp_path / "o.jsonl.gz")]
        )
        == 2
    )
    assert "must start with [S1]" in capsys.readouterr().err
