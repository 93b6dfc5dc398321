"""End to end: the default run on the bundled sample, bad inputs, resume, the CLI."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import lhotse
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline import errors
from pipeline.output.run_files import read_table
from pipeline.run import run
from tests.conftest import REPO, read_rttm
from tests.pipeline.audio_factory import encode_with_pyav, tone
from tests.pipeline.test_vad import vad_scores


def test_default_run_curates_the_bundled_sample(sample_run, figure):
    recordings = read_table(sample_run.output, "recordings").to_pylist()
    assert len(recordings) == 1
    rec = recordings[0]
    assert rec["uri"].endswith("pipeline/assets/sample.wav")
    assert rec["sample_rate"] == 16000 and rec["num_channels"] == 1
    assert abs(rec["duration_s"] - 30.0) < 0.01
    figure("speech_ratio", rec["speech_ratio"], at_least=0.6, at_most=0.9)
    assert 3000 < rec["bandwidth_hz"] < 4500  # telephone band
    assert sample_run.summary["files"] == 1 and sample_run.summary["files_rejected"] == 0


def test_speech_table_covers_the_reference(sample_run, sample_rttm, figure):
    speech = read_table(sample_run.output, "speech").to_pylist()
    coverage, false_alarm = vad_scores(
        [(r["start"], r["end"]) for r in speech],
        [(s, e) for _, s, e in read_rttm(sample_rttm)],
        30.0,
    )
    figure("coverage", coverage, at_least=0.90)
    figure("false_alarm", false_alarm, at_most=0.10)


def test_every_table_has_its_documented_schema(sample_run):
    from pipeline.records import TABLES, table_schema

    for table in TABLES:
        files = list((sample_run.output / table).glob("*.parquet"))
        assert files, f"{table} was not written"
        assert pq.read_schema(files[0]).remove_metadata() == table_schema(table), table


def test_every_table_loads_in_hugging_face_datasets(sample_run, tmp_path):
    """The field's everyday loader reads every table (it has no type for a map column)."""
    import datasets

    from pipeline.records import QUALITY_FIELDS, TABLES

    datasets.disable_progress_bars()
    for table in TABLES:
        files = sorted(str(p) for p in (sample_run.output / table).glob("*.parquet"))
        loaded = datasets.load_dataset(
            "parquet", data_files=files, split="train", cache_dir=str(tmp_path)
        )
        assert len(loaded) == len(read_table(sample_run.output, table)), table
    quality = datasets.load_dataset(
        "parquet",
        data_files=sorted(str(p) for p in (sample_run.output / "dialogues").glob("*.parquet")),
        split="train",
        cache_dir=str(tmp_path),
    )[0]["quality"]
    assert list(quality) == list(QUALITY_FIELDS)
    assert 2.0 < quality["dnsmos_ovrl"] < 5.0 and quality["dnsmos_p808"] is None


def test_lhotse_manifests_load(sample_run):
    recordings = lhotse.load_manifest(sample_run.output / "lhotse" / "recordings.jsonl.gz")
    assert len(recordings) == 1
    audio = recordings[0].load_audio()
    assert audio.shape == (1, 480000)
    path = sample_run.output / "lhotse" / "supervisions.jsonl.gz"
    sups = lhotse.SupervisionSet.from_file(path) or []  # lhotse reads an empty file as None
    turns = read_table(sample_run.output, "turns").to_pylist()
    assert len(sups) == len(turns)
    for sup in sups:
        assert sup.recording_id == recordings[0].id and sup.speaker and sup.text


def test_run_files_describe_the_run(sample_run):
    metrics = json.loads((sample_run.output / "metrics.json").read_text())
    for stage in ("decode", "vad", "diarize", "asr", "dialogue", "filters"):
        assert metrics[stage]["items_in"] == 1, stage
        assert metrics[stage]["audio_ms_in"] == 30000, stage
    # model loading is counted apart from the stages' processing (bench/stage_times.py)
    for stage in ("vad", "diarize", "asr", "filters"):
        assert metrics[stage]["load_ms"] > 0, stage
    assert "load_ms" not in metrics["decode"] and "load_ms" not in metrics["dialogue"]
    manifest = json.loads((sample_run.output / "run_manifest.json").read_text())
    for model in ("silero_vad", "segmentation", "speaker_embedding", "dnsmos_p835"):
        assert len(manifest["models"][model]["sha256"]) == 64, model
    assert "model.bin=" in manifest["models"]["whisper"]["sha256"]
    assert manifest["packages"]["apache-beam"] == "2.77.0"
    assert manifest["git_revision"]
    assert len(list((sample_run.output / "rttm").glob("*.rttm"))) == 1


