"""Corpus outputs: Lhotse cuts (mono and 2-channel), optional Lhotse Shar, a ZipVoice TSV.

Input: the filtered ``RecordingWork`` PCollection. Audio never crosses a shuffle: each work is
reduced to a light :class:`CorpusEntry` (records only), entries are grouped by (split, shard), and
the shard writer re-reads audio from the recording URI only when it must (Shar, pseudo-stereo).
Rejects (item level, stage ``corpus``): ``duplicate`` (same decoded audio as another recording,
which is kept), ``audio_unreadable`` (the URI could not be re-read for Shar/pseudo-stereo).
Splits are assigned by recording (a hash of its id), so no recording spans two splits.
Layout under the output directory: ``lhotse/cuts_{split}.jsonl.gz``, ``zipvoice/{split}.tsv``,
``shar/{split}/``, ``audio/{split}/*.flac`` (pseudo-stereo renders), ``corpus.json``.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from core.dialogue_script import starts_with_first_speaker
from core.options import opt
from pipeline import stereo
from pipeline.errors import DUPLICATE
from pipeline.records import (
    Dialogue,
    DialogueTurn,
    Recording,
    RecordingWork,
    Reject,
    SpeakerSegment,
    lhotse_recording_dict,
    quality_measures,
)
from pipeline.stage import REJECTS, StageOutputs, item_reject

logger = logging.getLogger(__name__)

STAGE = "corpus"
AUDIO_UNREADABLE = "audio_unreadable"
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class CorpusOptions:
    """Options of the corpus writer (each field is a command-line flag)."""

    corpus_sample_rate: int = opt(
        24000,
        "sample rate of the corpus audio: cuts are resampled "
        "to it, Shar and pseudo-stereo flac are written at it",
    )
    write_shar: bool = opt(False, "also write Lhotse Shar shards with the segment audio (flac)")
    write_hf: bool = opt(
        False,
        "also write the Hugging Face export to <output>/hf after the run (Parquet shards "
        "with the clips as FLAC, and a dataset card; python -m pipeline.output.interop to-hf)",
    )
    zipvoice_tsv: bool = opt(True, "write ZipVoice TSVs (id, text, wav, start, end)")
    corpus_shards: int = opt(1, "shards per split, written in parallel")
    dev_fraction: float = opt(0.02, "share of recordings in the dev split")
    test_fraction: float = opt(0.02, "share of recordings in the test split")
    split_salt: str = opt("", "salt of the split hash (change it to draw another split)")

    def __post_init__(self):
        if self.corpus_sample_rate < 8000:
            raise ValueError(f"corpus_sample_rate={self.corpus_sample_rate} must be >= 8000")
        if self.corpus_shards < 1:
            raise ValueError(f"corpus_shards={self.corpus_shards} must be >= 1")
        if not (
            0 <= self.dev_fraction
            and 0 <= self.test_fraction
            and self.dev_fraction + self.test_fraction < 1
        ):
            raise ValueError(
                f"dev_fraction={self.dev_fraction} and test_fraction="
                f"{self.test_fraction} must be >= 0 and sum to less than 1"
            )


# --- pure functions ----------------------------------------------------------------------------


def _unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from a string (sha1, not Python's salted ``hash``)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:15], 16) / 16**15


def assign_split(
    recording_id: str, dev_fraction: float, test_fraction: float, salt: str = ""
) -> str:
    """``"test"``, ``"dev"`` or ``"train"`` for a recording, from a hash of its id.

    >>> assign_split("call-0001", 0.0, 0.0)
    'train'
    """
    u = _unit_hash(salt + recording_id)
    if u < test_fraction:
        return "test"
    if u < test_fraction + dev_fraction:
        return "dev"
    return "train"


def split_function(opts: CorpusOptions) -> Callable[[str], str]:
    """``recording_id -> split`` for these options (give it to ``SegmentDialogues``)."""
    return _SplitFn(opts.dev_fraction, opts.test_fraction, opts.split_salt)


@dataclass(frozen=True)
class _SplitFn:
    dev_fraction: float
    test_fraction: float
    salt: str

    def __call__(self, recording_id: str) -> str:
        return assign_split(recording_id, self.dev_fraction, self.test_fraction, self.salt)


def find_duplicates(recordings: Iterable[Recording]) -> dict[str, str]:
    """Recordings whose decoded audio equals another's: ``{duplicate_id: kept_id}``.

    Recordings with the same non-empty ``content_sha1`` are the same audio; the one with the
    smallest ``recording_id`` is kept (deterministic whatever the input order).
    """
    groups: dict[str, list[str]] = {}
    for rec in recordings:
        if rec.content_sha1:
            groups.setdefault(rec.content_sha1, []).append(rec.recording_id)
    out: dict[str, str] = {}
    for ids in groups.values():
        kept = min(ids)
        out.update({rid: kept for rid in set(ids) if rid != kept})
    return out


def duplicate_rejects(
    recording: Recording, dialogues: Sequence[Dialogue], kept_id: str
) -> list[Reject]:
    """One ``duplicate`` reject per dialogue of a recording that duplicates ``kept_id``."""
    return [
        item_reject(
            STAGE, recording, DUPLICATE, f"same audio as {kept_id}", d.dialogue_id, d.start, d.end
        )
        for d in dialogues
    ]


def zipvoice_tsv_line(dialogue_id: str, text: str, wav: str, start: float, end: float) -> str:
    """A ZipVoice custom-data line ``id\\ttext\\twav\\tstart\\tend`` (text must begin with
    ``[S1]``; tabs and newlines in the fields are replaced by spaces)."""
    if not starts_with_first_speaker(text):
        raise ValueError(f"dialogue {dialogue_id}: ZipVoice dialogue text must start with [S1]")
    clean = [" ".join(str(v).split()) for v in (dialogue_id, text, wav)]
    return "\t".join(clean + [f"{start:.3f}", f"{end:.3f}"])


def _finite(quality: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(quality.items()) if math.isfinite(v)}


def lhotse_recording(recording: Recording, path: str | None = None):
    """A Lhotse ``Recording`` for a file: its header when readable locally, else our record
    (:func:`pipeline.records.lhotse_recording_dict`)."""
    from lhotse import Recording as LhotseRecording

    local = (path or recording.uri).removeprefix("file://")
    if "://" not in local and os.path.exists(local):
        try:
            return LhotseRecording.from_file(local, recording_id=recording.recording_id)
        except Exception as exc:  # noqa: BLE001 - any backend error: fall back to our record
            logger.warning("lhotse cannot read %s (%s); using the decoded metadata", local, exc)
    return LhotseRecording.from_dict(lhotse_recording_dict(recording, path))


def dialogue_cut(
    dialogue: Dialogue, turns: Sequence[DialogueTurn], lrec, sample_rate: int, source_uri: str = ""
):
    """The Lhotse cut of one dialogue, resampled to ``sample_rate``.

    Mono dialogues are a ``MonoCut`` (a ``MixedCut`` of the channels when the source has more
    than one); ``stereo`` and ``pseudo_stereo`` dialogues are a 2-channel ``MultiCut`` whose
    supervisions name their channel. One supervision per turn (``speaker`` ``S1``/``S2``,
    ``text``, ``language``; ``custom.speaker_label`` is the file-wide label); the cut's ``custom``
    holds the tagged ``text``, ``quality`` and provenance.

    Args:
        dialogue: the dialogue row.
        turns: its turns (recording time).
        lrec: the Lhotse recording the cut points into (the pseudo-stereo render for those).
        sample_rate: the corpus sample rate.
        source_uri: the original recording URI (provenance, in ``custom``).
    """
    from lhotse import MonoCut, MultiCut, SupervisionSegment
    from lhotse.cut import MixedCut, MixTrack

    rendered = dialogue.channel_layout == stereo.PSEUDO_STEREO
    offset = 0.0 if rendered else dialogue.start
    duration = min(dialogue.duration, lrec.duration - offset)
    two_channel = dialogue.channel_layout in (stereo.STEREO, stereo.PSEUDO_STEREO)
    sups = [
        SupervisionSegment(
            id=f"{dialogue.dialogue_id}-{t.index:03d}",
            recording_id=lrec.id,
            start=round(t.start - dialogue.start, 4),
            duration=round(t.end - t.start, 4),
            channel=t.channel if two_channel else 0,
            text=t.text,
            language=dialogue.language,
            speaker=t.role,
            custom={"speaker_label": t.speaker},
        )
        for t in turns
    ]
    custom = {
        "text": dialogue.text,
        "channel_layout": dialogue.channel_layout,
        "language": dialogue.language,
        "split": dialogue.split,
        "source_sample_rate": dialogue.sample_rate,
        "bandwidth_hz": float(dialogue.bandwidth_hz),
        "quality": _finite(dialogue.quality),
        "s1_speaker": dialogue.s1_speaker,
        "s2_speaker": dialogue.s2_speaker,
        "recording_id": dialogue.recording_id,
        "source_uri": source_uri,
        "source_start": dialogue.start,
        "source_end": dialogue.end,
        "licence": dialogue.licence,
        "source": dialogue.source,
        "metadata": json.loads(dialogue.metadata) if dialogue.metadata else {},
    }
    if two_channel:
        cut = MultiCut(
            id=dialogue.dialogue_id,
            start=offset,
            duration=duration,
            channel=[0, 1],
            recording=lrec,
            supervisions=sups,
            custom=custom,
        )
    elif len(lrec.channel_ids) == 1:
        cut = MonoCut(
            id=dialogue.dialogue_id,
            start=offset,
            duration=duration,
            channel=lrec.channel_ids[0],
            recording=lrec,
            supervisions=sups,
            custom=custom,
        )
    else:  # a mono dialogue from a multi-channel file: the channels mixed, lazily
        tracks = [
            MixTrack(
                cut=MonoCut(
                    id=f"{dialogue.dialogue_id}-ch{c}",
                    start=offset,
                    duration=duration,
                    channel=c,
                    recording=lrec,
                    supervisions=sups if i == 0 else [],
                    custom=custom if i == 0 else None,
                ),
                offset=0.0,
            )
            for i, c in enumerate(lrec.channel_ids)
        ]
        cut = MixedCut(id=dialogue.dialogue_id, tracks=tracks)
    return cut.resample(sample_rate) if cut.sampling_rate != sample_rate else cut


# --- Beam --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusEntry:
    """What the corpus writer keeps of a recording: records only, never audio."""

    recording: Recording
    dialogues: tuple[Dialogue, ...]
    dialogue_turns: tuple[DialogueTurn, ...]
    diarization: tuple[SpeakerSegment, ...] = ()


def to_entry(work: RecordingWork) -> CorpusEntry:
    """Drop the audio (and the tables the corpus does not need) from a work."""
    speakers = {s for d in work.dialogues for s in (d.s1_speaker, d.s2_speaker)}
    needs_regions = any(d.channel_layout == stereo.PSEUDO_STEREO for d in work.dialogues)
    diarization = (
        tuple(s for s in work.diarization if s.speaker in speakers) if needs_regions else ()
    )
    return CorpusEntry(work.recording, work.dialogues, work.dialogue_turns, diarization)


class _DropDuplicatesFn(beam.DoFn):
    """Per content hash: keep the smallest recording id, reject the others' dialogues."""

    def __init__(self):
        super().__init__()
        self.dropped = Metrics.counter(STAGE, f"dropped_{DUPLICATE}")

    def process(self, keyed):
        _, entries = keyed
        entries = sorted(entries, key=lambda e: e.recording.recording_id)
        kept = entries[0]
        yield kept
        for entry in entries[1:]:
            for reject in duplicate_rejects(
                entry.recording, entry.dialogues, kept.recording.recording_id
            ):
                self.dropped.inc()
                yield beam.pvalue.TaggedOutput(REJECTS, reject)


