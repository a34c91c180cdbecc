"""Micro-benchmark: vectorised top-10 retrieval vs a per-record Python loop.

Run: .venv/bin/python benchmarks/retrieval_bench.py
Prints milliseconds per retrieval (median of several runs) at 10k and 100k records, dim 384,
against the previous fast path in the same process (alternated), on random and agent-like
streams, and, with --embed, the bundled MiniLM's throughput on a batch of 256 sentences.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memory.stream import MemoryStream  # noqa: E402

DIM = 384
T0 = datetime(2023, 2, 13, 7)


def build(n: int, rng: np.random.Generator) -> MemoryStream:
    """A stream of n random unit vectors, one memory every 10 game seconds."""
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    imp = rng.integers(1, 11, size=n)
    s = MemoryStream("bench", DIM, capacity=n)
    for i in range(n):
        s.add(f"m{i}", "observation", T0 + timedelta(seconds=10 * i), int(imp[i]), vecs[i])
    return s


def build_realistic(n: int, rng: np.random.Generator) -> MemoryStream:
    """A stream shaped like an agent's (synthetic, no model needed): embeddings of sentence
    models are anisotropic (a shared direction: most cosines 0.1-0.6, not ~0) and clustered
    by topic; agents observe the same things again and again ("X is idle", "the cafe is
    open"), so many memories repeat an earlier vector exactly or almost (a reworded
    observation); importance is skewed low with a few highs; memories arrive in bursts
    (conversations) between quiet stretches; earlier retrievals have touched some of them.
    These are the hard cases for a shortlist: ties, near-ties, crowded extremes."""
    mean = rng.normal(size=DIM)
    mean /= np.linalg.norm(mean)
    n_topics = max(8, n // 50)
    topics = rng.normal(size=(n_topics, DIM)) * 0.9 / np.sqrt(DIM) + 0.45 * mean
    sizes = rng.zipf(1.6, size=n_topics).astype(float)  # a few topics dominate
    p_topic = sizes / sizes.sum()
    vecs = np.empty((n, DIM), dtype=np.float32)
    for i in range(n):
        u = rng.random()
        if i > 0 and u < 0.25:  # the same observation again
            vecs[i] = vecs[int(rng.integers(0, i))]
        elif i > 0 and u < 0.35:  # reworded: a near-duplicate
            vecs[i] = vecs[int(rng.integers(0, i))] + rng.normal(size=DIM) * (0.02 / np.sqrt(DIM))
        else:
            t = topics[rng.choice(n_topics, p=p_topic)]
            vecs[i] = t + rng.normal(size=DIM) * (0.55 / np.sqrt(DIM))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    imp = np.minimum(10, 1 + rng.geometric(0.45, size=n))
    imp[rng.random(n) < 0.03] = 10
    gaps = np.where(rng.random(n) < 0.7, rng.integers(1, 15, n), rng.integers(60, 1800, n))
    times = np.cumsum(gaps)
    s = MemoryStream("bench", DIM, capacity=n)
    for i in range(n):
        s.add(f"m{i}", ("observation", "chat", "plan", "reflection")[i % 4],
              T0 + timedelta(seconds=int(times[i])), int(imp[i]), vecs[i])
    now = T0 + timedelta(seconds=int(times[-1]) + 600)
    for j in range(40):  # some earlier retrievals (touches)
        q = vecs[int(rng.integers(0, n))] + rng.normal(size=DIM).astype(np.float32) * 0.03
        s.retrieve(q, T0 + timedelta(seconds=int(times[(j + 1) * (n - 1) // 40])), k=10)
    s.bench_now = now  # type: ignore[attr-defined]  # a `now` after every memory and touch
    return s


def realistic_queries(s: MemoryStream, m: int, rng: np.random.Generator) -> np.ndarray:
    """Queries like an agent's: near a stored memory (what it is thinking about), one equal
    to a stored memory (a repeated observation), one random."""
    emb = s.embeddings
    idx = rng.integers(0, len(s), size=m)
    qs = emb[idx] + rng.normal(size=(m, DIM)).astype(np.float32) * (0.3 / np.sqrt(DIM))
    qs[0] = emb[idx[0]]
    qs[-1] = rng.normal(size=DIM)
    return (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)


def loop_top10(s: MemoryStream, q: np.ndarray, now: datetime) -> list[int]:
    """The naive way: score every record in Python, then sort (what vectorising replaces)."""
    qv = [float(x) for x in q]
    recs = list(s)
    emb = s.embeddings
    rec, imp, rel = [], [], []
    for r in recs:
        hours = (now - r.last_accessed).total_seconds() / 3600
        rec.append(0.995**hours)
        imp.append(r.importance)
        row = emb[r.index]
        rel.append(sum(a * float(b) for a, b in zip(qv, row)))

    def norm(xs: list[float]) -> list[float]:
        lo, hi = min(xs), max(xs)
        return [0.5] * len(xs) if hi == lo else [(x - lo) / (hi - lo) for x in xs]

    tot = [a + b + c for a, b, c in zip(norm(rec), norm(imp), norm(rel))]
    return sorted(range(len(recs)), key=lambda i: (-tot[i], i))[:10]


def timed(fn, repeat: int) -> float:
    """Median wall time of fn() in ms."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def embed_throughput(reps: int = 5) -> None:
    """Sentences/s of MiniLMEmbedder on 256 short, distinct sentences (cache cleared)."""
    from memory.embeddings import MiniLMEmbedder

    e = MiniLMEmbedder()
    e.embed(["warm up the model"])
    texts = [f"resident {i} is walking to the {('cafe', 'park', 'bar')[i % 3]} "
             f"to meet friend number {i * 7}" for i in range(256)]

    def run() -> None:
        e._cache.clear()
        e.embed(texts)

    ms = timed(run, repeat=reps)
    print(f"MiniLM embed, batch of 256: {ms:8.1f} ms = {256 / ms * 1000:.0f} sentences/s")


