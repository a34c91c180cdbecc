"""The retrieval score of Park et al. (2023), as pure numpy functions.

score = a_rec * recency + a_imp * importance + a_rel * relevance, each component min-max
scaled to [0, 1] over the candidate set. Kept free of any record type so it can be tested
against hand-computed numbers and reused by anything that has three arrays.

`exact_top_k` is the definition (every record scored exactly). `bounded_top_k` gives the
same answer, bit for bit, from a cheap approximation of relevance with a known error bound,
re-scoring exactly only a shortlist that provably holds the top-k; that is how
`MemoryStream.retrieve` answers (BENCHMARKS.md: retrieval). The approximation is an int8
copy of the rows (a quarter of float32's memory traffic), scanned by small C loops compiled
on first use (`Int8Flat`, `_Kernel`), else by torch's fbgemm kernel (`Int8Blocks`), else
float32 — the same answer from each.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

_F32_REL = 1e-6  # bound on the relative rounding of the float32 approximate total (4x margin)
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
    # exact extremes of recency (decay ** hours is monotone in hours) and importance
    a_lo, a_hi = static.acc_range or (float(acc.min()), float(acc.max()))
    imp_lo, imp_hi = static.imp_range or (float(imp.min()), float(imp.max()))
    # (Python's float - , max, / round exactly as numpy's float64 ufuncs do)
    ext = recency(np.array([max(now_s - a_hi, 0.0) / 3600.0, max(now_s - a_lo, 0.0) / 3600.0]),
                  decay).tolist()
    rec_hi, rec_lo = max(ext), min(ext)

    wr, wi, wl = weights.recency, weights.importance, weights.relevance
    exact_all = False
    terms = []  # (coefficient, float32 array) of the approximate total, constants dropped
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
                terms.append((coef, g))
                magnitude += abs(coef) * g_hi
                slack += abs(wr) * _F64_REL * g_hi / (g_hi - g_lo) + 1e-30 * abs(coef)
            else:
                exact_all = True
    if imp_hi != imp_lo and wi != 0:
        coef = wi / (imp_hi - imp_lo)
        i32 = static.importance32 if static.importance32 is not None else imp.astype(np.float32)
        terms.append((coef, i32))
        magnitude += abs(coef) * max(abs(imp_hi), abs(imp_lo))
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


# --------------------------------------------------------------------------------------
# The compiled scan: the same int8 idea in one flat matrix (rows quantised once, on first
# scan after they are added; no blocks, no float32 tail) and three small C loops built with
# the system C compiler on first use (AVX-512 VNNI when the CPU has it, plain C otherwise):
# the scan with the approximate extremes, the rows near those extremes, and the approximate
# total with its k-th best and the shortlist, in one pass each. Everything the loops return
# is an approximation with a proven bound or a superset of candidates; the answer itself is
# still computed by `bounded_top_k`'s exact re-score. Without a compiler (or with
# VILLAGE_RETRIEVAL_KERNEL=0) retrieval falls back to `Int8Blocks`, then float32.

KERNEL_ENV = "VILLAGE_RETRIEVAL_KERNEL"

_KERNEL_SRC = r"""
#include <stdint.h>
#include <math.h>
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#include <immintrin.h>
#define VR_VNNI 1
#endif
#ifndef VR_AHEAD
#define VR_AHEAD 8
#endif

/* One pass for one query. Quantises the float32 query q (d components) to int8 (q8: dp
   scratch, padded with 0), then rel[i] ~ q.x_i for rows xu (uint8 = int8 + 128, stride dp,
   a multiple of 64) with per-row scale. The bound: |q.x - q~.x~| <= |q| res + |q - q~| xnorm.
   Rows whose approximation may be within 2 eps of the final max (min) are collected on the
   way (a superset, filtered at the end); hi_idx (room for 2n) ends as the rows near the max
   followed by those near the min. info = {eps, max, min, n_hi, n_lo}. */
