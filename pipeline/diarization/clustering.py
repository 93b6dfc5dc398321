"""File-wide speakers from per-window local speakers: stitching, then constrained clustering.

Two kinds of evidence, used in this order:

1. **Stitching** (:func:`stitch_tracks`). Windows overlap (10 s windows every 1-2.5 s), so the same
   audio is segmented several times. A local speaker of window ``w`` and one of window ``w'`` whose
   activity agrees on the frames both windows see are the same voice. Edges are taken best-first
   and a union is refused when it would put two local speakers of one window into one track
   (two voices the segmentation model told apart in the same 10 s can not be one speaker).
   This is the strong evidence; it is what reaches ~19 % DER on narrow-band telephone speech,
   where GE2E embeddings alone give ~58 % (reference notes, offline-models.md §2).
2. **Embeddings** (:func:`cluster_tracks`). A speaker who falls silent for longer than a window
   starts a new track. Tracks are merged by centroid-linkage agglomerative clustering of their
   embeddings (cosine), never merging two tracks that are active in the same window, stopping at
   a distance threshold unless ``num_speakers`` / ``min_speakers`` / ``max_speakers`` say otherwise.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class Track:
    """A chain of stitched (window, local speaker) nodes believed to be one voice.

    Attributes:
        nodes: ``(window index, local speaker)`` pairs.
        windows: the window indices (each at most once).
        active_frames: total active frames over the nodes (counted once per window).
    """

    nodes: list[tuple[int, int]] = field(default_factory=list)
    windows: set[int] = field(default_factory=set)
    active_frames: int = 0


class _UnionFind:
    """Union-find whose sets remember their windows, to refuse same-window unions."""

    def __init__(self, windows: list[int]):
        self.parent = list(range(len(windows)))
        self.windows = [{w} for w in windows]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union_if_compatible(self, i: int, j: int) -> bool:
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return True
        if self.windows[ri] & self.windows[rj]:
            return False
        if len(self.windows[ri]) < len(self.windows[rj]):
            ri, rj = rj, ri
        self.parent[rj] = ri
        self.windows[ri] |= self.windows[rj]
        self.windows[rj] = set()
        return True


def stitch_tracks(activity: np.ndarray, starts_frames: np.ndarray, *, min_agreement: float,
                  min_shared_frames: int, min_active_frames: int = 1) -> list[Track]:
    """Chain local speakers of overlapping windows into tracks.

    Args:
        activity: boolean, shape ``(W, F, L)``: window, frame in window, local speaker.
        starts_frames: start of each window on the global frame grid, shape ``(W,)``, increasing.
        min_agreement: least Dice coefficient ``2|A∩B| / (|A|+|B|)`` of the two activities on the
            shared frames for an edge.
        min_shared_frames: least common active frames ``|A∩B|`` for an edge.
        min_active_frames: local speakers with fewer active frames in their window are ignored.

    Returns:
        tracks in order of first window.
    """
    num_windows, num_frames, num_local = activity.shape
    counts = activity.sum(axis=1)  # (W, L)
    node_ids = {}
    node_windows = []
    for w in range(num_windows):
        for a in range(num_local):
            if counts[w, a] >= min_active_frames:
                node_ids[(w, a)] = len(node_windows)
                node_windows.append(w)
    edges = []
    for w in range(num_windows):
        for v in range(w + 1, num_windows):
            offset = int(starts_frames[v] - starts_frames[w])
            shared = num_frames - offset
            if shared < min_shared_frames:
                break
            left = activity[w, offset:, :].astype(np.float32)  # (shared, L)
            right = activity[v, :shared, :].astype(np.float32)
            inter = left.T @ right  # (L, L)
            sizes = left.sum(axis=0)[:, None] + right.sum(axis=0)[None, :]
            dice = np.where(sizes > 0, 2 * inter / np.maximum(sizes, 1), 0.0)
            for a, b in zip(*np.nonzero((dice >= min_agreement) & (inter >= min_shared_frames))):
                if (w, a) in node_ids and (v, b) in node_ids:
                    edges.append((float(dice[a, b]), float(inter[a, b]), node_ids[(w, a)],
                                  node_ids[(v, b)]))
    edges.sort(key=lambda e: (-e[0], -e[1]))
    forest = _UnionFind(node_windows)
    refused = 0
    for _, _, i, j in edges:
        refused += not forest.union_if_compatible(i, j)
    tracks: dict[int, Track] = {}
    for (w, a), i in node_ids.items():
        track = tracks.setdefault(forest.find(i), Track())
        track.nodes.append((w, a))
        track.windows.add(w)
        track.active_frames += int(counts[w, a])
    ordered = sorted(tracks.values(), key=lambda t: min(t.windows))
    logger.debug("stitching: %d nodes, %d edges (%d refused) -> %d tracks", len(node_windows),
                 len(edges), refused, len(ordered))
    return ordered


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def cluster_tracks(embeddings: np.ndarray, weights: np.ndarray, conflicts: np.ndarray, *,
                   threshold: float, num_speakers: Optional[int] = None, min_speakers: int = 1,
                   max_speakers: Optional[int] = None) -> np.ndarray:
    """Constrained centroid-linkage clustering of track embeddings.

    Args:
        embeddings: shape ``(T, D)``, one per track (any norm).
        weights: shape ``(T,)``, e.g. seconds of clean speech behind each embedding.
        conflicts: boolean ``(T, T)``, ``True`` where two tracks are active in one window.
        threshold: merge while the cosine distance of the closest allowed pair is below this.
        num_speakers: exact number of clusters wanted (overrides the threshold).
        min_speakers: never merge below this many clusters.
        max_speakers: keep merging (ignoring the threshold, and conflicts if needed) above this.

    Returns:
        cluster index per track, shape ``(T,)``, clusters numbered ``0..K-1`` by first track.
    """
    count = len(embeddings)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    low = num_speakers if num_speakers else max(1, min_speakers)
    high = num_speakers if num_speakers else (max_speakers or count)
    centroids = _normalise(np.asarray(embeddings, dtype=np.float64))
    mass = np.asarray(weights, dtype=np.float64).clip(min=1e-6)
    sums = centroids * mass[:, None]
    blocked = np.asarray(conflicts, dtype=bool).copy()
    alive = np.ones(count, dtype=bool)
    owner = np.arange(count)
    clusters = count
    while clusters > low:
        sim = centroids @ centroids.T
        sim[~alive, :] = -np.inf
        sim[:, ~alive] = -np.inf
        np.fill_diagonal(sim, -np.inf)
        allowed = np.where(blocked, -np.inf, sim)
        i, j = np.unravel_index(np.argmax(allowed), allowed.shape)
        best = allowed[i, j]
        if not np.isfinite(best) or 1.0 - best > threshold:
            if clusters <= high:
                break
            if not np.isfinite(best):  # only conflicting pairs are left: must merge one anyway
                i, j = np.unravel_index(np.argmax(sim), sim.shape)
                if not np.isfinite(sim[i, j]):
                    break
        i, j = min(i, j), max(i, j)
        sums[i] += sums[j]
        mass[i] += mass[j]
        centroids[i] = _normalise(sums[i])
        blocked[i] |= blocked[j]
        blocked[:, i] = blocked[i]
        alive[j] = False
        owner[owner == j] = i
        clusters -= 1
    _, first_index = np.unique(owner, return_index=True)
    order = np.argsort(first_index)
    renumber = {int(owner[first_index[k]]): rank for rank, k in enumerate(order)}
    return np.array([renumber[int(o)] for o in owner], dtype=np.int64)


def track_conflicts(tracks: list[Track]) -> np.ndarray:
    """Boolean ``(T, T)``: ``True`` where two tracks have a local speaker in the same window."""
    count = len(tracks)
    conflicts = np.zeros((count, count), dtype=bool)
    for i in range(count):
        for j in range(i + 1, count):
            if tracks[i].windows & tracks[j].windows:
                conflicts[i, j] = conflicts[j, i] = True
    return conflicts
