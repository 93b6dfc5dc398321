"""Role purity of a dialogue: is ``[S1]`` one person, ``[S2]`` another?

A dialogue is only worth training on if each role holds one voice. Diarization errors poison a
role in two ways: a turn of the other person is labelled with this role (a label swap), or the
two roles are one person split in two. From one speaker embedding per turn (CAM++ by default,
turns of at least ``min_turn_s``), three measures:

* ``role_margin``: the smallest ``cos(turn, own role) - cos(turn, other role)`` over the turns,
  where a role's voice is the mean of its *other* turns (leave-one-out) or, for a role with one
  embedded turn, that turn; negative when a turn sounds more like the other role.
* ``role_self_similarity``: the smallest ``cos(turn, own role without it)``: low when a role holds
  a second voice (a third person, or both people).
* ``role_cross_similarity``: ``cos`` of the two roles' mean voices: high when the roles are one
  person.

:func:`purity_failure` compares them with thresholds that belong to the embedding model (set on
the development set of many voices, see the README), and the filter stage rejects a failing
dialogue as ``role_impure``: the corpus prefers dropping a dialogue to poisoning it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PurityThresholds:
    """Limits of the three measures for one embedding model."""

    min_margin: float
    min_self_similarity: float
    max_cross_similarity: float


# Fitted on the development set (tests/assets/voices, split "dev"): see the README.
THRESHOLDS = {
    "campplus": PurityThresholds(
        min_margin=0.0, min_self_similarity=0.25, max_cross_similarity=0.55
    )
}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def role_measures(embeddings: np.ndarray, roles: Sequence[str]) -> dict[str, float]:
    """``role_margin``, ``role_self_similarity``, ``role_cross_similarity`` (NaN where a measure
    has nothing to compare: fewer than two roles embedded, or no role with two turns).

    >>> a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    >>> m = role_measures(np.stack([a, b, a, b]), ["S1", "S2", "S1", "S2"])
    >>> round(m["role_margin"], 3), round(m["role_cross_similarity"], 3)
    (1.0, 0.0)
    """
    return measure_roles(embeddings, roles)[0]


def measure_roles(
    embeddings: np.ndarray, roles: Sequence[str]
) -> tuple[dict[str, float], list[float]]:
    """:func:`role_measures` and each turn's margin, ``cos(turn, own role) - cos(turn, other
    role)`` (``role_margin`` is the smallest), NaN for a turn that is its role's only one.

    >>> a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    >>> _, margins = measure_roles(np.stack([a, b, a, b, b]), ["S1", "S2", "S1", "S2", "S1"])
    >>> [round(m, 3) for m in margins]
    [0.707, 0.553, 0.707, 0.553, -1.0]
    """
    roles = list(roles)
    out = {
        "role_margin": math.nan,
        "role_self_similarity": math.nan,
        "role_cross_similarity": math.nan,
    }
    per_turn = [math.nan] * len(roles)
    if len(roles) != len(embeddings) or len(set(roles)) < 2:
        return out, per_turn
    emb = np.stack([_unit(np.asarray(e, dtype=np.float64)) for e in embeddings])
    names = sorted(set(roles))
    index = {r: np.flatnonzero(np.array(roles) == r) for r in names}
    means = {r: _unit(emb[index[r]].mean(axis=0)) for r in names}
    out["role_cross_similarity"] = float(means[names[0]] @ means[names[1]])
    selves = []
    for i, role in enumerate(roles):
        other = names[1] if role == names[0] else names[0]
        mine = index[role][index[role] != i]
        if len(mine):
            own = _unit(emb[mine].mean(axis=0))
            selves.append(float(emb[i] @ own))
            per_turn[i] = float(emb[i] @ own - emb[i] @ means[other])
    if selves:
        out["role_margin"] = min(m for m in per_turn if not math.isnan(m))
        out["role_self_similarity"] = min(selves)
    return out, per_turn


def purity_failure(measures: dict[str, float], limits: PurityThresholds) -> str | None:
    """The first measure outside its limit, as a message, or None (NaN never fails)."""
    checks = [
        (
            "role_cross_similarity",
            measures["role_cross_similarity"] > limits.max_cross_similarity,
            f"> {limits.max_cross_similarity:g} (the two roles sound like one person)",
        ),
        (
            "role_self_similarity",
            measures["role_self_similarity"] < limits.min_self_similarity,
            f"< {limits.min_self_similarity:g} (a role holds another voice)",
        ),
        (
            "role_margin",
            measures["role_margin"] < limits.min_margin,
            f"< {limits.min_margin:g} (a turn sounds like the other role)",
        ),
    ]
    for name, failed, why in checks:
        if failed:
            return f"{name}={measures[name]:.3f} {why}"
    return None
