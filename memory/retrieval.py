"""The retrieval score of Park et al. (2023), as pure numpy functions.

score = a_rec * recency + a_imp * importance + a_rel * relevance, each component min-max
scaled to [0, 1] over the candidate set. Kept free of any record type so it can be tested
against hand-computed numbers and reused by anything that has three arrays.

`exact_top_k` is the definition (every record scored exactly). `bounded_top_k` gives the
same answer, bit for bit, from a cheap approximation of relevance with a known error bound,
re-scoring exactly only a shortlist that provably holds the top-k; that is how
`MemoryStream.retrieve` answers (BENCHMARKS.md: retrieval). The approximation is an int8
copy of the rows (a quarter of float32's memory traffic), scanned by small C loops compiled
on first use (memory/kernel.py: `Int8Flat`, `_Kernel`; there `Int8Flat.top_k` also runs
`bounded_top_k`'s exact re-score in C, with numpy's bits), else by torch's fbgemm kernel
(`Int8Blocks`), else float32 — the same answer from each.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# The compiled scan and its loops live in memory/kernel.py (re-exported here).
from memory.kernel import _F32_REL, KERNEL_ENV, Int8Flat, _Kernel  # noqa: F401

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


# --------------------------------------------------------------------------------------
# Fast exact top-k. Relevance is *defined* as the float64 dot product of the stored float32
# vectors, row by row (`exact_relevance`). A retrieval scans an approximation of it with a
# known error bound (int8 rows, see `Int8Blocks`), bounds every candidate's score from it,
# and computes the exact score only for the shortlist that provably holds the exact top-k
# (and the records that may hold the relevance minimum and maximum the min-max scaling
# needs). The winners, their order and their score components are bit for bit what scoring
# every record exactly gives (`score` + `top_k`); tests/test_bench_retrieval.py checks it.


def exact_relevance(rows: np.ndarray, q64: np.ndarray) -> np.ndarray:
    """Cosine relevance of unit rows to a unit query: float64 dot products, row by row.

    einsum's per-row loop gives a row the same bits wherever it sits (BLAS does not always:
    its blocking can round two identical rows differently, which would break ties)."""
    return np.einsum("ij,j->i", np.asarray(rows, dtype=np.float64), q64)


def exact_top_k(
    emb: np.ndarray,
    q: np.ndarray,
    importance: np.ndarray,
    accessed: np.ndarray,
    now_s: float,
    k: int,
    weights: RetrievalWeights = RetrievalWeights(),
    decay: float = RECENCY_DECAY,
) -> tuple[np.ndarray, np.ndarray]:
    """The definition, scoring every record exactly: (indices best first, their totals).

    The reference the fast path is checked against (tests, `village bench`): `q` is the
    unit float32 query, `accessed` in seconds."""
    rel = exact_relevance(emb, np.asarray(q, dtype=np.float64))
    hours = np.maximum(now_s - np.asarray(accessed, dtype=np.float64), 0.0) / 3600.0
    total, *_ = score(recency(hours, decay), np.asarray(importance, dtype=np.float64), rel,
                      weights)
    best = top_k(total, k)
    return best, total[best]


F32_EPS = 1e-4
"""Bound on the error of a float32 dot product of two unit vectors of up to 1,024 dims
(worst case d * 2**-24 = 6e-5), with margin."""

_F64_REL = 1e-12  # bound on float64 rounding of a [0, 1]-scaled component (generous)


@dataclass
class Static:
    """What a retrieval needs besides relevance, possibly precomputed by the stream.

    `growth[i]` ~ exp(lam * (accessed[i] - ref)) in float32 (within 2 ulps), where
    lam = -ln(decay) / 3600: proportional to the recency of record i at any time `now` not
    before its last access, so scaled recency is an affine function of it."""

    importance: np.ndarray  # float64, exact
    accessed: np.ndarray  # float64 seconds
    importance32: np.ndarray | None = None
    growth: np.ndarray | None = None
    ref: float = 0.0
    acc_range: tuple[float, float] | None = None
    imp_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class Terms:
    """The query-independent part of `bounded_top_k`'s approximate total (`approx_terms`)."""

    rec_lo: float  # exact extremes of recency and importance over the candidates
    rec_hi: float
    imp_lo: float
    imp_hi: float
    rec: tuple[float, np.ndarray] | None  # (coefficient, float32 growth), if it varies
    imp: tuple[float, np.ndarray] | None  # (coefficient, float32 importance), if it varies
    magnitude: float  # bound on |each term so far| (for float32 rounding)
    slack: float  # bound on the error of the total so far
    exact_all: bool  # no shortcut for recency: score every candidate exactly