@pytest.fixture(scope="module")
def messy_inputs(tmp_path_factory) -> Path:
    """A folder of good and broken files (no real speech: the later stages stay cheap)."""
    folder = tmp_path_factory.mktemp("messy")
    encode_with_pyav(folder / "tone.mp3", tone(3.0, 44100, 2), 44100)
    sf.write(folder / "stereo_tone.flac", tone(2.0, 16000, 2), 16000)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "random.mp3").write_bytes(np.random.default_rng(1).bytes(4096))
    (folder / "truncated.wav").write_bytes((REPO / "pipeline/assets/sample.wav").read_bytes()[:30])
    sf.write(folder / "silent.wav", np.zeros(16000 * 2, np.float32), 16000)
    sf.write(folder / "short.wav", tone(0.2, 16000, 1), 16000)
    nan = tone(2.0, 16000, 1)
    nan[5] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(folder / "many_channels.wav", np.full((16000, 12), 0.1, np.float32), 16000)
    (folder / "notes.txt").write_text("not audio, skipped by the directory walk")
    (folder / "stereo_tone.flac.json").write_text(json.dumps({"licence": "CC0-1.0", "take": 2}))
    return folder


@pytest.fixture(scope="module")
def messy_listing(messy_inputs, tmp_path_factory) -> Path:
    """An --input_metadata listing naming one of the messy files (another has a sidecar)."""
    listing = tmp_path_factory.mktemp("listing") / "listing.csv"
    listing.write_text(
        f"uri,licence,source,speakers\n{messy_inputs / 'tone.mp3'},CC-BY-4.0,a test tone,0\n"
    )
    return listing


class MessyRun(NamedTuple):
    output: Path
    summary: dict
    logs: str  # the log records and stderr
    stderr: str


# a credential a user passes (unused by the default ONNX diarization): it must be written nowhere
SECRET_TOKEN = "hf_" + "TestOnlyNotARealToken0123456789"


@pytest.fixture(scope="module")
def messy_run(messy_inputs, messy_listing, tmp_path_factory):
    output = tmp_path_factory.mktemp("messy_out")
    logs = io.StringIO()
    stderr = io.StringIO()  # not a terminal: plain progress lines, every second here
    handler = logging.StreamHandler(logs)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stderr(stderr):
            summary = run(
                [
                    "--runner=DirectRunner",
                    f"--input={messy_inputs}",
                    f"--output={output}",
                    f"--hf_token={SECRET_TOKEN}",
                    f"--input_metadata={messy_listing}",
                    "--write_hf",
                    "--progress_interval_s=1",
                ]
            )
    finally:
        logging.getLogger().removeHandler(handler)
    return MessyRun(output, summary, logs.getvalue() + stderr.getvalue(), stderr.getvalue())


def test_a_run_shows_its_progress_on_stderr(messy_run):
    lines = [line for line in messy_run.stderr.splitlines() if line.startswith("files ")]
    assert len(lines) >= 2, messy_run.stderr
    assert re.match(r"files \d/9 · .* elapsed", lines[0]), lines[0]
    assert re.match(r"files 9/9 · .* audio · .*x real time · done in \d+ s$", lines[-1])
    leftovers = {p.name for p in messy_run.output.iterdir()} & {".lock", "_progress"}
    assert not leftovers, "the lock and the step marks are removed at the end"


def test_no_credential_is_written(messy_run):
    output, summary, logs, _ = messy_run
    files = [p for p in output.rglob("*") if p.is_file()]
    assert any(p.name == "run_manifest.json" for p in files) and len(files) > 10
    for path in files:
        assert SECRET_TOKEN.encode() not in path.read_bytes(), f"the token is in {path}"
    assert SECRET_TOKEN not in logs and SECRET_TOKEN not in json.dumps(summary, default=str)
    manifest = json.loads((output / "run_manifest.json").read_text())
    assert manifest["options"]["hf_token"] == "<redacted>"


