"""A Hugging Face-style export of a run's corpus: Parquet shards with the audio, and a card.

Reads a finished ``--output`` directory (its ``lhotse/cuts_{split}.jsonl.gz`` and the
``dialogues``, ``dialogue_turns`` and ``recordings`` tables) and writes::

    <export dir>/data/{split}-{index:05d}.parquet    one row per corpus dialogue
    <export dir>/README.md                           the dataset card (pipeline.output.hf_card)

Each row holds the dialogue clip as FLAC bytes in an ``audio`` column (16-bit, at the corpus
rate, 2 channels for stereo and pseudo-stereo dialogues), with the Hugging Face ``Audio``
feature named in the Parquet schema metadata and in the card, so ``load_dataset(<export dir>)``
decodes it. The clip is the Lhotse cut's audio quantised to 16 bits (:func:`clip_pcm16`).
``datasets`` itself is not needed to write the export.
:func:`pipeline.output.interop.export_to_hf` writes the shards and then the card.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.output.run_files import read_table
from pipeline.records import QUALITY_FIELDS, quality_struct, table_schema

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
DATA_DIR = "data"
PROVENANCE_COLUMNS = ("licence", "source", "metadata")


@dataclass(frozen=True)
class HfExportConfig:
    """What to export and where.

    Attributes:
        output_dir: a finished run's ``--output``.
        export_dir: where the export goes (default ``<output_dir>/hf``).
        shard_rows: dialogues per Parquet shard.
        row_group_rows: dialogues per Parquet row group (the audio makes rows large).
    """

    output_dir: str
    export_dir: str = ""
    shard_rows: int = 1000
    row_group_rows: int = 64

    def __post_init__(self):
        if self.shard_rows < 1 or self.row_group_rows < 1:
            raise ValueError("shard_rows and row_group_rows must be >= 1")

    @property
    def target(self) -> str:
        return self.export_dir or os.path.join(self.output_dir, "hf")


@dataclass(frozen=True)
class SplitExport:
    """What one split's shards hold."""

    name: str
    num_examples: int
    num_bytes: int
    seconds: float
    shards: tuple[str, ...]


@dataclass(frozen=True)
class HfExport:
    """What an export wrote (the card is written from it)."""

    export_dir: str
    sample_rate: int
    splits: tuple[SplitExport, ...]
    languages: tuple[str, ...]
    seconds_by_licence: dict[str, float] = field(default_factory=dict)
    dialogues_by_licence: dict[str, int] = field(default_factory=dict)
    seconds_by_layout: dict[str, float] = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.splits)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.splits)

    def summary(self) -> dict[str, Any]:
        return {
            "export_dir": self.export_dir,
            "dialogues": self.num_examples,
            "hours": round(self.seconds / 3600, 4),
            "splits": {s.name: s.num_examples for s in self.splits},
        }


# --- schema ------------------------------------------------------------------------------------


def arrow_schema(sample_rate: int):
    """The rows' pyarrow schema, with the Hugging Face features in its metadata."""
    import pyarrow as pa

    # a turn as the dialogue_turns table holds it, less the keys the row already gives
    keys = ("dialogue_id", "index")
    turn = pa.struct([f for f in table_schema("dialogue_turns") if f.name not in keys])
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("text", pa.string()),
            ("duration", pa.float64()),
            ("language", pa.string()),
            ("split", pa.string()),
            ("channel_layout", pa.string()),
            ("num_channels", pa.int64()),
            ("speakers", pa.struct([("s1", pa.string()), ("s2", pa.string())])),
            ("turns", pa.list_(turn)),
            ("quality", pa.struct([(name, pa.float64()) for name in QUALITY_FIELDS])),
            ("recording_id", pa.string()),
            ("source_uri", pa.string()),
            ("source_start", pa.float64()),
            ("source_end", pa.float64()),
            ("source_sample_rate", pa.int64()),
            ("licence", pa.string()),
            ("source", pa.string()),
            ("metadata", pa.string()),
        ]
    )
    features = hf_features(schema, sample_rate)
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def _value_feature(arrow_type) -> dict[str, Any]:
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return {
            arrow_type.field(i).name: _value_feature(arrow_type.field(i).type)
            for i in range(arrow_type.num_fields)
        }
    if pa.types.is_list(arrow_type):
        return {"feature": _value_feature(arrow_type.value_type), "_type": "List"}
    dtype = {"double": "float64", "bool": "bool"}.get(str(arrow_type), str(arrow_type))
    return {"dtype": dtype, "_type": "Value"}


