"""The compiled int8 scan (memory/retrieval.py: `Int8Flat`, `_Kernel`) returns exactly what
scoring every record exactly returns, on adversarial streams.

Every check compares the winners, their order and their totals bit for bit with
`exact_top_k` (every record scored exactly). The cases are the ones a shortlist could get
wrong: exact ties, constant recency, one record whose importance dwarfs the rest, embeddings
closer together than int8 can tell apart, spiky rows, extremes at both ends, k around the
compiled top-k's limit, filters, touches and rows added after the index was built.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from memory.retrieval import (
    KERNEL_ENV,
    Int8Flat,
    RetrievalWeights,
    _Kernel,
    exact_top_k,
)
from memory.stream import MemoryStream, _to_seconds

T0 = datetime(2023, 2, 13, 7)
DIM = 384

needs_kernel = pytest.mark.skipif(_Kernel.get() is None,
                                  reason="no C compiler here: the compiled scan is not built")


def _unit(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float32).reshape(1, -1)
    return (q / np.linalg.norm(q, axis=1, keepdims=True))[0]


def _build(vecs: np.ndarray, imp: np.ndarray, times: list[datetime] | None = None,
           kinds: tuple[str, ...] = ("observation",)) -> MemoryStream:
    s = MemoryStream("a", vecs.shape[1], capacity=64)  # small: the index grows several times
    for i, v in enumerate(vecs):
        t = times[i] if times is not None else T0 + timedelta(seconds=10 * i)
        s.add(f"m{i}", kinds[i % len(kinds)], t, int(imp[i]), v)
    return s


def _check(s: MemoryStream, q: np.ndarray, now: datetime, k: int = 10,
           weights: RetrievalWeights = RetrievalWeights(), kinds=None) -> list:
    got = s.retrieve(q, now, k=k, weights=weights, kinds=kinds, touch=False)
    rows = np.arange(len(s)) if kinds is None else np.array(
        [r.index for r in s if r.kind in kinds], dtype=np.intp)
    a = s._a
    best, totals = exact_top_k(a.emb[rows], _unit(q), a.importance[rows], a.accessed[rows],
                               _to_seconds(now), k, weights)
    assert [g.record.index for g in got] == rows[best].tolist()
    assert [g.score for g in got] == totals.tolist()  # bit for bit
    return [(g.record.id, g.score, g.recency, g.importance, g.relevance) for g in got]


def _rng_unit(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@needs_kernel
def test_kernel_is_used_and_reads_a_quarter() -> None:
    rng = np.random.default_rng(10)
    s = _build(_rng_unit(rng, 3000), rng.integers(1, 11, 3000))
    _check(s, rng.normal(size=DIM), T0 + timedelta(days=1))
    assert s._flat is not None and s._flat.end == 3000
    assert s.scan_bytes_per_record == DIM + 4 + 8  # int8 row + scale, two float32 columns


@needs_kernel
@pytest.mark.parametrize("d", [17, 64, 100, 385])
def test_scan_bound_holds_on_spiky_and_odd_dims(d: int) -> None:
    rng = np.random.default_rng(d)
    x = rng.normal(size=(600, d)).astype(np.float32)
    x[:50] = 0.0
    x[np.arange(50), rng.integers(0, d, 50)] = 1.0  # one-hot rows
    x[50:100, 0] = 300.0  # one huge component, the rest tiny after normalising
    x[100:150] = 1e-30 + x[100:150]  # ordinary rows scaled to tiny norms (normalised below)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    flat = Int8Flat(d, _Kernel.get(), capacity=64)
    flat.extend(x[:250], 250)
    flat.extend(x, 600)  # grows, keeps the first rows
    for q in (rng.normal(size=d), x[0], -x[60], np.eye(d)[0], np.abs(rng.normal(size=d))):
        q = (q / np.linalg.norm(q)).astype(np.float32)
        approx, eps, hi, lo, near, n_hi = flat.scan(q)
        exact = x.astype(np.float64) @ q.astype(np.float64)
        assert np.all(np.abs(approx - exact) <= eps)
        assert eps < 0.1  # spiky rows quantise worst (their small components round to 0)
        assert near[:n_hi].tolist() == np.flatnonzero(approx >= hi - 2 * eps).tolist()
        assert near[n_hi:].tolist() == np.flatnonzero(approx <= lo + 2 * eps).tolist()


@needs_kernel
def test_ties_constant_recency_and_duplicates() -> None:
    rng = np.random.default_rng(11)
    v = _rng_unit(rng, 1200)
    v[::7] = v[0]  # 172 identical memories
    imp = np.full(1200, 5)
    imp[::3] = 8
    s = _build(v, imp, times=[T0] * 1200)  # recency constant: every record accessed at T0
    now = T0 + timedelta(hours=3)
    for w in (RetrievalWeights(), RetrievalWeights(0, 0, 1), RetrievalWeights(1, 0, 0),
              RetrievalWeights(0, 1, 0), RetrievalWeights(0, 0, 0),
              RetrievalWeights.released_code()):
        _check(s, v[0], now, weights=w)  # the duplicated row is the query: a 172-way tie
        _check(s, -v[0], now, weights=w)  # ... and the minimum
        _check(s, rng.normal(size=DIM), now, weights=w, k=25)


@needs_kernel
def test_one_huge_importance() -> None:
    rng = np.random.default_rng(12)
    v = _rng_unit(rng, 2000)
    imp = np.ones(2000, dtype=int)
    imp[1234] = 10  # importance's min-max: 1 for this record, 0 for all others
    s = _build(v, imp)
    now = T0 + timedelta(hours=10)
    for w in (RetrievalWeights(), RetrievalWeights(0.01, 1000.0, 0.01),
              RetrievalWeights(1.0, -50.0, 1.0)):
        got = _check(s, rng.normal(size=DIM), now, weights=w)
        if w.importance > 1:
            assert got[0][0] == s._records[1234].id


@needs_kernel
def test_near_duplicate_embeddings_below_int8_resolution() -> None:
    rng = np.random.default_rng(13)
    base = _rng_unit(rng, 1)[0]
    v = _rng_unit(rng, 1500)
    for j, scale in enumerate((1e-3, 1e-5, 1e-7)):  # 3 clusters of 200 near-copies
        block = base + scale * rng.normal(size=(200, DIM)).astype(np.float32)
        v[200 * j: 200 * (j + 1)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    s = _build(v, np.full(1500, 7), times=[T0] * 1500)  # only relevance separates them
    now = T0 + timedelta(hours=1)
    _check(s, base, now)  # the answer is decided by differences int8 cannot see
    _check(s, base, now, weights=RetrievalWeights(0, 0, 1), k=50)
    _check(s, base + 1e-4 * rng.normal(size=DIM).astype(np.float32), now)
    _check(s, -base, now, k=64)  # the cluster holds the minimum instead


@needs_kernel
def test_k_limits_filters_touches_and_growth() -> None:
    rng = np.random.default_rng(14)
    n = 1100
    s = _build(_rng_unit(rng, n), rng.integers(1, 11, n),
               kinds=("observation", "plan", "chat", "reflection"))
    now = T0 + timedelta(seconds=10 * n + 60)
    for k in (1, 10, 64, 65, 200, n, n + 5):
        _check(s, rng.normal(size=DIM), now, k=k)
    _check(s, rng.normal(size=DIM), now, kinds=("plan",))
    _check(s, rng.normal(size=DIM), now, kinds=("chat", "reflection"), k=64)
    _check(s, rng.normal(size=DIM), T0 - timedelta(hours=2))  # every access after `now`
    for i in range(30):  # retrievals touch, new rows arrive: the index follows
        s.retrieve(rng.normal(size=DIM), now, k=10)
        s.add(f"late {i}", "observation", now, int(rng.integers(1, 11)), rng.normal(size=DIM))
        now += timedelta(minutes=5)
        _check(s, rng.normal(size=DIM), now)
    assert s._flat is not None and s._flat.end == len(s)
    qs = _rng_unit(rng, 4)
    many = s.retrieve_many(qs, now, touch=False)
    for q, got in zip(qs, many):
        assert [(g.record.id, g.score) for g in got] == [
            (g.record.id, g.score) for g in s.retrieve(q, now, touch=False)]


@needs_kernel
def test_kernel_and_fallbacks_agree_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled scan, torch's int8 blocks and float32 give the same answer: a run's
    memories do not depend on which one this machine has."""
    def run() -> list:
        rng = np.random.default_rng(15)
        v = _rng_unit(rng, 5000)
        v[::50] = v[1]
        s = _build(v, rng.integers(1, 11, 5000))
        now = T0 + timedelta(days=1)
        out = []
        for _ in range(6):
            q = rng.normal(size=DIM)
            out.append(_check(s, q, now))
            s.retrieve(q, now)  # touch
            now += timedelta(minutes=13)
        out.append(_check(s, v[1], now))
        return out

    with_kernel = run()
    monkeypatch.setenv(KERNEL_ENV, "0")
    assert run() == with_kernel
    monkeypatch.setenv("VILLAGE_RETRIEVAL_INT8", "0")
    assert run() == with_kernel


