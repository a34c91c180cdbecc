"""A seeded run replayed from the response cache makes no model calls and records the same run."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from village import simulate
from village.simulate import RunOptions

QUERIES = {
    "events": "SELECT step, agent_id, kind, description, place FROM events ORDER BY id",
    "memories": "SELECT id, agent_id, step, created, kind, description, importance FROM memories ORDER BY id",
    "utterances": "SELECT * FROM utterances ORDER BY conversation_id, idx",
    "plans": "SELECT id, agent_id, step, level, start, end, description, place FROM plans ORDER BY id",
    "calls": "SELECT id, step, agent_id, purpose, messages, response FROM llm_calls ORDER BY id",
}


def recorded(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in QUERIES.items()}
    finally:
        con.close()


class CountingBackends:
    """Counts calls that reach each run's bare backend (below the cache and the retries),
    from the first call on (step 0 calls the model while the run is being built)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[int] = []
        self._lock = threading.Lock()
        real = simulate.build_model

        def build_model(*args: Any, **kwargs: Any) -> Any:
            backend = real(*args, **kwargs)
            index = len(self.calls)
            self.calls.append(0)
            inner = backend.complete

            def complete(request: Any) -> Any:
                with self._lock:
                    self.calls[index] += 1
                return inner(request)

            backend.complete = complete  # this run's backend only
            return backend

        monkeypatch.setattr(simulate, "build_model", build_model)


def twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: int,
          **opts: Any) -> tuple[dict, dict, list[int]]:
    """Run the same seeded scenario twice against one (initially empty) cache."""
    counter = CountingBackends(monkeypatch)
    records = []
    for name in ("first", "second"):
        options = RunOptions(embedder="hash", seed=7, cache_path=tmp_path / "cache.db",
                             out=tmp_path / f"{name}.db", **opts)
        result = simulate.run(simulate.build("demo", options), steps)
        assert result.status == "finished"
        records.append(recorded(options.out))
    return records[0], records[1], counter.calls


def _cached_flags(path: Path) -> set[int]:
    con = sqlite3.connect(path)
    try:
        return {c for (c,) in con.execute("SELECT DISTINCT cached FROM llm_calls")}
    finally:
        con.close()


def test_seeded_rerun_is_answered_from_the_cache_and_identical(tmp_path: Path, monkeypatch) -> None:
    first, second, (calls_first, calls_second) = twice(tmp_path, monkeypatch, 360, llm="scripted")
    assert calls_first > 0 and calls_second == 0
    assert first["utterances"] and first["events"] and first["memories"]  # a run with content
    for table in QUERIES:
        assert first[table] == second[table], table
    assert _cached_flags(tmp_path / "second.db") == {1}


@pytest.mark.model
def test_seeded_rerun_on_the_bundled_model_is_identical(tmp_path: Path, monkeypatch) -> None:
    first, second, (calls_first, calls_second) = twice(tmp_path, monkeypatch, 40, llm="local",
                                                      n_threads=1)
    assert calls_first > 0 and calls_second == 0
    for table in QUERIES:
        assert first[table] == second[table], table
    assert _cached_flags(tmp_path / "second.db") == {1}


def test_the_run_does_not_depend_on_which_model_call_returns_first(tmp_path: Path) -> None:
    """Agents think concurrently; calls that return in a different order (random latency,
    not seeded) must not change what is recorded."""
    import random
    import time

    from agents.llm.scripted import instance_from_schema, request_rng
    from tests.helpers import build_model

    jitter = random.Random()  # deliberately unseeded

    def respond(req: Any) -> Any:
        time.sleep(jitter.random() * 0.004)
        if req.purpose == "react":
            return {"reason": "to say hello", "decision": "talk"}
        return instance_from_schema(req.schema, request_rng(req)) if req.schema else "ok"

    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        model, _ = build_model(tmp_path / name, responder=respond)
        for _ in range(120):
            model.step()
        model.finish()
        runs.append(recorded(tmp_path / name / "run.db"))
    for table in ("events", "memories", "utterances", "plans"):
        assert runs[0][table] == runs[1][table], table
    assert runs[0]["utterances"], "the window must include a conversation to be a test of it"