def approx_terms(static: Static, now_s: float, weights: RetrievalWeights,
                 decay: float = RECENCY_DECAY) -> Terms:
    """The recency and importance terms of the approximate total and their error bounds:
    the same for every query against one state of the stream, so a stream may keep them."""
    acc, imp = static.accessed, static.importance
    # exact extremes of recency (decay ** hours is monotone in hours) and importance
    a_lo, a_hi = static.acc_range or (float(acc.min()), float(acc.max()))
    imp_lo, imp_hi = static.imp_range or (float(imp.min()), float(imp.max()))
    # (Python's float - , max, / round exactly as numpy's float64 ufuncs do)
    ext = recency(np.array([max(now_s - a_hi, 0.0) / 3600.0, max(now_s - a_lo, 0.0) / 3600.0]),
                  decay).tolist()
    rec_hi, rec_lo = max(ext), min(ext)

    wr, wi, wl = weights.recency, weights.importance, weights.relevance
    exact_all = False
    rec_term = imp_term = None
    magnitude = 0.0  # bound on |each term| (for float32 rounding)
    slack = _F64_REL * (abs(wr) + abs(wi) + abs(wl))
    if rec_hi != rec_lo and wr != 0:
        if not (0.0 < decay < 1.0 and a_hi <= now_s):
            exact_all = True  # a decay that grows, or accesses after `now`: no shortcut
        else:
            lam = -math.log(decay) / 3600.0
            g = static.growth
            ref = static.ref
            if g is None:
                ref = a_hi
                g = np.exp(lam * (acc - ref)).astype(np.float32)
            try:  # only bounds and coefficients of the approximation: math's exp will do
                g_lo, g_hi = math.exp(lam * (a_lo - ref)), math.exp(lam * (a_hi - ref))
            except OverflowError:
                g_lo = g_hi = math.inf
            if g_hi > g_lo and math.isfinite(g_hi):
                coef = wr / (g_hi - g_lo)
                rec_term = (coef, g)
                magnitude += abs(coef) * g_hi
                slack += abs(wr) * _F64_REL * g_hi / (g_hi - g_lo) + 1e-30 * abs(coef)
            else:
                exact_all = True
    if imp_hi != imp_lo and wi != 0:
        coef = wi / (imp_hi - imp_lo)
        i32 = static.importance32 if static.importance32 is not None else imp.astype(np.float32)
        imp_term = (coef, i32)
        magnitude += abs(coef) * max(abs(imp_hi), abs(imp_lo))
    return Terms(rec_lo, rec_hi, imp_lo, imp_hi, rec_term, imp_term, magnitude, slack,
                 exact_all)


