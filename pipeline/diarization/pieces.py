"""Single-speaker pieces of a recording, from the segmentation model's sliding windows.

Windows overlap (10 s every 2 s by default), so every frame is seen by several windows, each
with up to 3 local speakers. What the windows agree on well is *local*: whether a frame holds
speech, whether two people talk at once, and whether the voice changes between two nearby
frames. What they do not know is which voice is which across the file; the segmentation model
also reuses one local speaker for two voices that alternate without overlapping, so chaining
local speakers across windows joins different people. This module therefore keeps only the local
facts:

* per frame, the share of covering windows that hear speech (>= 1 local speaker active) and
  overlap (>= 2 active);
* per frame, the share of covering windows in which the single active local speaker changes
  there (a change between two speech frames of one window, placed halfway across any pause);
* *pieces*: runs of single-speaker frames, cut at overlap, at pauses of at least
  ``min_pause_frames`` and at change peaks backed by at least half of the covering windows.

Each piece should hold one voice; the clustering (:mod:`.clustering`) decides whose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.diarization import timeline


@dataclass(frozen=True)
class FrameEvidence:
    """Per-frame shares of covering windows, on the global frame grid (length ``num_frames``).

    Attributes:
        coverage: number of windows that cover the frame.
        speech: share of them in which at least one local speaker is active.
        overlap: share in which at least two are.
        change: share in which the single active local speaker changes at this frame.
    """

    coverage: np.ndarray
    speech: np.ndarray
    overlap: np.ndarray
    change: np.ndarray


def frame_evidence(
    activity: np.ndarray, starts_frames: np.ndarray, num_frames: int, smooth_frames: int = 7
) -> FrameEvidence:
    """Aggregate window activity ``(W, F, L)`` (bool) into per-frame shares.

    Args:
        activity: hard local-speaker activity of each window.
        starts_frames: global frame of each window's first frame.
        num_frames: length of the global grid.
        smooth_frames: change votes of one window are spread over this many frames (windows
            disagree by a few frames on where a change is).
    """
    frames_per_window = activity.shape[1]
    coverage = np.zeros(num_frames, dtype=np.float32)
    speech = np.zeros(num_frames, dtype=np.float32)
    overlap = np.zeros(num_frames, dtype=np.float32)
    change = np.zeros(num_frames, dtype=np.float32)
    count = activity.sum(axis=2)
    slot = activity.argmax(axis=2)
    for w, start in enumerate(starts_frames):
        stop = min(start + frames_per_window, num_frames)
        n = stop - start
        coverage[start:stop] += 1
        speech[start:stop] += count[w, :n] >= 1
        overlap[start:stop] += count[w, :n] >= 2
        single = np.flatnonzero(count[w, :n] == 1)
        if len(single) > 1:
            switch = np.flatnonzero(slot[w, single[1:]] != slot[w, single[:-1]])
            # the change sits halfway across the pause between the two voices' frames
            at = (single[switch] + single[switch + 1] + 1) // 2
            np.add.at(change, start + at, 1.0)
    if smooth_frames > 1:
        change = np.convolve(change, np.ones(smooth_frames, dtype=np.float32), mode="same")
    seen = np.maximum(coverage, 1.0)
    return FrameEvidence(coverage, speech / seen, overlap / seen, change / seen)


def change_points(change: np.ndarray, min_share: float = 0.5, min_distance: int = 15) -> np.ndarray:
    """Frames where a change peaks with at least ``min_share`` of the covering windows.

    Peaks closer than ``min_distance`` frames keep only the strongest.
    """
    candidates = np.flatnonzero(change >= min_share)
    if not len(candidates):
        return candidates
    peaks = []
    groups = np.split(candidates, np.flatnonzero(np.diff(candidates) > 1) + 1)
    for group in groups:  # consecutive candidate frames: one peak each
        top = group[change[group] == change[group].max()]
        peaks.append(int(top[len(top) // 2]))  # the middle of the highest plateau
    kept: list[int] = []
    for peak in sorted(peaks, key=lambda p: -change[p]):
        if all(abs(peak - k) >= min_distance for k in kept):
            kept.append(peak)
    return np.array(sorted(kept), dtype=np.int64)


def single_speaker_pieces(
    evidence: FrameEvidence, *, min_pause_frames: int, min_change_share: float = 0.5
) -> list[tuple[int, int]]:
    """``(first, stop)`` frame runs where one person talks, cut at pauses and voice changes.

    Args:
        evidence: from :func:`frame_evidence`.
        min_pause_frames: a pause at least this long ends a piece (shorter ones are bridged).
        min_change_share: least share of covering windows that must see a change at a frame
            for a piece to be cut there.
    """
    speech = evidence.speech >= 0.5
    single = speech & (evidence.overlap < 0.5)
    mask = timeline.fill_gaps(single, min_pause_frames - 1) if min_pause_frames > 1 else single
    # bridging never crosses overlap: those frames stay cut
    mask &= ~(speech & (evidence.overlap >= 0.5))
    cuts = set(change_points(evidence.change, min_change_share).tolist())
    pieces = []
    for first, stop in timeline.runs(mask):
        bounds = [first] + sorted(c for c in cuts if first < c < stop) + [stop]
        for a, b in zip(bounds[:-1], bounds[1:]):
            inside = np.flatnonzero(single[a:b])  # trim bridged silence at the edges
            if len(inside):
                pieces.append((a + int(inside[0]), a + int(inside[-1]) + 1))
    return pieces


def chunk(first: int, stop: int, max_frames: int) -> list[tuple[int, int]]:
    """Split ``[first, stop)`` into the fewest equal chunks of at most ``max_frames``."""
    count = max(1, -(-(stop - first) // max_frames))
    bounds = np.linspace(first, stop, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
