"""The end-of-run summary, read from the run database (the database is the interface)."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Summary:
    path: Path
    run: dict[str, Any]
    steps: int
    game_start: str
    game_end: str
    actions: dict[str, list[tuple[str, str]]]  # agent -> [(time, action)]
    conversations: list[dict[str, Any]]
    calls_by_purpose: list[dict[str, Any]]
    totals: dict[str, Any]
    memories: dict[str, dict[str, int]]


def connect_ro(path: str | Path) -> sqlite3.Connection:
    """A validated read-only connection (one-line RunDBError for anything not a run)."""
    from village.dbcheck import open_run_ro

    return open_run_ro(path)


def summarize(path: str | Path) -> Summary:
    conn = connect_ro(path)
    try:
        run = dict(conn.execute("SELECT * FROM runs LIMIT 1").fetchone())
        span = conn.execute("SELECT max(step), min(game_time), max(game_time) FROM steps").fetchone()
        actions: dict[str, list[tuple[str, str]]] = {}
        for r in conn.execute(
            "SELECT a.name, s.game_time, e.description FROM events e JOIN agents a ON a.id = e.agent_id"
            " JOIN steps s ON s.step = e.step WHERE e.kind IN ('action', 'wake', 'sleep')"
            " ORDER BY a.id, e.id"
        ):
            actions.setdefault(r[0], []).append((r[1][11:16], r[2]))
        convs = [dict(r) for r in conn.execute(
            "SELECT c.id, a.name AS a, b.name AS b, s.game_time AS time, c.place, c.utterances,"
            " c.ended_by FROM conversations c JOIN agents a ON a.id = c.agent_a"
            " JOIN agents b ON b.id = c.agent_b JOIN steps s ON s.step = c.step_start ORDER BY c.id")]
        by_purpose = [dict(r) for r in conn.execute(
            "SELECT purpose, count(*) AS calls, sum(cached) AS cached, sum(prompt_tokens) AS prompt_tokens,"
            " sum(completion_tokens) AS completion_tokens, sum(fallback) AS fallbacks,"
            " sum(retries) AS retries, round(avg(latency_ms)) AS avg_ms"
            " FROM llm_calls GROUP BY purpose ORDER BY calls DESC")]
        totals = dict(conn.execute(
            "SELECT count(*) AS calls, coalesce(sum(cached), 0) AS cached,"
            " coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
            " coalesce(sum(completion_tokens), 0) AS completion_tokens,"
            " coalesce(sum(fallback), 0) AS fallbacks FROM llm_calls").fetchone())
        mems: dict[str, dict[str, int]] = {}
        for r in conn.execute("SELECT a.name, m.kind, count(*) FROM memories m"
                              " JOIN agents a ON a.id = m.agent_id GROUP BY a.name, m.kind"):
            mems.setdefault(r[0], {})[r[1]] = r[2]
    finally:
        conn.close()
    return Summary(Path(path), run, span[0] or 0, span[1] or "", span[2] or "", actions, convs,
                   by_purpose, totals, mems)


def print_summary(s: Summary, console: Console | None = None, *, max_actions: int = 8) -> None:
    c = console or Console()
    c.print(f"[bold]Run[/bold] {s.path}  scenario={s.run['scenario']} seed={s.run['seed']} "
            f"model={s.run['llm']} status={s.run['status']}")
    c.print(f"{s.steps} steps, game time {s.game_start[11:16]} → {s.game_end[11:16]}"
            f" ({s.game_start[:10]})")
    t = Table(title="What each agent did", show_lines=False)
    t.add_column("agent")
    t.add_column("memories")
    t.add_column("actions (time: what)")
    for name, acts in s.actions.items():
        mem = ", ".join(f"{k} {v}" for k, v in sorted(s.memories.get(name, {}).items()))
        shown = [f"{tm} {d.split(': ', 1)[-1]}" for tm, d in acts[:max_actions]]
        if len(acts) > max_actions:
            shown.append(f"… {len(acts) - max_actions} more")
        t.add_row(name, mem, "\n".join(shown))
    c.print(t)
    if s.conversations:
        ct = Table(title="Who talked to whom")
        for col in ("time", "between", "place", "utterances", "ended by"):
            ct.add_column(col)
        for cv in s.conversations:
            ct.add_row(cv["time"][11:16], f"{cv['a']} ↔ {cv['b']}", cv["place"] or "",
                       str(cv["utterances"]), cv["ended_by"] or "")
        c.print(ct)
    else:
        c.print("No conversations.")
    pt = Table(title="Model calls by purpose")
    for col in ("purpose", "calls", "cached", "prompt tok", "completion tok", "fallbacks", "avg ms"):
        pt.add_column(col)
    for r in s.calls_by_purpose:
        pt.add_row(r["purpose"], str(r["calls"]), str(r["cached"]), str(r["prompt_tokens"]),
                   str(r["completion_tokens"]), str(r["fallbacks"]), str(r["avg_ms"]))
    tt = s.totals
    pt.add_row("[bold]total", str(tt["calls"]), str(tt["cached"]), str(tt["prompt_tokens"]),
               str(tt["completion_tokens"]), str(tt["fallbacks"]), "")
    c.print(pt)
