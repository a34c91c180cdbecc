"""The retrieval score of Park et al. (2023), as pure numpy functions.

score = a_rec * recency + a_imp * importance + a_rel * relevance, each component min-max
scaled to [0, 1] over the candidate set. Kept free of any record type so it can be tested
against hand-computed numbers and reused by anything that has three arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RECENCY_DECAY = 0.995
"""Per game-hour decay factor of recency (the paper's value)."""


@dataclass(frozen=True)
class RetrievalWeights:
    """The alphas of the retrieval score.

    The paper sets all three to 1 (the default here); the released code
    (joonspk-research/generative_agents) used recency 0.5, importance 3, relevance 2 —
    see `released_code()` — so runs can reproduce either.
    """

    recency: float = 1.0
    importance: float = 1.0
    relevance: float = 1.0

    @classmethod
    def released_code(cls) -> RetrievalWeights:
        """Weights of the authors' released implementation: 0.5, 3, 2."""
        return cls(recency=0.5, importance=3.0, relevance=2.0)


def recency(hours_since_access: np.ndarray, decay: float = RECENCY_DECAY) -> np.ndarray:
    """Exponential decay over game hours since last access: decay ** hours."""
    return np.power(decay, np.asarray(hours_since_access, dtype=np.float64))


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant array becomes all 0.5, as the released code does.

    (0.5 rather than 0 so a component that cannot discriminate still contributes equally to
    every candidate instead of silently vanishing from the weighted sum.)
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return a.copy()
    lo, hi = a.min(), a.max()
    if hi == lo:
        return np.full_like(a, 0.5)
    return (a - lo) / (hi - lo)


def score(
    recency_raw: np.ndarray,
    importance_raw: np.ndarray,
    relevance_raw: np.ndarray,
    weights: RetrievalWeights = RetrievalWeights(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (total, recency_n, importance_n, relevance_n), each component min-max scaled.

    The normalised components are returned too so a caller can record *why* a memory won.
    """
    rec_n = minmax(recency_raw)
    imp_n = minmax(importance_raw)
    rel_n = minmax(relevance_raw)
    if not (rec_n.shape == imp_n.shape == rel_n.shape):
        raise ValueError(
            f"component shapes differ: recency {rec_n.shape}, importance {imp_n.shape}, "
            f"relevance {rel_n.shape}"
        )
    total = weights.recency * rec_n + weights.importance * imp_n + weights.relevance * rel_n
    return total, rec_n, imp_n, rel_n


def top_k(total: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; equal scores go to the lower index.

    argpartition is O(n) but picks arbitrarily among values tied with the k-th, so only its
    cut value is used: everything strictly above it is kept, then the lowest-indexed ties
    fill the rest, and the k winners are lexsorted on (-score, index). The result is
    deterministic whatever numpy's partition does, and stays O(n + k log k).
    """
    t = np.asarray(total, dtype=np.float64)
    n = t.size
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.intp)
    if k < n:
        cut = t[np.argpartition(-t, k - 1)[k - 1]]
        above = np.flatnonzero(t > cut)
        ties = np.flatnonzero(t == cut)[: k - above.size]
        cand = np.concatenate((above, ties))
    else:
        cand = np.arange(n)
    order = np.lexsort((cand, -t[cand]))
    return cand[order]
