"""Write a run to one SQLite file: one transaction per step.

The database is the interface: the schema below is documented in docs/schema.md and
anyone may query it with SQL, sqlite-utils or Datasette. Rows produced during a step
are buffered and written together when the step commits, with the checkpoint of the
agents' and the model's state as of that step (table `checkpoints`), so a crash loses at
most the step in progress and `village resume` continues from the last committed step
(docs/robustness.md).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import sqlite_utils

from agents.llm.base import Request, Response

SCHEMA_VERSION = 2
"""2 added `checkpoints` and the runs columns target_steps, resumes, forked_from, forked_at,
fork_changes; `village.dbcheck.migrate` upgrades older databases."""

# Per-agent id spaces keep ids deterministic when agents think concurrently:
# a memory, plan, retrieval or model call of agent N has an id in [N*ID_SPACE, (N+1)*ID_SPACE).
ID_SPACE = 1_000_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, scenario TEXT, scenario_path TEXT, scenario_toml TEXT,
    seed INTEGER, llm TEXT, embedder TEXT, embedder_dim INTEGER, seconds_per_step INTEGER,
    game_start TEXT, started_at TEXT, ended_at TEXT, status TEXT, last_step INTEGER,
    ablations TEXT, config TEXT, village_version TEXT, error TEXT,
    target_steps INTEGER, resumes INTEGER DEFAULT 0, forked_from TEXT, forked_at INTEGER,
    fork_changes TEXT
);
CREATE TABLE IF NOT EXISTS agents (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE, age INTEGER, traits TEXT, background TEXT,
    currently TEXT, routine TEXT, home TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    step INTEGER PRIMARY KEY, game_time TEXT, wall_time REAL, duration_ms REAL,
    llm_calls INTEGER, tokens INTEGER
);
CREATE TABLE IF NOT EXISTS agent_states (
    agent_id INTEGER, step INTEGER, x INTEGER, y INTEGER, place TEXT, action TEXT,
    action_place TEXT, emoji TEXT, conversation_id INTEGER, asleep INTEGER,
    PRIMARY KEY (agent_id, step)
);
CREATE INDEX IF NOT EXISTS agent_states_step ON agent_states(step);
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY, agent_id INTEGER, step INTEGER, created TEXT, kind TEXT,
    description TEXT, importance INTEGER, embedding BLOB, call_id INTEGER
);
CREATE INDEX IF NOT EXISTS memories_agent ON memories(agent_id, step);
CREATE TABLE IF NOT EXISTS memory_evidence (
    memory_id INTEGER, evidence_id INTEGER, PRIMARY KEY (memory_id, evidence_id)
);
CREATE INDEX IF NOT EXISTS memory_evidence_back ON memory_evidence(evidence_id);
CREATE TABLE IF NOT EXISTS retrievals (
    id INTEGER PRIMARY KEY, step INTEGER, agent_id INTEGER, purpose TEXT, query TEXT
);
CREATE TABLE IF NOT EXISTS retrieval_hits (
    retrieval_id INTEGER, rank INTEGER, memory_id INTEGER, recency REAL, importance REAL,
    relevance REAL, score REAL, PRIMARY KEY (retrieval_id, rank)
);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY, agent_id INTEGER, step INTEGER, level TEXT, parent_id INTEGER,
    start TEXT, end TEXT, description TEXT, place TEXT, memory_id INTEGER, call_id INTEGER,
    retrieval_id INTEGER
);
CREATE INDEX IF NOT EXISTS plans_agent ON plans(agent_id, start);
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY, agent_a INTEGER, agent_b INTEGER, step_start INTEGER,
    step_end INTEGER, place TEXT, utterances INTEGER, ended_by TEXT
);
CREATE TABLE IF NOT EXISTS utterances (
    conversation_id INTEGER, idx INTEGER, step INTEGER, speaker_id INTEGER, text TEXT,
    call_id INTEGER, PRIMARY KEY (conversation_id, idx)
);
CREATE INDEX IF NOT EXISTS utterances_step ON utterances(step);
CREATE TABLE IF NOT EXISTS social_edges (
    step INTEGER, a INTEGER, b INTEGER, kind TEXT, conversations INTEGER, relation TEXT,
    PRIMARY KEY (step, a, b)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER, agent_id INTEGER, kind TEXT,
    description TEXT, place TEXT
);
CREATE INDEX IF NOT EXISTS events_step ON events(step);
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY, step INTEGER, agent_id INTEGER, purpose TEXT, model TEXT,
    messages TEXT, schema TEXT, response TEXT, prompt_tokens INTEGER,
    completion_tokens INTEGER, latency_ms REAL, cached INTEGER, retries INTEGER,
    invalid TEXT, fallback INTEGER, error TEXT, dropped TEXT, finish_reason TEXT
);
CREATE INDEX IF NOT EXISTS llm_calls_step ON llm_calls(step);
CREATE TABLE IF NOT EXISTS checkpoints (
    step INTEGER, agent_id INTEGER, part TEXT, state TEXT,
    PRIMARY KEY (agent_id, part, step)
);
CREATE TABLE IF NOT EXISTS interviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT, asked_at TEXT, agent_id INTEGER, at_step INTEGER,
    question TEXT, answer TEXT, model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER
);
"""


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def embedding_blob(vec: np.ndarray) -> bytes:
    """float32 little-endian: np.frombuffer(blob, '<f4') reads it back."""
    return np.asarray(vec, dtype="<f4").tobytes()