@needs_kernel
def test_shortlist_is_a_superset_of_the_margin() -> None:
    rng = np.random.default_rng(16)
    flat = Int8Flat(8, _Kernel.get(), capacity=4096)
    for trial in range(40):
        m = int(rng.integers(11, 4000))
        arrs = [np.round(rng.normal(size=m), int(rng.integers(1, 4))).astype(np.float32)
                for _ in range(int(rng.integers(1, 4)))]
        coefs = [float(c) for c in rng.choice([-2.0, 0.5, 1.0, 3.0], size=len(arrs))]
        k = int(rng.integers(1, 11))
        margin = float(rng.choice([0.0, 1e-3, 0.1]))
        cand, kth = flat.shortlist(list(zip(coefs, arrs)), k, margin)
        t = arrs[0] * np.float32(coefs[0])
        for c, a in zip(coefs[1:], arrs[1:]):
            t += a * np.float32(c)
        ref_kth = float(np.sort(t)[-k])
        assert abs(kth - ref_kth) <= 1e-5 * max(1.0, abs(ref_kth)), trial
        need = set(np.flatnonzero(t >= ref_kth - margin + 1e-5 * max(1.0, abs(ref_kth))).tolist())
        assert need <= set(cand.tolist()), trial
        assert cand.tolist() == sorted(cand.tolist())


