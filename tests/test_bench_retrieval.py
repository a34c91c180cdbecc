"""The fast retrieval path returns exactly what scoring every record exactly returns.

`MemoryStream.retrieve` scans an approximation of relevance (int8 rows through torch's
kernel from `MemoryStream.INDEX_MIN` rows on, float32 below) and re-scores a provable
shortlist exactly; these tests compare its winners, order and score components bit for bit
with `memory.retrieval.exact_top_k`, which scores every record.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from memory.retrieval import (
    KERNEL_ENV,
    Int8Blocks,
    RetrievalWeights,
    Static,
    bounded_top_k,
    exact_relevance,
    minmax,
    recency,
)
from memory.stream import MemoryStream

T0 = datetime(2023, 2, 13, 7)


def _stream(n: int, dim: int, rng: np.random.Generator, dup_every: int = 0,
            same_time: bool = False) -> MemoryStream:
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    if dup_every:
        vecs[::dup_every] = vecs[0]  # identical memories: exact ties in relevance
    imp = rng.integers(1, 11, size=n)
    s = MemoryStream("a", dim, capacity=n)
    for i in range(n):
        t = T0 if same_time else T0 + timedelta(seconds=10 * i)
        s.add(f"m{i}", ("observation", "plan", "chat")[i % 3], t, int(imp[i]), vecs[i])
    return s


def _check(s: MemoryStream, q: np.ndarray, now: datetime, k: int = 10,
           weights: RetrievalWeights = RetrievalWeights(), kinds=None) -> None:
    from tests.test_memory_retrieval_kernel import _check as exact_check

    exact_check(s, q, now, k=k, weights=weights, kinds=kinds)


@pytest.mark.parametrize("n", [1, 7, 300, 5000])
def test_retrieve_equals_exact_scoring(n: int) -> None:
    rng = np.random.default_rng(n)
    s = _stream(n, 384, rng)
    now = T0 + timedelta(seconds=10 * n + 3600)
    for _ in range(3):
        q = rng.normal(size=384)
        _check(s, q, now)
        _check(s, q, now, weights=RetrievalWeights.released_code())
        _check(s, q, now, k=25, kinds=("plan", "chat"))
        s.retrieve(q, now, k=10)  # touch: moves access times, as in a run
        now += timedelta(minutes=7)


def test_int8_index_is_used_and_still_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KERNEL_ENV, "0")  # the torch fallback (the compiled scan: its own tests)
    if not Int8Blocks.available():
        pytest.skip("torch's int8 kernel is not available here (float32 scan only)")
    rng = np.random.default_rng(1)
    s = _stream(MemoryStream.INDEX_MIN + 1500, 384, rng, dup_every=97)
    now = T0 + timedelta(days=2)
    for _ in range(5):
        _check(s, rng.normal(size=384), now)
    _check(s, s.embeddings[0], now)  # a query equal to 40-odd identical memories: ties
    assert s._index is not None and s._index.end >= MemoryStream.INDEX_MIN
    assert s.scan_bytes_per_record < 4 * 384 / 3  # int8, not float32
    for i in range(1100):  # grow past another block: the index extends, still exact
        s.add(f"late {i}", "observation", now, 5, rng.normal(size=384))
    _check(s, rng.normal(size=384), now + timedelta(hours=1))


def test_degenerate_streams_ties_and_weights() -> None:
    rng = np.random.default_rng(2)
    s = _stream(400, 16, rng, dup_every=3, same_time=True)  # recency constant, many ties
    now = T0 + timedelta(hours=5)
    for w in (RetrievalWeights(), RetrievalWeights(0, 0, 1), RetrievalWeights(1, 0, 0),
              RetrievalWeights(0, 1, 0), RetrievalWeights(0, 0, 0), RetrievalWeights(2, -1, 0.5)):
        _check(s, rng.normal(size=16), now, weights=w)
        _check(s, s.embeddings[0], now, weights=w)
    _check(s, np.ones(16), T0 - timedelta(hours=1))  # accessed after `now`: clamped hours


def test_bounded_top_k_with_noisy_relevance_matches_definition() -> None:
    """The bound logic alone: any approximation within eps gives the exact answer."""
    rng = np.random.default_rng(3)
    for trial in range(60):
        m = int(rng.integers(1, 3000))
        exact = np.round(rng.normal(scale=0.1, size=m), int(rng.integers(2, 6)))  # ties
        eps = float(rng.choice([1e-6, 0.01, 0.05, 0.3]))
        approx = (exact + rng.uniform(-eps, eps, size=m)).astype(np.float32)
        imp = rng.integers(1, 11, size=m).astype(np.float64)
        if trial % 7 == 0:
            imp[:] = 4.0
        acc = 1.6e9 + np.round(rng.uniform(0, 3600 * 50, size=m), int(rng.integers(0, 3)))
        now_s = float(acc.max()) + float(rng.uniform(0, 7200))
        k = int(rng.integers(1, 20))
        w = RetrievalWeights(*rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], size=3))
        static = Static(imp, acc)
        got = bounded_top_k(approx, eps + 1e-7, static, now_s, k, w, lambda idx: exact[idx])
        rec_n = minmax(recency(np.maximum(now_s - acc, 0.0) / 3600.0))
        total = w.recency * rec_n + w.importance * minmax(imp) + w.relevance * minmax(exact)
        ref = sorted(range(m), key=lambda i: (-total[i], i))[:k]
        assert got[0].tolist() == ref, trial
        assert got[1].tolist() == total[ref].tolist(), trial


def test_exact_relevance_is_row_stable() -> None:
    """Identical rows get identical bits wherever they sit (ties stay ties)."""
    rng = np.random.default_rng(4)
    row = rng.normal(size=384).astype(np.float32)
    rows = np.vstack([rng.normal(size=(5, 384)).astype(np.float32), np.tile(row, (37, 1))])
    q = rng.normal(size=384)
    out = exact_relevance(rows, q)
    assert len(set(out[5:].tolist())) == 1
    assert exact_relevance(row[None, :], q)[0] == out[5]
