"""Interview an agent of a recorded run: answers in character from its memories as of a step.

The run's own recording is not altered: the interview is appended to the `interviews`
table, and the memories' last-access times are not touched.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agents.llm.base import LanguageModel
from agents.llm.factory import build_model
from agents.prompting import PromptRunner
from memory.embeddings import Embedder, load_embedder
from memory.persistence import MemoryRow, stream_from_rows
from memory.stream import MemoryStream, Scored
from village.recorder import iso


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
        return "local"
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


def _open(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise InterviewError(f"{path}: no such file")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("SELECT llm, embedder, embedder_dim FROM runs LIMIT 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InterviewError(f"{path}: not a Village run database ({exc})") from None
    return conn


def memories_at(conn: sqlite3.Connection, agent_id: int, step: int) -> list[MemoryRow]:
    """The agent's records created up to `step`, with last access as of that step."""
    evidence: dict[int, list[int]] = {}
    for mid, eid in conn.execute(
        "SELECT x.memory_id, x.evidence_id FROM memory_evidence x JOIN memories m"
        " ON m.id = x.memory_id WHERE m.agent_id = ? AND m.step <= ?", (agent_id, step)):
        evidence.setdefault(mid, []).append(eid)
    accessed = {mid: t for mid, t in conn.execute(
        "SELECT h.memory_id, max(s.game_time) FROM retrieval_hits h"
        " JOIN retrievals r ON r.id = h.retrieval_id JOIN steps s ON s.step = r.step"
        " WHERE r.agent_id = ? AND r.step <= ? GROUP BY h.memory_id", (agent_id, step))}
    rows = []
    for r in conn.execute(
        "SELECT id, step, created, kind, description, importance, embedding FROM memories"
        " WHERE agent_id = ? AND step <= ? ORDER BY id", (agent_id, step)):
        acc = accessed.get(r["id"])
        rows.append(MemoryRow(r["id"], r["step"], datetime.fromisoformat(r["created"]), r["kind"],
                              r["description"], r["importance"], r["embedding"],
                              tuple(sorted(evidence.get(r["id"], ()))),
                              datetime.fromisoformat(acc) if acc else None))
    return rows


def load_agent_stream(conn: sqlite3.Connection, agent: str, step: int | None,
                      dim: int) -> tuple[dict, int, datetime, MemoryStream]:
    a = conn.execute("SELECT * FROM agents WHERE name = ?", (agent,)).fetchone()
    if a is None:
        names = ", ".join(r[0] for r in conn.execute("SELECT name FROM agents ORDER BY id"))
        raise InterviewError(f"unknown agent {agent!r} (expected one of: {names})")
    last = conn.execute("SELECT max(step) FROM steps").fetchone()[0] or 0
    at = last if step is None else step
    if not 0 <= at <= last:
        raise InterviewError(f"--at {step}: the run has steps 0 to {last}")
    game_time = datetime.fromisoformat(
        conn.execute("SELECT game_time FROM steps WHERE step = ?", (at,)).fetchone()[0])
    stream = stream_from_rows(agent, dim, memories_at(conn, a["id"], at))
    return dict(a), at, game_time, stream


def interview(path: str | Path, agent: str, question: str, *, at: int | None = None,
              llm: LanguageModel | None = None, llm_spec: str | None = None, k: int = 10,
              n_ctx: int = 4096) -> Answer:
    path = Path(path)
    conn = _open(path)
    try:
        run = dict(conn.execute("SELECT * FROM runs LIMIT 1").fetchone())
        embedder = embedder_for_recorded(run["embedder"], run["embedder_dim"])
        a, step, now, stream = load_agent_stream(conn, agent, at, run["embedder_dim"])
    finally:
        conn.close()
    model = llm or build_model(llm_spec or spec_for_recorded(run["llm"]), n_ctx=n_ctx,
                               seed=run["seed"] or 0)
    hits = stream.retrieve(embedder.embed([question])[0], now, k=k, touch=False) if len(stream) else []
    traits = ", ".join(__import__("json").loads(a["traits"] or "[]"))
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
