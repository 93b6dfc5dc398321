"""Role-purity limits from voices, not from one file: how often a dialogue whose two roles are
ONE person passes the check, and how often a true two-person dialogue is dropped.

Dialogues are laid out from the vendored real voices (``tests/assets/voices``): each turn is one
clip (``speech``) or a random 0.8-1.6 s stretch of one (``short``: little speech per turn, like
backchannels or read letters); a *same-person* dialogue alternates one voice's turns between
``[S1]`` and ``[S2]`` (the fault of a speaker split in two), a *two-person* dialogue alternates two
voices. Turns are embedded in pieces exactly as the filter does (``turn_pieces``, CAM++) and
scored with ``measure_pieces``. Printed per split and turn kind: the share of same-person
dialogues that pass (poison let through) and of two-person dialogues that fail (yield lost),
under today's limits, and the spread of ``role_separation``.

A second table takes dialogues of ONE turn per role (nothing to compare within a role, so the
separation is unmeasured): among those that pass the other limits, the share of one-person ones a
stricter cross-similarity limit catches and of two-person ones it drops, per candidate
(``--one-turn-candidates``; the fitted one is ``max_cross_similarity_one_turn``).

Usage::

    python bench/calibrate_role_purity.py                      # dev voices (the limits' design set)
    python bench/calibrate_role_purity.py --splits dev heldout  # + a check on other people
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.quality.role_purity import (  # noqa: E402
    THRESHOLDS,
    measure_pieces,
    purity_failure,
    turn_pieces,
)
from tests.pipeline import voice_conversations as vc  # noqa: E402

SR = 16000
PIECE_S, MIN_TURN_S = 1.5, 1.0  # the filter's defaults (--purity_piece_s, --purity_min_turn_s)


def get_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["dev"], choices=list(vc.SPLITS))
    parser.add_argument("--dialogues", type=int, default=400, help="per split, kind and case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", type=float, nargs="*", default=[0.1, 0.15, 0.2])
    parser.add_argument("--one-turn-candidates", type=float, nargs="*", default=[0.30, 0.35, 0.40])
    return parser.parse_args()


def turn_pool(voice_id: str, kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Audio of candidate turns of one voice."""
    clips = [c.audio for c in vc.load_voice(voice_id).clips if len(c.audio) >= MIN_TURN_S * SR]
    if kind == "speech":
        return clips
    out = []
    for audio in clips:
        length = int(rng.uniform(MIN_TURN_S, 1.6) * SR)
        if len(audio) >= length:
            start = int(rng.integers(0, len(audio) - length + 1))
            out.append(audio[start : start + length])
    return out


def embed_turns(embedder, turns: list[np.ndarray]) -> list[np.ndarray]:
    """Each turn's piece embeddings, ``(pieces, dim)``."""
    spans = [turn_pieces(0.0, len(t) / SR, PIECE_S, MIN_TURN_S) for t in turns]
    flat = [t[int(a * SR) : int(b * SR)] for t, ss in zip(turns, spans) for a, b in ss]
    emb = np.asarray(embedder.embed(flat), dtype=np.float64)
    out, k = [], 0
    for ss in spans:
        out.append(emb[k : k + len(ss)])
        k += len(ss)
    return out


def dialogue_measures(turns_s1: list[np.ndarray], turns_s2: list[np.ndarray]) -> dict:
    """``measure_pieces`` over alternating turns (S1, S2, S1, ...)."""
    order = []
    for k in range(max(len(turns_s1), len(turns_s2))):
        if k < len(turns_s1):
            order.append(("S1", turns_s1[k]))
        if k < len(turns_s2):
            order.append(("S2", turns_s2[k]))
    emb, roles, turn_ids = [], [], []
    for t, (role, pieces) in enumerate(order):
        for row in pieces:
            emb.append(row)
            roles.append(role)
            turn_ids.append(t)
    measures, _ = measure_pieces(np.stack(emb), roles, turn_ids)
    return measures


def _spread(values: list[float]) -> str:
    """Count of NaN, then p1 / p5 / p50 / p95 / max of the rest."""
    arr = np.asarray(values, dtype=float)
    nan = int(np.isnan(arr).sum())
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return f"nan {nan:3d}" + " " * 35
    q = np.percentile(arr, [1, 5, 50, 95, 100])
    return f"nan {nan:3d} " + " ".join(f"{v:6.3f}" for v in q)


