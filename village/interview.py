"""Interview an agent of a recorded run: answers in character from its memories as of a step.

The run's own recording is not altered: the interview is appended to the `interviews`
table, and the memories' last-access times are not touched.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agents.llm.base import LanguageModel
from agents.llm.factory import build_model
from agents.llm.local import spec_for as local_spec_for
from agents.prompting import PromptRunner
from memory.embeddings import Embedder, load_embedder
from memory.persistence import stream_from_rows
from memory.stream import MemoryStream, Scored
from village.recorder import iso
from village.replay import ReplayError, ReplayReader
from village.simulate import share_cpu


class InterviewError(ValueError):
    """A bad request (unknown agent, step out of range, not a run): one line."""


@dataclass
class Answer:
    agent: str
    step: int
    question: str
    answer: str
    memories: list[Scored]
    fallback: bool


def spec_for_recorded(llm_name: str) -> str:
    """The backend spec that rebuilds the model a run recorded (`runs.llm`)."""
    if llm_name.startswith("local:"):
        return local_spec_for(llm_name)
    return llm_name


def embedder_for_recorded(name: str, dim: int) -> Embedder:
    """The embedder a run used, refusing a mismatch (a different embedder, a different space)."""
    if name.startswith("hash-"):
        emb = load_embedder(f"hash:{name[5:]}")
    elif name == "all-MiniLM-L6-v2":
        emb = load_embedder("local")
    else:
        emb = load_embedder(name)
    if emb.dim != dim:
        raise InterviewError(f"the run's embedder {name} has dimension {dim}, rebuilt one has {emb.dim}")
    return emb


def _open(path: Path) -> ReplayReader:
    try:
        return ReplayReader(path)
    except ReplayError as exc:
        raise InterviewError(str(exc)) from None


def load_agent_stream(reader: ReplayReader, agent: str, step: int | None,
                      dim: int) -> tuple[dict, int, datetime, MemoryStream]:
    """The agent's row, the step, its game time and its memory stream as of that step
    (``ReplayReader.memory_rows``: last access and importance as they stood then)."""
    try:
        a = reader.agent(agent)
    except ReplayError:
        names = ", ".join(x.name for x in reader.agents)
        raise InterviewError(f"unknown agent {agent!r} (expected one of: {names})") from None
    last = max(reader.last_step, 0)
    at = last if step is None else step
    if not 0 <= at <= last:
        raise InterviewError(f"--at {step}: the run has steps 0 to {last}")
    stream = stream_from_rows(agent, dim, reader.memory_rows(a.id, at))
    row = {"id": a.id, "name": a.name, "age": a.age, "traits": json.dumps(list(a.traits)),
           "background": a.background, "currently": a.currently}
    return row, at, reader.game_time(at), stream


def interview(path: str | Path, agent: str, question: str, *, at: int | None = None,
              llm: LanguageModel | None = None, llm_spec: str | None = None, k: int = 10,
              n_ctx: int = 4096) -> Answer:
    path = Path(path)
    reader = _open(path)
    try:
        run = dict(reader.run)
        embedder = embedder_for_recorded(run["embedder"], run["embedder_dim"])
        a, step, now, stream = load_agent_stream(reader, agent, at, run["embedder_dim"])
    except ReplayError as exc:
        raise InterviewError(str(exc)) from None
    finally:
        reader.close()
    model = llm or build_model(llm_spec or spec_for_recorded(run["llm"]), n_ctx=n_ctx,
                               seed=run["seed"] or 0)
    share_cpu(model, embedder)
    hits = stream.retrieve(embedder.embed([question])[0], now, k=k, touch=False) if len(stream) else []
    traits = ", ".join(json.loads(a["traits"] or "[]"))
    identity = (f"{a['name']} is {a['age']} years old ({traits}). {a['background']} "
                f"Currently: {a['currently']}")
    runner = PromptRunner(model)
    res = runner.run(
        "interview",
        {"identity": identity, "name": a["name"], "time": now.strftime("%A %d %B %H:%M"),
         "memories": "\n".join(f"- {h.record.description}" for h in hits) or "(nothing)",
         "question": question},
        agent=a["name"], step=step, seed=run["seed"] or 0,
        fallback={"answer": "(no valid answer from the model)"},
    )
    answer = res.value["answer"].strip()
    resp = res.response
    with sqlite3.connect(path) as w:  # appends; never changes what the run recorded
        w.execute(
            "INSERT INTO interviews(asked_at, agent_id, at_step, question, answer, model,"
            " prompt_tokens, completion_tokens) VALUES (?,?,?,?,?,?,?,?)",
            (iso(datetime.now()), a["id"], step, question, answer, model.name,
             resp.prompt_tokens if resp else None, resp.completion_tokens if resp else None))
    return Answer(a["name"], step, question, answer, hits, res.fallback_used)