@dataclass(frozen=True)
class ShardSummary:
    """What one shard writer wrote."""

    split: str
    shard: str  # "{index:06d}-{digest}"
    cuts_path: str
    tsv_path: str
    num_dialogues: int
    seconds: float
    seconds_by_layout: tuple[tuple[str, float], ...]


class WriteShardFn(beam.DoFn):
    """Write one (split, shard) group: Lhotse cuts, ZipVoice TSV, and Shar/pseudo-stereo audio."""

    def __init__(self, output_dir: str, opts: CorpusOptions):
        super().__init__()
        self.output_dir = output_dir
        self.opts = opts
        self.written = Metrics.counter(STAGE, "dialogues_written")
        self.written_ms = Metrics.counter(STAGE, "audio_ms_written")
        self.unreadable = Metrics.counter(STAGE, f"dropped_{AUDIO_UNREADABLE}")

    def process(self, keyed):
        (split, index), entries = keyed
        entries = sorted(entries, key=lambda e: e.recording.recording_id)
        digest = hashlib.sha1(
            "\n".join(e.recording.recording_id for e in entries).encode()
        ).hexdigest()[:8]
        shard = f"{index:06d}-{digest}"
        summary, rejects = write_shard(self.output_dir, split, shard, entries, self.opts)
        for reject in rejects:
            self.unreadable.inc()
            yield beam.pvalue.TaggedOutput(REJECTS, reject)
        self.written.inc(summary.num_dialogues)
        self.written_ms.inc(int(summary.seconds * 1000))
        yield summary


