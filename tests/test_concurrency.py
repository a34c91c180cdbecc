"""Agents' model calls in one step overlap: ten 50 ms calls take about 50 ms, not 500 ms."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agents.llm.base import Request
from agents.llm.factory import compose
from agents.llm.scripted import ScriptedModel, instance_from_schema, request_rng
from agents.llm.wrappers import Accounting
from memory.embeddings import HashEmbedder
from village.config import SimConfig
from village.model import VillageModel
from village.scenario import load_scenario
from village.simulate import RunOptions, build

TEN = Path(__file__).parent / "fixtures" / "scenarios" / "ten.toml"
LATENCY = 0.05
# Planning and observation off, every record rated at once: in the first step each of the ten
# residents wakes, hears its whisper and makes exactly one call (rating it).
CONFIG = SimConfig(ablate=frozenset({"planning", "observation"}), importance_max_age_minutes=0)


def answer(request: Request):
    """Valid answers, so no prompt is re-asked (a re-ask would be a second, sequential call)."""
    text = request.messages[-1]["content"]
    m = re.search(r"each of these (\d+) memories", text)
    if m:
        return {"ratings": [4] * int(m.group(1))}
    return instance_from_schema(request.schema or {}, request_rng(request))


def first_step_seconds(concurrency: int) -> tuple[float, int]:
    backend = ScriptedModel(answer, latency_s=LATENCY, max_concurrency=concurrency)
    model = VillageModel(load_scenario(str(TEN)), llm=compose(backend, accounting=Accounting()),
                         embedder=HashEmbedder(32), config=CONFIG)
    try:
        assert backend.call_count == 0  # no seeded memories: step 0 asks nothing
        model.runner._pool()  # start the worker pool outside the timed step
        t0 = time.perf_counter()
        model.step()
        return time.perf_counter() - t0, backend.call_count
    finally:
        model.runner.close()
        model.close()


def test_ten_agents_calls_in_one_step_take_about_one_latency() -> None:
    first_step_seconds(64)  # warm-up: prompt files, schema validators, imports
    concurrent, calls = min(first_step_seconds(64) for _ in range(2))  # best of 2: a busy CI box
    assert calls == 10
    sequential, calls_seq = first_step_seconds(1)
    assert calls_seq == 10
    assert concurrent < 4 * LATENCY, f"10 concurrent calls took {concurrent * 1000:.0f} ms"
    assert sequential >= 10 * LATENCY
    assert sequential / concurrent > 2.5, (sequential, concurrent)


@pytest.mark.parametrize("flag, expected", [(None, 64), (3, 3)])
def test_llm_concurrency_option_reaches_the_worker_pool(tmp_path: Path, flag, expected) -> None:
    model = build(str(TEN), RunOptions(llm="scripted", embedder="hash", cache=False,
                                       out=tmp_path / "run.db", llm_concurrency=flag))
    try:
        assert model.llm.max_concurrency == expected  # through every wrapper
        assert model.runner._pool()._max_workers == expected
    finally:
        model.runner.close()
        model.close()
        model.recorder.close()
