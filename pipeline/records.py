"""Records that cross stage boundaries, and the schemas of the tables the pipeline writes.

Every record is a frozen dataclass with ``to_dict``/``from_dict``; the Parquet schema of each
table is built here too, so this module is the one source of truth for what the pipeline writes.
Times are float seconds from the start of the recording; ``end`` is stored explicitly because
every table row is read on its own.

Audio travels only in :class:`RecordingWork`, as a :class:`pipeline.audio.RecordingAudio` (the
path and shape of the recording's scratch file: never the samples, never in a table row).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

# re-exported: the records' time base, and the audio a RecordingWork carries
from pipeline.audio import ANALYSIS_SAMPLE_RATE as ANALYSIS_SAMPLE_RATE
from pipeline.audio import RecordingAudio


class _Record:
    """Mixin: dict round trip for flat dataclasses (nested records handled by subclasses)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, row: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Recording(_Record):
    """One decoded input file (a row of the ``recordings`` table).

    Attributes:
        recording_id: deterministic id derived from the URI (``<stem>-<8 hex of sha1(uri)>``).
        uri: where the file was read from.
        sample_rate: the file's original sample rate.
        num_channels: the file's original channel count.
        duration_s: duration in seconds.
        codec: the decoder's codec name.
        content_sha1: sha1 of the decoded 16 kHz int16 audio (detects the same audio under two URIs).
        speech_s: seconds of speech found by VAD (filled by the VAD stage).
        speech_ratio: speech_s / duration_s.
        bandwidth_hz: estimated effective audio bandwidth (highest frequency with real energy).
        licence: the file's licence (``--input_metadata`` listing or sidecar; ``""``: none given).
        source: where the file comes from (same origin).
        metadata: the listing's other fields, a JSON object (``""`` when none).
    """

    recording_id: str
    uri: str
    sample_rate: int
    num_channels: int
    duration_s: float
    codec: str = ""
    content_sha1: str = ""
    speech_s: float = 0.0
    speech_ratio: float = 0.0
    bandwidth_hz: float = 0.0
    licence: str = ""
    source: str = ""
    metadata: str = ""


@dataclass(frozen=True)
class SpeechRegion(_Record):
    """A VAD speech region (a row of the ``speech`` table)."""

    recording_id: str
    start: float
    end: float
    channel: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SpeakerSegment(_Record):
    """Who spoke when (a row of the ``diarization`` table).

    ``speaker`` is file-wide (the same voice has the same label over the whole recording), e.g.
    ``SPK0``; ``overlap`` marks a segment that overlaps another speaker's speech.
    ``channel`` is the source channel for 2-channel inputs with one speaker per channel, else 0.
    """

    recording_id: str
    speaker: str
    start: float
    end: float
    overlap: bool = False
    channel: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Word(_Record):
    """A recognised word with its timing and probability."""

    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass(frozen=True)
class Turn(_Record):
    """One transcribed speaker turn (a row of the ``turns`` table)."""

    recording_id: str
    turn_id: str
    speaker: str
    start: float
    end: float
    text: str
    language: str = ""
    language_prob: float = 0.0
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    words: tuple[Word, ...] = ()
    channel: int = 0
    overlap_s: float = 0.0  # seconds of the turn in which another speaker also talks

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["words"] = [w.to_dict() for w in self.words]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Turn:
        row = dict(row)
        row["words"] = tuple(Word.from_dict(w) for w in row.get("words") or ())
        return super().from_dict(row)


@dataclass(frozen=True)
class DialogueTurn(_Record):
    """One turn inside a dialogue segment (a row of the ``dialogue_turns`` table)."""

    dialogue_id: str
    index: int
    role: str  # "S1" or "S2"
    speaker: str  # file-wide speaker label
    start: float
    end: float
    text: str
    channel: int = 0


