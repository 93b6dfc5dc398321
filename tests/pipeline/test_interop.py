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


def test_hugging_face_export_of_the_sample_run(sample_run, corpus_cuts, tmp_path):
    """``to-hf`` over the default run: ``load_dataset(<export dir>)`` loads it, its clip decodes
    to the cut's audio (16-bit), and the card's YAML parses and names the sample's licence."""
    import datasets
    import numpy as np
    import yaml

    from pipeline.output.hf_export import clip_pcm16

    export = tmp_path / "hf"
    assert main(["to-hf", "--output-dir", str(sample_run.output), "--out", str(export)]) == 0
    datasets.disable_progress_bars()
    loaded = datasets.load_dataset(str(export), cache_dir=str(tmp_path / "cache"))
    rows = {row["id"]: row for split in loaded.values() for row in split}
    assert set(rows) == {c.id for c in corpus_cuts}
    for cut in corpus_cuts:
        row = rows[cut.id]
        decoded = row["audio"].get_all_samples()
        assert decoded.sample_rate == cut.sampling_rate == 24000
        np.testing.assert_array_equal(
            decoded.data.numpy(), clip_pcm16(cut).astype(np.float32) / 32768
        )
        assert row["text"] == dialogue_text(cut) and row["licence"] == "MIT"
        assert [t["role"] for t in row["turns"]] == [s.speaker for s in cut.supervisions]
        assert 2.0 < row["quality"]["dnsmos_ovrl"] < 5.0
    card = (export / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "mit" and header["language"] == ["en"]
    assert header["configs"][0]["data_files"][0]["path"].startswith("data/")
    assert "Every one of the 1 input files has a licence." in card
    assert "| dnsmos_p835 |" in card and "`--min_dnsmos_ovrl` | 2.8" in card
