"""The ONNX diarization recipe over one mono array (no Beam, no torch except for GE2E).

segmentation-3.0 over sliding 10 s windows (batched) -> hard local speakers (3 per window, at
most 2 at once) -> their runs stitched across overlapping windows into *units* (turns) -> one
embedding per unit from its clean (non-overlapped) speech -> units clustered into file-wide
speakers on window votes + file-calibrated embedding similarity (:mod:`.clustering`) -> each
speaker's window activity averaged on the frame grid -> hysteresis, gap filling -> segments with
overlap flags. Memory beyond the audio: ~1.8 kB per window, one embedding per unit, and two
float32 ``(units, units)`` vote tables (~1,500 units per hour of conversation: 9 MB each).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.diarization import clustering, segmentation, timeline
from pipeline.diarization.embedding import Embedder
from pipeline.records import SpeakerSegment, SpeechRegion

if TYPE_CHECKING:
    from pipeline.diarize import DiarizeOptions

logger = logging.getLogger(__name__)

_FPS = segmentation.SAMPLE_RATE / segmentation.FRAME_STEP_SAMPLES  # frames per second (~59.26)


@dataclass
class OnnxModels:
    """The models of the ONNX recipe (loaded once per worker)."""

    segmentation: segmentation.SegmentationModel
    embedder: Embedder


@dataclass(frozen=True)
class Diarization:
    """What the recipe returns for one recording.

    Attributes:
        segments: speaker segments, labels ``SPK0..`` by first appearance.
        embeddings: mean embedding per speaker label (speakers with too little clean speech for an
            embedding are absent).
    """

    segments: list[SpeakerSegment]
    embeddings: dict[str, np.ndarray]


def _frames(seconds: float) -> int:
    return round(seconds * _FPS)


def speech_window_mask(starts: np.ndarray, regions: Sequence[SpeechRegion],
                       margin_s: float = 0.5) -> np.ndarray:
    """Which windows (by start sample) overlap a speech region (plus a margin)."""
    keep = np.zeros(len(starts), dtype=bool)
    begin = starts / segmentation.SAMPLE_RATE
    end = begin + segmentation.WINDOW_SAMPLES / segmentation.SAMPLE_RATE
    for region in regions:
        keep |= (begin < region.end + margin_s) & (end > region.start - margin_s)
    return keep


def _clean_spans(local: clustering.LocalRuns, members: np.ndarray, alone: np.ndarray,
                 starts_frames: np.ndarray) -> list[tuple[int, int]]:
    """Global-frame runs where the given local runs' speaker talks alone in its window."""
    frames = []
    for r in members:
        w = local.window[r]
        offset = starts_frames[w]
        inside = alone[w, local.first[r] - offset:local.stop[r] - offset]
        frames.append(local.first[r] + np.flatnonzero(inside))
    if not frames:
        return []
    unique = np.unique(np.concatenate(frames))
    if not len(unique):
        return []
    mask = np.zeros(unique[-1] - unique[0] + 1, dtype=bool)
    mask[unique - unique[0]] = True
    return [(first + int(unique[0]), stop + int(unique[0])) for first, stop in timeline.runs(mask)]


def budget_spans(spans: list[tuple[int, int]], max_frames: int) -> list[tuple[int, int]]:
    """Keep the longest spans up to ``max_frames`` frames in total, returned in time order."""
    chosen, total = [], 0
    for first, stop in sorted(spans, key=lambda s: s[0] - s[1]):
        if total >= max_frames:
            break
        stop = min(stop, first + max_frames - total)
        chosen.append((first, stop))
        total += stop - first
    return sorted(chosen)