@dataclass(frozen=True)
class Dialogue(_Record):
    """A two-speaker dialogue segment (a row of the ``dialogues`` table).

    ``text`` is tagged ``[S1] … [S2] … [S1] …``; ``S1`` is whoever speaks first in the segment.
    ``quality`` holds the filter scores by name (e.g. ``dnsmos_ovrl``, ``cps``).
    ``licence``, ``source`` and ``metadata`` are its recording's (see :class:`Recording`).
    """

    dialogue_id: str
    recording_id: str
    start: float
    end: float
    text: str
    language: str
    num_turns: int
    s1_speaker: str
    s2_speaker: str
    s1_s: float
    s2_s: float
    overlap_ratio: float
    channel_layout: str = "mono"  # "mono" | "stereo" (one speaker per channel) | "pseudo_stereo"
    sample_rate: int = 0
    bandwidth_hz: float = 0.0
    split: str = "train"
    quality: dict[str, float] = field(default_factory=dict)
    licence: str = ""
    source: str = ""
    metadata: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Reject(_Record):
    """Why a file or an item was dropped (a row of the ``rejects`` table).

    File-level rejects have an empty ``item_id``; item-level rejects name the item and its span.
    ``reason`` is a code from :mod:`pipeline.errors`.
    """

    uri: str
    recording_id: str
    stage: str
    reason: str
    message: str = ""
    item_id: str = ""
    start: float = 0.0
    end: float = 0.0

    @property
    def file_level(self) -> bool:
        return not self.item_id


@dataclass(frozen=True)
class RecordingWork:
    """What one recording carries down the fused per-recording chain of stages.

    Stages return ``dataclasses.replace(work, <their field>=...)``. ``audio`` is the decoded
    audio at :data:`ANALYSIS_SAMPLE_RATE`, ``(channels, samples)`` float32 in [-1, 1], read by
    window through :class:`RecordingAudio` (an array given here is wrapped, held in memory).
    """

    recording: Recording
    audio: RecordingAudio = field(compare=False, repr=False)
    speech: tuple[SpeechRegion, ...] = ()
    diarization: tuple[SpeakerSegment, ...] = ()
    turns: tuple[Turn, ...] = ()
    dialogues: tuple[Dialogue, ...] = ()
    dialogue_turns: tuple[DialogueTurn, ...] = ()
    speaker_embeddings: dict[str, np.ndarray] | None = field(
        default=None, compare=False, repr=False
    )
    rejects: tuple[Reject, ...] = ()  # item-level rejects of every stage so far

    TABLE_FIELDS: ClassVar[tuple[str, ...]] = (
        "speech",
        "diarization",
        "turns",
        "dialogues",
        "dialogue_turns",
    )

    def __post_init__(self):
        if not isinstance(self.audio, RecordingAudio):
            object.__setattr__(self, "audio", RecordingAudio.from_array(self.audio))

    @property
    def recording_id(self) -> str:
        return self.recording.recording_id


# --- Parquet schemas --------------------------------------------------------------------------


