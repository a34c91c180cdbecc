"""Fork a run at a step for counterfactuals: "what if she had not invited him?"

`fork(SRC, at=STEP, out=NEW)` copies the run up to STEP (every table, as it stood after
that step: a memory rated later is unrated again, a later step's rows are left out) into a
new database, applies the changes — a whispered memory (`AGENT: text`, given at the next
step) or a changed resident (`AGENT.FIELD=VALUE`) — and returns the model at STEP, ready to
continue. A fork without changes continues exactly as the original did (with the response
cache), so any difference in a fork with changes comes from the changes.

The new run records where it came from (`runs.forked_from`, `forked_at`, `fork_changes`);
resident changes are re-applied whenever it is resumed (the scenario text is the original).
"""
from __future__ import annotations

import json
import os
import sqlite3
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from village import checkpoint as ckpt
from village.recorder import SCHEMA, SCHEMA_VERSION, iso
from village.scenario import Resident, Scenario

#: Resident fields a fork may change (persona and perception; not the name or the home).
FIELDS = ("age", "traits", "background", "currently", "routine", "wake", "sleep",
          "vision_radius", "attention_bandwidth")
_AGENT_COLUMNS = ("age", "traits", "background", "currently", "routine")


class ForkError(ValueError):
    """A bad fork request (one line; exit status 2)."""


@dataclass(frozen=True)
class Change:
    kind: str  # "set" | "whisper"
    agent: str
    text: str  # the whisper, or the raw VALUE of a set
    field: str = ""

    def to_json(self) -> dict[str, str]:
        d = {"kind": self.kind, "agent": self.agent, "text": self.text}
        if self.field:
            d["field"] = self.field
        return d

    def __str__(self) -> str:
        return (f"{self.agent}: {self.text}" if self.kind == "whisper"
                else f"{self.agent}.{self.field}={self.text}")


def parse_whisper(spec: str) -> Change:
    """``"AGENT: text"``."""
    agent, sep, text = spec.partition(":")
    if not sep or not agent.strip() or not text.strip():
        raise ForkError(f"--whisper {spec!r}: expected \"AGENT: text\"")
    return Change("whisper", agent.strip(), text.strip())


def parse_set(spec: str) -> Change:
    """``"AGENT.FIELD=VALUE"``; VALUE is read as a TOML value (46, ["kind", "shy"],
    07:30), else taken as text."""
    left, sep, value = spec.partition("=")
    agent, dot, fld = left.rpartition(".")
    if not sep or not dot or not agent.strip():
        raise ForkError(f"--set {spec!r}: expected \"AGENT.FIELD=VALUE\", FIELD one of "
                        f"{', '.join(FIELDS)}")
    fld = fld.strip()
    if fld not in FIELDS:
        raise ForkError(f"--set {spec!r}: cannot change {fld!r} (expected one of "
                        f"{', '.join(FIELDS)})")
    return Change("set", agent.strip(), value.strip(), fld)


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def changes_from_json(text: str | None) -> list[Change]:
    if not text:
        return []
    return [Change(d["kind"], d["agent"], d["text"], d.get("field", "")) for d in json.loads(text)]


def apply_changes(sc: Scenario, changes: list[Change]) -> Scenario:
    """The scenario with the `set` changes applied (a copy; ForkError names a bad one)."""
    sets = [c for c in changes if c.kind == "set"]
    if not sets:
        return sc
    out = sc.model_copy(deep=True)
    names = [r.name for r in out.residents]
    for c in sets:
        if c.agent not in names:
            raise ForkError(f"--set {c}: unknown resident {c.agent!r} (expected one of: "
                            f"{', '.join(names)})")
        i = names.index(c.agent)
        data = out.residents[i].model_dump()
        data[c.field] = _value(c.text)
        if c.field == "traits" and isinstance(data[c.field], str):
            data[c.field] = [t.strip() for t in data[c.field].split(",") if t.strip()]
        try:
            res = Resident.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise ForkError(f"--set {c}: {' '.join(str(err.get('msg')).split())}") from None
        if res.sleep <= res.wake:
            raise ForkError(f"--set {c}: sleep {res.sleep:%H:%M} is not after wake {res.wake:%H:%M}")
        out.residents[i] = res
    out._source_text = sc.source_text
    out._source_path = sc.source_path
    return out


# --------------------------------------------------------------------------- copying
_BY_STEP = ("steps", "agent_states", "memories", "retrievals", "plans", "social_edges",
            "events", "llm_calls", "checkpoints")


