"""report.html: written from a run's tables, with clips a curator can play, thresholds drawn, a
per-recording table, and no path of the machine that wrote it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import av
import pytest

from pipeline.dialogue import DialogueOptions
from pipeline.filters import FilterOptions
from pipeline.output import report
from pipeline.output.report.selection import ReportOptions, choose_kept, choose_rejects
from pipeline.output.report.text import scrub_paths
from tests.pipeline.report_fixtures import RECORDING_S, write_run


@pytest.fixture()
def run_dir(tmp_path):
    return write_run(tmp_path)


def _audio_tags(text: str) -> list[dict[str, str]]:
    return [
        dict(re.findall(r'([\w-]+)="([^"]*)"', tag)) for tag in re.findall(r"<audio [^>]*>", text)
    ]


def _ogg_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return sum(f.samples for f in container.decode(audio=0)) / 48000


def test_report_plays_kept_and_rejected_clips_with_transcripts_and_timelines(run_dir):
    out, recs, dialogues, rejects = run_dir
    path = report.write_report(str(out))
    assert path == str(out / "report.html")
    text = Path(path).read_text(encoding="utf-8")
    for heading in (
        "Listen: kept dialogues",
        "Listen: rejected items",
        "Whole-file rejects (no clip)",
        "Distributions and thresholds",
        "Per recording",
        "Hours in and out",
        "Drops by stage and reason",
        "Counters (metrics.json)",
    ):
        assert f"<h2>{heading}</h2>" in text
    tags = _audio_tags(text)
    kinds = [t["data-kind"] for t in tags]
    # best, median and worst kept; low_dnsmos (4 rejects) twice, one_speaker once
    assert kinds == ["kept"] * 3 + ["rejected"] * 3
    ranked = sorted(dialogues, key=lambda d: -d.quality["dnsmos_ovrl"])
    assert [t["data-item"] for t in tags[:3]] == [
        ranked[0].dialogue_id,
        ranked[6].dialogue_id,  # the median of 12: index round(5.5) = 6
        ranked[-1].dialogue_id,
    ]
    for tag in tags:  # relative links to files that exist and decode
        assert tag["src"].startswith("report_media/") and tag["preload"] == "metadata"
        assert _ogg_seconds(out / tag["src"]) > 1.0
    assert sorted(os.listdir(out / "report_media")) == sorted(
        os.path.basename(t["src"]) for t in tags
    )
    # a kept dialogue's clip is its span; a reject's has 1 s of context on each side
    assert _ogg_seconds(out / tags[0]["src"]) == pytest.approx(ranked[0].duration, abs=0.05)
    assert _ogg_seconds(out / tags[3]["src"]) == pytest.approx(6.0 + 2.0, abs=0.05)
    # transcripts coloured by role, a timeline per clip with the span shaded
    assert text.count('class="turn s1"') >= 3 and text.count('class="turn s2"') >= 3
    assert f"first of {ranked[0].dialogue_id}" in text
    assert text.count('class="span"') == len(tags)
    # whole-file rejects are listed, never played, and their paths are cut to the file name
    assert "<td>bad.wav</td><td>decode</td><td>unreadable</td>" in text
    assert "No such file: &#x27;…/bad.wav&#x27;" in text


def test_report_holds_no_absolute_path_and_is_titled_by_the_run(run_dir):
    out, recs, *_ = run_dir
    text = Path(report.write_report(str(out))).read_text(encoding="utf-8")
    assert "<title>Curation report: my-run</title>" in text
    home = os.path.expanduser("~")
    for forbidden in (str(out.resolve()), str(out.parent), recs[0].uri):
        assert forbidden not in text
    assert home == "/" or home not in text
    # nothing to fetch but the clips beside it: no scripts, styles, fonts or remote URLs
    assert not re.search(
        r"<script|<link|<img|@import|url\(|https?://(?!www\.w3\.org/2000/svg)", text
    )
    srcs = re.findall(r'\ssrc="([^"]*)"', text)
    assert srcs and all(s.startswith("report_media/") for s in srcs)
    ids = re.findall(r'\sid="([^"]+)"', text)
    assert len(ids) == len(set(ids))


def test_thresholds_are_the_runs_options(run_dir):
    out, *_ = run_dir
    text = Path(report.write_report(str(out))).read_text(encoding="utf-8")
    assert "keeps ≥ 2.75 (--min_dnsmos_ovrl)" in text  # the run's value, from its manifest
    d = DialogueOptions()
    assert f"keeps ≤ {d.max_dialogue_s:g} (--max_dialogue_s)" in text  # defaults otherwise
    f = FilterOptions()
    assert f"keeps ≤ {f.max_dialogue_overlap_ratio:g} (--max_dialogue_overlap_ratio)" in text
    assert text.count('class="threshold"') >= 6
    os.remove(out / "run_manifest.json")
    text = report.build_report(str(out))
    assert f"keeps ≥ {f.min_dnsmos_ovrl:g} (--min_dnsmos_ovrl)" in text
    assert "defaults (no readable run_manifest.json)" in text


def test_per_recording_table_has_hours_in_kept_and_dropped_by_reason(run_dir):
    out, recs, dialogues, _ = run_dir
    text = report.build_report(str(out))
    r0 = [d for d in dialogues if d.recording_id == "r0"]
    kept_h = sum(d.duration for d in r0) / 3600
    dropped_h = 4 * 6.0 / 3600
    row = (
        f"<tr><td>r0</td><td>{RECORDING_S / 3600:.4g}</td><td>{100 / 3600:.4g}</td>"
        f"<td>{len(r0)}</td><td>{kept_h:.4g}</td><td></td><td>4 · {dropped_h:.3g} h</td></tr>"
    )
    assert "<th>dialogue/one_speaker</th><th>filters/low_dnsmos</th>" in text
    assert row in text
    hours_in = 3 * RECORDING_S / 3600
    assert f"<td>hours in (audio)</td><td>{hours_in:.4g}</td>" in text
    assert "<td>filters</td><td>low_dnsmos</td><td>4</td>" in text
    assert "filters.dropped_low_dnsmos" in text


def test_clip_count_and_length_are_capped(run_dir):
    out, *_ = run_dir
    opts = ReportOptions(max_clips=2, max_clip_s=2.0, bitrate=16000)
    text = Path(report.write_report(str(out), opts)).read_text(encoding="utf-8")
    tags = _audio_tags(text)
    assert [t["data-kind"] for t in tags] == ["kept", "kept"]
    for tag in tags:
        assert _ogg_seconds(out / tag["src"]) == pytest.approx(2.0, abs=0.05)
    assert "the first 2 s of" in text
    assert "Not sampled (the report holds at most 2 clips)" in text
    # a re-render replaces the clips of the previous one
    report.write_report(str(out), ReportOptions(max_clips=1))
    assert os.listdir(out / "report_media") == ["kept-01.ogg"]


def test_a_recording_that_cannot_be_read_gives_a_note_not_a_player(run_dir):
    out, recs, *_ = run_dir
    for rec in recs:
        os.remove(rec.uri)
    text = Path(report.write_report(str(out))).read_text(encoding="utf-8")
    assert "<audio" not in text and "No clip: the recording cannot be read any more" in text
    assert recs[0].uri not in text and os.path.dirname(recs[0].uri) not in text


def test_tables_are_found_in_any_writer_layout(run_dir, tmp_path):
    out, recs, dialogues, _ = run_dir
    assert len(report.read_table(str(out), "dialogues")) == len(dialogues)
    assert report.read_table(str(tmp_path / "nothing"), "dialogues") == []
    flat = tmp_path / "flat"
    flat.mkdir()
    os.replace(
        out / "recordings" / "part-00000-of-00001.parquet",
        flat / "recordings-00000-of-00001.parquet",
    )
    assert len(report.read_table(str(flat), "recordings")) == len(recs)


def test_empty_run_still_gives_a_report(tmp_path):
    text = Path(report.write_report(str(tmp_path))).read_text(encoding="utf-8")
    assert "<h2>Hours in and out</h2>" in text and "No dialogue was kept." in text
    assert "<audio" not in text


def test_kept_choice_is_best_median_worst_and_rejects_reach_every_reason():
    rows = [
        {
            "dialogue_id": f"d{i}",
            "recording_id": "r",
            "start": i,
            "end": i + 5.0,
            "quality": {"dnsmos_ovrl": v},
        }
        for i, v in enumerate([3.0, 2.9, 3.4, 3.1, 2.85])
    ]
    kept = choose_kept(rows, 3)
    assert [c.item_id for c in kept] == ["d2", "d0", "d4"]  # 3.4, the median 3.0, 2.85
    assert [c.label.split(" ")[0] for c in kept] == ["best", "median", "worst"]

    def reject(reason: str, i: int) -> dict:
        return {
            "stage": "s",
            "reason": reason,
            "recording_id": "r",
            "item_id": f"{reason}{i}",
            "start": float(i),
            "end": i + 1.0,
            "message": "",
        }

    rejects = [reject("a", i) for i in range(5)] + [reject("b", 0), reject("c", 0)]
    rejects.append({**reject("file", 0), "item_id": "", "start": 0.0, "end": 0.0})
    chosen = choose_rejects(rejects, per_reason=2, budget=3)
    assert [c.label for c in chosen] == ["s/a", "s/b", "s/c"]  # one of each before a second
    chosen = choose_rejects(rejects, per_reason=2, budget=10)
    assert [c.item_id for c in chosen] == ["a0", "a4", "b0", "c0"]  # first and last of "a"


def test_paths_are_cut_to_their_last_component():
    assert scrub_paths("open '/home/me/calls/a.wav' failed") == "open '…/a.wav' failed"
    assert scrub_paths("gs://bucket/x/y.mp3, C:\\data\\b.wav") == "…/y.mp3, …/b.wav"
    assert scrub_paths('File "/usr/lib/python3/x.py", line 3') == 'File "…/x.py", line 3'
    assert scrub_paths("24 kb/s and/or 1/2, report_media/kept-01.ogg") == (
        "24 kb/s and/or 1/2, report_media/kept-01.ogg"
    )