def _schemas():
    import pyarrow as pa

    word = pa.struct(
        [
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("text", pa.string()),
            ("probability", pa.float64()),
        ]
    )
    provenance = [(name, pa.string()) for name in PROVENANCE_FIELDS]
    return {
        "recordings": pa.schema(
            [
                ("recording_id", pa.string()),
                ("uri", pa.string()),
                ("sample_rate", pa.int64()),
                ("num_channels", pa.int64()),
                ("duration_s", pa.float64()),
                ("codec", pa.string()),
                ("content_sha1", pa.string()),
                ("speech_s", pa.float64()),
                ("speech_ratio", pa.float64()),
                ("bandwidth_hz", pa.float64()),
                *provenance,
            ]
        ),
        "speech": pa.schema(
            [
                ("recording_id", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
                ("channel", pa.int64()),
            ]
        ),
        "diarization": pa.schema(
            [
                ("recording_id", pa.string()),
                ("speaker", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
                ("overlap", pa.bool_()),
                ("channel", pa.int64()),
            ]
        ),
        "turns": pa.schema(
            [
                ("recording_id", pa.string()),
                ("turn_id", pa.string()),
                ("speaker", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
                ("text", pa.string()),
                ("language", pa.string()),
                ("language_prob", pa.float64()),
                ("avg_logprob", pa.float64()),
                ("no_speech_prob", pa.float64()),
                ("compression_ratio", pa.float64()),
                ("words", pa.list_(word)),
                ("channel", pa.int64()),
                ("overlap_s", pa.float64()),
            ]
        ),
        "dialogues": pa.schema(
            [
                ("dialogue_id", pa.string()),
                ("recording_id", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
                ("text", pa.string()),
                ("language", pa.string()),
                ("num_turns", pa.int64()),
                ("s1_speaker", pa.string()),
                ("s2_speaker", pa.string()),
                ("s1_s", pa.float64()),
                ("s2_s", pa.float64()),
                ("overlap_ratio", pa.float64()),
                ("channel_layout", pa.string()),
                ("sample_rate", pa.int64()),
                ("bandwidth_hz", pa.float64()),
                ("split", pa.string()),
                ("quality", pa.struct([(name, pa.float64()) for name in QUALITY_FIELDS])),
                ("duration", pa.float64()),
                *provenance,
            ]
        ),
        "dialogue_turns": pa.schema(
            [
                ("dialogue_id", pa.string()),
                ("index", pa.int64()),
                ("role", pa.string()),
                ("speaker", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
                ("text", pa.string()),
                ("channel", pa.int64()),
            ]
        ),
        "rejects": pa.schema(
            [
                ("uri", pa.string()),
                ("recording_id", pa.string()),
                ("stage", pa.string()),
                ("reason", pa.string()),
                ("message", pa.string()),
                ("item_id", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
            ]
        ),
    }


# The fields of the dialogues table's ``quality`` struct (each float64, null when not measured):
# the filters' measures (pipeline.filters), then the segmentation's (pipeline.dialogue).
QUALITY_FIELDS: tuple[str, ...] = (
    "avg_logprob",
    "no_speech_prob",
    "cps",
    "speech_s",
    "speaker_share",
    "overlap_ratio",
    "bandwidth_hz",
    "dnsmos_ovrl",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_p808",
    "role_margin",
    "role_self_similarity",
    "role_cross_similarity",
    "role_separation",
    "role_part_margin",
    "other_speaker_s",
    "speaker_switches",
)

# Provenance columns of the recordings and dialogues tables (pipeline.provenance)
PROVENANCE_FIELDS: tuple[str, ...] = ("licence", "source", "metadata")

TABLES: tuple[str, ...] = (
    "recordings",
    "speech",
    "diarization",
    "turns",
    "dialogues",
    "dialogue_turns",
    "rejects",
)


def table_schema(table: str):
    """The pyarrow schema of one output table."""
    return _schemas()[table]


def table_row(table: str, record: Any) -> dict[str, Any]:
    """A record as a row of ``table`` (a dialogue's quality as the ``quality`` struct)."""
    row = record.to_dict()
    if table == "dialogues":
        row["quality"] = quality_struct(row["quality"])
        row["duration"] = record.duration
    return row


def quality_struct(quality: dict[str, float] | list[tuple[str, float]]) -> dict[str, float | None]:
    """A dialogue's measures as the ``quality`` struct: every field of :data:`QUALITY_FIELDS`,
    null where it was not measured (or is not finite). A list of pairs (the map column of
    older runs) is accepted too.

    Raises:
        ValueError: a measure that is not a field (add it to ``QUALITY_FIELDS``).
    """
    quality = dict(quality)
    unknown = sorted(set(quality) - set(QUALITY_FIELDS))
    if unknown:
        raise ValueError(f"quality measures {unknown} are not fields of QUALITY_FIELDS")
    out: dict[str, float | None] = {}
    for name in QUALITY_FIELDS:
        value = quality.get(name)
        out[name] = float(value) if value is not None and math.isfinite(value) else None
    return out


def quality_measures(row_quality: dict[str, float | None] | None) -> dict[str, float]:
    """The measured fields of a ``quality`` struct read back (nulls left out)."""
    return {k: float(v) for k, v in (row_quality or {}).items() if v is not None}


def lhotse_recording_dict(recording: Recording, source: str | None = None) -> dict[str, Any]:
    """A Lhotse ``Recording`` (its dict) from our record of a file, without opening the audio.

    Args:
        recording: the decoded file's record (rate, channels, duration).
        source: where the audio is read, default ``recording.uri``: a local path (a
            ``file://`` prefix is dropped) or a URL (Lhotse's ``url`` source).
    """
    source = source or recording.uri
    local = source.removeprefix("file://")
    url = "://" in local
    channels = list(range(recording.num_channels))
    return {
        "id": recording.recording_id,
        "sources": [
            {
                "type": "url" if url else "file",
                "channels": channels,
                "source": source if url else local,
            }
        ],
        "sampling_rate": recording.sample_rate,
        "num_samples": round(recording.duration_s * recording.sample_rate),
        "duration": recording.duration_s,
        "channel_ids": channels,
    }