def copy_run(src: Path, at: int, out: Path, changes: list[Change], inherited: list[Change],
             target_steps: int | None) -> None:
    """Write the run `src` as it stood after step `at` to a new database `out`."""
    tmp = out.with_name(out.name + ".partial")
    for p in (tmp, Path(f"{tmp}-journal")):
        p.unlink(missing_ok=True)
    conn = sqlite3.connect(f"{tmp.resolve().as_uri()}?mode=rwc", uri=True, isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.execute("ATTACH DATABASE ? AS src", (f"{src.resolve().as_uri()}?mode=ro",))
        conn.execute("BEGIN")
        pending = _pending_at(conn, at)
        for table in ("meta", "agents"):
            _copy(conn, table)
        _copy(conn, "runs")
        for table in _BY_STEP:
            _copy(conn, table, "step <= ?", (at,))
        _copy(conn, "memory_evidence", "memory_id IN (SELECT id FROM main.memories)")
        _copy(conn, "retrieval_hits", "retrieval_id IN (SELECT id FROM main.retrievals)")
        _copy(conn, "conversations", "step_start <= ?", (at,))
        _copy(conn, "utterances", "conversation_id IN (SELECT id FROM main.conversations)")
        # records rated after `at` were still waiting for their rating at `at`
        conn.executemany("UPDATE main.memories SET importance = NULL, call_id = NULL WHERE id = ?",
                         [(i,) for i in pending])
        conn.execute("INSERT OR REPLACE INTO main.meta(key, value) VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))
        conn.execute(
            "UPDATE main.runs SET status = 'running', started_at = ?, ended_at = NULL, error = NULL,"
            " last_step = ?, target_steps = ?, resumes = 0, forked_from = ?, forked_at = ?,"
            " fork_changes = ?",
            (iso(datetime.now()), at, target_steps, str(src.resolve()), at,
             json.dumps([c.to_json() for c in [*inherited, *changes]]) or None))
        for c in changes:
            if c.kind == "set" and c.field in _AGENT_COLUMNS:
                v = _value(c.text)
                if c.field == "traits":
                    v = json.dumps(v if isinstance(v, list) else
                                   [t.strip() for t in str(v).split(",") if t.strip()])
                conn.execute(f"UPDATE main.agents SET {c.field} = ? WHERE name = ?", (v, c.agent))
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(tmp, out)


def _copy(conn: sqlite3.Connection, table: str, where: str = "", args: tuple = ()) -> None:
    cols = [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")]
    have = {r[1] for r in conn.execute(f"PRAGMA src.table_info({table})")}
    cols = [c for c in cols if c in have]
    if not cols:
        return
    names = ", ".join(f'"{c}"' for c in cols)
    conn.execute(f"INSERT OR REPLACE INTO main.{table} ({names}) SELECT {names} FROM src.{table}"
                 + (f" WHERE {where}" if where else ""), args)


def _pending_at(conn: sqlite3.Connection, at: int) -> list[int]:
    out = []
    for (text,) in conn.execute(
            "SELECT c.state FROM src.checkpoints c WHERE c.part = 'mind' AND c.step = ("
            " SELECT max(step) FROM src.checkpoints WHERE agent_id = c.agent_id"
            " AND part = 'mind' AND step <= ?)", (at,)):
        out.extend(int(i) for i, _ in json.loads(text)["pending"])
    return out


def fork(src: str | Path, *, at: int | None, out: str | Path, changes: list[Change] = (),
         steps: int | None = None, hours: float | None = None,
         overrides: Any = None) -> tuple[Any, int]:
    """Copy `src` up to step `at` (None or negative: from the end) into `out`, apply the
    changes and return (the model at `at`, steps to run). ForkError/ResumeError/RunDBError."""
    from village import simulate

    src, out = Path(src), Path(out)
    changes = list(changes)
    run, last, has_ck = simulate.read_run(src)
    if last is None:
        raise ForkError(f"{src}: no step recorded yet; nothing to fork")
    if not has_ck:
        raise ForkError(f"{src}: recorded by a Village without checkpoints (schema version 1);"
                        " it can be replayed but not forked")
    step = last if at is None else (last + 1 + at if at < 0 else at)
    if not 0 <= step <= last:
        raise ForkError(f"--at {at}: the run has steps 0 to {last}")
    if out.exists():
        raise ForkError(f"{out}: already exists (choose another --out)")
    if out.resolve() == src.resolve():
        raise ForkError(f"{out}: is the run being forked (choose another --out)")
    inherited = changes_from_json(run.get("fork_changes"))
    sc = simulate.recorded_scenario(run, src)
    apply_changes(sc, changes)  # fail before copying anything
    names = [r.name for r in sc.residents]
    for c in changes:
        if c.agent not in names:
            raise ForkError(f"--{'whisper' if c.kind == 'whisper' else 'set'} {c}: unknown "
                            f"resident {c.agent!r} (expected one of: {', '.join(names)})")
    sps = int(run.get("seconds_per_step") or 10)
    if steps is not None:
        n = steps
    elif hours is not None:
        n = int(round(hours * 3600 / sps))
    else:
        n = int(run.get("target_steps") or last) - step
        if n <= 0:
            raise ForkError(f"{src}: the run ends at step {last}; give --steps N or --hours H "
                            "for the fork to run")
    opts = simulate.options_from_run(run, out, overrides)
    out.parent.mkdir(parents=True, exist_ok=True)
    copy_run(src, step, out, changes, inherited, step + n)
    with sqlite3.connect(f"{out.resolve().as_uri()}?mode=ro", uri=True) as c:
        c.row_factory = sqlite3.Row
        new_run = dict(c.execute("SELECT * FROM runs LIMIT 1").fetchone())
    c.close()
    model = simulate.open_stack(out, new_run, opts, count_resume=False)
    for c in changes:
        if c.kind == "whisper":
            model.inject_whisper(c.agent, c.text)
    model.save_checkpoint()  # the whispers wait in the checkpoint of step `at`
    return model, n


__all__ = ["Change", "FIELDS", "ForkError", "apply_changes", "changes_from_json", "copy_run",
           "fork", "parse_set", "parse_whisper"]
