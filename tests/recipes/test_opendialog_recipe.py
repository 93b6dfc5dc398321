"""The OpenDialog recipe end to end on the bundled sample: curate → prepare → train (a few steps)
→ synthesize → evaluate, as a user runs it (``bash recipes/opendialog/run.sh``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "opendialog" / "run.sh"


def _table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The first table of results.md: model name -> {column: cell}."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != len(header):
            break  # the per-item table starts
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_recipe_runs_every_stage_on_the_sample(tmp_path):
    proc = subprocess.run(
        [
            "bash",
            str(RECIPE),
            "--stage",
            "1",
            "--num-steps",
            "4",
            "--device",
            "cpu",
            "--dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for stage in range(1, 6):
        assert f"[stage {stage}]" in proc.stdout
    prepared = tmp_path / "data" / "prepared"
    for name in ("cuts.jsonl.gz", "zipvoice.tsv", "test_list.tsv", "opendialog/manifest.jsonl"):
        assert (prepared / name).is_file(), name
    items = [line.split("\t") for line in (prepared / "test_list.tsv").read_text().splitlines()]
    assert items and all(len(row) == 6 and row[5].startswith("[S1]") for row in items)
    exp = tmp_path / "exp" / "tiny"
    for name, *_ in items:
        info = sf.info(exp / "samples" / f"{name}.wav")
        assert info.samplerate == 22050 and info.duration > 3.0
        # prompts are each speaker's longest turn: real speech, not a backchannel
        for role in ("S1", "S2"):
            assert sf.info(prepared / "prompts" / f"{name}_{role}.wav").duration >= 0.5
    rows = _table_rows((exp / "results.md").read_text())
    truth, ours = rows["ground truth (curated audio)"], rows["tiny (ours, 4 steps)"]
    # the metric models understand the curated audio itself: its transcript, its two voices
    assert float(truth["WER (%)"]) < 20 and float(truth["Turn acc. (%)"]) >= 80
    assert float(truth["cpSIM"]) > float(truth["cpSIM swapped"])
    assert ours["Params"].endswith("M") and float(ours["RTF"]) > 0
    assert float(ours["WER (%)"]) >= 0 and 0 <= float(ours["cpSIM"]) <= 1