def hf_features(schema, sample_rate: int) -> dict[str, Any]:
    """The ``datasets.Features`` dict (``Features.to_dict()`` form) of the rows."""
    features = {}
    for f in schema:
        if f.name == "audio":
            features[f.name] = {"sampling_rate": sample_rate, "_type": "Audio"}
        else:
            features[f.name] = _value_feature(f.type)
    return features


def _yaml_feature(name: str, feature: dict[str, Any]) -> dict[str, Any]:
    if feature.get("_type") == "Audio":
        return {"name": name, "dtype": {"audio": {"sampling_rate": feature["sampling_rate"]}}}
    if feature.get("_type") == "Value":
        return {"name": name, "dtype": feature["dtype"]}
    if feature.get("_type") == "List":
        inner = feature["feature"]
        if inner.get("_type") == "Value":
            return {"name": name, "list": inner["dtype"]}
        return {"name": name, "list": [_yaml_feature(k, v) for k, v in inner.items()]}
    return {"name": name, "struct": [_yaml_feature(k, v) for k, v in feature.items()]}


def yaml_features(features: dict[str, Any]) -> list[dict[str, Any]]:
    """The features as the card's YAML ``dataset_info.features`` list."""
    return [_yaml_feature(name, feature) for name, feature in features.items()]


# --- rows --------------------------------------------------------------------------------------


def clip_pcm16(cut) -> np.ndarray:
    """The cut's audio (at its sampling rate) quantised to 16 bits, shape ``(channels, samples)``:
    what the export stores; it decodes back to ``clip_pcm16(cut) / 32768``."""
    audio = np.asarray(cut.load_audio(), dtype=np.float64)
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def flac_bytes(pcm: np.ndarray, sample_rate: int) -> bytes:
    """16-bit samples ``(channels, samples)`` as a FLAC file."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm.T, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


@dataclass(frozen=True)
class _RunTables:
    """The rows of a run that the export joins to the cuts, by id."""

    dialogues: dict[str, dict[str, Any]]
    turns: dict[str, list[dict[str, Any]]]
    recordings: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, output_dir: str) -> _RunTables:
        turns: dict[str, list[dict[str, Any]]] = {}
        for t in read_table(output_dir, "dialogue_turns").to_pylist():
            turns.setdefault(t["dialogue_id"], []).append(t)
        return cls(
            dialogues={
                d["dialogue_id"]: d for d in read_table(output_dir, "dialogues").to_pylist()
            },
            turns={k: sorted(v, key=lambda t: t["index"]) for k, v in turns.items()},
            recordings={
                r["recording_id"]: r for r in read_table(output_dir, "recordings").to_pylist()
            },
        )


def _custom(cut) -> dict[str, Any]:
    if cut.custom:
        return cut.custom
    tracks = getattr(cut, "tracks", None) or []
    return (tracks[0].cut.custom or {}) if tracks else {}


def _provenance(dialogue: dict[str, Any], recording: dict[str, Any]) -> dict[str, str]:
    """licence, source and metadata (JSON text) of a dialogue: its row's, else its recording's."""
    out = {}
    for name in PROVENANCE_COLUMNS:
        value = dialogue.get(name) or recording.get(name) or ""
        out[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def export_row(cut, tables: _RunTables, sample_rate: int) -> dict[str, Any]:
    """One dialogue's row: its clip (FLAC), text, turns, speakers, layout, quality, provenance."""
    custom = _custom(cut)
    dialogue = tables.dialogues.get(cut.id, {})
    recording_id = dialogue.get("recording_id") or custom.get("recording_id", "")
    recording = tables.recordings.get(recording_id, {})
    start = float(dialogue.get("start", custom.get("source_start", 0.0)))
    pcm = clip_pcm16(cut)
    turns = [
        {
            "role": t["role"],
            "speaker": t["speaker"],
            "start": round(t["start"] - start, 4),
            "end": round(t["end"] - start, 4),
            "text": t["text"],
            "channel": int(t["channel"]),
        }
        for t in tables.turns.get(cut.id, [])
    ]
    quality = dialogue.get("quality") or quality_struct(custom.get("quality", {}))
    return {
        "id": cut.id,
        "audio": {"bytes": flac_bytes(pcm, sample_rate), "path": f"{cut.id}.flac"},
        "text": dialogue.get("text") or custom.get("text", ""),
        "duration": pcm.shape[1] / sample_rate,
        "language": dialogue.get("language") or custom.get("language") or "",
        "split": custom.get("split") or dialogue.get("split", ""),
        "channel_layout": custom.get("channel_layout", "mono"),
        "num_channels": int(pcm.shape[0]),
        "speakers": {
            "s1": dialogue.get("s1_speaker") or custom.get("s1_speaker", ""),
            "s2": dialogue.get("s2_speaker") or custom.get("s2_speaker", ""),
        },
        "turns": turns,
        "quality": quality,
        "recording_id": recording_id,
        "source_uri": custom.get("source_uri") or recording.get("uri", ""),
        "source_start": start,
        "source_end": float(dialogue.get("end", custom.get("source_end", 0.0))),
        "source_sample_rate": int(
            dialogue.get("sample_rate") or custom.get("source_sample_rate") or 0
        ),
        **_provenance(dialogue, recording),
    }


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _cuts_path(output_dir: str, split: str) -> str:
    return os.path.join(output_dir, "lhotse", f"cuts_{split}.jsonl.gz")