@needs_kernel
@pytest.mark.parametrize("d", [1, 7, 8, 9, 17, 100, 384, 385, 1000])
def test_compiled_exact_arithmetic_is_numpys(d: int) -> None:
    """`vr_exact` (the shortlist's exact relevance) and `vr_unit` (the query's
    normalisation) reproduce numpy's bits, or `exact_ok` says they do not and `Int8Flat.top_k`
    stays off: never a silent difference."""
    lib = _Kernel.get()
    rng = np.random.default_rng(d)
    x = rng.normal(size=(300, d)).astype(np.float32)
    x[7] = -0.0
    x[8] *= np.float32(1e-35)
    x[9] *= np.float32(3e35)
    idx = rng.permutation(300).astype(np.int64)
    q = rng.normal(size=(1, d)).astype(np.float32)
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    unit = (q / np.where(norms > 0, norms, 1.0))[0]
    q64 = unit.astype(np.float64)
    out, u, sq = np.empty(300), np.empty(d, np.float32), np.empty(d, np.float32)
    lib.vr_exact(x.ctypes.data, x.strides[0], idx.ctypes.data, 300, q64.ctypes.data, d,
                 out.ctypes.data)
    lib.vr_unit(q.ctypes.data, d, u.ctypes.data, sq.ctypes.data)
    ref = np.einsum("ij,j->i", x[idx].astype(np.float64), q64)
    same = (np.array_equal(out.view(np.int64), ref.view(np.int64))
            and np.array_equal(u.view(np.int32), unit.view(np.int32)))
    assert same or not _Kernel.exact_ok(lib, d)
    if _Kernel.exact_ok(lib, d):
        assert same


@needs_kernel
def test_compiled_rescore_and_its_fallbacks() -> None:
    """`Int8Flat.top_k` (scan, shortlist and exact re-score in C) answers the common case;
    weights it does not handle, k above its limit, filters and a zero query go through
    `bounded_top_k`: every answer is `exact_top_k`'s, bit for bit."""
    rng = np.random.default_rng(17)
    n = 2000
    v = _rng_unit(rng, n)
    v[100:140] = v[5]  # ties in relevance
    s = _build(v, rng.integers(1, 11, n), kinds=("observation", "plan"))
    now = T0 + timedelta(seconds=10 * n + 600)
    q = rng.normal(size=DIM)
    got = _check(s, q, now)
    flat = s._flat
    assert flat is not None and flat.exact == _Kernel.exact_ok(_Kernel.get(), DIM)
    if flat.exact:
        qq = np.asarray(q, dtype=np.float32)
        plan = s._fused_plan(n, _to_seconds(now), 0.995, RetrievalWeights())
        assert plan is not None
        cols = s._fused_cols()
        idx, vals = flat.top_k(qq, 10, _to_seconds(now), 0.995, (1.0, 1.0, 1.0), cols,
                               plan[:8])
        assert [s._records[i].id for i in idx] == [g[0] for g in got]
        assert vals[::4] == [g[1] for g in got]
    for w in (RetrievalWeights(0, 0, 0), RetrievalWeights(0, 1, 0), RetrievalWeights(1, 0, 0),
              RetrievalWeights(0, 0, 1), RetrievalWeights(-1, 2, -0.5),
              RetrievalWeights.released_code()):
        for k in (1, 10, 64, 65):
            _check(s, q, now, k=k, weights=w)
    _check(s, v[5], now, k=30)  # the 41 tied rows compete
    a = s._a  # a zero query: every relevance 0 (the stream divides by 1, not by 0)
    hits = s.retrieve(np.zeros(DIM), now, touch=False)
    best, totals = exact_top_k(a.emb[:n], np.zeros(DIM, np.float32), a.importance[:n],
                               a.accessed[:n], _to_seconds(now), 10)
    assert [(g.record.index, g.score) for g in hits] == list(zip(best.tolist(),
                                                                 totals.tolist()))
    _check(s, q, now, kinds=("plan",))
    qs = _rng_unit(rng, 3)
    many = s.retrieve_many(qs, now, touch=False)
    for qj, hits in zip(qs, many):
        assert [(g.record.id, g.score, g.recency, g.importance, g.relevance)
                for g in hits] == _check(s, qj, now)