def track_audio(samples: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """The audio of global-frame spans, concatenated."""
    pieces = []
    for first, stop in spans:
        a, b = timeline.frame_span_samples(first, stop)
        pieces.append(samples[a:b])
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def _attach_small(labels: np.ndarray, durations: np.ndarray, min_s: float,
                  embeddings: np.ndarray, has_embedding: np.ndarray, same: np.ndarray,
                  diff: np.ndarray, scale: clustering.EmbeddingScale) -> np.ndarray:
    """Give the units of speakers with under ``min_s`` of speech to the best larger speaker.

    "Best" is the merge score of :func:`clustering.cluster_units` (votes + embedding); a small
    speaker every larger one is voted different from is dropped (label -1): a voice that only a
    few windows heard, against all the others.
    """
    valid = labels >= 0
    if not valid.any():
        return labels
    centroids, has_k, _, same_k, diff_k = clustering.cluster_sums(
        labels, embeddings, durations, has_embedding, same, diff)
    totals = np.bincount(labels[valid], weights=durations[valid], minlength=len(centroids))
    big = totals >= min_s
    if big.all() or not big.any():
        return labels
    out = labels.copy()
    for k in np.flatnonzero(~big):
        score = (same_k[k] - diff_k[k]) / (same_k[k] + diff_k[k] + 1.0)
        score = score + np.where(has_k & has_k[k], scale.evidence(centroids @ centroids[k]), 0.0)
        allowed = big & (diff_k[k] - same_k[k] < clustering.BLOCK_MARGIN)
        score = np.where(allowed, score, -np.inf)
        out[labels == k] = int(np.argmax(score)) if np.isfinite(score).any() else -1
    return _renumber(out)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Labels ``0..K-1`` in order of first unit, ``-1`` kept."""
    out = np.full(len(labels), -1, dtype=np.int64)
    valid = labels >= 0
    if valid.any():
        _, first, inverse = np.unique(labels[valid], return_index=True, return_inverse=True)
        out[valid] = np.argsort(np.argsort(first))[inverse]
    return out


def _merge_clusters(labels: np.ndarray, embeddings: np.ndarray, has_embedding: np.ndarray,
                    clean_s: np.ndarray, same: np.ndarray, diff: np.ndarray,
                    scale: clustering.EmbeddingScale, opts: DiarizeOptions) -> np.ndarray:
    """A second clustering pass over whole clusters, with the votes of every unit.

    The first pass clusters embedded units only; once the short units have joined, the votes
    between clusters are complete and their centroids rest on more speech.
    """
    valid = labels >= 0
    if not valid.any():
        return labels
    centroids, has_k, weights_k, same_k, diff_k = clustering.cluster_sums(
        labels, embeddings, clean_s, has_embedding, same, diff)
    np.fill_diagonal(same_k, 0.0)
    np.fill_diagonal(diff_k, 0.0)
    merged = clustering.cluster_units(
        centroids, has_k, weights_k, same_k, diff_k, scale, num_speakers=opts.num_speakers,
        min_speakers=opts.min_speakers or 1, max_speakers=opts.max_speakers)
    return _renumber(np.where(valid, merged[np.maximum(labels, 0)], -1))


def diarize_array(samples: np.ndarray, opts: DiarizeOptions, models: OnnxModels,
                  recording_id: str = "",
                  speech: Sequence[SpeechRegion] | None = None) -> Diarization:
    """Diarize one mono 16 kHz array with the ONNX recipe.

    Args:
        samples: float32 audio, shape ``(n,)``, 16 kHz.
        opts: the stage options (window step, thresholds, speaker counts).
        models: segmentation model and embedder.
        recording_id: written into the segments.
        speech: VAD regions; windows that do not overlap any are skipped (not segmented).
            ``None`` segments every window.

    Returns:
        segments and per-speaker embeddings.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"diarize_array wants mono samples of shape (n,), got {samples.shape}")
    step_frames = segmentation.window_step_frames(opts.diar_window_step_s)
    starts = segmentation.window_starts(len(samples), step_frames)
    keep = (speech_window_mask(starts, speech) if speech is not None
            else np.ones(len(starts), dtype=bool))
    starts = starts[keep]
    if not len(starts):
        return Diarization([], {})
    activity = np.zeros((len(starts), segmentation.FRAMES_PER_WINDOW,
                         segmentation.NUM_LOCAL_SPEAKERS), dtype=bool)
    for first, batch in segmentation.iter_window_batches(samples, starts, opts.diar_batch_windows):
        log_probs = models.segmentation(batch)
        activity[first:first + len(batch)] = segmentation.powerset_to_multilabel(log_probs) > 0.5
    starts_frames = starts // segmentation.FRAME_STEP_SAMPLES
    local, run_labels, embeddings = _speakers(samples, activity, starts_frames, opts,
                                              models.embedder)
    return _reconstruct(samples, local, run_labels, starts_frames, embeddings, opts,
                        recording_id)


