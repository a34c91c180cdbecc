"""An agent's memory stream: records plus one embedding matrix, retrieved in one numpy pass.

Records live in a Python list for readability; everything retrieval needs (embeddings,
importance, created, last access, kind) lives in preallocated numpy arrays grown by doubling,
so scoring thousands of memories is a matrix-vector product, not a Python loop. From
`MemoryStream.KERNEL_MIN` records on (compiled scan) or `INDEX_MIN` (torch's kernel, when no
C compiler is available), that product reads an int8 copy of the rows and only a provable
shortlist is re-scored exactly (memory/retrieval.py: `bounded_top_k`): the same top-k, bit
for bit, for a quarter of the memory traffic.
"""

from __future__ import annotations

import base64
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from memory.retrieval import (
    F32_EPS,
    RECENCY_DECAY,
    Int8Blocks,
    Int8Flat,
    RetrievalWeights,
    _Kernel,
    Static,
    approx_terms,
    bounded_top_k,
    exact_relevance,
)

KINDS: tuple[str, ...] = ("observation", "reflection", "plan", "chat", "whisper")
"""Memory types: the paper's four plus "whisper" (facts seeded by the experimenter)."""

_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_EPOCH = datetime(1970, 1, 1)
_LAM = -math.log(RECENCY_DECAY) / 3600.0  # growth = exp(_LAM * seconds): recency's inverse
_STATE_VERSION = 1


def _to_seconds(dt: datetime) -> float:
    """Seconds since the unix epoch; naive datetimes count as UTC so results never depend
    on the machine's time zone or DST (game clocks are naive)."""
    if dt.tzinfo is None:
        return (dt - _EPOCH).total_seconds()
    return dt.timestamp()


