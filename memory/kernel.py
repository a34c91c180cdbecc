"""The compiled part of retrieval: int8 copies of the embedding rows (`Int8Flat`) and the C
loops over them (`_Kernel`), built with the system C compiler on first use.

Split from memory/retrieval.py (which re-exports these names) so the score's definition
stays readable. Everything here either approximates with a proven bound, selects a superset
of candidates, or reproduces numpy's float64 arithmetic bit for bit (checked against numpy
itself before use: `_Kernel.exact_ok`); BENCHMARKS.md, section 1, says why each holds.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------
# The compiled scan: the same int8 idea in one flat matrix (rows quantised once, on first
# scan after they are added; no blocks, no float32 tail) and three small C loops built with
# the system C compiler on first use (AVX-512 VNNI when the CPU has it, plain C otherwise):
# the scan with the approximate extremes, the rows near those extremes, and the approximate
# total with its k-th best and the shortlist, in one pass each. Everything the loops return
# is an approximation with a proven bound or a superset of candidates. The exact re-score of
# the shortlist is either `bounded_top_k`'s numpy operations or, in `Int8Flat.top_k`, the
# same operations in C (einsum's summation order, IEEE +-*/ without contraction), with only
# recency's `np.power` left to numpy; both give `exact_top_k`'s bits. Without a compiler (or
# with VILLAGE_RETRIEVAL_KERNEL=0) retrieval falls back to `Int8Blocks`, then float32.

KERNEL_ENV = "VILLAGE_RETRIEVAL_KERNEL"

_KERNEL_SRC = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#define VR_VNNI 1
#endif
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define VR_F64X8 1
#endif
#ifndef VR_AHEAD
#define VR_AHEAD 8
#endif
/* built with -ffp-contract=off: a * b + c must round twice, as numpy's loops do */

static void vr_prefetch(const char *base, int64_t row_bytes, const int64_t *idx, int64_t c) {
    /* the caller re-reads these rows in float32 next: start loading them now */
    if (!base) return;
    for (int64_t j = 0; j < c; j++)
        for (int64_t o = 0; o < row_bytes; o += 64)
            __builtin_prefetch(base + idx[j] * row_bytes + o, 0, 3);
}

/* One pass for one query. Quantises the float32 query q (d components) to int8 (q8: dp
   scratch, padded with 0), then rel[i] ~ q.x_i for rows xu (uint8 = int8 + 128, stride dp,
   a multiple of 64) with per-row scale. The bound: |q.x - q~.x~| <= |q| res + |q - q~| xnorm.
   Rows whose approximation may be within 2 eps of the final max (min) are collected on the
   way (a superset, filtered at the end); hi_idx (room for 2n) ends as the rows near the max
   followed by those near the min. info = {eps, max, min, n_hi, n_lo}. */
static void vr_scan_core(const uint8_t *xu, const float *scale, int64_t n, int64_t dp,
                         const float *qf, int64_t d, double res, double xnorm, int8_t *q8,
                         float *rel, int64_t *hi_idx, int64_t *lo_idx, double *info) {
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
    info[0] = eps;
    info[1] = mx;
    info[2] = mn;
    info[3] = (double)a2;
    info[4] = (double)b2;
}

void vr_scan(const uint8_t *xu, const float *scale, int64_t n, int64_t dp, const float *qf,
             int64_t d, double res, double xnorm, int8_t *q8, float *rel, int64_t *hi_idx,
             int64_t *lo_idx, double *info, const char *emb, int64_t emb_row) {
    vr_scan_core(xu, scale, n, dp, qf, d, res, xnorm, q8, rel, hi_idx, lo_idx, info);
    vr_prefetch(emb, emb_row, hi_idx, (int64_t)(info[3] + info[4]));
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
static int64_t vr_short_core(const float *restrict a0, const float *restrict a1,
                             const float *restrict a2, int64_t n, float c0, float c1, float c2,
                             int64_t k, double margin, float *restrict t,
                             int64_t *restrict out, double *kth_out) {
    float top[64];
    for (int64_t j = 0; j < k; j++) top[j] = -INFINITY;
    float low = -INFINITY;
    int64_t i = 0;
#ifdef VR_F64X8
    /* 16 at a time; the insertion below runs only for blocks holding a value above `low` */
    __m512 vc0 = _mm512_set1_ps(c0), vc1 = _mm512_set1_ps(c1), vc2 = _mm512_set1_ps(c2);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(vc0, _mm512_loadu_ps(a0 + i)),
                                               _mm512_mul_ps(vc1, _mm512_loadu_ps(a1 + i))),
                                 _mm512_mul_ps(vc2, _mm512_loadu_ps(a2 + i)));
        _mm512_storeu_ps(t + i, v);
        __mmask16 m = _mm512_cmp_ps_mask(v, _mm512_set1_ps(low), _CMP_GT_OQ);
        while (m) {
            int b = __builtin_ctz(m);
            m &= m - 1;
            float x = t[i + b];
            if (x > low) {
                int64_t j = 1;
                while (j < k && top[j] < x) { top[j - 1] = top[j]; j++; }
                top[j - 1] = x;
                low = top[0];
            }
        }
    }
#endif
    for (; i < n; i++) {
        float v = c0 * a0[i] + c1 * a1[i] + c2 * a2[i];
        t[i] = v;
        if (v > low) {  /* top: ascending, top[0] the smallest of the k largest */
            int64_t j = 1;
            while (j < k && top[j] < v) { top[j - 1] = top[j]; j++; }
            top[j - 1] = v;
            low = top[0];
        }
    }
    double thr = (double)low - margin;
    int64_t c = 0;
    i = 0;
#ifdef VR_F64X8
    __m512d vthr = _mm512_set1_pd(thr);
    for (; i + 8 <= n; i += 8) {  /* compared in float64, as below */
        __mmask8 m = _mm512_cmp_pd_mask(_mm512_cvtps_pd(_mm256_loadu_ps(t + i)), vthr,
                                        _CMP_GE_OQ);
        while (m) {
            out[c++] = i + __builtin_ctz(m);
            m &= m - 1;
        }
    }
#endif
    for (; i < n; i++) {
        out[c] = i;
        c += (double)t[i] >= thr;
    }
    *kth_out = low;
    return c;
}

int64_t vr_shortlist(const float *restrict a0, const float *restrict a1,
                     const float *restrict a2, int64_t n, float c0, float c1, float c2,
                     int64_t k, double margin, float *restrict t, int64_t *restrict out,
                     double *kth_out, const char *emb, int64_t emb_row) {
    int64_t c = vr_short_core(a0, a1, a2, n, c0, c1, c2, k, margin, t, out, kth_out);
    if (c <= 4096) vr_prefetch(emb, emb_row, out, c);
    return c;
}

/* Exact relevance, bit for bit numpy's einsum("ij,j->i", rows.astype(float64), q64): its
   loop (numpy's baseline SSE build: 2 lanes, blocks of 8 summed as a chain of 4 mul-then-add
   per lane, a zero-filled 2-wide tail, lane 0 + lane 1, added to the zeroed output). The
   self-test compares it with numpy itself; any difference disables it. */
static double vr_dot1(const float *x, const double *q, int64_t d) {
    double a0 = 0.0, a1 = 0.0;
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
        double b0 = (double)x[j + 6] * q[j + 6] + a0, b1 = (double)x[j + 7] * q[j + 7] + a1;
        b0 = (double)x[j + 4] * q[j + 4] + b0;
        b1 = (double)x[j + 5] * q[j + 5] + b1;
        b0 = (double)x[j + 2] * q[j + 2] + b0;
        b1 = (double)x[j + 3] * q[j + 3] + b1;
        a0 = (double)x[j] * q[j] + b0;
        a1 = (double)x[j + 1] * q[j + 1] + b1;
    }
    for (; j < d; j += 2) {
        double x1 = j + 1 < d ? (double)x[j + 1] : 0.0, q1 = j + 1 < d ? q[j + 1] : 0.0;
        a0 = (double)x[j] * q[j] + a0;
        a1 = x1 * q1 + a1;
    }
    return 0.0 + (a0 + a1);
}

#ifdef VR_F64X8
/* the same arithmetic for 8 rows at once: lanes (2 per row) of 4 rows per register */
static inline __m512d vr_pairs4(const float *x0, const float *x1, const float *x2,
                                const float *x3, int64_t o) {
    int64_t v0, v1, v2, v3;
    memcpy(&v0, x0 + o, 8);
    memcpy(&v1, x1 + o, 8);
    memcpy(&v2, x2 + o, 8);
    memcpy(&v3, x3 + o, 8);
    return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_set_epi64x(v3, v2, v1, v0)));
}

static void vr_dot8(const float *const *x, const double *q, int64_t d, double *out) {
    __m512d A = _mm512_setzero_pd(), B = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d s = A, t = B;
        for (int m = 3; m >= 0; m--) {
            int64_t o = j + 2 * m;
            __m512d qv = _mm512_broadcast_f64x2(_mm_loadu_pd(q + o));
            s = _mm512_add_pd(_mm512_mul_pd(vr_pairs4(x[0], x[1], x[2], x[3], o), qv), s);
            t = _mm512_add_pd(_mm512_mul_pd(vr_pairs4(x[4], x[5], x[6], x[7], o), qv), t);
        }
        A = s;
        B = t;
    }
    for (; j < d; j += 2) {
        if (j + 1 < d) {
            __m512d qv = _mm512_broadcast_f64x2(_mm_loadu_pd(q + j));
            A = _mm512_add_pd(_mm512_mul_pd(vr_pairs4(x[0], x[1], x[2], x[3], j), qv), A);
            B = _mm512_add_pd(_mm512_mul_pd(vr_pairs4(x[4], x[5], x[6], x[7], j), qv), B);
        } else {
            __m512d qv = _mm512_broadcast_f64x2(_mm_set_pd(0.0, q[j]));
            __m512d xa = _mm512_set_pd(0.0, x[3][j], 0.0, x[2][j], 0.0, x[1][j], 0.0, x[0][j]);
            __m512d xb = _mm512_set_pd(0.0, x[7][j], 0.0, x[6][j], 0.0, x[5][j], 0.0, x[4][j]);
            A = _mm512_add_pd(_mm512_mul_pd(xa, qv), A);
            B = _mm512_add_pd(_mm512_mul_pd(xb, qv), B);
        }
    }
    double t[16];
    _mm512_storeu_pd(t, A);
    _mm512_storeu_pd(t + 8, B);
    for (int r = 0; r < 8; r++) out[r] = 0.0 + (t[2 * r] + t[2 * r + 1]);
}
#endif

/* out[j] = exact relevance of float32 row idx[j] (rows `row` bytes apart) to q64 */
void vr_exact(const char *emb, int64_t row, const int64_t *idx, int64_t c, const double *q,
              int64_t d, double *out) {
    int64_t i = 0;
#ifdef VR_F64X8
    for (; i + 8 <= c; i += 8) {
        const float *x[8];
        for (int r = 0; r < 8; r++) x[r] = (const float *)(emb + idx[i + r] * row);
        vr_dot8(x, q, d, out + i);
    }
#endif
    for (; i < c; i++) out[i] = vr_dot1((const float *)(emb + idx[i] * row), q, d);
}

/* numpy's float32 add.reduce of a contiguous row (pairwise, 8 accumulators per block of up
   to 128; loops_utils.h), which np.linalg.norm uses */
static float vr_pairwise(const float *a, int64_t n) {
    if (n < 8) {
        float res = -0.0f;
        for (int64_t i = 0; i < n; i++) res += a[i];
        return res;
    } else if (n <= 128) {
        float r[8];
        int64_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return vr_pairwise(a, n2) + vr_pairwise(a + n2, n - n2);
}

/* out = q / np.where(norm > 0, norm, 1) with norm = np.linalg.norm(q) in float32, bit for
   bit (the stream's query normalisation; sq: d floats of scratch) */
void vr_unit(const float *q, int64_t d, float *out, float *sq) {
    for (int64_t j = 0; j < d; j++) sq[j] = q[j] * q[j];
    float nrm = sqrtf(0.0f + vr_pairwise(sq, d));
    float dv = nrm > 0.0f ? nrm : 1.0f;
    for (int64_t j = 0; j < d; j++) out[j] = q[j] / dv;
}

/* The approximate part of one retrieval in one call: the scan (vr_scan_core), the exact
   extremes of relevance over the rows near them, the relevance term of the approximate
   total and its slack (as `bounded_top_k` computes them; cg, ci, mag0, slack0 carry the
   recency and importance terms), the shortlist, and for it the exact relevance (relc) and
   hours since last access (hours). The raw query qraw is normalised first (vr_unit, into qf).
   Returns the shortlist's length, or -1 when the caller must
   take the general path (no relevance extremes, non-finite slack, no term at all); the scan's
   outputs are left in rel, hi_idx and info either way. info = {eps, max, min, n_hi, n_lo,
   r_max, r_min, kth}. */
int64_t vr_retrieve(const uint8_t *xu, const float *scale, int64_t n, int64_t dp,
                    const float *qraw, float *qf, float *sq, int64_t d, double res,
                    double xnorm, int8_t *q8,
                    float *rel, int64_t *hi_idx, int64_t *lo_idx, double *info,
                    const char *emb, int64_t emb_row, double *q64,
                    const float *g, float cg, const float *imp32, float ci, double wl,
                    double mag0, double slack0, double f32_rel, int64_t k,
                    const double *acc, double now_s, float *tot, double *relc,
                    double *hours) {
    vr_unit(qraw, d, qf, sq);
    vr_scan_core(xu, scale, n, dp, qf, d, res, xnorm, q8, rel, hi_idx, lo_idx, info);
    double eps = info[0];
    int64_t na = (int64_t)info[3], nb = (int64_t)info[4];
    if (na == 0 || nb == 0 || na + nb > n) return -1;  /* relc holds n */
    for (int64_t j = 0; j < d; j++) q64[j] = (double)qf[j];
    vr_exact(emb, emb_row, hi_idx, na + nb, q64, d, relc);
    double r_max = relc[0], r_min = relc[na];
    for (int64_t j = 0; j < na + nb; j++)
        if (isnan(relc[j])) return -1;
    for (int64_t j = 1; j < na; j++) if (relc[j] > r_max) r_max = relc[j];
    for (int64_t j = na + 1; j < na + nb; j++) if (relc[j] < r_min) r_min = relc[j];
    info[5] = r_max;
    info[6] = r_min;
    double span = r_max - r_min, cr = 0.0, mag = mag0, slack = slack0;
    if (span > 0 && wl != 0) {
        cr = wl / span;
        mag += fabs(cr) * (fmax(fabs(r_max), fabs(r_min)) + eps);
        slack += fabs(cr) * eps;
    }
    slack += f32_rel * mag;
    if (!isfinite(slack) || (cg == 0.0f && ci == 0.0f && cr == 0.0)) return -1;
    int64_t c = vr_short_core(g ? g : rel, imp32, rel, n, g ? cg : 0.0f, ci, (float)cr, k,
                              2.0 * slack, tot, lo_idx, &info[7]);
    vr_exact(emb, emb_row, lo_idx, c, q64, d, relc);
    for (int64_t j = 0; j < c; j++) {  /* np.maximum(now - acc, 0.0) / 3600.0 */
        double h = now_s - acc[lo_idx[j]];
        hours[j] = (h >= 0.0 || isnan(h) ? h : 0.0) / 3600.0;
    }
    return c;
}

/* (x - lo) / (hi - lo), or 0.5 when hi == lo: `bounded_top_k`'s scaling */
static inline double vr_scaled(double x, double lo, double hi) {
    return hi == lo ? 0.5 : (x - lo) / (hi - lo);
}

/* is (ta, ia) before (tb, ib) in np.lexsort((idx, -total)) order? (NaN totals last) */
static inline int vr_before(double ta, int64_t ia, double tb, int64_t ib) {
    int na = isnan(ta), nb = isnan(tb);
    if (na || nb) return na == nb ? ia < ib : nb;
    return ta > tb || (ta == tb && ia < ib);
}

/* The exact score of the shortlist cand[0..c) (ascending), with `bounded_top_k`'s
   operations, and its best k (k <= 64) in order: out_idx, and out = {total, recency,
   importance, relevance} per winner. Returns how many (min(k, c)). */
int64_t vr_final(const int64_t *cand, int64_t c, const double *relc, const double *recc,
                 const double *imp, double r_min, double r_max, double rec_lo, double rec_hi,
                 double imp_lo, double imp_hi, double wr, double wi, double wl, int64_t k,
                 int64_t *out_idx, double *out) {
    double top_t[64];
    int64_t top_j[64];
    int64_t m = 0;
    for (int64_t j = 0; j < c; j++) {
        double rec_n = vr_scaled(recc[j], rec_lo, rec_hi);
        double imp_n = vr_scaled(imp[cand[j]], imp_lo, imp_hi);
        double rel_n = vr_scaled(relc[j], r_min, r_max);
        double t = wr * rec_n + wi * imp_n + wl * rel_n;
        if (m == k && !vr_before(t, cand[j], top_t[m - 1], cand[top_j[m - 1]])) continue;
        int64_t p = m < k ? m++ : m - 1;
        while (p > 0 && vr_before(t, cand[j], top_t[p - 1], cand[top_j[p - 1]])) {
            top_t[p] = top_t[p - 1];
            top_j[p] = top_j[p - 1];
            p--;
        }
        top_t[p] = t;
        top_j[p] = j;
    }
    for (int64_t p = 0; p < m; p++) {
        int64_t j = top_j[p];
        out_idx[p] = cand[j];
        out[4 * p] = top_t[p];
        out[4 * p + 1] = vr_scaled(recc[j], rec_lo, rec_hi);
        out[4 * p + 2] = vr_scaled(imp[cand[j]], imp_lo, imp_hi);
        out[4 * p + 3] = vr_scaled(relc[j], r_min, r_max);
    }
    return m;
}
"""