def test_bad_files_are_rejected_and_nothing_is_lost(messy_inputs, messy_run):
    output, summary = messy_run.output, messy_run.summary
    audio_files = sorted(p for p in messy_inputs.iterdir() if p.suffix not in (".txt", ".json"))
    recordings = read_table(output, "recordings").to_pylist()
    file_rejects = [r for r in read_table(output, "rejects").to_pylist() if not r["item_id"]]
    seen = [r["uri"] for r in recordings] + [r["uri"] for r in file_rejects]
    assert sorted(seen) == sorted(str(p) for p in audio_files), "each file exactly once"
    reasons = {Path(r["uri"]).name: r["reason"] for r in file_rejects}
    assert reasons == {
        "empty.wav": errors.UNREADABLE,
        "random.mp3": errors.UNREADABLE,
        "truncated.wav": errors.UNREADABLE,
        "silent.wav": errors.SILENT,
        "short.wav": errors.TOO_SHORT,
        "nan.wav": errors.NON_FINITE,
        "many_channels.wav": errors.BAD_CHANNELS,
    }
    assert all(r["message"] for r in file_rejects)
    assert {r["num_channels"] for r in recordings} == {2}
    item_rejects = [r for r in read_table(output, "rejects").to_pylist() if r["item_id"]]
    assert {(r["stage"], r["reason"]) for r in item_rejects} == {("vad", errors.NO_SPEECH)}
    assert summary["files_rejected"] == 7 and summary["recordings"] == 2


def test_input_metadata_flows_into_the_recordings_and_the_manifest(messy_listing, messy_run):
    output = messy_run.output
    provenance = {
        Path(r["uri"]).name: (r["licence"], r["source"], r["metadata"])
        for r in read_table(output, "recordings").to_pylist()
    }
    assert provenance == {
        "tone.mp3": ("CC-BY-4.0", "a test tone", '{"speakers": "0"}'),  # from the listing
        "stereo_tone.flac": ("CC0-1.0", "", '{"take": 2}'),  # from its sidecar
    }
    manifest = json.loads((output / "run_manifest.json").read_text())
    assert manifest["input_metadata"] == {
        "path": str(messy_listing),
        "sha256": hashlib.sha256(messy_listing.read_bytes()).hexdigest(),
    }
    metrics = json.loads((output / "metrics.json").read_text())["provenance"]
    assert (metrics["from_listing"], metrics["from_sidecar"], metrics["with_licence"]) == (1, 1, 2)


def test_write_hf_on_a_run_without_dialogues_says_so(messy_run):
    output, summary, logs = messy_run.output, messy_run.summary, messy_run.logs
    assert "no corpus cuts" in summary["hf_export"]["error"]
    assert "no Hugging Face export" in logs and not (output / "hf" / "README.md").exists()


def test_every_row_of_the_sample_run_carries_its_licence(sample_run):
    """The bundled sample's sidecar (pipeline/assets/sample.wav.json) reaches every row and cut."""
    for table in ("recordings", "dialogues"):
        rows = read_table(sample_run.output, table).to_pylist()
        assert rows and {r["licence"] for r in rows} == {"MIT"}, table
        assert {json.loads(r["metadata"])["package"] for r in rows} == {"pyannote-audio==4.0.7"}
    cuts = [
        c
        for p in (sample_run.output / "lhotse").glob("cuts_*.jsonl.gz")
        for c in lhotse.load_manifest(p)
    ]
    assert cuts and {c.custom["licence"] for c in cuts} == {"MIT"}


def test_rerun_skips_finished_work_and_keeps_outputs(messy_inputs, messy_run):
    output = messy_run.output
    before = {
        t: sorted(map(str, read_table(output, t).to_pylist()))
        for t in ("recordings", "rejects", "speech")
    }
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        summary = run(
            ["--runner=DirectRunner", f"--input={messy_inputs}", f"--output={output}", "--quiet"]
        )
    assert "files " not in stderr.getvalue(), "--quiet: no progress line"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["ingest"]["skipped_finished"] == 9
    assert "decode" not in metrics, "nothing is decoded again"
    after = {t: sorted(map(str, read_table(output, t).to_pylist())) for t in before}
    assert after == before
    assert summary["files"] == 9