@dataclass
class MemoryRecord:
    """One memory: what the paper calls a memory object, plus where its vector lives."""

    id: int
    agent: str
    kind: str
    description: str
    created: datetime
    last_accessed: datetime
    importance: int
    evidence: tuple[int, ...] = ()
    step: int = 0
    index: int = -1
    """Row of this record in its stream's embedding matrix (-1 until added to a stream)."""

    def __post_init__(self) -> None:
        if self.kind not in _KIND_CODE:
            raise ValueError(f"unknown memory kind {self.kind!r}; expected one of {KINDS}")
        # Models answer "7.5" or 11; clamp rather than fail, the paper's scale is 1..10.
        self.importance = min(10, max(1, int(self.importance)))
        self.evidence = tuple(int(e) for e in self.evidence)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (datetimes as ISO strings, which round-trip exactly)."""
        return {
            "id": self.id,
            "agent": self.agent,
            "kind": self.kind,
            "description": self.description,
            "created": self.created.isoformat(),
            "last_accessed": self.last_accessed.isoformat(),
            "importance": self.importance,
            "evidence": list(self.evidence),
            "step": self.step,
            "index": self.index,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemoryRecord:
        """Inverse of `to_dict`."""
        return cls(
            id=int(d["id"]),
            agent=d["agent"],
            kind=d["kind"],
            description=d["description"],
            created=datetime.fromisoformat(d["created"]),
            last_accessed=datetime.fromisoformat(d["last_accessed"]),
            importance=int(d["importance"]),
            evidence=tuple(d.get("evidence", ())),
            step=int(d.get("step", 0)),
            index=int(d.get("index", -1)),
        )


@dataclass
class Scored:
    """A retrieved record with its normalised score components, so a decision can be traced
    to why each memory was picked."""

    record: MemoryRecord
    recency: float
    importance: float
    relevance: float
    score: float


@dataclass
class _Arrays:
    """Column storage, all with the same capacity; rows [0, n) are filled."""

    emb: np.ndarray
    importance: np.ndarray = field(init=False)
    created: np.ndarray = field(init=False)
    accessed: np.ndarray = field(init=False)
    kind: np.ndarray = field(init=False)
    importance32: np.ndarray = field(init=False)
    """float32 copies for the approximate pass of retrieval (half the bytes to read)."""
    growth: np.ndarray = field(init=False)
    """exp(lam * (accessed - ref)) in float32: proportional to recency (see `_static`)."""

    def __post_init__(self) -> None:
        cap = self.emb.shape[0]
        self.importance = np.zeros(cap, dtype=np.float64)
        self.created = np.zeros(cap, dtype=np.float64)
        self.accessed = np.zeros(cap, dtype=np.float64)
        self.kind = np.zeros(cap, dtype=np.int8)
        self.importance32 = np.zeros(cap, dtype=np.float32)
        self.growth = np.zeros(cap, dtype=np.float32)

    def grow(self, n_filled: int, new_cap: int) -> None:
        """Reallocate to `new_cap` rows, copying the filled ones (amortised O(1) per add)."""
        for name in ("emb", "importance", "created", "accessed", "kind", "importance32",
                     "growth"):
            old = getattr(self, name)
            new = np.zeros((new_cap, *old.shape[1:]), dtype=old.dtype)
            new[:n_filled] = old[:n_filled]
            setattr(self, name, new)


def _f32_scan(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """rows @ q.T in float32 without BLAS (einsum: one thread; OpenBLAS would start a
    thread pool for a matrix this size and, on a busy machine, wait for it)."""
    if q.shape[0] == 1:
        return np.einsum("ij,j->i", rows, q[0])[None, :]
    return np.einsum("ij,qj->qi", rows, q)


class MemoryStream:
    """All memories of one agent, with vectorised retrieval by the paper's score."""

    def __init__(
        self,
        agent: str,
        dim: int,
        next_id: Callable[[], int] | None = None,
        capacity: int = 256,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"embedding dim must be positive, got {dim}")
        self.agent = agent
        self.dim = int(dim)
        self._records: list[MemoryRecord] = []
        self._by_id: dict[int, int] = {}
        self._counter = itertools.count(1)
        self._last_local_id = 0
        self._shared_ids = next_id is not None
        self._next_id = next_id if next_id is not None else self._local_id
        self._a = _Arrays(np.zeros((max(1, capacity), self.dim), dtype=np.float32))
        self._index: Int8Blocks | None = None  # built once the stream reaches INDEX_MIN rows
        self._flat: Int8Flat | None = None  # the compiled scan's rows, from KERNEL_MIN rows on
        # kept up to date on every write, so a retrieval need not scan for them
        self._imp_hist = np.zeros(11, dtype=np.int64)  # records per importance 1..10
        self._acc_range: tuple[float, float] | None = None  # (min, max) of accessed; None: stale
        self._ref: float | None = None  # the time `growth` is relative to
        self._imp_range: tuple[float, float] | None = None  # (min, max) importance; None: stale
        self._plan: tuple[Any, Any] = (None, None)  # (key, plan) of `_fused_plan`
        self._cols: tuple[Any, Any] = (None, None)  # (arrays, addresses) of `_fused_cols`

    def _local_id(self) -> int:
        self._last_local_id = next(self._counter)
        return self._last_local_id

    # -- container protocol -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[MemoryRecord]:
        return iter(self._records)

    @property
    def capacity(self) -> int:
        """Rows allocated in the embedding matrix (grows by doubling)."""
        return self._a.emb.shape[0]

    @property
    def embeddings(self) -> np.ndarray:
        """Read-only view of the filled rows of the embedding matrix, shape (len, dim)."""
        view = self._a.emb[: len(self._records)]
        view.flags.writeable = False
        return view

    def get(self, id: int) -> MemoryRecord:
        """The record with this id (KeyError if it is not in this stream)."""
        return self._records[self._by_id[id]]

    def __contains__(self, id: object) -> bool:
        return id in self._by_id

    # -- writing ------------------------------------------------------------------------

    def add(
        self,
        description: str,
        kind: str,
        created: datetime,
        importance: int,
        embedding: np.ndarray | Sequence[float],
        evidence: Iterable[int] = (),
        step: int = 0,
    ) -> MemoryRecord:
        """Append a memory; its last access starts at its creation time (as in the paper)."""
        vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise ValueError(
                f"embedding has dim {vec.shape[0]} but this memory stream stores dim {self.dim} "
                "(was the embedding model changed?)"
            )
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm):
            raise ValueError("embedding contains NaN or inf")
        if norm > 0 and abs(norm - 1.0) > 1e-6:
            vec = vec / norm  # keep rows unit length so relevance is a plain dot product
        n = len(self._records)
        rec = MemoryRecord(
            id=self._next_id(),
            agent=self.agent,
            kind=kind,
            description=description,
            created=created,
            last_accessed=created,
            importance=importance,
            evidence=tuple(evidence),
            step=step,
            index=n,
        )
        if rec.id in self._by_id:
            raise ValueError(f"duplicate memory id {rec.id} in stream of {self.agent}")
        if n == self.capacity:
            self._a.grow(n, 2 * self.capacity)
        a = self._a
        a.emb[n] = vec
        a.importance[n] = a.importance32[n] = rec.importance
        self._imp_hist[rec.importance] += 1
        if self._imp_range is not None:
            lo, hi = self._imp_range
            self._imp_range = (min(lo, rec.importance), max(hi, rec.importance))
        t = _to_seconds(created)
        a.created[n] = t
        self._records.append(rec)
        self._by_id[rec.id] = n
        self._set_accessed(n, t, fresh=True)
        a.kind[n] = _KIND_CODE[kind]
        return rec

    def set_importance(self, id: int, importance: int) -> MemoryRecord:
        """Importance is rated after a record is added (in batches, one call for several)."""
        row = self._by_id[id]
        rec = self._records[row]
        self._imp_hist[rec.importance] -= 1
        rec.importance = int(min(10, max(1, int(importance))))
        self._imp_hist[rec.importance] += 1
        self._imp_range = None
        self._a.importance[row] = self._a.importance32[row] = rec.importance
        return rec

    # -- reading ------------------------------------------------------------------------

    def _kind_mask(self, kinds: Iterable[str] | None) -> np.ndarray | None:
        """Row indices whose kind is in `kinds`, or None for all rows."""
        if kinds is None:
            return None
        if isinstance(kinds, str):
            kinds = (kinds,)
        codes = []
        for k in kinds:
            if k not in _KIND_CODE:
                raise ValueError(f"unknown memory kind {k!r}; expected one of {KINDS}")
            codes.append(_KIND_CODE[k])
        return np.flatnonzero(np.isin(self._a.kind[: len(self._records)], codes))

    def recent(self, n: int, kinds: Iterable[str] | None = None) -> list[MemoryRecord]:
        """The n most recently created records (optionally of some kinds), newest last."""
        if n <= 0:
            return []
        rows = self._kind_mask(kinds)
        if rows is None:
            rows = np.arange(len(self._records))
        # Stable sort on creation time: insertion order breaks ties.
        order = rows[np.argsort(self._a.created[rows], kind="stable")]
        return [self._records[i] for i in order[-n:]]

    def retrieve(
        self,
        query_embedding: np.ndarray | Sequence[float],
        now: datetime,
        k: int = 10,
        weights: RetrievalWeights = RetrievalWeights(),
        kinds: Iterable[str] | None = None,
        touch: bool = True,
        decay: float = RECENCY_DECAY,
    ) -> list[Scored]:
        """Top-k memories by the paper's score for one query, best first."""
        q = np.asarray(query_embedding, dtype=np.float32).reshape(1, -1)
        return self.retrieve_many(q, now, k=k, weights=weights, kinds=kinds, touch=touch,
                                  decay=decay)[0]

    def retrieve_many(
        self,
        query_embeddings: np.ndarray,
        now: datetime,
        k: int = 10,
        weights: RetrievalWeights = RetrievalWeights(),
        kinds: Iterable[str] | None = None,
        touch: bool = True,
        decay: float = RECENCY_DECAY,
    ) -> list[list[Scored]]:
        """Top-k for each of q queries (one matrix product for all), one list per query.

        All queries are scored against the same state; last-access times are touched once
        afterwards, so the result does not depend on the order of the queries.
        """
        q = np.asarray(query_embeddings, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"query embeddings have shape {q.shape} but this memory stream stores "
                f"dim {self.dim}; expected (q, {self.dim})"
            )
        rows = self._kind_mask(kinds)
        n = len(self._records)
        m = n if rows is None else rows.size
        if m == 0 or k <= 0:
            return [[] for _ in range(q.shape[0])]

        now_s = _to_seconds(now)
        flat = self._flat_index(n)
        plan = cols = None
        if flat is not None and rows is None and flat.exact and k <= 64 and k < n:
            plan = self._fused_plan(n, now_s, decay, weights)
            if plan is not None:
                cols = self._fused_cols()
                if not plan[8]:
                    cols = (0, *cols[1:])  # no recency term
        results: list[list[Scored]] = []
        picked: set[int] = set()
        if plan is not None:  # all but recency's power in C, the query normalised there too
            q = np.ascontiguousarray(q)
            recs = self._records
            wts = (weights.recency, weights.importance, weights.relevance)
            for j in range(q.shape[0]):
                with flat.lock:
                    got = flat.top_k(q[j], k, now_s, decay, wts, cols, plan[:8])
                    if got is None:  # the general path, from the scan just made
                        results.append(self._general(flat.unit(), n, rows, now_s, k, weights,
                                                     decay, picked, flat, flat.scanned()))
                        continue
                idx, vals = got
                picked.update(idx)
                results.append([Scored(recs[i], vals[4 * p + 1], vals[4 * p + 2],
                                       vals[4 * p + 3], vals[4 * p])
                                for p, i in enumerate(idx)])
        else:
            norms = np.linalg.norm(q, axis=1, keepdims=True)
            q = q / np.where(norms > 0, norms, 1.0)
            if flat is not None:  # one compiled pass per query (its buffer is reused)
                for j in range(q.shape[0]):
                    with flat.lock:
                        results.append(self._general(q[j], n, rows, now_s, k, weights, decay,
                                                     picked, flat, flat.scan(q[j])))
            else:
                approx, eps = self._scan(q, n)  # (q, n) relevance within eps of the exact one
                for j in range(q.shape[0]):
                    results.append(self._general(q[j], n, rows, now_s, k, weights, decay,
                                                 picked, None, (approx[j], float(eps[j]))))
        if touch and picked:
            self._touch(sorted(picked), now)
        return results

    def _general(self, qj: np.ndarray, n: int, rows: np.ndarray | None, now_s: float, k: int,
                 weights: RetrievalWeights, decay: float, picked: set[int],
                 flat: Int8Flat | None, scan: tuple[Any, ...]) -> list[Scored]:
        """Top-k for one query through `bounded_top_k` (kinds filters, no compiled kernel,
        k above 64, recency without a shortcut): the same answer as `Int8Flat.top_k`.
        `scan` is `flat.scan(qj)`'s result, or (approximate relevance of all n rows, its
        bound) from `_scan`."""
        a = self._a
        static = self._static(n, decay)
        if rows is not None:
            static = Static(static.importance[rows], static.accessed[rows],
                            static.importance32[rows],
                            None if static.growth is None else static.growth[rows], static.ref)
        q64 = qj.astype(np.float64)

        def exact_rel(idx: np.ndarray) -> np.ndarray:
            return exact_relevance(a.emb[idx if rows is None else rows[idx]], q64)

        if flat is None:
            approx, eps = scan
            best, total, rec_n, imp_n, rel_n = bounded_top_k(
                approx if rows is None else approx[rows], eps, static, now_s, k, weights,
                exact_rel, decay)
        else:
            r_j, eps_j, hi, lo, near, n_hi = scan
            if rows is None:
                best, total, rec_n, imp_n, rel_n = bounded_top_k(
                    r_j, eps_j, static, now_s, k, weights, exact_rel, decay,
                    kern=flat, ext=(hi, lo), near=(near, n_hi))
            else:
                best, total, rec_n, imp_n, rel_n = bounded_top_k(
                    r_j[rows], eps_j, static, now_s, k, weights, exact_rel, decay, kern=flat)
        out = []
        for i, t, rc, im, rl in zip(best.tolist(), total.tolist(), rec_n.tolist(),
                                     imp_n.tolist(), rel_n.tolist()):
            row = i if rows is None else int(rows[i])
            picked.add(row)
            out.append(Scored(self._records[row], rc, im, rl, t))
        return out

    # -- the approximate scan ------------------------------------------------------------

    INDEX_MIN = 4096
    """Rows from which an int8 index (memory/retrieval.py: Int8Blocks) scans the stream;
    below it float32 is already fast (and needs no torch)."""

    KERNEL_MIN = 256
    """Rows from which the compiled int8 scan (memory/retrieval.py: Int8Flat) is used when
    it could be built; below it (or without it) `_scan` does the work."""

    def _flat_index(self, n: int) -> Int8Flat | None:
        """The compiled scan's int8 rows, brought up to n rows; None if not in use."""
        flat = self._flat
        if flat is None:
            if n < self.KERNEL_MIN or self.dim > 16384:  # int32 sums: 255*127*dim < 2**31
                return None
            lib = _Kernel.get()
            if lib is None:
                return None
            flat = self._flat = Int8Flat(self.dim, lib, capacity=self.capacity)
        with flat.lock:
            flat.extend(self._a.emb, n)
        return flat

    def _scan(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Relevance of every row to each query, approximately: (q, n) and a bound per query.

        Rows in the int8 index are scanned by its kernel, the rest in float32 (einsum: one
        thread, no BLAS thread pool to contend for on a busy machine)."""
        emb = self._a.emb
        idx = self._index
        if idx is None and n >= self.INDEX_MIN and Int8Blocks.available():
            idx = self._index = Int8Blocks(self.dim)
            idx.build(emb, n)
        if idx is None:
            return _f32_scan(emb[:n], q), np.full(q.shape[0], F32_EPS)
        idx.extend(emb, n)
        approx, eps = idx.scan(q)
        if idx.end < n:
            approx = np.concatenate((approx, _f32_scan(emb[idx.end:n], q)), axis=1)
        return approx, np.maximum(eps, F32_EPS)

    @property
    def scan_bytes_per_record(self) -> int:
        """Bytes one retrieval reads per record in its full pass: the scanned embedding
        (int8 with its per-row terms in the index, float32 below it) plus the float32
        importance and recency-growth columns (the shortlist's exact re-score reads more,
        for a few dozen records)."""
        if self._flat is not None:
            emb = self._flat.nbytes_per_row
        elif self._index is not None:
            emb = self._index.nbytes_per_row
        else:
            emb = 4 * self.dim
        return emb + 4 + 4

    def _touch(self, rows: Sequence[int], now: datetime) -> None:
        """Set last access of these rows to `now` (paper: retrieval refreshes recency)."""
        self._set_accessed(np.asarray(rows, dtype=np.intp), _to_seconds(now))
        for r in rows:
            self._records[r].last_accessed = now

    # -- what retrieval needs besides relevance, kept current ------------------------------

    def _set_accessed(self, rows: np.ndarray | int, t: float, fresh: bool = False) -> None:
        """Write last-access time `t` to `rows` (an index array, or one new row), keeping
        `growth` and the (min, max) range current."""
        a = self._a
        if self._ref is None:
            self._ref = t
        x = _LAM * (t - self._ref)
        if x > 60.0:  # keep float32 far from overflow: measure growth from `t` from now on
            n = len(self._records)
            self._ref, x = t, 0.0
            a.growth[:n] = np.exp(_LAM * (a.accessed[:n] - t))
        g = math.exp(x)
        rng = self._acc_range
        if fresh:  # one new row
            a.accessed[rows] = t
            a.growth[rows] = g
            if len(self._records) == 1:
                self._acc_range = (t, t)
            elif rng is not None:
                self._acc_range = (min(rng[0], t), max(rng[1], t))
            return
        old = a.accessed[rows]
        a.accessed[rows] = t
        a.growth[rows] = g
        if rng is not None:
            lo, hi = rng
            if (t < hi and (old == hi).any()) or (t > lo and (old == lo).any()):
                self._acc_range = None  # an extreme moved inward: recompute when needed
            else:
                self._acc_range = (min(lo, t), max(hi, t))

    def _static(self, n: int, decay: float) -> Static:
        """Importance, last access and their extremes for all n rows, from the kept state."""
        a = self._a
        if self._acc_range is None:
            acc = a.accessed[:n]
            self._acc_range = (float(acc.min()), float(acc.max()))
        lo, hi = self._acc_range
        growth = None
        if decay == RECENCY_DECAY and self._ref is not None:
            if not -60.0 < _LAM * (hi - self._ref) < 60.0:  # keep float32 far from overflow
                self._ref = hi
                a.growth[:n] = np.exp(_LAM * (a.accessed[:n] - hi))
            growth = a.growth[:n]
        return Static(a.importance[:n], a.accessed[:n], a.importance32[:n], growth,
                      self._ref or 0.0, (lo, hi), self._importance_range())

    def _importance_range(self) -> tuple[float, float]:
        """(min, max) importance over all records, from the kept histogram."""
        if self._imp_range is None:
            levels = np.flatnonzero(self._imp_hist)
            self._imp_range = (float(levels[0]), float(levels[-1]))
        return self._imp_range

    def _fused_plan(self, n: int, now_s: float, decay: float,
                    weights: RetrievalWeights) -> tuple[float, ...] | None:
        """`approx_terms` for `Int8Flat.top_k`, kept while `now`, the weights and the
        ranges stay the same (the common case: several retrievals per game step); None when
        the general path must answer (recency without the kept growth column, no shortcut)."""
        acc_range = self._acc_range
        if acc_range is not None and self._ref is not None and decay == RECENCY_DECAY \
                and -60.0 < _LAM * (acc_range[1] - self._ref) < 60.0:
            key = (now_s, decay, weights, acc_range, self._ref, self._importance_range())
            if key == self._plan[0]:
                return self._plan[1]
        static = self._static(n, decay)  # brings the ranges and growth up to date
        key = (now_s, decay, weights, self._acc_range, self._ref, self._importance_range())
        t = approx_terms(static, now_s, weights, decay)
        plan = None
        if not t.exact_all and (t.rec is None or t.rec[1] is static.growth) and all(
                math.isfinite(w) for w in (weights.recency, weights.importance,
                                           weights.relevance)):
            # (the 8 numbers `Int8Flat.top_k` takes, whether there is a recency term)
            plan = (t.rec[0] if t.rec else 0.0, t.imp[0] if t.imp else 0.0, t.magnitude,
                    t.slack, t.rec_lo, t.rec_hi, t.imp_lo, t.imp_hi, t.rec is not None)
        self._plan = (key, plan)
        return plan

    def _fused_cols(self) -> tuple[int, int, int, int]:
        """Addresses of the growth, float32 and float64 importance and last-access columns
        (kept until the arrays are reallocated)."""
        a = self._a
        if self._cols[0] is not a.growth:
            self._cols = (a.growth, (a.growth.ctypes.data, a.importance32.ctypes.data,
                                     a.importance.ctypes.data, a.accessed.ctypes.data))
        return self._cols[1]

    # -- checkpointing ------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A snapshot for checkpoints: plain JSON-able values, except `embeddings`, which is
        the filled matrix as little-endian float32 bytes (a BLOB for SQLite; base64 it for
        JSON — `from_state` accepts either)."""
        raw = np.ascontiguousarray(self._a.emb[: len(self._records)], dtype="<f4").tobytes()
        return {
            "version": _STATE_VERSION,
            "agent": self.agent,
            "dim": self.dim,
            "next_local_id": self._last_local_id + 1,
            "shared_ids": self._shared_ids,
            "records": [r.to_dict() for r in self._records],
            "embeddings": raw,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], next_id: Callable[[], int] | None = None
    ) -> MemoryStream:
        """Rebuild a stream from `state()`; pass the run-wide `next_id` again if one was used."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported memory stream state version {state.get('version')!r}")
        dim = int(state["dim"])
        records = [MemoryRecord.from_dict(d) for d in state["records"]]
        raw = state["embeddings"]
        buf = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
        emb = np.frombuffer(buf, dtype="<f4").astype(np.float32)
        if emb.size != len(records) * dim:
            raise ValueError(
                f"state holds {emb.size} floats for {len(records)} records of dim {dim}"
            )
        s = cls(state["agent"], dim, next_id=next_id, capacity=max(256, len(records)))
        start = int(state.get("next_local_id", 1))
        s._counter = itertools.count(start)
        s._last_local_id = start - 1
        a = s._a
        n = len(records)
        a.emb[:n] = emb.reshape(n, dim)
        for i, r in enumerate(records):
            r.index = i
            a.importance[i] = r.importance
            a.created[i] = _to_seconds(r.created)
            a.accessed[i] = _to_seconds(r.last_accessed)
            a.kind[i] = _KIND_CODE[r.kind]
            s._by_id[r.id] = i
        s._records = records
        a.importance32[:n] = a.importance[:n]
        s._imp_hist = np.bincount(a.importance[:n].astype(np.int64), minlength=11)
        if n:
            s._ref = float(a.accessed[:n].max())
            a.growth[:n] = np.exp(_LAM * (a.accessed[:n] - s._ref))
        return s
