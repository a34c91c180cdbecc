"""Checkpoints: the state a run needs to continue from a committed step.

Most of an agent's mind is already in the recorded tables and is rebuilt from them:
memory streams from `memories` (+ `memory_evidence`; last access from `retrievals` /
`retrieval_hits`), positions from `agent_states`, live conversations from
`conversations` / `utterances`. What the tables do not hold — the day plan and the
actions still to come, records waiting for an importance rating, the importance summed
since the last reflection, recent observations, id counters, the clock of reactions and
cool-downs, the random generators, the social graph — is written to the `checkpoints`
table in the same transaction as the step, as small JSON *parts* per agent (agent 0 is the
model), each only when it changed. The state at step N is, per (agent, part), the latest
row at or before N; so any committed step can be resumed or forked.

Subclasses add state by extending `GenerativeAgent.checkpoint_state()` /
`restore_state()` (and the model's): a new key is a new part.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from agents.plan import Activity
from memory.persistence import MemoryRow  # one row type for every rebuild of a stream


def _iso(v: Any) -> str:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    raise TypeError(f"cannot checkpoint a {type(v).__name__}")


def dumps(value: Any) -> str:
    """Canonical JSON: equal states give equal strings (so unchanged parts are skipped).
    Datetimes and dates become ISO strings (states keep them as objects: comparing those
    is cheaper than formatting them every step)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_iso)


# --------------------------------------------------------------------------- values
def activity(a: Activity | None) -> list | None:
    if a is None:
        return None
    return [a.start, a.end, a.description, a.place, a.level, a.plan_id]


def to_activity(v: list | None) -> Activity | None:
    if v is None:
        return None
    start, end, description, place, level, plan_id = v
    return Activity(datetime.fromisoformat(start), datetime.fromisoformat(end), description,
                    place, level, plan_id)


def dt(t: datetime | date | None) -> datetime | date | None:
    """As stored in a state (an ISO string once encoded; see `dumps`)."""
    return t


def to_dt(v: str | None) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def to_date(v: str | None) -> date | None:
    return None if v is None else date.fromisoformat(v)


# --------------------------------------------------------------------------- loading
@dataclass
class Checkpoint:
    """Everything `VillageModel` needs to continue after `step`."""

    step: int
    game_time: datetime
    parts: dict[int, dict[str, Any]]  # agent id (0 = the model) → part → value
    texts: dict[tuple[int, str], str]  # the stored JSON, to keep writing change-only
    positions: dict[int, tuple[int, int]]
    last_states: dict[int, tuple]  # agent_states as of the step (change-only recording)
    memories: dict[int, list[MemoryRow]] = field(default_factory=dict)
    conversations: dict[int, dict[str, Any]] = field(default_factory=dict)


class CheckpointError(ValueError):
    """The run holds no usable checkpoint at that step (one line)."""


def last_step(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT max(step) FROM steps").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def load(conn: sqlite3.Connection, step: int) -> Checkpoint:
    """The state at a committed step (any step: rows are change-only, the latest counts)."""
    got = conn.execute("SELECT game_time FROM steps WHERE step = ?", (step,)).fetchone()
    if got is None:
        raise CheckpointError(f"step {step} was not recorded")
    parts: dict[int, dict[str, Any]] = {}
    texts: dict[tuple[int, str], str] = {}
    for aid, part, text in conn.execute(
            "SELECT c.agent_id, c.part, c.state FROM checkpoints c WHERE c.step = ("
            " SELECT max(step) FROM checkpoints WHERE agent_id = c.agent_id AND part = c.part"
            " AND step <= ?) ORDER BY c.agent_id, c.part", (step,)):
        parts.setdefault(int(aid), {})[part] = json.loads(text)
        texts[(int(aid), part)] = text
    agents = [r[0] for r in conn.execute("SELECT id FROM agents ORDER BY id")]
    if 0 not in parts or any(a not in parts for a in agents):
        raise CheckpointError(f"no checkpoint at step {step} (recorded by a Village without "
                              "resume support)")
    last_states: dict[int, tuple] = {}
    positions: dict[int, tuple[int, int]] = {}
    for row in conn.execute(
            "SELECT s.agent_id, s.x, s.y, s.place, s.action, s.action_place, s.emoji,"
            " s.conversation_id, s.asleep FROM agent_states s WHERE s.step = ("
            " SELECT max(step) FROM agent_states WHERE agent_id = s.agent_id AND step <= ?)",
            (step,)):
        aid = int(row[0])
        last_states[aid] = tuple(row[1:])
        positions[aid] = (int(row[1]), int(row[2]))
    ck = Checkpoint(step, datetime.fromisoformat(got[0]), parts, texts, positions, last_states)
    for aid in agents:
        ck.memories[aid] = memories_at(conn, aid, step)
    live = sorted({p["mind"]["conversation_id"] for a, p in parts.items()
                   if a and p.get("mind", {}).get("conversation_id") is not None})
    for cid in live:
        ck.conversations[cid] = conversation(conn, cid)
    return ck


def memories_at(conn: sqlite3.Connection, agent_id: int, step: int) -> list[MemoryRow]:
    """The agent's records up to `step` in creation (= id) order, last access as of `step`."""
    evidence: dict[int, list[int]] = {}
    for mid, eid in conn.execute(
            "SELECT x.memory_id, x.evidence_id FROM memory_evidence x JOIN memories m"
            " ON m.id = x.memory_id WHERE m.agent_id = ? AND m.step <= ?", (agent_id, step)):
        evidence.setdefault(mid, []).append(eid)
    accessed = {mid: t for mid, t in conn.execute(
        "SELECT h.memory_id, max(s.game_time) FROM retrieval_hits h"
        " JOIN retrievals r ON r.id = h.retrieval_id JOIN steps s ON s.step = r.step"
        " WHERE r.agent_id = ? AND r.step <= ? GROUP BY h.memory_id", (agent_id, step))}
    out = []
    for mid, mstep, created, kind, desc, imp, emb in conn.execute(
            "SELECT id, step, created, kind, description, importance, embedding FROM memories"
            " WHERE agent_id = ? AND step <= ? ORDER BY id", (agent_id, step)):
        acc = accessed.get(mid)
        out.append(MemoryRow(int(mid), int(mstep), datetime.fromisoformat(created), kind, desc,
                             None if imp is None else int(imp), emb,
                             tuple(sorted(evidence.get(mid, ()))),
                             datetime.fromisoformat(acc) if acc else None))
    return out


def conversation(conn: sqlite3.Connection, cid: int) -> dict[str, Any]:
    row = conn.execute("SELECT id, agent_a, agent_b, step_start, place, ended_by"
                       " FROM conversations WHERE id = ?", (cid,)).fetchone()
    if row is None:
        raise CheckpointError(f"conversation {cid} is in a checkpoint but was not recorded")
    lines = conn.execute("SELECT speaker_id, text FROM utterances WHERE conversation_id = ?"
                         " ORDER BY idx", (cid,)).fetchall()
    return {"id": int(row[0]), "a": int(row[1]), "b": int(row[2]), "step_start": int(row[3]),
            "place": row[4], "ended_by": row[5] or "",
            "lines": [(int(s), t) for s, t in lines]}


__all__ = ["Checkpoint", "CheckpointError", "MemoryRow", "activity", "dumps", "last_step",
           "load", "memories_at", "to_activity"]