def test_cli_reports_a_bad_input_clearly(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "beam_runner.py",
            "--runner=DirectRunner",
            f"--input={tmp_path}/nothing-*.wav",
            f"--output={tmp_path}/o",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "matches no file" in proc.stderr
    assert "apitools not found" not in proc.stderr, "a known-harmless start-up message"
    assert not (tmp_path / "o" / ".lock").exists()


def test_cli_help_lists_stage_options():
    proc = subprocess.run(
        [sys.executable, "beam_runner.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    for flag in ("--input", "--output", "--vad_threshold", "--min_duration_s", "--runner"):
        assert flag in proc.stdout


def _reference_annotation(rows):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for i, (speaker, start, end) in enumerate(rows):
        ann[Segment(start, end), i] = speaker
    return ann


def test_diarization_of_the_default_run_against_the_reference(sample_run, sample_rttm):
    from pyannote.metrics.diarization import DiarizationErrorRate

    rttm = next((sample_run.output / "rttm").glob("*.rttm"))
    hyp = _reference_annotation(read_rttm(rttm))
    ref = _reference_annotation(read_rttm(sample_rttm))
    der = DiarizationErrorRate(collar=0.0, skip_overlap=False)(ref, hyp)
    assert der <= 0.18, der
    rows = read_table(sample_run.output, "diarization").to_pylist()
    assert {r["speaker"] for r in rows} == {"SPK0", "SPK1"}
    assert any(r["overlap"] for r in rows)


def _stm_words(stm, start: float = 0.0, end: float = 1e9) -> str:
    words = []
    for line in stm.read_text().splitlines():
        parts = line.split(maxsplit=5)
        mid = (float(parts[3]) + float(parts[4])) / 2
        if start <= mid <= end:
            words.append(parts[5])
    return " ".join(words)


def test_turns_of_the_default_run_match_the_reference_transcript(sample_run, sample_stm, figure):
    from core.wer import word_error_rate

    turns = read_table(sample_run.output, "turns").to_pylist()
    assert len(turns) >= 6
    assert {t["language"] for t in turns} == {"en"}
    hyp = " ".join(t["text"] for t in sorted(turns, key=lambda t: t["start"]))
    figure("wer", word_error_rate(_stm_words(sample_stm), hyp).rate, at_most=0.25)
    for turn in turns:
        assert turn["words"] and all(
            turn["start"] - 0.5 <= w["start"] <= w["end"] <= turn["end"] + 0.5
            for w in turn["words"]
        )


def test_the_sample_yields_a_two_speaker_dialogue(sample_run, sample_stm, figure):
    import re

    from core.wer import word_error_rate

    dialogues = read_table(sample_run.output, "dialogues").to_pylist()
    assert dialogues, "the bundled sample's dialogue is kept by the default filters"
    best = max(dialogues, key=lambda d: d["duration"])
    assert best["text"].startswith("[S1]") and "[S2]" in best["text"]
    assert best["s1_speaker"] != best["s2_speaker"] and best["num_turns"] >= 4
    quality = dict(best["quality"])
    figure("dnsmos_ovrl", quality["dnsmos_ovrl"], at_least=2.8)
    plain = re.sub(r"\[S[12]\]", " ", best["text"])
    reference = _stm_words(sample_stm, best["start"], best["end"])
    figure("dialogue_wer", word_error_rate(reference, plain).rate, at_most=0.3)
    turns = [
        t
        for t in read_table(sample_run.output, "dialogue_turns").to_pylist()
        if t["dialogue_id"] == best["dialogue_id"]
    ]
    roles = [t["role"] for t in sorted(turns, key=lambda t: t["index"])]
    assert roles[0] == "S1" and all(a != b for a, b in zip(roles, roles[1:]))


def test_corpus_cuts_feed_a_bucketing_sampler(sample_run):
    from lhotse.dataset import DynamicBucketingSampler

    cuts = lhotse.CutSet.from_cuts(
        c
        for p in sorted((sample_run.output / "lhotse").glob("cuts_*.jsonl.gz"))
        for c in lhotse.load_manifest(p)
    )
    assert len(cuts) == len(read_table(sample_run.output, "dialogues"))
    cut = cuts[0]
    assert cut.sampling_rate == 24000 and cut.custom["text"].startswith("[S1]")
    assert {s.speaker for s in cut.supervisions} == {"S1", "S2"}
    many = cuts.repeat(times=4)  # the sampler estimates bucket bins from several cuts
    sampler = DynamicBucketingSampler(many, max_duration=100, num_buckets=2, shuffle=False)
    assert sum(len(batch) for batch in sampler) == 4 * len(cuts)
    assert (sample_run.output / "report.html").stat().st_size > 5000
    tsv = (sample_run.output / "zipvoice").glob("*.tsv")
    assert sum(len(p.read_text().splitlines()) for p in tsv) == len(cuts)