def _previous(s: MemoryStream, fn):  # noqa: ANN001, ANN202
    """Run fn() through the path before the compiled scan (torch int8 blocks + float32)."""
    from village.bench.retrieval import previous_path

    with previous_path(s):
        return fn()


def main() -> None:
    import os

    from memory.retrieval import exact_top_k
    from memory.stream import _to_seconds

    print(f"load average {os.getloadavg()}")
    rng = np.random.default_rng(0)
    q = rng.normal(size=DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    for n in (10_000, 100_000):
        s = build(n, rng)
        now = T0 + timedelta(seconds=10 * n)
        # alternate ours / previous path 5 times in this process: medians of medians
        ours, prev = [], []
        for _ in range(5):
            ours.append(timed(lambda: s.retrieve(q, now, k=10, touch=False), repeat=40))
            prev.append(_previous(s, lambda: timed(
                lambda: s.retrieve(q, now, k=10, touch=False), repeat=40)))
        ms, ms_prev = statistics.median(ours), statistics.median(prev)
        print(f"vectorised top-10, {n:>7,} records x {DIM}: {ms:8.3f} ms "
              f"(runs {min(ours):.3f}-{max(ours):.3f}); previous path {ms_prev:.3f} ms "
              f"({ms_prev / ms:.2f}x)")
        if n == 10_000:
            fast = [g.record.index for g in s.retrieve(q, now, k=10, touch=False)]
            slow = loop_top10(s, q, now)
            assert fast == slow, (fast, slow)
            ms_loop = timed(lambda: loop_top10(s, q, now), repeat=3)
            print(f"python loop top-10, {n:>7,} records x {DIM}: {ms_loop:8.2f} ms "
                  f"({ms_loop / ms:.0f}x slower)")
        qs = rng.normal(size=(8, DIM)).astype(np.float32)
        ms8 = timed(lambda: s.retrieve_many(qs, now, k=10, touch=False), repeat=10)
        print(f"retrieve_many 8 queries, {n:>7,} records: {ms8:8.2f} ms "
              f"({ms8 / 8:.2f} ms/query)")
        sr = build_realistic(n, rng)
        a = sr._a
        rq = realistic_queries(sr, 8, rng)
        same = all([g.record.index for g in sr.retrieve(x, sr.bench_now, touch=False)]
                   == exact_top_k(a.emb[:n], x, a.importance[:n], a.accessed[:n],
                                  _to_seconds(sr.bench_now), 10)[0].tolist() for x in rq)
        ms_r = statistics.median(timed(lambda x=x: sr.retrieve(x, sr.bench_now, touch=False),
                                       repeat=20) for x in rq)
        print(f"agent-like stream, {n:>7,} records: {ms_r:8.3f} ms (median of 8 queries); "
              f"same top-10 as the exact score: {same}")


if __name__ == "__main__":
    main()
    if "--embed" in sys.argv[1:]:
        embed_throughput()
