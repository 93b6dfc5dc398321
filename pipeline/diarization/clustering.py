"""File-wide speakers from embedded single-speaker chunks: constrained average-linkage clustering.

Each chunk (a stretch of one voice, :mod:`.pieces`) has a speaker embedding (CAM++ by default)
and a weight (its seconds of speech). Agglomerative clustering merges the two clusters with the
highest duration-weighted mean cosine similarity while that similarity is at least
``threshold``, never across a *cannot-link* (two chunks the segmentation model heard as two
people talking at once). ``num_speakers`` / ``min_speakers`` / ``max_speakers`` override the
stopping rule. The threshold is a property of the embedding model, fitted once on a development
set of many voices and fixed in code (see :data:`THRESHOLDS` and the README), never on the file
being diarized.

Cost: ``O(n^2)`` memory for ``n`` chunks (one float64 and one bool matrix; an hour of
conversation gives about 1,200 chunks: 12 MB) and, with each row's best partner cached, about
``O(n^2)`` time.
"""

from __future__ import annotations

import numpy as np

# Cosine-similarity thresholds per embedding model, fitted on the development set of many real
# voices (tests/assets/voices, split "dev"); see the README's diarization section.
THRESHOLDS = {"campplus": 0.45, "ecapa": 0.30, "ge2e": 0.75}
# A speaker with too little speech joins the most similar other one only when their similarity
# is at most this far below the merging threshold. On the development sets (dev and dev2, 36
# conversations, CAM++) the 17 small clusters that were one of the big ones' voice scored 0.43 or
# more against it; the one that was a third person (a woman beside two men) scored 0.36.
ABSORB_MARGIN = 0.05


def _row_best(sim: np.ndarray, i: int) -> tuple[int, float]:
    j = int(np.argmax(sim[i]))
    return j, float(sim[i, j])


def constrained_ahc(
    embeddings: np.ndarray,
    weights: np.ndarray,
    threshold: float,
    *,
    cannot_link: np.ndarray | None = None,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int | None = None,
) -> np.ndarray:
    """Average-linkage clustering of L2-normalised rows with cannot-links.

    Args:
        embeddings: ``(n, d)`` L2-normalised.
        weights: ``(n,)`` positive weights (seconds of speech).
        threshold: least mean cosine similarity at which two clusters merge.
        cannot_link: ``(n, n)`` bool, symmetric: pairs that never share a cluster.
        num_speakers: exact number of clusters (the cannot-links give way if they forbid it).
        min_speakers: never fewer clusters than this.
        max_speakers: never more clusters than this (the cannot-links give way likewise).

    Returns:
        label per row, ``0..K-1`` in order of first row.

    >>> e = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=float)
    >>> constrained_ahc(e / np.linalg.norm(e, axis=1, keepdims=True), np.ones(3), 0.5).tolist()
    [0, 0, 1]
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sim = embeddings.astype(np.float64) @ embeddings.T.astype(np.float64)
    blocked = (
        np.zeros((n, n), dtype=bool)
        if cannot_link is None
        else np.asarray(cannot_link, dtype=bool).copy()
    )
    np.fill_diagonal(blocked, True)
    sim[blocked] = -np.inf
    weight = np.asarray(weights, dtype=np.float64).copy()
    owner = np.arange(n)
    best = np.empty(n, dtype=np.int64)
    best_val = np.empty(n)
    for i in range(n):
        best[i], best_val[i] = _row_best(sim, i)
    alive = np.ones(n, dtype=bool)
    clusters = n
    target_low = max(1, num_speakers or min_speakers)
    target_high = num_speakers or max_speakers
    while clusters > target_low:
        i = int(np.argmax(np.where(alive, best_val, -np.inf)))
        value = best_val[i]
        if not np.isfinite(value):
            break
        if value < threshold and not (target_high and clusters > target_high):
            break
        j = int(best[i])
        total = weight[i] + weight[j]
        row = (weight[i] * sim[i] + weight[j] * sim[j]) / total
        blocked[i] |= blocked[j]
        blocked[:, i] = blocked[i]
        row[blocked[i]] = -np.inf
        row[~alive] = -np.inf
        row[i] = row[j] = -np.inf
        sim[i], sim[:, i] = row, row
        sim[j], sim[:, j] = -np.inf, -np.inf
        weight[i], alive[j] = total, False
        best_val[j] = -np.inf
        owner[owner == j] = i
        clusters -= 1
        best[i], best_val[i] = _row_best(sim, i)
        stale = np.flatnonzero(alive & ((best == i) | (best == j)))
        for k in stale:
            best[k], best_val[k] = _row_best(sim, k)
        better = alive & (sim[:, i] > best_val)
        best[better], best_val[better] = i, sim[better, i]
    if cannot_link is not None and target_high and clusters > target_high:
        # the count asked for wins over the links (they are the segmentation model's opinion)
        return constrained_ahc(
            embeddings,
            weights,
            threshold,
            num_speakers=num_speakers,
            min_speakers=min_speakers,
            max_speakers=max_speakers,
        )
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)


def centroids(embeddings: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weighted, L2-normalised mean embedding of each label ``0..K-1`` (``-1`` ignored)."""
    num = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    sums = np.zeros((num, embeddings.shape[1]))
    valid = labels >= 0
    np.add.at(sums, labels[valid], embeddings[valid] * weights[valid, None])
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def absorb_small(
    labels: np.ndarray,
    embeddings: np.ndarray,
    weights: np.ndarray,
    min_weight: float,
    cannot_link: np.ndarray | None = None,
    min_similarity: float = -np.inf,
) -> np.ndarray:
    """Give the rows of clusters lighter than ``min_weight`` to the most similar heavy cluster.

    A cluster that every heavy cluster is cannot-linked to, or whose centroid is less similar
    than ``min_similarity`` to every heavy one (another voice, not a few noisy chunks of a known
    one), keeps its own label. Labels are renumbered ``0..K-1`` in order of first row.
    """
    if not len(labels):
        return labels
    totals = np.bincount(labels, weights=weights)
    heavy = totals >= min_weight
    if heavy.all() or not heavy.any():
        return labels
    centres = centroids(embeddings, weights, labels)
    out = labels.copy()
    for k in np.flatnonzero(~heavy):
        score = centres @ centres[k]
        if cannot_link is not None:
            rows = labels == k
            linked = np.array(
                [cannot_link[np.ix_(rows, labels == h)].any() for h in range(len(totals))]
            )
            score = np.where(linked, -np.inf, score)
        score = np.where(heavy, score, -np.inf)
        if score.max() >= min_similarity and np.isfinite(score).any():
            out[labels == k] = int(np.argmax(score))
    _, first, inverse = np.unique(out, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)
