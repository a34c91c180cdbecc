"""Micro-benchmark: vectorised top-10 retrieval vs a per-record Python loop.

Run: .venv/bin/python benchmarks/retrieval_bench.py
Prints milliseconds per retrieval (median of several runs) at 10k and 100k records, dim 384,
and, with --embed, the bundled MiniLM's throughput on a batch of 256 sentences.
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


def main() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=DIM).astype(np.float32)
    q /= np.linalg.norm(q)
    for n in (10_000, 100_000):
        s = build(n, rng)
        now = T0 + timedelta(seconds=10 * n)
        ms = timed(lambda: s.retrieve(q, now, k=10, touch=False), repeat=20)
        print(f"vectorised top-10, {n:>7,} records x {DIM}: {ms:8.2f} ms")
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


if __name__ == "__main__":
    main()
    if "--embed" in sys.argv[1:]:
        embed_throughput()