def corpus_sample_rate(output_dir: str) -> int:
    """The corpus rate, from the first cut of any split (``ValueError`` without a corpus)."""
    for split in SPLITS:
        path = _cuts_path(output_dir, split)
        if os.path.exists(path):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    if row.get("type") == "MixedCut":
                        row = row["tracks"][0]["cut"]
                    return int(row["recording"]["sampling_rate"])
    raise ValueError(f"{output_dir} has no corpus cuts (lhotse/cuts_{{split}}.jsonl.gz)")


def _tally(row: dict[str, Any], stats: dict) -> None:
    licence = row["licence"] or "unknown"
    stats["licence_s"][licence] = stats["licence_s"].get(licence, 0.0) + row["duration"]
    stats["licence_n"][licence] = stats["licence_n"].get(licence, 0) + 1
    layout = row["channel_layout"]
    stats["layout_s"][layout] = stats["layout_s"].get(layout, 0.0) + row["duration"]
    if row["language"]:
        stats["languages"].add(row["language"])


def _write_split(
    config: HfExportConfig, split: str, tables: _RunTables, sample_rate: int, stats: dict
) -> SplitExport | None:
    """Write one split's shards (rows streamed: one row group in memory at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lhotse import CutSet

    path = _cuts_path(config.output_dir, split)
    if not os.path.exists(path):
        return None
    schema = arrow_schema(sample_rate)
    rows = (export_row(c, tables, sample_rate) for c in CutSet.from_file(path))
    shards: list[str] = []
    count, nbytes, seconds = 0, 0, 0.0
    while True:
        writer = None
        try:
            for batch in _batches(itertools.islice(rows, config.shard_rows), config.row_group_rows):
                if writer is None:
                    shards.append(
                        os.path.join(config.target, DATA_DIR, f"{split}-{len(shards):05d}.parquet")
                    )
                    writer = pq.ParquetWriter(shards[-1], schema)
                for row in batch:
                    _tally(row, stats)
                    seconds += row["duration"]
                table = pa.Table.from_pylist(batch, schema=schema)
                writer.write_table(table)
                count += table.num_rows
                nbytes += table.nbytes
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            break
    if not count:
        return None
    return SplitExport(split, count, nbytes, seconds, tuple(shards))


def write_shards(config: HfExportConfig) -> HfExport:
    """Write the Parquet shards of a finished run's corpus; returns what was written (the card,
    :func:`pipeline.output.hf_card.write_card`, is written from it).

    Raises:
        ValueError: the run wrote no corpus cuts.
    """
    sample_rate = corpus_sample_rate(config.output_dir)
    data_dir = os.path.join(config.target, DATA_DIR)
    os.makedirs(data_dir, exist_ok=True)
    for stale in os.listdir(data_dir):  # a re-export replaces the shards
        if stale.endswith(".parquet"):
            os.remove(os.path.join(data_dir, stale))
    tables = _RunTables.read(config.output_dir)
    stats: dict = {"licence_s": {}, "licence_n": {}, "layout_s": {}, "languages": set()}
    splits = tuple(
        s
        for s in (_write_split(config, name, tables, sample_rate, stats) for name in SPLITS)
        if s is not None
    )
    export = HfExport(
        export_dir=config.target,
        sample_rate=sample_rate,
        splits=splits,
        languages=tuple(sorted(stats["languages"])),
        seconds_by_licence=dict(sorted(stats["licence_s"].items())),
        dialogues_by_licence=dict(sorted(stats["licence_n"].items())),
        seconds_by_layout=dict(sorted(stats["layout_s"].items())),
    )
    logger.info(
        "hugging face export: %d dialogues (%.3f h) in %s",
        export.num_examples,
        export.seconds / 3600,
        config.target,
    )
    return export
