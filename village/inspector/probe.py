"""The retrieval probe: an agent's memory stream rebuilt as of a step, scored by the very
code the agent uses (``MemoryStream.retrieve``) with the run's own embedder.

The stream is the one at the *end* of the step: every record created at or before it, with
the last access of its latest recorded retrieval at or before it, and the importance it had
then (``ReplayReader.memory_rows``). Probing never touches last-access times.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from memory.embeddings import Embedder
from memory.persistence import stream_from_rows
from memory.retrieval import RetrievalWeights
from memory.stream import MemoryStream, Scored
from village.replay import ReplayReader


def run_weights(reader: ReplayReader) -> RetrievalWeights:
    """The retrieval weights the run used (``runs.config`` ``sim.weights`` when recorded, else
    the default of ``SimConfig``)."""
    config = reader.run.get("config")
    w = None
    if isinstance(config, dict):
        sim = config.get("sim")
        w = sim.get("weights") if isinstance(sim, dict) else config.get("weights")
    if isinstance(w, dict):
        try:
            return RetrievalWeights(float(w.get("recency", 1)), float(w.get("importance", 1)),
                                    float(w.get("relevance", 1)))
        except (TypeError, ValueError):
            pass
    from village.config import SimConfig

    return SimConfig().weights


@dataclass
class ProbeResult:
    agent_id: int
    step: int
    now: datetime
    query: str
    k: int
    weights: RetrievalWeights
    memories: int  # records in the stream as of the step
    hits: list[Scored]


class Probe:
    """Rebuilds streams (cached per agent and step) and embeds queries with the run's embedder
    (loaded once, on first use: the bundled one takes a few seconds). Thread-safe."""

    def __init__(self, reader: ReplayReader, embedder: Embedder | None = None):
        self.reader = reader
        self._embedder = embedder
        self._lock = threading.Lock()
        self._streams: dict[tuple[int, int], MemoryStream] = {}
        self.weights = run_weights(reader)

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from village.interview import embedder_for_recorded

                self._embedder = embedder_for_recorded(self.reader.run["embedder"],
                                                       int(self.reader.run["embedder_dim"]))
            return self._embedder

    def stream(self, agent_id: int, step: int) -> MemoryStream:
        key = (agent_id, step)
        with self._lock:
            hit = self._streams.get(key)
        if hit is not None:
            return hit
        name = self.reader.agent(agent_id).name
        s = stream_from_rows(name, int(self.reader.run["embedder_dim"]),
                             self.reader.memory_rows(agent_id, step))
        with self._lock:
            if len(self._streams) > 8:
                self._streams.pop(next(iter(self._streams)))
            self._streams[key] = s
        return s

    def run(self, agent_id: int, step: int, query: str, k: int = 10) -> ProbeResult:
        stream = self.stream(agent_id, step)
        now = self.reader.game_time(step)
        hits: list[Scored] = []
        if len(stream):
            vec = self.embedder.embed([query])[0]
            hits = stream.retrieve(vec, now, k=k, weights=self.weights, touch=False)
        return ProbeResult(agent_id, step, now, query, k, self.weights, len(stream), hits)