static void vr_prefetch(const char *base, int64_t row_bytes, const int64_t *idx, int64_t c) {
    /* the caller re-reads these rows in float32 next: start loading them now */
    if (!base) return;
    for (int64_t j = 0; j < c; j++)
        for (int64_t o = 0; o < row_bytes; o += 64)
            __builtin_prefetch(base + idx[j] * row_bytes + o, 0, 3);
}

void vr_scan(const uint8_t *xu, const float *scale, int64_t n, int64_t dp, const float *qf,
             int64_t d, double res, double xnorm, int8_t *q8, float *rel, int64_t *hi_idx,
             int64_t *lo_idx, double *info, const char *emb, int64_t emb_row) {
    double amax = 0.0, qn2 = 0.0, qe2 = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double v = qf[j];
        if (fabs(v) > amax) amax = fabs(v);
        qn2 += v * v;
    }
    double qscale = amax > 0.0 ? amax / 127.0 : 1.0;
    int64_t qs = 0;
    for (int64_t j = 0; j < dp; j++) {
        double v = j < d ? (double)qf[j] : 0.0;
        double r = nearbyint(v / qscale);
        if (r > 127.0) r = 127.0;
        if (r < -127.0) r = -127.0;
        q8[j] = (int8_t)r;
        qs += (int64_t)r;
        double e = v - r * qscale;
        qe2 += e * e;
    }
    double eps = (sqrt(qn2) * res + sqrt(qe2) * xnorm) * 1.001 + 1e-6;
    double band = 2.0 * eps;
    float mx = -INFINITY, mn = INFINITY;
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *r = xu + i * dp;
        int64_t dot;
#ifdef VR_VNNI
        __m512i acc = _mm512_setzero_si512();
        for (int64_t k = 0; k < dp; k += 64) {
            /* non-temporal prefetch ahead: stream the rows without flushing the caller's
               working set (the interpreter, the score columns) out of L2 */
            _mm_prefetch((const char *)(r + VR_AHEAD * dp + k), _MM_HINT_T0);
            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512((const void *)(r + k)),
                                      _mm512_loadu_si512((const void *)(q8 + k)));
        }
        dot = (int64_t)_mm512_reduce_add_epi32(acc);
#else
        int32_t s = 0;
        for (int64_t j = 0; j < dp; j++) s += (int32_t)r[j] * (int32_t)q8[j];
        dot = s;
#endif
        float v = (float)((double)(dot - 128 * qs) * ((double)scale[i] * qscale));
        rel[i] = v;
        if ((double)v >= (double)mx - band) {
            hi_idx[a++] = i;
            if (v > mx) mx = v;
        }
        if ((double)v <= (double)mn + band) {
            lo_idx[b++] = i;
            if (v < mn) mn = v;
        }
    }
    int64_t a2 = 0, b2 = 0;
    for (int64_t j = 0; j < a; j++)
        if ((double)rel[hi_idx[j]] >= (double)mx - band) hi_idx[a2++] = hi_idx[j];
    for (int64_t j = 0; j < b; j++)  /* appended to hi_idx (its buffer holds 2n) */
        if ((double)rel[lo_idx[j]] <= (double)mn + band) hi_idx[a2 + b2++] = lo_idx[j];
    vr_prefetch(emb, emb_row, hi_idx, a2 + b2);
    info[0] = eps;
    info[1] = mx;
    info[2] = mn;
    info[3] = (double)a2;
    info[4] = (double)b2;
}

/* indices with r >= hi into out_hi, r <= lo into out_lo; counts in cnt[0], cnt[1]. */
void vr_near(const float *r, int64_t n, double hi, double lo, int64_t *out_hi,
             int64_t *out_lo, int64_t *cnt) {
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = r[i];
        if (v >= hi) out_hi[a++] = i;
        if (v <= lo) out_lo[b++] = i;
    }
    cnt[0] = a;
    cnt[1] = b;
}

/* t = c0*a0 + c1*a1 + c2*a2 in float32 (a term with c = 0 adds exact zeros); kth = the
   k-th largest t (k <= 64, k <= n); out = indices with t >= kth - margin. Returns the count. */
