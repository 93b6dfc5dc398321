"""A small curation run written table by table, with real audio, for the report's tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.records import (
    Dialogue,
    DialogueTurn,
    Recording,
    Reject,
    SpeakerSegment,
    Turn,
    table_row,
    table_schema,
)
from tests.pipeline.audio_factory import encode_with_pyav, tone

RECORDING_S = 130.0


def _write_table(out: str, table: str, records) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(out, table), exist_ok=True)
    rows = [table_row(table, r) for r in records]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=table_schema(table)),
        os.path.join(out, table, "part-00000-of-00001.parquet"),
    )


def _dialogue(i: int) -> Dialogue:
    start = 10.0 * i
    return Dialogue(
        f"r{i % 3}-d{i:04d}",
        f"r{i % 3}",
        start,
        start + 5 + i % 7,
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


def write_run(tmp_path: Path) -> tuple[Path, list, list, list]:
    """A run of 3 recordings (real 8 kHz audio, so clips can be cut) with 12 dialogues, their
    turns and diarization, span rejects of two reasons and one whole-file reject."""
    out = tmp_path / "my-run"
    audio = tmp_path / "inputs"
    audio.mkdir()
    recs = []
    for i in range(3):
        wav = encode_with_pyav(
            audio / f"r{i}.wav", tone(RECORDING_S, 8000, 1, 200.0 + 50 * i), 8000
        )
        recs.append(Recording(f"r{i}", str(wav), 8000, 1, RECORDING_S, speech_s=100.0))
    dialogues = [_dialogue(i) for i in range(12)]
    dturns, turns, diar = [], [], []
    for d in dialogues:
        mid = (d.start + d.end) / 2
        for k, (role, spk, a, b, text) in enumerate(
            (
                ("S1", "A", d.start, mid, f"first of {d.dialogue_id}"),
                ("S2", "B", mid, d.end, "reply"),
            )
        ):
            dturns.append(DialogueTurn(d.dialogue_id, k, role, spk, a, b, text))
            turns.append(Turn(d.recording_id, f"{d.dialogue_id}-t{k}", spk, a, b, text, "en"))
            diar.append(SpeakerSegment(d.recording_id, spk, a, b))
    diar.append(SpeakerSegment("r0", "C", 0.5, 2.0))
    rejects = [
        Reject(
            recs[0].uri,
            "r0",
            "filters",
            "low_dnsmos",
            f"dnsmos_ovrl={2.1 + 0.1 * i:.3f} < 2.8",
            f"r0-d01{i:02d}",
            1.0 + 20 * i,
            7.0 + 20 * i,
        )
        for i in range(4)
    ]
    rejects += [
        Reject(
            recs[1].uri, "r1", "dialogue", "one_speaker", "only A speaks", "r1-d0100", 0.0, 20.0
        ),
        Reject(
            str(audio / "bad.wav"),
            "bad",
            "decode",
            "unreadable",
            f"cannot open: [Errno 2] No such file: '{audio / 'bad.wav'}'",
        ),
    ]
    for table, rows in (
        ("recordings", recs),
        ("dialogues", dialogues),
        ("dialogue_turns", dturns),
        ("turns", turns),
        ("diarization", diar),
        ("rejects", rejects),
    ):
        _write_table(str(out), table, rows)
    with open(out / "metrics.json", "w") as f:
        json.dump({"filters": {"items_in": 16, "dropped_low_dnsmos": 4}}, f)
    with open(out / "run_manifest.json", "w") as f:
        json.dump({"options": {"output": str(out), "min_dnsmos_ovrl": 2.75}}, f)
    return out, recs, dialogues, rejects