def _speakers(samples: np.ndarray, activity: np.ndarray, starts_frames: np.ndarray,
              opts: DiarizeOptions, embedder: Embedder):
    """File-wide speaker per local run, and the mean embedding of each speaker.

    Returns:
        ``(local runs, speaker index per run (-1 = none), {speaker index: embedding})``.
    """
    local = clustering.local_runs(activity, starts_frames)
    if not len(local):
        return local, np.zeros(0, dtype=np.int64), {}
    units = clustering.stitch_runs(local, starts_frames, segmentation.FRAMES_PER_WINDOW,
                                   min_agreement=opts.diar_stitch_agreement,
                                   min_common_frames=_frames(opts.diar_stitch_min_s))
    num_units = int(units.max()) + 1
    same, diff = clustering.vote_matrices(
        clustering.window_votes(local, units, cap_frames=_frames(1.0)), num_units)
    alone = activity.sum(axis=2) == 1
    order = np.argsort(units, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(units[order])) + 1)
    spans = [_clean_spans(local, m, alone, starts_frames) for m in members]
    clean_s = np.array([sum(b - a for a, b in s) for s in spans]) / _FPS
    durations = np.array([local.stop[m].max() - local.first[m].min() for m in members]) / _FPS
    has = clean_s >= opts.diar_min_embedding_s
    waves = [track_audio(samples, budget_spans(spans[u], _frames(opts.diar_max_embedding_s)))
             for u in np.flatnonzero(has)]
    rows = embedder.embed(waves) if waves else np.zeros((0, 1), dtype=np.float32)
    embeddings = np.zeros((num_units, rows.shape[1]), dtype=np.float32)
    embeddings[has] = rows
    default = clustering.EmbeddingScale(center=1.0 - opts.diar_cluster_threshold, width=0.1)
    scale = clustering.calibrate(embeddings @ embeddings.T, same, diff, has, default)
    labels = np.full(num_units, -1, dtype=np.int64)
    anchors = np.flatnonzero(has) if has.any() else np.arange(num_units)
    labels[anchors] = clustering.cluster_units(
        embeddings[anchors], has[anchors], clean_s[anchors], same[np.ix_(anchors, anchors)],
        diff[np.ix_(anchors, anchors)], scale, num_speakers=opts.num_speakers,
        min_speakers=opts.min_speakers or 1, max_speakers=opts.max_speakers)
    labels = clustering.assign_by_votes(labels, same, diff)
    labels = _merge_clusters(labels, embeddings, has, clean_s, same, diff, scale, opts)
    if not opts.num_speakers:
        labels = _attach_small(labels, durations, opts.diar_min_speaker_s, embeddings, has,
                               same, diff, scale)
    logger.debug("%d local runs -> %d units (%d embedded), scale %s -> %d speakers",
                 len(local), num_units, int(has.sum()), scale, int(labels.max()) + 1)
    speaker_embeddings = {}
    for k in range(int(labels.max()) + 1):
        weight = np.where((labels == k) & has, clean_s, 0.0)
        if weight.sum() > 0:
            mean = (embeddings * weight[:, None]).sum(axis=0)
            speaker_embeddings[k] = (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)
    return local, labels[units], speaker_embeddings


def _reconstruct(samples: np.ndarray, local: clustering.LocalRuns, run_labels: np.ndarray,
                 starts_frames: np.ndarray, embeddings: dict[int, np.ndarray],
                 opts: DiarizeOptions, recording_id: str) -> Diarization:
    """Average each speaker's window activity on the frame grid, binarise, cut segments."""
    num_speakers = int(run_labels.max()) + 1 if len(run_labels) else 0
    if num_speakers <= 0:
        return Diarization([], {})
    num_frames = int(starts_frames[-1]) + segmentation.FRAMES_PER_WINDOW
    # per window, a speaker counts once even if two of its local runs were given the same label
    votes = np.zeros((num_frames, num_speakers), dtype=np.float32)
    window_mask = np.zeros((segmentation.FRAMES_PER_WINDOW, num_speakers), dtype=bool)
    order = np.argsort(local.window, kind="stable")
    bounds = np.flatnonzero(np.diff(local.window[order])) + 1
    for group in np.split(order, bounds):
        window_mask[:] = False
        start = starts_frames[local.window[group[0]]]
        for r in group:
            if run_labels[r] >= 0:
                window_mask[local.first[r] - start:local.stop[r] - start, run_labels[r]] = True
        votes[start:start + segmentation.FRAMES_PER_WINDOW] += window_mask
    coverage = np.zeros(num_frames, dtype=np.float32)
    for start in starts_frames:
        coverage[start:start + segmentation.FRAMES_PER_WINDOW] += 1
    score = votes / np.maximum(coverage, 1)[:, None]
    last = max(1, timeline.time_to_frame(len(samples) / segmentation.SAMPLE_RATE))
    score = score[:last]
    binary = np.zeros(score.shape, dtype=bool)
    for k in range(num_speakers):
        mask = timeline.hysteresis(score[:, k], opts.diar_onset, opts.diar_offset)
        mask = timeline.fill_gaps(mask, _frames(opts.diar_min_duration_off_s))
        binary[:, k] = timeline.drop_short(mask, _frames(opts.diar_min_duration_on_s))
    used = np.flatnonzero(binary.any(axis=0))
    names = [f"k{k}" for k in used]
    segments = timeline.activity_to_segments(recording_id, binary[:, used], names,
                                             split_overlap=opts.diar_split_overlap)
    segments, mapping = timeline.relabel_by_first_appearance(segments)
    speaker_embeddings = {mapping[f"k{k}"]: embeddings[k] for k in used
                          if k in embeddings and f"k{k}" in mapping}
    return Diarization(segments, speaker_embeddings)
