"""Builders shared by tests: a recorded model on a scripted test double."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

from agents.llm.base import Request
from agents.llm.factory import compose
from agents.llm.scripted import ScriptedModel, instance_from_schema, request_rng
from agents.llm.wrappers import Accounting
from memory.embeddings import HashEmbedder
from village.config import SimConfig
from village.model import VillageModel
from village.recorder import Recorder
from village.scenario import Scenario, load_scenario, parse_scenario

Responder = Callable[[Request], Any]


def by_purpose(overrides: dict[str, Callable[[Request], Any]]) -> Responder:
    """A responder that answers some prompts by hand and the rest from their schema."""

    def respond(req: Request) -> Any:
        prompt = req.extra_name if hasattr(req, "extra_name") else None  # noqa: F841
        for key, fn in overrides.items():
            if key == req.purpose or key in (req.messages[0]["content"] + req.messages[-1]["content"]):
                return fn(req)
        if req.schema is None:
            return "ok"
        return instance_from_schema(req.schema, request_rng(req))

    return respond


def build_model(tmp_path: Path, *, scenario: str | Scenario = "demo",
                responder: Responder | None = None, config: SimConfig | None = None,
                latency_s: float = 0.0, record: bool = True,
                context_window: int = 8192) -> tuple[VillageModel, ScriptedModel]:
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    backend = ScriptedModel(responder, latency_s=latency_s, context_window=context_window)
    recorder = Recorder(tmp_path / "run.db") if record else None
    emb = HashEmbedder(64)
    if recorder is not None:
        recorder.start_run(scenario=sc.scenario.name, scenario_toml=sc.source_text,
                           seed=sc.scenario.seed, llm=backend.name, embedder=emb.name,
                           embedder_dim=emb.dim, seconds_per_step=sc.scenario.seconds_per_step,
                           game_start=sc.scenario.start.isoformat())
    acc = Accounting()
    llm = compose(backend, cache=None, accounting=acc, sink=recorder.call if recorder else None)
    model = VillageModel(sc, llm=llm, embedder=emb, recorder=recorder,
                         config=config or SimConfig(), accounting=acc)
    return model, backend


def scenario_text(name: str = "demo") -> str:
    return load_scenario(name).source_text


def edited_scenario(text: str, old: str, new: str) -> Scenario:
    assert old in text, old
    return parse_scenario(text.replace(old, new), "edited.toml")


def db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn
