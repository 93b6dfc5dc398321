"""report.html: written from the Parquet tables + metrics.json, self-contained, with the plots."""

from __future__ import annotations

import json
import os
import re

import pytest

from pipeline.output import report
from pipeline.records import Dialogue, Recording, Reject, table_row, table_schema


def _write_table(out: str, table: str, records) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(out, table), exist_ok=True)
    rows = [table_row(table, r) for r in records]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=table_schema(table)),
        os.path.join(out, table, "part-00000-of-00001.parquet"),
    )


@pytest.fixture()
def run_dir(tmp_path):
    out = str(tmp_path)
    recs = [Recording(f"r{i}", f"/in/r{i}.wav", 16000, 1, 600.0, speech_s=400.0) for i in range(3)]
    dialogues = [
        Dialogue(
            f"r{i % 3}-d{i:04d}",
            f"r{i % 3}",
            10.0 * i,
            10.0 * i + 5 + i % 7,
            "[S1]a [S2]b",
            "en",
            2 + i % 5,
            "A",
            "B",
            2.0 + i % 3,
            3.0,
            0.05,
            channel_layout="stereo" if i % 4 == 0 else "mono",
            split="dev" if i == 3 else "train",
            quality={"dnsmos_ovrl": 2.8 + 0.05 * i, "cps": 14.0},
        )
        for i in range(12)
    ]
    rejects = [
        Reject(
            "/in/r0.wav",
            "r0",
            "filters",
            "low_dnsmos",
            f"dnsmos_ovrl={2.1 + 0.1 * i:.3f} < 2.8",
            f"r0-d01{i:02d}",
            0.0,
            6.0,
        )
        for i in range(4)
    ]
    rejects += [
        Reject(
            "/in/r1.wav", "r1", "dialogue", "one_speaker", "only A speaks", "r1-d0100", 0.0, 20.0
        ),
        Reject("/in/bad.wav", "bad", "decode", "unreadable", "not audio"),
    ]
    _write_table(out, "recordings", recs)
    _write_table(out, "dialogues", dialogues)
    _write_table(out, "rejects", rejects)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"counters": {"filters": {"items_in": 3, "dropped_low_dnsmos": 4}}}, f)
    return out, recs, dialogues, rejects


def test_report_is_written_with_all_plots_and_numbers(run_dir):
    out, recs, dialogues, _ = run_dir
    path = report.write_report(out)
    assert path == os.path.join(out, "report.html")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for heading in (
        "Hours in and out",
        "Dialogue durations",
        "Turns per dialogue",
        "Speaker balance",
        "DNSMOS P.835 OVRL",
        "Drops by stage and reason",
        "Counters (metrics.json)",
    ):
        assert f"<h2>{heading}</h2>" in text
    assert text.count("<svg") >= 6
    # opens offline: no scripts, no external files, no remote fetches
    assert not re.search(r"<script|<link|<img|@import|url\((?!#)|src=|href=\"(?!#)", text)
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))  # figures inlined together keep distinct ids
    hours_in = sum(r.duration_s for r in recs) / 3600
    hours_out = sum(d.duration for d in dialogues) / 3600
    assert f"<td>{hours_in:.4g}</td>" in text and f"<td>{hours_out:.4g}</td>" in text
    assert "<td>filters</td><td>low_dnsmos</td><td>4</td>" in text
    assert "<td>decode</td><td>unreadable</td><td>1</td>" in text
    assert "counters.filters.dropped_low_dnsmos" in text


def test_report_without_matplotlib_still_draws_svg(run_dir, monkeypatch):
    out, *_ = run_dir
    monkeypatch.setattr(report._Plotter, "__init__", lambda self: setattr(self, "_plt", None))
    text = report.build_report(out)
    assert "Plots: builtin-svg" in text and text.count("<svg") >= 6


def test_tables_are_found_in_any_writer_layout(run_dir, tmp_path):
    out, recs, dialogues, _ = run_dir
    rows = report.read_table(out, "dialogues")
    assert len(rows) == len(dialogues)
    assert report._quality(rows[0]) == pytest.approx(dialogues[0].quality)
    assert report.read_table(str(tmp_path / "nothing"), "dialogues") == []
    flat = os.path.join(str(tmp_path), "flat")
    os.makedirs(flat)
    os.replace(
        os.path.join(out, "recordings", "part-00000-of-00001.parquet"),
        os.path.join(flat, "recordings-00000-of-00001.parquet"),
    )
    assert len(report.read_table(flat, "recordings")) == len(recs)


def test_empty_run_still_gives_a_report(tmp_path):
    text = report.build_report(str(tmp_path))
    assert "<h2>Hours in and out</h2>" in text and "no data" in text