int64_t vr_shortlist(const float *restrict a0, const float *restrict a1,
                     const float *restrict a2, int64_t n, float c0, float c1, float c2,
                     int64_t k, double margin, float *restrict t, int64_t *restrict out,
                     double *kth_out, const char *emb, int64_t emb_row) {
    for (int64_t i = 0; i < n; i++) t[i] = c0 * a0[i] + c1 * a1[i] + c2 * a2[i];
    float top[64];
    for (int64_t j = 0; j < k; j++) top[j] = -INFINITY;
    float low = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = t[i];
        if (v > low) {  /* top: ascending, top[0] the smallest of the k largest */
            int64_t j = 1;
            while (j < k && top[j] < v) { top[j - 1] = top[j]; j++; }
            top[j - 1] = v;
            low = top[0];
        }
    }
    double thr = (double)low - margin;
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) {
        out[c] = i;
        c += (double)t[i] >= thr;
    }
    *kth_out = low;
    if (c <= 4096) vr_prefetch(emb, emb_row, out, c);
    return c;
}
"""


class _Kernel:
    """The compiled loops (ctypes), or None when they cannot be built or fail a self-test."""

    _lib: Any = None
    _tried = False

    @classmethod
    def get(cls) -> Any:
        if os.environ.get(KERNEL_ENV, "1").lower() in ("0", "false", "no", "off"):
            return None
        if not cls._tried:
            cls._tried = True
            try:
                lib = cls._build()
                cls._lib = lib if lib is not None and cls._self_test(lib) else None
            except Exception:  # noqa: BLE001 - no compiler, odd platform: fall back
                cls._lib = None
        return cls._lib

    @staticmethod
    def _cpu_tag() -> str:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith(("flags", "Features", "model name")):
                        return line
        except OSError:
            pass
        import platform

        return platform.processor() + platform.machine()

    @classmethod
    def _build(cls) -> Any:
        import ctypes
        import hashlib
        import shutil
        import subprocess
        import tempfile

        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if not cc:
            return None
        key = hashlib.sha256((_KERNEL_SRC + cls._cpu_tag() + cc).encode()).hexdigest()[:16]
        try:
            from platformdirs import user_cache_dir

            cache = os.path.join(user_cache_dir("village"), "kernels")
        except Exception:  # noqa: BLE001
            cache = os.path.join(tempfile.gettempdir(), "village-kernels")
        os.makedirs(cache, exist_ok=True)
        so = os.path.join(cache, f"retrieval_{key}.so")
        if not os.path.exists(so):
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                src = os.path.join(tmp, "retrieval.c")
                with open(src, "w", encoding="ascii") as f:
                    f.write(_KERNEL_SRC)
                out = os.path.join(tmp, "retrieval.so")
                for flags in (["-O3", "-march=native"], ["-O3"]):
                    r = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", out, src, "-lm"],
                                       capture_output=True, timeout=120)
                    if r.returncode == 0:
                        break
                else:
                    return None
                os.replace(out, so)  # atomic: concurrent processes may build it too
        lib = ctypes.CDLL(so)
        p, i64, f32, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_double
        lib.vr_scan.argtypes = [p, p, i64, i64, p, i64, f64, f64, p, p, p, p, p, p, i64]
        lib.vr_scan.restype = None
        lib.vr_near.argtypes = [p, i64, f64, f64, p, p, p]
        lib.vr_near.restype = None
        lib.vr_shortlist.argtypes = [p, p, p, i64, f32, f32, f32, i64, f64, p, p, p, p, i64]
        lib.vr_shortlist.restype = i64
        return lib

    @staticmethod
    def _self_test(lib: Any) -> bool:
        rng = np.random.default_rng(2024)
        for d in (384, 17, 130):
            x = rng.normal(size=(500, d)).astype(np.float32)
            x[0] = 0.0
            x[0, 0] = 1.0
            x[1] = 1.0
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            idx = Int8Flat(d, lib)
            idx.extend(x, len(x))
            for qv in (rng.normal(size=d), x[1], np.abs(rng.normal(size=d))):
                qv = (qv / np.linalg.norm(qv)).astype(np.float32)
                approx, eps, hi, lo, near, n_hi = idx.scan(qv)
                near_hi, near_lo = near[:n_hi], near[n_hi:]
                exact = x.astype(np.float64) @ qv.astype(np.float64)
                if not np.all(np.abs(approx - exact) <= eps):
                    return False
                if hi != approx.max() or lo != approx.min():
                    return False
                if (near_hi.tolist() != np.flatnonzero(approx >= hi - 2 * eps).tolist()
                        or near_lo.tolist() != np.flatnonzero(approx <= lo + 2 * eps).tolist()):
                    return False
                nh, nl = idx.near(approx, hi - 0.05, lo + 0.05)
                if (nh.tolist() != np.flatnonzero(approx >= np.float64(hi) - 0.05).tolist()
                        or nl.tolist() != np.flatnonzero(approx <= np.float64(lo) + 0.05).tolist()):
                    return False
                imp = rng.integers(1, 11, size=len(x)).astype(np.float32)
                cand, kth = idx.shortlist([(0.5, imp), (3.0, approx)], 10, 0.01)
                t = imp * np.float32(0.5) + approx * np.float32(3.0)
                if abs(kth - float(np.sort(t)[-10])) > 1e-5 or not set(
                        np.flatnonzero(t >= kth - 0.009).tolist()) <= set(cand.tolist()):
                    return False
        return True


class Int8Flat:
    """int8 copies of the rows of an embedding matrix in one flat array, scanned by `_Kernel`.

    Row i is stored as round(x_i / s_i) + 128 (uint8; s_i = max|x_i| / 127, float32),
    padded to a multiple of 64 components; rows are quantised once, on the first scan after
    they are added, and never change. The error of the scan is bounded, not assumed:
    |q.x - q~.x~| <= |q| |x - x~| + |q - q~| |x~| with the largest |x - x~| and |x~| over the
    rows (kept as rows are quantised) and the query's own |q - q~| (computed per scan).
    """

    def __init__(self, dim: int, lib: Any, capacity: int = 1024) -> None:
        self.dim = int(dim)
        self.dp = -(-self.dim // 64) * 64
        self.lib = lib
        self.end = 0
        self.emb_ptr: int | None = None  # rows of the float32 matrix to prefetch (a hint only)
        self.emb_row = 0
        import threading

        self.lock = threading.Lock()  # the scratch buffers serve one retrieval at a time
        self.res = 0.0  # max |x - x~| over quantised rows
        self.xnorm = 0.0  # max |x~|
        self._alloc(max(64, int(capacity)))
        self._q8 = np.zeros(self.dp, np.int8)
        self._cnt = np.zeros(2, np.int64)
        self._kth = np.zeros(1, np.float64)
        self._info = np.zeros(5, np.float64)
        self._pq8, self._pinfo = self._q8.ctypes.data, self._info.ctypes.data
        self._pcnt, self._pkth = self._cnt.ctypes.data, self._kth.ctypes.data

    def _alloc(self, cap: int) -> None:
        old_x, old_scale = getattr(self, "x", None), getattr(self, "scale", None)
        self.x = np.full((cap, self.dp), 128, np.uint8)
        self.scale = np.zeros(cap, np.float32)
        if old_x is not None:
            self.x[: self.end] = old_x[: self.end]
            self.scale[: self.end] = old_scale[: self.end]
        self.rel = np.zeros(cap, np.float32)  # scratch buffers, reused by every call
        self.tot = np.zeros(cap, np.float32)
        self.ia = np.zeros(2 * cap, np.int64)
        self.ib = np.zeros(cap, np.int64)
        # raw addresses for the compiled loops (numpy's .ctypes costs ~1 us per access)
        self._px, self._pscale = self.x.ctypes.data, self.scale.ctypes.data
        self._prel, self._ptot = self.rel.ctypes.data, self.tot.ctypes.data
        self._pia, self._pib = self.ia.ctypes.data, self.ib.ctypes.data

    def extend(self, emb: np.ndarray, n: int) -> None:
        """Quantise rows [end, n) of `emb` (rows never change once added)."""
        if emb.flags.c_contiguous and emb.dtype == np.float32 and emb.ndim == 2:
            self.emb_ptr, self.emb_row = emb.ctypes.data, emb.strides[0]
        if n <= self.end:
            return
        if n > self.x.shape[0]:
            cap = self.x.shape[0]
            while cap < n:
                cap *= 2
            self._alloc(cap)
        rows = np.asarray(emb[self.end:n], dtype=np.float32)
        scale = (np.abs(rows).max(axis=1) / np.float32(127.0)).astype(np.float32)
        scale[scale == 0] = 1.0
        q8 = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
        deq = q8.astype(np.float64) * scale[:, None].astype(np.float64)
        res = np.sqrt(((rows.astype(np.float64) - deq) ** 2).sum(axis=1))
        xn = np.sqrt((deq ** 2).sum(axis=1))
        self.res = max(self.res, float(res.max()))
        self.xnorm = max(self.xnorm, float(xn.max()))
        self.x[self.end:n, : self.dim] = (q8.astype(np.int16) + 128).astype(np.uint8)
        self.scale[self.end:n] = scale
        self.end = n

    def scan(self, q: np.ndarray) -> tuple[np.ndarray, float, float, float, np.ndarray, int]:
        """For one unit float32 query: (approx relevance of rows [0, end) — a view of a
        reused buffer —, its error bound eps, max, min, the rows within 2 eps of the max then
        those within 2 eps of the min, how many of the first kind)."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        self.lib.vr_scan(self._px, self._pscale, self.end, self.dp, q.ctypes.data, self.dim,
                         self.res, self.xnorm, self._pq8, self._prel, self._pia, self._pib,
                         self._pinfo, self.emb_ptr, self.emb_row)
        eps, hi, lo, na, nb = self._info.tolist()
        return self.rel[: self.end], eps, hi, lo, self.ia[: int(na + nb)].copy(), int(na)

    def near(self, r: np.ndarray, hi: float, lo: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices with r >= hi and with r <= lo (compared in float64)."""
        r = np.ascontiguousarray(r, dtype=np.float32)
        n = r.size
        if n > self.ib.size:
            return np.flatnonzero(r >= np.float64(hi)), np.flatnonzero(r <= np.float64(lo))
        self.lib.vr_near(r.ctypes.data, n, hi, lo, self._pia, self._pib, self._pcnt)
        return self.ia[: self._cnt[0]].copy(), self.ib[: self._cnt[1]].copy()

    def shortlist(self, terms: list[tuple[float, np.ndarray]], k: int,
                  margin: float) -> tuple[np.ndarray, float]:
        """(indices whose float32 sum of coef * array is >= its k-th best - margin, k-th best);
        1 to 3 terms, k <= 64, k < len."""
        ptr = [self._prel] * 3  # absent terms: coefficient 0 (exact zeros)
        coef = [0.0, 0.0, 0.0]
        keep = []
        n = 0
        for j, (c0, a) in enumerate(terms):
            if a.dtype != np.float32 or not a.flags.c_contiguous:
                a = np.ascontiguousarray(a, dtype=np.float32)
                keep.append(a)
            ptr[j], coef[j], n = a.ctypes.data, float(c0), a.size
        if n > self.tot.size:
            raise ValueError("more candidates than the index holds")
        c = self.lib.vr_shortlist(ptr[0], ptr[1], ptr[2], n, coef[0], coef[1], coef[2], k,
                                  margin, self._ptot, self._pia, self._pkth, self.emb_ptr,
                                  self.emb_row)
        return self.ia[:c].copy(), float(self._kth[0])

    @property
    def nbytes_per_row(self) -> int:
        """Bytes the scan reads per row: the int8 components and the float32 scale."""
        return self.dp + 4
