"""Rebuild a memory stream from recorded rows, as it stood at a given step.

Used by interviews and the inspector's retrieval probe so they score memories through the
very code the agent used, with last-access times as of that step.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import numpy as np

from memory.stream import MemoryStream


@dataclass(frozen=True)
class MemoryRow:
    id: int
    step: int
    created: datetime
    kind: str
    description: str
    importance: int | None  # None: not rated yet at that step
    embedding: bytes
    evidence: tuple[int, ...] = ()
    last_accessed: datetime | None = None  # latest retrieval at or before the step


def stream_from_rows(agent: str, dim: int, rows: Iterable[MemoryRow]) -> MemoryStream:
    """A stream holding exactly these records (ids kept), in creation order."""
    ordered = sorted(rows, key=lambda r: (r.created, r.id))
    it = iter([r.id for r in ordered])
    stream = MemoryStream(agent, dim, next_id=lambda: next(it))
    for r in ordered:
        vec = np.frombuffer(r.embedding, dtype="<f4")
        if vec.shape[0] != dim:
            raise ValueError(f"memory {r.id} has a {vec.shape[0]}-d embedding, the run's embedder"
                             f" has {dim} (was the embedder changed?)")
        rec = stream.add(r.description, r.kind, r.created, r.importance, vec,
                         evidence=r.evidence, step=r.step)
        if r.last_accessed is not None and r.last_accessed > r.created:
            stream._touch([rec.index], r.last_accessed)
    return stream
