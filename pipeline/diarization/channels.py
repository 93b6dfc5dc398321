"""2-channel recordings with one speaker per channel (call-centre stereo): detect and label.

Detection looks at short-time levels: in such a file nearly every active frame is dominated by
one channel by many dB (the other holds at most crosstalk), each channel dominates a real share
of the frames, and the two waveforms are barely correlated. A mono file copied to two channels,
or a mix panned across both, fails one of these tests and is diarized as a mono mix instead.
Labelling runs the segmentation model on each channel for speech, keeps the frames where that
channel is not far below the other (crosstalk gate), and calls channel ``c`` speaker ``SPKc``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from pipeline.diarization import segmentation, timeline

if TYPE_CHECKING:
    from pipeline.diarization.options import DiarizeOptions
    from pipeline.diarization.recipe import Diarization, OnnxModels

logger = logging.getLogger(__name__)

_FRAME = segmentation.FRAME_STEP_SAMPLES  # level frames on the diarization frame grid
_FPS = segmentation.SAMPLE_RATE / _FRAME


def frame_levels_db(audio: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each channel on the global frame grid, shape ``(channels, frames)``."""
    channels, num_samples = audio.shape
    num_frames = max(1, timeline.time_to_frame(num_samples / segmentation.SAMPLE_RATE))
    energy = np.cumsum(
        np.concatenate([np.zeros((channels, 1)), audio.astype(np.float64) ** 2], axis=1), axis=1
    )
    first, stop = timeline.frame_span_samples(np.arange(num_frames), np.arange(num_frames) + 1)
    first, stop = np.clip(first, 0, num_samples), np.clip(stop, 0, num_samples)
    mean = (energy[:, stop] - energy[:, first]) / np.maximum(stop - first, 1)
    return 10 * np.log10(mean + 1e-12)


def is_speaker_per_channel(
    audio: np.ndarray,
    *,
    dominance_db: float = 10.0,
    min_dominated: float = 0.7,
    min_share: float = 0.1,
    max_correlation: float = 0.5,
    activity_db: float = 20.0,
) -> bool:
    """Whether a 2-channel file holds one speaker per channel.

    Args:
        audio: ``(channels, samples)`` float audio.
        dominance_db: a frame is dominated by a channel this many dB louder than the other.
        min_dominated: least fraction of active frames that must be dominated by one channel.
        min_share: least fraction of active frames each channel must dominate.
        max_correlation: largest absolute waveform correlation of the two channels.
        activity_db: a frame is active when its louder channel is this far above the quietest
            tenth of frames (and above -60 dBFS).

    Returns:
        ``False`` for anything but 2 channels, too little activity, or a failed test.
    """
    if audio.ndim != 2 or audio.shape[0] != 2:
        return False
    levels = frame_levels_db(audio)
    loud = levels.max(axis=0)
    floor = np.percentile(loud, 10)
    active = (loud > floor + activity_db) & (loud > -60.0)
    if active.sum() < _FPS:  # under one second of activity: nothing to decide on
        return False
    delta = levels[0, active] - levels[1, active]
    first, second = np.mean(delta > dominance_db), np.mean(delta < -dominance_db)
    left, right = audio[0].astype(np.float64), audio[1].astype(np.float64)
    denominator = np.sqrt(np.sum(left**2) * np.sum(right**2))
    correlation = float(np.sum(left * right) / denominator) if denominator > 0 else 1.0
    verdict = bool(
        first + second >= min_dominated
        and min(first, second) >= min_share
        and abs(correlation) <= max_correlation
    )
    logger.debug(
        "speaker per channel: dominated %.2f/%.2f, correlation %.2f -> %s",
        first,
        second,
        correlation,
        verdict,
    )
    return verdict


def channel_speech(
    samples: np.ndarray, model: segmentation.SegmentationModel, step_frames: int, batch_size: int
) -> np.ndarray:
    """Fraction of windows that hear speech (any local speaker) per global frame of one channel."""
    starts, activity = segmentation.segment(samples, model, step_frames, batch_size)
    starts_frames = starts // _FRAME
    num_frames = int(starts_frames[-1]) + segmentation.FRAMES_PER_WINDOW
    votes = np.zeros(num_frames, dtype=np.float32)
    coverage = np.zeros(num_frames, dtype=np.float32)
    for w, start in enumerate(starts_frames):
        votes[start : start + segmentation.FRAMES_PER_WINDOW] += activity[w].any(axis=1)
        coverage[start : start + segmentation.FRAMES_PER_WINDOW] += 1
    return votes / np.maximum(coverage, 1)


def diarize_channels(
    audio: np.ndarray,
    opts: DiarizeOptions,
    models: OnnxModels,
    recording_id: str = "",
    crosstalk_db: float = 15.0,
) -> Diarization:
    """Label each channel's speech as its own speaker (``SPK0`` on channel 0, ``SPK1`` on 1).

    A frame counts as channel ``c``'s speech when the segmentation model hears speech there and
    the channel is at most ``crosstalk_db`` below the other one (so the other party's echo on
    this channel is not taken for this party's speech).
    """
    from pipeline.diarization.recipe import Diarization, budget_spans, track_audio

    step_frames = segmentation.window_step_frames(opts.diar_window_step_s)
    levels = frame_levels_db(audio)
    num_frames = levels.shape[1]
    binary = np.zeros((num_frames, 2), dtype=bool)
    for c in range(2):
        score = channel_speech(audio[c], models.segmentation, step_frames, opts.diar_batch_windows)[
            :num_frames
        ]
        speech = timeline.hysteresis(score, opts.diar_onset, opts.diar_offset)
        speech[: len(score)] &= (
            levels[c, : len(score)] >= levels[1 - c, : len(score)] - crosstalk_db
        )
        speech = timeline.fill_gaps(speech, round(opts.diar_min_duration_off_s * _FPS))
        binary[: len(speech), c] = timeline.drop_short(
            speech, max(1, round(max(opts.diar_min_duration_on_s, 0.1) * _FPS))
        )
    segments = timeline.activity_to_segments(
        recording_id,
        binary,
        ["SPK0", "SPK1"],
        split_overlap=opts.diar_split_overlap,
        channels=[0, 1],
    )
    embeddings = {}
    clean = binary & ~binary[:, ::-1]
    budget = round(opts.diar_max_embedding_s * 3 * _FPS)  # one voice: more than a turn's
    waves = [
        track_audio(audio[c], budget_spans(timeline.runs(clean[:, c]), budget)) for c in range(2)
    ]
    keep = [
        c for c in range(2) if len(waves[c]) >= opts.diar_min_embedding_s * segmentation.SAMPLE_RATE
    ]
    if keep:
        rows = models.embedder.embed([waves[c] for c in keep])
        embeddings = {f"SPK{c}": rows[i] for i, c in enumerate(keep)}
    return Diarization(segments, embeddings)
