"""The ONNX diarization recipe over one mono array.

segmentation-3.0 over sliding 10 s windows (batched) -> per-frame speech, overlap and voice-change
shares of the covering windows (:mod:`.pieces`) -> single-speaker pieces, cut at overlap, pauses
and voice changes, split into chunks of at most ``diar_max_chunk_s`` -> one speaker embedding per
chunk (CAM++ by default) -> chunks clustered into file-wide speakers by average linkage at a
threshold fitted once per embedding model on many voices, with cannot-links between voices one
window hears at once (:mod:`.clustering`) -> short chunks join the nearest speaker -> each
window's local speakers take the label of their chunks -> per frame, clustered chunks keep
their label and the rest (overlap, short pieces) is the windows' labelled activity averaged ->
hysteresis, gap filling -> segments with overlap flags.

Nothing is fitted on the file itself, and the segmentation model's "same local speaker" is never
used to join two stretches of speech far apart: two voices that alternate without overlapping
are told apart by their embeddings alone. Memory beyond the audio: ~1.8 kB per window and an
``(n, n)`` float64 + bool matrix for ``n`` chunks (about 1,200 per hour: 13 MB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.audio import MixSignal, as_signal, embed_in_slices
from pipeline.diarization import clustering, pieces, segmentation, timeline
from pipeline.diarization.embedding import Embedder
from pipeline.records import SpeakerSegment, SpeechRegion

if TYPE_CHECKING:
    from pipeline.diarization.options import DiarizeOptions

logger = logging.getLogger(__name__)

_FPS = segmentation.SAMPLE_RATE / segmentation.FRAME_STEP_SAMPLES  # frames per second (~59.26)
_MIN_SHORT_S = 0.25  # shorter chunks are not embedded at all


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


def speech_window_mask(
    starts: np.ndarray, regions: Sequence[SpeechRegion], margin_s: float = 0.5
) -> np.ndarray:
    """Which windows (by start sample) overlap a speech region (plus a margin)."""
    keep = np.zeros(len(starts), dtype=bool)
    begin = starts / segmentation.SAMPLE_RATE
    end = begin + segmentation.WINDOW_SAMPLES / segmentation.SAMPLE_RATE
    for region in regions:
        keep |= (begin < region.end + margin_s) & (end > region.start - margin_s)
    return keep


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


def diarize_array(
    samples: np.ndarray | MixSignal,
    opts: DiarizeOptions,
    models: OnnxModels,
    recording_id: str = "",
    speech: Sequence[SpeechRegion] | None = None,
) -> Diarization:
    """Diarize one mono 16 kHz array with the ONNX recipe.

    Args:
        samples: float32 audio, shape ``(n,)``, 16 kHz (or a recording's mix read by window).
        opts: the stage options (window step, thresholds, speaker counts).
        models: segmentation model and embedder.
        recording_id: written into the segments.
        speech: VAD regions; windows that do not overlap any are skipped (not segmented).
            ``None`` segments every window.

    Returns:
        segments and per-speaker embeddings.
    """
    samples = as_signal(samples)  # an array, or a recording's mix read by window
    if samples.ndim != 1:
        raise ValueError(f"diarize_array wants mono samples of shape (n,), got {samples.shape}")
    step_frames = segmentation.window_step_frames(opts.diar_window_step_s)
    starts = segmentation.window_starts(len(samples), step_frames)
    keep = (
        speech_window_mask(starts, speech)
        if speech is not None
        else np.ones(len(starts), dtype=bool)
    )
    starts = starts[keep]
    if not len(starts):
        return Diarization([], {})
    activity = np.zeros(
        (len(starts), segmentation.FRAMES_PER_WINDOW, segmentation.NUM_LOCAL_SPEAKERS), dtype=bool
    )
    for first, batch in segmentation.iter_window_batches(samples, starts, opts.diar_batch_windows):
        log_probs = models.segmentation(batch)
        activity[first : first + len(batch)] = segmentation.powerset_to_multilabel(log_probs) > 0.5
    starts_frames = starts // segmentation.FRAME_STEP_SAMPLES
    num_frames = min(
        int(starts_frames[-1]) + segmentation.FRAMES_PER_WINDOW,
        max(1, timeline.time_to_frame(len(samples) / segmentation.SAMPLE_RATE)),
    )
    evidence = pieces.frame_evidence(activity, starts_frames, num_frames)
    chunks = [
        c
        for p in pieces.single_speaker_pieces(
            evidence,
            min_pause_frames=_frames(opts.diar_min_pause_s),
            min_change_share=opts.diar_change_share,
        )
        for c in pieces.chunk(*p, _frames(opts.diar_max_chunk_s))
    ]
    chunks = np.array(chunks, dtype=np.int64).reshape(-1, 2)
    labels, centres = _cluster_chunks(
        samples, chunks, activity, starts_frames, opts, models.embedder
    )
    slot_labels = _slot_labels(activity, starts_frames, chunks, labels)
    speaks = labels >= 0  # every embedded chunk (short ones took the nearest speaker)
    if speech is not None and opts.diar_refine_margin > 0 and len(centres) > 1:
        # where a part may end: pauses the VAD hears, and voice changes too weak to cut pieces
        joints = vad_mask(speech, num_frames, _frames(opts.diar_min_pause_s) - 1)
        for frame in pieces.change_points(evidence.change, opts.diar_refine_change_share):
            joints[max(frame - 1, 0) : frame + 1] = False
        grid_joints(joints, chunks, _frames(opts.diar_refine_grid_s))
        chunks, labels, speaks = refine_chunks(
            samples,
            chunks,
            labels,
            speaks,
            centres,
            joints,
            opts.diar_refine_margin,
            models.embedder,
        )
    gate = (
        vad_mask(speech, num_frames, _frames(opts.diar_vad_bridge_s))
        if speech is not None and opts.diar_vad_bridge_s > 0
        else None
    )
    return _reconstruct(
        activity,
        starts_frames,
        slot_labels,
        chunks,
        labels,
        speaks,
        centres,
        num_frames,
        opts,
        recording_id,
        gate,
    )


def refine_chunks(
    samples: np.ndarray,
    chunks: np.ndarray,
    labels: np.ndarray,
    speaks: np.ndarray,
    centres: np.ndarray,
    heard: np.ndarray,
    margin: float,
    embedder: Embedder,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parts of labelled chunks that another speaker said.

    The segmentation windows often bridge a half-second pause, and half of them must hear a
    voice change for a piece to be cut there, so a short reply between or at the end of the
    other person's turns can join their piece and its chunk. Each labelled chunk is split where
    ``heard`` is False (the VAD's pauses and the weak voice changes, see
    ``diar_refine_change_share``); a part of at least ``_MIN_SHORT_S`` whose embedding is closer
    to another speaker's centroid by at least ``margin`` (cosine) takes that speaker (parts of
    more than half the chunk are not tried: they dominate the chunk's own embedding).
    Clustering is not redone: the speakers and their centroids stay; only such parts change
    label. Chunks with no part that changes are returned as they were.

    Returns:
        ``(chunks, labels, speaks)`` with split chunks replaced by their parts.
    """
    parts: list[tuple[int, int, int]] = []  # (chunk index, first, stop)
    for c in np.flatnonzero(speaks):
        first, stop = chunks[c]
        runs = [(first + a, first + b) for a, b in timeline.runs(heard[first:stop])]
        if len(runs) > 1:  # a part of over half the chunk made its embedding: not a candidate
            parts += [
                (c, a, b) for a, b in runs if _frames(_MIN_SHORT_S) <= b - a <= (stop - first) // 2
            ]
    if not parts:
        return chunks, labels, speaks
    embeddings = embed_in_slices(
        embedder.embed, (track_audio(samples, [(a, b)]) for _, a, b in parts)
    )
    sims = embeddings.astype(np.float64) @ centres.T.astype(np.float64)
    moved: dict[int, list[tuple[int, int, int]]] = {}
    for (c, a, b), row in zip(parts, sims):
        best = int(np.argmax(row))
        if best != labels[c] and row[best] - row[labels[c]] >= margin:
            moved.setdefault(int(c), []).append((a, b, best))
    if not moved:
        return chunks, labels, speaks
    out_chunks, out_labels, out_speaks = [], [], []
    for c in range(len(chunks)):
        if c not in moved:
            out_chunks.append(tuple(chunks[c]))
            out_labels.append(labels[c])
            out_speaks.append(speaks[c])
            continue
        first, stop = chunks[c]
        changed = {(a, b): label for a, b, label in moved[c]}
        for a, b in timeline.runs(heard[first:stop]):
            span = (first + a, first + b)
            out_chunks.append(span)
            out_labels.append(changed.get(span, labels[c]))
            out_speaks.append(True)
        logger.debug("chunk %d: %d part(s) moved to another speaker", c, len(moved[c]))
    return (
        np.array(out_chunks, dtype=np.int64).reshape(-1, 2),
        np.array(out_labels, dtype=np.int64),
        np.array(out_speaks, dtype=bool),
    )


def grid_joints(joints: np.ndarray, chunks: np.ndarray, grid_frames: int) -> None:
    """Mark a joint (False) every ``grid_frames`` inside each chunk, none closer than half a
    step to its end, so that the refinement also tries the chunk's stretches of that length:
    a turn that follows another with no pause and no change the windows heard (exchanges of
    one-second turns) is found there. ``grid_frames <= 0`` marks none."""
    if grid_frames <= 0:
        return
    for first, stop in chunks:
        joints[np.arange(first + grid_frames, stop - grid_frames // 2, grid_frames)] = False


def vad_mask(regions: Sequence[SpeechRegion], num_frames: int, bridge_frames: int) -> np.ndarray:
    """Frames inside VAD speech, pauses shorter than ``bridge_frames`` bridged."""
    mask = np.zeros(num_frames, dtype=bool)
    for region in regions:
        mask[timeline.time_to_frame(region.start) : timeline.time_to_frame(region.end) + 1] = True
    return timeline.fill_gaps(mask, bridge_frames)


def _chunk_slots(
    activity: np.ndarray, starts_frames: np.ndarray, chunks: np.ndarray, min_share: float = 0.8
) -> list[tuple[int, int, int]]:
    """``(chunk, window, slot)`` for every window that hears a chunk as one local speaker.

    A chunk belongs to local speaker ``slot`` of window ``w`` when the window covers all of it
    and at least ``min_share`` of its frames have that slot active alone.
    """
    out = []
    frames_per_window = activity.shape[1]
    alone = activity.sum(axis=2) == 1
    for c, (first, stop) in enumerate(chunks):
        lo = np.searchsorted(starts_frames, stop - frames_per_window, side="left")
        hi = np.searchsorted(starts_frames, first, side="right")
        for w in range(lo, hi):
            a, b = first - starts_frames[w], stop - starts_frames[w]
            if a < 0 or b > frames_per_window:
                continue
            counts = (activity[w, a:b] & alone[w, a:b, None]).sum(axis=0)
            slot = int(np.argmax(counts))
            if counts[slot] >= min_share * (b - a):
                out.append((c, w, slot))
    return out


def cannot_links(
    activity: np.ndarray, starts_frames: np.ndarray, chunks: np.ndarray, min_overlap_frames: int
) -> np.ndarray:
    """``(n, n)`` bool: chunks that one window hears as two local speakers who talk at once.

    Two local speakers of a window that are active together for ``min_overlap_frames`` are two
    people; every chunk of the one is then linked apart from every chunk of the other.
    """
    n = len(chunks)
    links = np.zeros((n, n), dtype=bool)
    members: dict[tuple[int, int], list[int]] = {}
    for c, w, slot in _chunk_slots(activity, starts_frames, chunks):
        members.setdefault((w, slot), []).append(c)
    for w in {w for w, _ in members}:
        both = activity[w, :, :, None] & activity[w, :, None, :]
        together = both.sum(axis=0)
        for a in range(activity.shape[2]):
            for b in range(a + 1, activity.shape[2]):
                if together[a, b] >= min_overlap_frames:
                    left, right = members.get((w, a), []), members.get((w, b), [])
                    if left and right:
                        links[np.ix_(left, right)] = True
    return links | links.T


def _cluster_chunks(
    samples: np.ndarray,
    chunks: np.ndarray,
    activity: np.ndarray,
    starts_frames: np.ndarray,
    opts: DiarizeOptions,
    embedder: Embedder,
):
    """Speaker label per chunk (``-1``: none) and each speaker's centroid.

    Chunks of at least ``diar_min_embedding_s`` are clustered; shorter ones (at least
    ``_MIN_SHORT_S``) join the speaker whose centroid they are closest to, which gives their
    windows' local speakers a label when no long chunk does (a backchannel, a first "hello").
    """
    labels = np.full(len(chunks), -1, dtype=np.int64)
    lengths = chunks[:, 1] - chunks[:, 0] if len(chunks) else np.zeros(0, dtype=np.int64)
    embedded = np.flatnonzero(lengths >= _frames(_MIN_SHORT_S))
    long = lengths[embedded] >= _frames(opts.diar_min_embedding_s)
    if not long.any():
        return labels, np.zeros((0, 1), dtype=np.float32)
    waves = (track_audio(samples, [tuple(chunks[c])]) for c in embedded)
    embeddings = embed_in_slices(embedder.embed, waves).astype(np.float64)
    weights = lengths[embedded] / _FPS
    rows = embedded[long]
    links = (
        cannot_links(activity, starts_frames, chunks[rows], _frames(opts.diar_cannot_link_s))
        if opts.diar_cannot_link_s > 0
        else None
    )
    threshold = opts.diar_cluster_threshold or clustering.THRESHOLDS.get(embedder.name, 0.5)
    found = clustering.constrained_ahc(
        embeddings[long],
        weights[long],
        threshold,
        cannot_link=links,
        num_speakers=opts.num_speakers,
        min_speakers=opts.min_speakers or 1,
        max_speakers=opts.max_speakers,
    )
    if not opts.num_speakers:
        found = clustering.absorb_small(
            found,
            embeddings[long],
            weights[long],
            opts.diar_min_speaker_s,
            links,
            min_similarity=threshold - clustering.ABSORB_MARGIN,
        )
    centres = clustering.centroids(embeddings[long], weights[long], found)
    labels[rows] = found
    short = embedded[~long]
    if len(short):
        labels[short] = np.argmax(embeddings[~long] @ centres.T, axis=1)
    logger.debug(
        "%d chunks (%d clustered, %d short) -> %d speakers at threshold %.2f",
        len(chunks),
        len(rows),
        len(short),
        int(found.max()) + 1,
        threshold,
    )
    return labels, centres.astype(np.float32)


def _slot_labels(
    activity: np.ndarray, starts_frames: np.ndarray, chunks: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """File-wide speaker of each local speaker of each window, ``(W, L)`` (``-1``: unknown).

    A local speaker takes the label that most of its embedded chunks' frames carry; two local
    speakers of one window never take the same label (the stronger claim wins).
    """
    num_windows, _, num_slots = activity.shape
    out = np.full((num_windows, num_slots), -1, dtype=np.int64)
    if not len(labels) or labels.max() < 0:
        return out
    support = np.zeros((num_windows, num_slots, int(labels.max()) + 1))
    lengths = chunks[:, 1] - chunks[:, 0]
    for c, w, slot in _chunk_slots(activity, starts_frames, chunks):
        if labels[c] >= 0:
            support[w, slot, labels[c]] += lengths[c]
    for w in np.flatnonzero(support.sum(axis=(1, 2)) > 0):
        table = support[w].copy()
        while table.max() > 0:
            slot, label = np.unravel_index(int(np.argmax(table)), table.shape)
            out[w, slot] = label
            table[slot, :] = 0
            table[:, label] = 0
    return out


def _reconstruct(
    activity: np.ndarray,
    starts_frames: np.ndarray,
    slot_labels: np.ndarray,
    chunks: np.ndarray,
    labels: np.ndarray,
    speaks: np.ndarray,
    centres: np.ndarray,
    num_frames: int,
    opts: DiarizeOptions,
    recording_id: str,
    gate: np.ndarray | None = None,
) -> Diarization:
    """Per-frame speaker scores: clustered chunks speak for themselves; everything else
    (overlap, short pieces) is the windows' labelled local activity averaged over the windows
    that cover it. Then hysteresis, gap filling, segments with overlap flags."""
    num_speakers = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    if num_speakers <= 0:
        return Diarization([], {})
    frames_per_window = activity.shape[1]
    votes = np.zeros((num_frames, num_speakers), dtype=np.float32)
    coverage = np.zeros(num_frames, dtype=np.float32)
    for w, start in enumerate(starts_frames):
        stop = min(start + frames_per_window, num_frames)
        coverage[start:stop] += 1
        for slot in np.flatnonzero(slot_labels[w] >= 0):
            votes[start:stop, slot_labels[w, slot]] += activity[w, : stop - start, slot]
    score = votes / np.maximum(coverage, 1)[:, None]
    for (first, stop), label, own in zip(chunks, labels, speaks):
        if own:
            score[first:stop] = 0.0
            score[first:stop, label] = 1.0
    if gate is not None:  # the segmentation model bridges pauses the VAD hears as silence
        score[~gate[: len(score)]] = 0.0
    binary = np.zeros(score.shape, dtype=bool)
    for k in range(num_speakers):
        mask = timeline.hysteresis(score[:, k], opts.diar_onset, opts.diar_offset)
        mask = timeline.fill_gaps(mask, _frames(opts.diar_min_duration_off_s))
        binary[:, k] = timeline.drop_short(mask, _frames(opts.diar_min_duration_on_s))
    used = np.flatnonzero(binary.any(axis=0))
    names = [f"k{k}" for k in used]
    segments = timeline.activity_to_segments(
        recording_id, binary[:, used], names, split_overlap=opts.diar_split_overlap
    )
    segments, mapping = timeline.relabel_by_first_appearance(segments)
    speaker_embeddings = {
        mapping[f"k{k}"]: centres[k] for k in used if k < len(centres) and f"k{k}" in mapping
    }
    return Diarization(segments, speaker_embeddings)