_F32_REL = 1e-6  # bound on the relative rounding of the float32 approximate total (4x margin)
_CFLAGS = ("-O3", "-ffp-contract=off")  # no fused a*b+c: C must round as numpy does


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
        key = hashlib.sha256((_KERNEL_SRC + cls._cpu_tag() + cc + " ".join(_CFLAGS))
                             .encode()).hexdigest()[:16]
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
                for flags in ([*_CFLAGS, "-march=native"], list(_CFLAGS)):
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
        lib.vr_exact.argtypes = [p, i64, p, i64, p, i64, p]
        lib.vr_exact.restype = None
        lib.vr_unit.argtypes = [p, i64, p, p]
        lib.vr_unit.restype = None
        lib.vr_retrieve.argtypes = [p, p, i64, i64, p, p, p, i64, f64, f64, p, p, p, p, p, p,
                                    i64, p, p, f32, p, f32, f64, f64, f64, f64, i64, p, f64, p,
                                    p, p]
        lib.vr_retrieve.restype = i64
        lib.vr_final.argtypes = [p, i64, p, p, p, f64, f64, f64, f64, f64, f64, f64, f64, f64,
                                 i64, p, p]
        lib.vr_final.restype = i64
        return lib

    _exact_dims: dict[int, bool] = {}

    @classmethod
    def exact_ok(cls, lib: Any, dim: int) -> bool:
        """True when `vr_exact` gives numpy's einsum bits for rows of `dim` components, and
        `vr_unit` the stream's normalisation of a query (np.linalg.norm's pairwise sum).

        It copies the summation order of numpy's einsum loop, an internal; a different numpy
        (or build) would order it otherwise, which random rows expose at once (a different
        order rounds differently on most rows). Then `Int8Flat.top_k` is not used."""
        ok = cls._exact_dims.get(dim)
        if ok is None:
            try:
                ok = cls._check_exact(lib, dim)
            except Exception:  # noqa: BLE001
                ok = False
            cls._exact_dims[dim] = ok
        return ok

    @staticmethod
    def _check_exact(lib: Any, dim: int) -> bool:
        rng = np.random.default_rng(dim)
        for d in sorted({dim, 1, 7, 9, 17}):
            x = rng.normal(size=(67, d)).astype(np.float32)
            x[3] = -0.0
            x[4] *= np.float32(1e-30)
            x[5, ::2] = 0.0
            q = rng.normal(size=d).astype(np.float32)
            q64 = (q / np.linalg.norm(q)).astype(np.float64)
            idx = rng.permutation(len(x)).astype(np.int64)
            ref = np.einsum("ij,j->i", x[idx].astype(np.float64), q64)
            out = np.empty(len(idx))
            lib.vr_exact(x.ctypes.data, x.strides[0], idx.ctypes.data, len(idx),
                         q64.ctypes.data, d, out.ctypes.data)
            if not np.array_equal(ref.view(np.int64), out.view(np.int64)):
                return False
            for scale in (1.0, 1e-20, 1e20, 0.0):  # and the query's normalisation
                qq = (rng.normal(size=(1, d)) * scale).astype(np.float32)
                with np.errstate(all="ignore"):
                    norms = np.linalg.norm(qq, axis=1, keepdims=True)
                    ref32 = (qq / np.where(norms > 0, norms, 1.0))[0]
                out32, sq = np.empty(d, np.float32), np.empty(d, np.float32)
                lib.vr_unit(qq.ctypes.data, d, out32.ctypes.data, sq.ctypes.data)
                if not np.array_equal(ref32.view(np.int32), out32.view(np.int32)):
                    return False
        return True

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
        self.emb_ptr: int | None = None  # the float32 matrix's rows (prefetch, exact re-score)
        self.emb_row = 0
        self._emb: np.ndarray | None = None  # kept alive while emb_ptr points into it
        self.lock = threading.RLock()  # the scratch buffers serve one retrieval at a time
        self.res = 0.0  # max |x - x~| over quantised rows
        self.xnorm = 0.0  # max |x~|
        self.exact = bool(_Kernel.exact_ok(lib, self.dim))  # `top_k` usable
        self._alloc(max(64, int(capacity)))
        self._q8 = np.zeros(self.dp, np.int8)
        self._q64 = np.zeros(self.dim, np.float64)
        self._qn = np.zeros(self.dim, np.float32)  # `top_k`'s unit query
        self._sq = np.zeros(self.dim, np.float32)
        self._pqn, self._psq = self._qn.ctypes.data, self._sq.ctypes.data
        self._cnt = np.zeros(2, np.int64)
        self._kth = np.zeros(1, np.float64)
        self._info = np.zeros(8, np.float64)
        self._fidx = np.zeros(64, np.int64)  # `top_k`'s winners and their 4 components
        self._fout = np.zeros(4 * 64, np.float64)
        self._pq8, self._pinfo = self._q8.ctypes.data, self._info.ctypes.data
        self._pcnt, self._pkth = self._cnt.ctypes.data, self._kth.ctypes.data
        self._pq64 = self._q64.ctypes.data
        self._pfidx, self._pfout = self._fidx.ctypes.data, self._fout.ctypes.data

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
        self.relx = np.zeros(cap, np.float64)  # `top_k`: exact relevance, hours, recency
        self.hours = np.zeros(cap, np.float64)
        self.recx = np.zeros(cap, np.float64)
        self._prelx, self._phours = self.relx.ctypes.data, self.hours.ctypes.data
        self._precx = self.recx.ctypes.data

    def extend(self, emb: np.ndarray, n: int) -> None:
        """Quantise rows [end, n) of `emb` (rows never change once added)."""
        if emb is not self._emb:
            self._emb = emb
            if emb.flags.c_contiguous and emb.dtype == np.float32 and emb.ndim == 2:
                self.emb_ptr, self.emb_row = emb.ctypes.data, emb.strides[0]
            else:
                self.emb_ptr, self.emb_row = None, 0
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
        return self.scanned()

    def scanned(self) -> tuple[np.ndarray, float, float, float, np.ndarray, int]:
        """What `scan` returns, for the scan the last `scan` or `top_k` call made."""
        eps, hi, lo, na, nb = self._info[:5].tolist()
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

    def unit(self) -> np.ndarray:
        """The unit query of the last `top_k` call (numpy's normalisation, bit for bit)."""
        return self._qn.copy()

    def top_k(self, q: np.ndarray, k: int, now_s: float, decay: float,
              weights: tuple[float, float, float], cols: tuple[int, int, int, int],
              plan: tuple[float, float, float, float, float, float, float, float]
              ) -> tuple[list[int], list[float]] | None:
        """`bounded_top_k` over all rows [0, end) in two compiled calls, numpy's `power` for
        recency in between: (winners best first, [total, recency, importance, relevance]
        of each in turn), bit for bit `exact_top_k`'s; None when the general path must
        answer instead (`scanned()` then holds this query's scan, `unit()` the query).

        `q` is the float32 query as given (contiguous; normalised here as the stream does),
        `weights` (recency, importance, relevance), `cols` the addresses of the float32
        growth and importance and the float64 importance and last-access columns (growth 0:
        no recency term), `plan` what `approx_terms` gives: the recency and importance
        coefficients, the bound on their magnitude, the slack so far, and the exact extremes
        of recency and importance.
        """
        n = self.end
        if not self.exact or self.emb_ptr is None or not 0 < k <= 64 or k >= n:
            self.lib.vr_unit(q.ctypes.data, self.dim, self._pqn, self._psq)
            self.scan(self._qn)
            return None
        cg, ci, mag0, slack0, rec_lo, rec_hi, imp_lo, imp_hi = plan
        wr, wi, wl = weights
        growth, imp32, imp64, acc = cols
        lib = self.lib
        c = lib.vr_retrieve(self._px, self._pscale, n, self.dp, q.ctypes.data, self._pqn,
                            self._psq, self.dim, self.res, self.xnorm, self._pq8, self._prel,
                            self._pia, self._pib, self._pinfo, self.emb_ptr, self.emb_row,
                            self._pq64,
                            growth or None, cg, imp32, ci, wl, mag0, slack0, _F32_REL, k, acc,
                            now_s, self._ptot, self._prelx, self._phours)
        if c < 0:
            return None
        np.power(decay, self.hours[:c], out=self.recx[:c])  # `recency`: numpy's own bits
        info = self._info
        m = lib.vr_final(self._pib, c, self._prelx, self._precx, imp64, info[6], info[5],
                         rec_lo, rec_hi, imp_lo, imp_hi, wr, wi, wl, k, self._pfidx,
                         self._pfout)
        return self._fidx[:m].tolist(), self._fout[: 4 * m].tolist()