def one_turn_table(embedder, splits, dialogues, candidates, rng) -> None:
    """Dialogues of one turn per role: what a one-turn cross-similarity limit catches and drops."""
    from dataclasses import replace

    limits = replace(THRESHOLDS["campplus"], max_cross_similarity_one_turn=math.inf)
    print("\none turn per role, passing the other limits: role_cross_similarity p5 / p50 / p95")
    for split in splits:
        for kind in ("speech", "short"):
            pools = {v: embed_turns(embedder, turn_pool(v, kind, rng)) for v in vc.voice_ids(split)}
            pools = {v: p for v, p in pools.items() if len(p) >= 4}
            names = sorted(pools)
            cross: dict[str, list[float]] = {"one person": [], "two people": []}
            for case, values in cross.items():
                for _ in range(dialogues):
                    if case == "one person":
                        v = names[int(rng.integers(len(names)))]
                        i, j = rng.choice(len(pools[v]), size=2, replace=False)
                        s1, s2 = [pools[v][i]], [pools[v][j]]
                    else:
                        a, b = (names[k] for k in rng.choice(len(names), size=2, replace=False))
                        s1 = [pools[a][int(rng.integers(len(pools[a])))]]
                        s2 = [pools[b][int(rng.integers(len(pools[b])))]]
                    m = dialogue_measures(s1, s2)
                    if purity_failure(m, limits) is None:
                        values.append(m["role_cross_similarity"])
            for case, values in cross.items():
                q = np.percentile(values, [5, 50, 95]) if values else [math.nan] * 3
                print(
                    f"{split:8s} {kind:7s} {case:11s} n={len(values):4d}  "
                    + " / ".join(f"{v:5.2f}" for v in q)
                )
            for t in candidates:
                caught = np.mean(np.array(cross["one person"]) > t) if cross["one person"] else 0
                lost = np.mean(np.array(cross["two people"]) > t) if cross["two people"] else 0
                print(
                    f"{'':17s} limit {t:.2f}: one person caught {100 * caught:5.1f} %, "
                    f"two people dropped {100 * lost:5.1f} %"
                )


def main() -> int:
    args = get_args()
    from pipeline.api import CamPlusEmbedder

    embedder = CamPlusEmbedder(num_threads=args.threads)
    limits = THRESHOLDS["campplus"]
    rng = np.random.default_rng(args.seed)
    print(f"limits: {limits}")
    print(
        f"{'split':8s} {'kind':7s} {'case':11s} {'n':>4s} {'fail %':>7s} "
        "role_separation: NaN count, p1 p5 p50 p95 max (all; passing today's limits)"
    )
    for split in args.splits:
        voices = vc.voice_ids(split)
        for kind in ("speech", "short"):
            pools = {v: embed_turns(embedder, turn_pool(v, kind, rng)) for v in voices}
            pools = {v: p for v, p in pools.items() if len(p) >= 4}
            names = sorted(pools)
            for case in ("same-person", "two-person"):
                seps, fails, passed_seps = [], 0, []
                for _ in range(args.dialogues):
                    per_role = int(rng.integers(1, 5))
                    if case == "same-person":
                        v = names[int(rng.integers(len(names)))]
                        pick = rng.permutation(len(pools[v]))[: 2 * per_role]
                        turns = [pools[v][i] for i in pick]
                        s1, s2 = turns[0::2], turns[1::2]
                    else:
                        a, b = rng.choice(len(names), size=2, replace=False)
                        s1 = [pools[names[a]][i] for i in rng.permutation(len(pools[names[a]]))]
                        s2 = [pools[names[b]][i] for i in rng.permutation(len(pools[names[b]]))]
                        s1, s2 = s1[:per_role], s2[:per_role]
                    if not s1 or not s2:
                        continue
                    m = dialogue_measures(s1, s2)
                    failed = purity_failure(m, limits) is not None
                    fails += failed
                    sep = m.get("role_separation", math.nan)
                    seps.append(sep)
                    if not failed:
                        passed_seps.append(sep)
                n = args.dialogues
                print(
                    f"{split:8s} {kind:7s} {case:11s} {n:4d} {100 * fails / n:7.1f} "
                    f"{_spread(seps)}   passing: {_spread(passed_seps)}"
                )
                for t in args.candidates:
                    new = sum(1 for v in passed_seps if not math.isnan(v) and v < t)
                    print(
                        f"{'':33s} + separation >= {t:.2f}: fail {100 * (fails + new) / n:5.1f} %"
                        f", NaN passing {sum(math.isnan(v) for v in passed_seps)}"
                    )
    one_turn_table(embedder, args.splits, args.dialogues, args.one_turn_candidates, rng)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