def _render_pseudo_stereo(
    entry: CorpusEntry,
    dialogue: Dialogue,
    turns: Sequence[DialogueTurn],
    lrec,
    path: str,
    sample_rate: int,
):
    """Render a mono dialogue into 2 channels at ``sample_rate`` and write it as flac."""
    import soundfile as sf
    from lhotse import MonoCut

    cuts = [
        MonoCut(
            id=f"{dialogue.dialogue_id}-ch{c}",
            start=dialogue.start,
            duration=min(dialogue.duration, lrec.duration - dialogue.start),
            channel=c,
            recording=lrec,
        ).resample(sample_rate)
        for c in lrec.channel_ids
    ]
    mono = np.mean([c.load_audio()[0] for c in cuts], axis=0)
    regions = stereo.role_regions(
        dialogue.start,
        dialogue.end,
        {"S1": dialogue.s1_speaker, "S2": dialogue.s2_speaker},
        entry.diarization,
        turns,
    )
    audio = stereo.render_pseudo_stereo(mono, sample_rate, dialogue.start, regions)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio.T, sample_rate, format="FLAC")


def write_shard(
    output_dir: str, split: str, shard: str, entries: Sequence[CorpusEntry], opts: CorpusOptions
) -> tuple[ShardSummary, list[Reject]]:
    """Write the cuts, TSV lines and audio of one shard (plain Python; the DoFn calls it)."""
    from lhotse import CutSet
    from lhotse.shar import SharWriter

    lhotse_dir = os.path.join(output_dir, "lhotse", "shards")
    tsv_dir = os.path.join(output_dir, "zipvoice", "shards")
    os.makedirs(lhotse_dir, exist_ok=True)
    cuts_path = os.path.join(lhotse_dir, f"cuts_{split}.{shard}.jsonl.gz")
    tsv_path = os.path.join(tsv_dir, f"{split}.{shard}.tsv") if opts.zipvoice_tsv else ""
    rejects: list[Reject] = []
    cuts, lines = [], []
    seconds_by_layout: dict[str, float] = {}
    shar = None
    if opts.write_shar:
        shar_dir = os.path.join(output_dir, "shar", split)
        os.makedirs(shar_dir, exist_ok=True)
        shar = SharWriter(
            shar_dir, fields={"recording": "flac"}, shard_size=None, shard_suffix=f".{shard}"
        )
        shar.__enter__()
    try:
        for entry in entries:
            rec = entry.recording
            turns_by_id: dict[str, list[DialogueTurn]] = {}
            for t in entry.dialogue_turns:
                turns_by_id.setdefault(t.dialogue_id, []).append(t)
            source_lrec = None
            for dialogue in sorted(entry.dialogues, key=lambda d: d.start):
                if dialogue.split != split:  # the corpus split is the authority
                    dialogue = dataclasses.replace(dialogue, split=split)
                turns = sorted(turns_by_id.get(dialogue.dialogue_id, []), key=lambda t: t.index)
                try:
                    if source_lrec is None:
                        source_lrec = lhotse_recording(rec)
                    if dialogue.channel_layout == stereo.PSEUDO_STEREO:
                        wav = os.path.join(
                            output_dir, "audio", split, f"{dialogue.dialogue_id}.flac"
                        )
                        _render_pseudo_stereo(
                            entry, dialogue, turns, source_lrec, wav, opts.corpus_sample_rate
                        )
                        lrec = lhotse_recording(rec, path=wav)
                        tsv_start, tsv_end = 0.0, dialogue.duration
                    else:
                        wav, lrec = rec.uri, source_lrec
                        tsv_start, tsv_end = dialogue.start, dialogue.end
                    cut = dialogue_cut(dialogue, turns, lrec, opts.corpus_sample_rate, rec.uri)
                    if shar is not None:
                        shar.write(cut.to_mono() if type(cut).__name__ == "MixedCut" else cut)
                except Exception as exc:  # noqa: BLE001 - any decoder error drops the dialogue
                    logger.warning("corpus: cannot read audio of %s: %s", dialogue.dialogue_id, exc)
                    rejects.append(
                        item_reject(
                            STAGE,
                            rec,
                            AUDIO_UNREADABLE,
                            f"{type(exc).__name__}: {exc}",
                            dialogue.dialogue_id,
                            dialogue.start,
                            dialogue.end,
                        )
                    )
                    continue
                cuts.append(cut)
                lines.append(
                    zipvoice_tsv_line(dialogue.dialogue_id, dialogue.text, wav, tsv_start, tsv_end)
                )
                seconds_by_layout[dialogue.channel_layout] = (
                    seconds_by_layout.get(dialogue.channel_layout, 0.0) + dialogue.duration
                )
    finally:
        if shar is not None:
            shar.close()
    CutSet.from_cuts(cuts).to_file(cuts_path)
    if tsv_path:
        os.makedirs(tsv_dir, exist_ok=True)
        with open(tsv_path, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    summary = ShardSummary(
        split=split,
        shard=shard,
        cuts_path=cuts_path,
        tsv_path=tsv_path,
        num_dialogues=len(cuts),
        seconds=float(sum(seconds_by_layout.values())),
        seconds_by_layout=tuple(sorted(seconds_by_layout.items())),
    )
    return summary, rejects


def finalize_corpus(output_dir: str, summaries: Sequence[ShardSummary]) -> dict:
    """Merge the shard manifests of each split into ``cuts_{split}.jsonl.gz`` / ``{split}.tsv``.

    Every shard file in the directories is merged (shards of an earlier, resumed run included);
    a dialogue id seen twice is kept once. Writes and returns the ``corpus.json`` summary.
    """
    summary: dict = {"splits": {}}
    for split in SPLITS:
        parts = sorted(
            _glob(os.path.join(output_dir, "lhotse", "shards"), f"cuts_{split}.", ".jsonl.gz")
        )
        if not parts:
            continue
        seen: set[str] = set()
        seconds, by_layout = 0.0, {}
        out_path = os.path.join(output_dir, "lhotse", f"cuts_{split}.jsonl.gz")
        with gzip.open(out_path + ".tmp", "wt", encoding="utf-8") as out:
            for part in parts:
                with gzip.open(part, "rt", encoding="utf-8") as f:
                    for line in f:
                        row = json.loads(line)
                        if row["id"] in seen:
                            continue
                        seen.add(row["id"])
                        out.write(line if line.endswith("\n") else line + "\n")
                        duration = _cut_duration(row)
                        layout = _cut_custom(row).get("channel_layout", "mono")
                        seconds += duration
                        by_layout[layout] = by_layout.get(layout, 0.0) + duration
        os.replace(out_path + ".tmp", out_path)
        entry = {
            "cuts": out_path,
            "num_dialogues": len(seen),
            "hours": seconds / 3600,
            "hours_by_layout": {k: v / 3600 for k, v in sorted(by_layout.items())},
        }
        tsv_parts = sorted(
            _glob(os.path.join(output_dir, "zipvoice", "shards"), f"{split}.", ".tsv")
        )
        if tsv_parts:
            tsv_path = os.path.join(output_dir, "zipvoice", f"{split}.tsv")
            tsv_seen: set[str] = set()
            with open(tsv_path + ".tmp", "w", encoding="utf-8") as out:
                for part in tsv_parts:
                    with open(part, encoding="utf-8") as f:
                        for line in f:
                            key = line.split("\t", 1)[0]
                            if key and key not in tsv_seen:
                                tsv_seen.add(key)
                                out.write(line)
            os.replace(tsv_path + ".tmp", tsv_path)
            entry["zipvoice_tsv"] = tsv_path
        shar_dir = os.path.join(output_dir, "shar", split)
        if os.path.isdir(shar_dir):
            entry["shar_dir"] = shar_dir
        summary["splits"][split] = entry
    summary["shards_written_this_run"] = len(summaries)
    with open(os.path.join(output_dir, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    return summary


def _glob(directory: str, prefix: str, suffix: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return [
        os.path.join(directory, n)
        for n in os.listdir(directory)
        if n.startswith(prefix) and n.endswith(suffix)
    ]


def _cut_custom(row: dict) -> dict:
    if row.get("type") == "MixedCut":
        return row["tracks"][0]["cut"].get("custom") or {}
    return row.get("custom") or {}


def _cut_duration(row: dict) -> float:
    if row.get("type") == "MixedCut":
        return float(row["tracks"][0]["cut"]["duration"])
    return float(row["duration"])


def entries_from_rows(keyed_rows) -> CorpusEntry:
    """``(recording_id, {table: rows})`` (a CoGroupByKey of the table rows) → a corpus entry."""
    _, tables = keyed_rows
    recordings = list(tables["recordings"])
    turns = sorted(
        (DialogueTurn.from_dict(r) for r in tables["dialogue_turns"]),
        key=lambda t: (t.dialogue_id, t.index),
    )
    return CorpusEntry(
        recording=Recording.from_dict(recordings[0]),
        dialogues=tuple(
            sorted(
                (Dialogue.from_dict(_dialogue_fields(r)) for r in tables["dialogues"]),
                key=lambda d: d.dialogue_id,
            )
        ),
        dialogue_turns=tuple(turns),
        diarization=tuple(
            sorted(
                (SpeakerSegment.from_dict(r) for r in tables["diarization"]),
                key=lambda s: (s.start, s.speaker),
            )
        ),
    )


def _dialogue_fields(row: dict) -> dict:
    row = dict(row)
    row.pop("duration", None)
    row["quality"] = quality_measures(row.get("quality"))
    return row


def recording_id_of(row: dict) -> str:
    """The recording a table row belongs to (dialogue turns name it through their dialogue)."""
    if "recording_id" in row:
        return row["recording_id"]
    return row["dialogue_id"].rsplit("-d", 1)[0]


class WriteCorpusEntries(beam.PTransform):
    """Composite: corpus entries (records only, :func:`to_entry`) → corpus files; main output =
    the ``corpus.json`` dict.

    The pipeline feeds it from the table rows of every recording, those processed now and those
    an earlier run finished, so the corpus, its splits and the duplicate check always cover the
    whole output.
    """

    def __init__(self, output_dir: str, opts: CorpusOptions):
        super().__init__()
        self.output_dir = output_dir
        self.opts = opts

    def expand(self, entries_in: beam.PCollection) -> StageOutputs:
        opts, num_shards = self.opts, self.opts.corpus_shards
        split_of = split_function(opts)
        entries = (
            entries_in
            | "KeyByContent"
            >> beam.Map(lambda e: (e.recording.content_sha1 or e.recording.recording_id, e))
            | "GroupByContent" >> beam.GroupByKey()
            | "DropDuplicates" >> beam.ParDo(_DropDuplicatesFn()).with_outputs(REJECTS, main="main")
        )
        shards = (
            entries.main
            | "SkipEmpty" >> beam.Filter(lambda e: len(e.dialogues) > 0)
            | "KeyByShard"
            >> beam.Map(
                lambda e: (
                    (
                        split_of(e.recording.recording_id),
                        int(_unit_hash("shard" + e.recording.recording_id) * num_shards),
                    ),
                    e,
                )
            )
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShards"
            >> beam.ParDo(WriteShardFn(self.output_dir, opts)).with_outputs(REJECTS, main="main")
        )
        output_dir = self.output_dir
        summary = (
            shards.main
            | "CollectShards" >> beam.combiners.ToList()
            | "MergeShards" >> beam.Map(lambda s: finalize_corpus(output_dir, s))
        )
        rejects = (entries[REJECTS], shards[REJECTS]) | "FlattenRejects" >> beam.Flatten()
        return StageOutputs(summary, rejects)