def bounded_top_k(
    rel_approx: np.ndarray,
    eps: float,
    static: Static,
    now_s: float,
    k: int,
    weights: RetrievalWeights,
    exact_rel: "Callable[[np.ndarray], np.ndarray]",
    decay: float = RECENCY_DECAY,
    kern: "Int8Flat | None" = None,
    ext: tuple[float, float] | None = None,
    near: tuple[np.ndarray, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exactly `top_k(score(recency, importance, exact relevance), k)`, from an approximation.

    `rel_approx[i]` is within `eps` of the exact relevance of candidate i; `exact_rel(idx)`
    gives the exact relevance of candidates `idx`. Returns (indices best first, total,
    recency_n, importance_n, relevance_n) of the winners. `kern` (an `Int8Flat`) runs the
    two full passes below (rows near the extremes, the shortlist) in compiled loops, and
    `ext` is (max, min) of `rel_approx` and `near` = (the rows within 2 eps of the max, then
    those within 2 eps of the min; how many of the first kind), if already known
    (`Int8Flat.scan`); the answer is the same.
    """
    m = int(rel_approx.size)
    if m == 0 or k <= 0:
        e = np.empty(0)
        return np.empty(0, dtype=np.intp), e, e, e, e
    r = rel_approx
    acc, imp = static.accessed, static.importance
    eps = float(eps)

    # exact extremes of relevance: the arg-max lies where approx >= max(approx) - 2 eps
    hi_ap, lo_ap = ext if ext is not None else (float(r.max()), float(r.min()))
    if near is not None:
        near_idx, n_hi = near
    else:
        if kern is not None:
            near_hi, near_lo = kern.near(r, hi_ap - 2 * eps, lo_ap + 2 * eps)
        else:
            near_hi = np.flatnonzero(r >= hi_ap - 2 * eps)
            near_lo = np.flatnonzero(r <= lo_ap + 2 * eps)
        near_idx, n_hi = np.concatenate((near_hi, near_lo)), near_hi.size
    ext_rel = exact_rel(near_idx)
    r_max, r_min = float(ext_rel[:n_hi].max()), float(ext_rel[n_hi:].min())
    t = approx_terms(static, now_s, weights, decay)
    wr, wi, wl = weights.recency, weights.importance, weights.relevance
    rec_lo, rec_hi, imp_lo, imp_hi = t.rec_lo, t.rec_hi, t.imp_lo, t.imp_hi
    exact_all = t.exact_all
    terms = [term for term in (t.rec, t.imp) if term is not None]
    magnitude, slack = t.magnitude, t.slack
    span_rel = r_max - r_min
    if span_rel > 0 and wl != 0:
        coef = wl / span_rel
        terms.append((coef, r))
        magnitude += abs(coef) * (max(abs(r_max), abs(r_min)) + eps)
        slack += abs(coef) * eps
    slack += _F32_REL * magnitude

    if exact_all or k >= m or not math.isfinite(slack):
        cand = np.arange(m)
    elif not terms:  # every score is equal: the lowest indices win
        cand = np.arange(k)
    elif kern is not None and k <= 64:
        cand, _ = kern.shortlist(terms, k, 2 * slack)
    else:
        approx = terms[0][1] * np.float32(terms[0][0])
        for coef, arr in terms[1:]:
            approx += arr * np.float32(coef)
        kth = float(np.partition(approx, m - k)[m - k])
        cand = np.flatnonzero(approx >= kth - 2 * slack)

    # the exact score of the shortlist, with the very operations `score` applies
    rec_c = recency(np.maximum(now_s - acc[cand], 0.0) / 3600.0, decay)

    def scaled(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return np.full_like(x, 0.5) if hi == lo else (x - lo) / (hi - lo)

    rec_n = scaled(rec_c, rec_lo, rec_hi)
    imp_n = scaled(imp[cand], imp_lo, imp_hi)
    rel_n = scaled(exact_rel(cand), r_min, r_max)
    total = wr * rec_n + wi * imp_n + wl * rel_n
    order = np.lexsort((cand, -total))[:k]
    t_o, rec_o, imp_o, rel_o = np.stack((total, rec_n, imp_n, rel_n))[:, order]
    return cand[order], t_o, rec_o, imp_o, rel_o


# --------------------------------------------------------------------------------------
# The approximate scan: int8 copies of the embedding rows, multiplied by torch's fbgemm int8
# kernel (a quarter of float32's bytes, so a quarter of the memory traffic that bounds a
# matrix-vector product). The error bound is measured, not assumed: per block, the largest
# quantisation residual |x - x~| of a row; per query, the residual of the kernel's own
# (dynamic) quantisation of the query, read back through identity rows packed with the
# first block.

INT8_ENV = "VILLAGE_RETRIEVAL_INT8"
"""Set to 0 to scan float32 rows only (no torch kernel): the benchmark's second baseline."""


def _torch():
    import torch

    return torch


class Int8Blocks:
    """int8 copies of rows [0, end) of an embedding matrix, in blocks scanned by one call each.

    Blocks are made `base` rows at a time and merged like a binary counter (two blocks of
    equal size become one), so n rows sit in at most log2(n / base) + 1 blocks and each row
    is re-packed O(log n) times over the stream's life; rows past `end` (fewer than `base`)
    are scanned in float32 by the caller. Rows never change once added.
    """

    _kernel_ok: bool | None = None  # class-wide self-test result

    def __init__(self, dim: int, base: int = 1024) -> None:
        self.dim = int(dim)
        self.base = int(base)
        self.blocks: list[tuple[int, int, Any, float, float]] = []  # start, stop, packed, res, |x~|
        self.end = 0

    # -- kernel --------------------------------------------------------------------------
    @classmethod
    def available(cls) -> bool:
        """True when torch's int8 kernel is present and passes a self-test of the bound."""
        if os.environ.get(INT8_ENV, "1").lower() in ("0", "false", "no", "off"):
            return False
        if cls._kernel_ok is None:
            try:
                cls._kernel_ok = cls._self_test()
            except Exception:  # noqa: BLE001 - no torch, no quantized engine, API removed
                cls._kernel_ok = False
        return bool(cls._kernel_ok)

    @classmethod
    def _self_test(cls) -> bool:
        rng = np.random.default_rng(12345)
        for d in (384, 17):
            x = rng.normal(size=(700, d)).astype(np.float32)
            x[0] = 0.0
            x[0, 0] = 1.0  # a spike
            x[1] = 1.0  # flat
            x[2, ::2] = -1.0
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            blocks = cls(d, base=256)
            blocks.extend(x, len(x))
            q = rng.normal(size=(3, d)).astype(np.float32)
            q[1] = x[1]
            q[2] = np.abs(q[2])
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            approx, eps = blocks.scan(q)
            exact = q.astype(np.float64) @ x[: blocks.end].astype(np.float64).T
            if approx.shape != exact.shape or not np.all(np.abs(approx - exact) <= eps[:, None]):
                return False
        return True

    # -- building -------------------------------------------------------------------------
    def _pack(self, rows: np.ndarray, probe: bool) -> tuple[Any, float, float]:
        torch = _torch()
        scale = np.abs(rows).max(axis=1).astype(np.float64) / 127.0
        scale[scale == 0] = 1.0
        q8 = np.rint(rows / scale[:, None]).astype(np.int8)
        deq = q8 * scale[:, None]
        res = float(np.sqrt(((rows - deq) ** 2).sum(axis=1)).max())
        xnorm = float(np.sqrt((deq ** 2).sum(axis=1)).max())
        if probe:  # identity rows: the block's last `dim` outputs are the quantised query
            q8 = np.concatenate((q8, np.eye(self.dim, dtype=np.int8) * 127))
            scale = np.concatenate((scale, np.full(self.dim, 1.0 / 127.0)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "quantized tensors are deprecated" (torch 2.10+)
            wq = torch._make_per_channel_quantized_tensor(
                torch.from_numpy(q8), torch.from_numpy(scale),
                torch.zeros(len(q8), dtype=torch.long), 0)
            packed = torch.ops.quantized.linear_prepack(wq, None)
        return packed, res, xnorm

    def _push(self, emb: np.ndarray, start: int, stop: int) -> None:
        packed, res, xnorm = self._pack(np.ascontiguousarray(emb[start:stop], dtype=np.float32),
                                        probe=start == 0)
        self.blocks.append((start, stop, packed, res, xnorm))
        self.end = stop

    def extend(self, emb: np.ndarray, n: int) -> None:
        """Pack rows up to the last full `base` block below n (merging equal-sized blocks)."""
        while n - self.end >= self.base:
            start, stop = self.end, self.end + self.base
            while self.blocks and (self.blocks[-1][1] - self.blocks[-1][0]) == stop - start:
                start = self.blocks.pop()[0]  # binary counter: merge equal sizes
            self._push(emb, start, stop)

    def build(self, emb: np.ndarray, n: int) -> None:
        """Pack rows [0, n) from scratch into as few blocks as the binary counter allows."""
        self.blocks, self.end = [], 0
        units = n // self.base
        for bit in reversed(range(units.bit_length())):
            if units >> bit & 1:
                self._push(emb, self.end, self.end + (self.base << bit))

    # -- scanning --------------------------------------------------------------------------
    def scan(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate q @ rows[:end].T, shape (len(q), end), and an error bound per query."""
        torch = _torch()
        if not self.blocks:
            return np.empty((len(q), 0), np.float32), np.zeros(len(q))
        x = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32))
        lin = torch.ops.quantized.linear_dynamic.default  # skips overload resolution
        threads = torch.get_num_threads()
        if threads != 1:  # memory-bound: one core is as fast, and on a busy machine far
            torch.set_num_threads(1)  # more predictable than a thread pool that must wait
        try:
            outs = [lin(x, packed, True).numpy() for _, _, packed, _, _ in self.blocks]
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
        first = outs[0]
        q_seen = first[:, -self.dim:].astype(np.float64)
        outs[0] = first[:, : -self.dim]
        q_err = np.sqrt(((q.astype(np.float64) - q_seen) ** 2).sum(axis=1))
        approx = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)
        res = max(b[3] for b in self.blocks)
        xnorm = max(b[4] for b in self.blocks)
        # |q.x - q~.x~| <= |x - x~| + |q - q~| |x~|, plus float32 rounding of the output
        eps = (res + q_err * xnorm) * 1.001 + 1e-5
        return approx, eps

    @property
    def nbytes_per_row(self) -> int:
        """Bytes the scan reads per row: int8 components plus the kernel's per-row terms
        (scale, column offset)."""
        return self.dim + 8
