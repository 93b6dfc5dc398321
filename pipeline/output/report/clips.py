"""The report's audio: each chosen span cut from its recording and written as a small Opus file.

Clips are mono, 16 kHz (the analysis rate), Opus in Ogg at ``ReportOptions.bitrate`` (24 kb/s:
about 3 kB per second, so the 20 clips of at most 30 s stay under 2 MB); Chromium and Firefox
play Ogg Opus. Only the span is decoded (:func:`core.audio_io.decode_span`), never a whole
recording. A recording that cannot be read any more (moved, deleted, another machine's path)
gives no clip, and the report says why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from core.audio_io import DecodeError, decode_span

from .run_data import Row
from .selection import KEPT, ClipChoice, ReportOptions
from .text import scrub_paths

logger = logging.getLogger(__name__)

CLIP_RATE = 16000
CLIP_EXTENSION = ".ogg"


@dataclass(frozen=True)
class ClipAudio:
    """The audio of one :class:`ClipChoice`.

    Attributes:
        clip_id: the choice's id.
        start, end: the recording time the clip plays.
        truncated: the item was longer than the clip (``max_clip_s``).
        src: the clip's path relative to the report (``""`` when there is no audio).
        missing: why there is no audio (``""`` when there is).
        size_bytes: the encoded file's size.
    """

    clip_id: str
    start: float
    end: float
    truncated: bool
    src: str = ""
    missing: str = ""
    size_bytes: int = 0


def clip_span(
    choice: ClipChoice, duration_s: float | None, opts: ReportOptions
) -> tuple[float, float, bool]:
    """The recording time a choice plays: a kept dialogue as it is (it is already padded), a
    rejected span with ``reject_context_s`` around it; at most ``max_clip_s`` from its start."""
    pad = 0.0 if choice.kind == KEPT else opts.reject_context_s
    start = max(0.0, choice.start - pad)
    end = choice.end + pad
    if duration_s:
        end = min(end, duration_s)
    truncated = end - start > opts.max_clip_s
    return start, min(end, start + opts.max_clip_s), truncated


def encode_opus(samples: np.ndarray, path: str, bitrate: int) -> None:
    """Write mono float32 ``samples`` at :data:`CLIP_RATE` to ``path`` as Opus in Ogg."""
    import av

    mono = np.ascontiguousarray(np.clip(samples, -1.0, 1.0).astype(np.float32)[None, :])
    with av.open(path, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=CLIP_RATE, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
        frame.sample_rate = CLIP_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def render_clip(
    choice: ClipChoice,
    recording: Row | None,
    media_dir: str | None,
    media_prefix: str,
    opts: ReportOptions,
) -> ClipAudio:
    """Cut, encode and write one clip into ``media_dir`` (``None``: nothing written)."""
    duration = float(recording["duration_s"]) if recording and recording.get("duration_s") else None
    start, end, truncated = clip_span(choice, duration, opts)
    base = ClipAudio(choice.clip_id, start, end, truncated)
    uri = (recording or {}).get("uri") or choice.row.get("uri")
    if media_dir is None:
        return replace(base, missing="clips are not rendered in this view")
    if not uri:
        return replace(base, missing="the recording's location is unknown")
    import av

    try:
        audio = decode_span(uri, start, end, CLIP_RATE)
    except (DecodeError, OSError, ValueError, av.error.FFmpegError) as exc:
        logger.warning("report: no clip for %s: %s", choice.item_id, exc)
        reason = f"the recording cannot be read any more ({scrub_paths(str(exc))})"
        return replace(base, missing=reason)
    if audio.size == 0:
        return replace(base, missing="no audio in this span")
    name = choice.clip_id + CLIP_EXTENSION
    path = os.path.join(media_dir, name)
    try:  # a clip that cannot be written costs its player, never the run's report
        encode_opus(audio.mean(axis=0), path, opts.bitrate)
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        logger.warning("report: cannot encode the clip of %s: %s", choice.item_id, exc)
        if os.path.exists(path):
            os.remove(path)
        return replace(base, missing=f"the clip could not be encoded ({scrub_paths(str(exc))})")
    return replace(base, src=f"{media_prefix}/{name}", size_bytes=os.path.getsize(path))


def render_clips(
    choices: Sequence[ClipChoice],
    recordings: Mapping[str, Row],
    media_dir: str | None,
    media_prefix: str,
    opts: ReportOptions,
) -> dict[str, ClipAudio]:
    """Every chosen clip's audio, by clip id."""
    if media_dir is not None:
        os.makedirs(media_dir, exist_ok=True)
    return {
        c.clip_id: render_clip(c, recordings.get(c.recording_id), media_dir, media_prefix, opts)
        for c in choices
    }