@dataclass
class _CallRow:
    request: Request
    response: Response | None
    error: BaseException | None
    seq: int


@dataclass
class _StepBuffer:
    calls: list[_CallRow] = field(default_factory=list)
    rows: dict[str, list[tuple]] = field(default_factory=dict)

    def add(self, table: str, row: tuple) -> None:
        self.rows.setdefault(table, []).append(row)


class RecordingError(RuntimeError):
    """The database refused a step (disk full, I/O error): one line; the steps committed
    before it are intact and the run can be resumed once the cause is fixed."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class RunLockedError(RuntimeError):
    """Another process is writing this run database."""


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's SQLITE_FULL and the OS's ENOSPC / EDQUOT."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.Error) and "full" in str(exc).lower()


class Recorder:
    """Buffers a step's rows and commits them in one transaction.

    `Recorder(path)` creates a new run database; `Recorder(path, existing=True)` opens one
    to continue it (resume, fork). Either way the recorder holds an advisory lock on the
    file while it is open, so two processes never write the same run.
    """

    def __init__(self, path: str | Path, *, agent_ids: dict[str, int] | None = None,
                 existing: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._take_lock()
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except BaseException:
            self.close()
            raise
        self.db = sqlite_utils.Database(self.conn)
        self._lock = threading.Lock()
        self._buf = _StepBuffer()
        self._call_seq: dict[int, int] = {}
        self.agent_ids: dict[str, int] = dict(agent_ids or {})
        self.run_id = 1
        self.calls_total = 0
        self.tokens_total = 0
        self.last_committed: int | None = None
        if existing:
            self.agent_ids.update({n: i for i, n in self.conn.execute("SELECT id, name FROM agents")})
            row = self.conn.execute("SELECT count(*), sum(llm_calls), sum(tokens) FROM steps").fetchone()
            self.calls_total, self.tokens_total = int(row[1] or 0), int(row[2] or 0)
            last = self.conn.execute("SELECT max(step) FROM steps").fetchone()[0]
            self.last_committed = None if last is None else int(last)

    def _take_lock(self) -> None:
        """flock() the database file (released by the OS if the process dies, even by SIGKILL).
        flock and SQLite's own POSIX locks do not interact on Linux and macOS."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunLockedError(f"{self.path}: another process is writing this run "
                                 "(wait for it to stop, or stop it first)") from None
        self._lock_fd = fd

    # -- call ids (restored on resume) ---------------------------------------------------
    def call_counters(self) -> dict[int, int]:
        with self._lock:
            return dict(self._call_seq)

    def set_call_counters(self, counters: dict[int, int]) -> None:
        with self._lock:
            self._call_seq = {int(k): int(v) for k, v in counters.items()}

    # -- run level ---------------------------------------------------------------
    def start_run(self, **fields: Any) -> None:
        with self._tx():
            self.conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            cols = ["id", "status", "started_at", *fields]
            vals = [self.run_id, "running", iso(datetime.now()), *fields.values()]
            self.conn.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [json.dumps(v) if isinstance(v, (dict, list)) else v for v in vals],
            )

    def add_agents(self, rows: Iterable[dict[str, Any]]) -> None:
        with self._tx():
            for r in rows:
                self.agent_ids[r["name"]] = r["id"]
                self.conn.execute(
                    "INSERT INTO agents(id, name, age, traits, background, currently, routine, home)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["id"], r["name"], r.get("age"), json.dumps(r.get("traits", [])),
                     r.get("background"), r.get("currently"), r.get("routine"), r.get("home")),
                )

    def finish_run(self, status: str, error: str | None = None) -> None:
        with self._tx():
            self.conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                (status, iso(datetime.now()), error, self.run_id),
            )

    def update_run(self, **fields: Any) -> None:
        """Set columns of the run's row (JSON-encodes dicts and lists)."""
        if not fields:
            return
        with self._tx():
            self.conn.execute(
                f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                [*(json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()),
                 self.run_id])

    # -- buffered rows (any thread) ----------------------------------------------------
    def call(self, request: Request, response: Response | None, error: BaseException | None) -> None:
        """Sink for RecordingModel: gives each call a deterministic per-agent id."""
        aid = self.agent_ids.get(request.agent or "", 0)
        with self._lock:
            seq = self._call_seq.get(aid, 0) + 1
            self._call_seq[aid] = seq
            call_id = aid * ID_SPACE + seq
            if response is not None:
                response.extra["call_id"] = call_id
            self._buf.calls.append(_CallRow(request, response, error, call_id))

    def add(self, table: str, row: tuple) -> None:
        with self._lock:
            self._buf.add(table, row)

    def memory(self, agent_id: int, record: Any, embedding: np.ndarray, call_id: int | None) -> None:
        self.add("memories", (record.id, agent_id, record.step, iso(record.created), record.kind,
                              record.description,
                              None if record.importance is None else int(record.importance),
                              embedding_blob(embedding), call_id))
        for ev in record.evidence:
            self.add("memory_evidence", (record.id, int(ev)))

    def rated(self, memory_id: int, importance: int, call_id: int | None) -> None:
        """Importance arrives after the record (rated in batches): update the row at commit."""
        self.add("memory_rating", (int(importance), call_id, memory_id))

    def event(self, step: int, agent_id: int | None, kind: str, description: str,
              place: str | None = None) -> None:
        self.add("events", (step, agent_id, kind, description, place))

    # -- commit ----------------------------------------------------------------------------
    _INSERTS = {
        "agent_states": "INSERT OR REPLACE INTO agent_states VALUES (?,?,?,?,?,?,?,?,?,?)",
        "memories": "INSERT INTO memories VALUES (?,?,?,?,?,?,?,?,?)",
        "memory_evidence": "INSERT OR IGNORE INTO memory_evidence VALUES (?,?)",
        "retrievals": "INSERT INTO retrievals VALUES (?,?,?,?,?)",
        "retrieval_hits": "INSERT INTO retrieval_hits VALUES (?,?,?,?,?,?,?)",
        "plans": "INSERT INTO plans VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        "conversations": "INSERT OR REPLACE INTO conversations VALUES (?,?,?,?,?,?,?,?)",
        "utterances": "INSERT INTO utterances VALUES (?,?,?,?,?,?)",
        "social_edges": "INSERT OR REPLACE INTO social_edges VALUES (?,?,?,?,?,?)",
        "events": "INSERT INTO events(step, agent_id, kind, description, place) VALUES (?,?,?,?,?)",
        "memory_rating": "UPDATE memories SET importance = ?, call_id = ? WHERE id = ?",
        "checkpoints": "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?)",
    }
    _ORDER = {"memory_rating": 1}  # updates after the inserts of the same step

    def commit_step(self, step: int, game_time: datetime, duration_ms: float) -> None:
        with self._lock:
            buf, self._buf = self._buf, _StepBuffer()
        calls = sorted(buf.calls, key=lambda c: c.seq)
        tokens = 0
        call_rows = []
        for c in calls:
            r, resp = c.request, c.response
            if resp is not None:
                tokens += resp.prompt_tokens + resp.completion_tokens
            call_rows.append((
                c.seq, step if r.step is None else r.step, self.agent_ids.get(r.agent or ""),
                r.purpose, resp.model if resp else None, json.dumps(list(r.messages)),
                json.dumps(r.schema) if r.schema else None, resp.text if resp else None,
                resp.prompt_tokens if resp else None, resp.completion_tokens if resp else None,
                resp.latency_ms if resp else None, int(resp.cached) if resp else 0,
                resp.retries if resp else max(0, getattr(c.error, "attempts", 1) - 1),
                (resp.extra.get("invalid") if resp else None),
                int(bool(resp.extra.get("fallback"))) if resp else 0,
                str(c.error) if c.error else None, json.dumps(list(r.dropped)) if r.dropped else None,
                resp.finish_reason if resp else None,
            ))
        if "events" in buf.rows:  # agents think concurrently: a fixed order keeps event ids
            buf.rows["events"].sort(key=lambda r: r[1] or 0)  # reproducible (stable sort)
        try:
            with self._tx():
                if call_rows:
                    self.conn.executemany(
                        "INSERT INTO llm_calls VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        call_rows)
                for table, rows in sorted(buf.rows.items(),
                                          key=lambda kv: self._ORDER.get(kv[0], 0)):
                    self.conn.executemany(self._INSERTS[table], rows)
                # a second commit of the same step (finish() rating what is pending) adds to it
                self.conn.execute(
                    "INSERT INTO steps VALUES (?,?,?,?,?,?) ON CONFLICT(step) DO UPDATE SET"
                    " wall_time = excluded.wall_time, duration_ms = duration_ms +"
                    " excluded.duration_ms, llm_calls = llm_calls + excluded.llm_calls,"
                    " tokens = tokens + excluded.tokens",
                    (step, iso(game_time), time.time(), duration_ms, len(calls), tokens),
                )
                self.conn.execute("UPDATE runs SET last_step = ? WHERE id = ?",
                                  (step, self.run_id))
        except sqlite3.Error as exc:
            raise self.stopped(exc, f"while recording step {step}") from exc
        self.last_committed = step
        self.calls_total += len(calls)
        self.tokens_total += tokens

    def stopped(self, exc: BaseException, when: str) -> RecordingError:
        """The one-line error for a write that failed (disk full, I/O error)."""
        full = is_disk_full(exc)
        what = "disk full" if full else f"database error ({' '.join(str(exc).split())})"
        kept = ("no step committed yet" if self.last_committed is None
                else f"steps 0 to {self.last_committed} are kept")
        return RecordingError(f"{what} {when}: {self.path}: {kept}; "
                              f"{'free space' if full else 'fix the cause'}, then: "
                              f"village resume {self.path}", disk_full=full)

    def record_interview(self, **row: Any) -> None:
        with self._tx():
            self.db["interviews"].insert(row)

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            if self._lock_fd is not None:  # after SQLite let go of the file
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- helpers -------------------------------------------------------------------------
    class _Tx:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self) -> None:
            self.conn.execute("BEGIN")

        def __exit__(self, exc_type, exc, tb) -> None:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                    return
                except BaseException:
                    self._rollback()
                    raise
            self._rollback()

        def _rollback(self) -> None:
            # SQLite may already have rolled back (e.g. after SQLITE_FULL); never mask the
            # original error with one from the rollback
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass

    def _tx(self) -> "Recorder._Tx":
        return Recorder._Tx(self.conn)
