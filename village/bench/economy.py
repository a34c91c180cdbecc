"""Model economy and wall time on the bundled model, from a run database; the response
cache's warm re-run (benchmarks/bench_cache.py); replay seek latency
(benchmarks/bench_replay.py).

Per agent per simulated *waking* hour: calls and tokens are divided by the hours agents
were awake (from `agent_states`, stored change-only), not by residents x run length, so a
run that starts before everyone is up is not flattered. Step 0 (rating the seeded
memories once per run) is reported apart and left out of the rates.
"""
from __future__ import annotations

import contextlib
import io
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Callable

from village.bench.common import Figure, bench_module

PAPER_CALLS, PAPER_TOKENS = 54, 26_000  # the paper's released code, per agent-hour (issue 8)


def waking_agent_hours(conn: sqlite3.Connection, first: int = 1) -> tuple[float, int, int]:
    """(waking agent-hours over steps [first, last], residents, last step)."""
    sps = int(conn.execute("SELECT seconds_per_step FROM runs LIMIT 1").fetchone()[0] or 10)
    last = conn.execute("SELECT max(step) FROM steps").fetchone()[0] or 0
    agents = [r[0] for r in conn.execute("SELECT id FROM agents ORDER BY id")]
    rows: dict[int, list[tuple[int, int]]] = {a: [] for a in agents}
    for aid, step, asleep in conn.execute(
            "SELECT agent_id, step, asleep FROM agent_states ORDER BY agent_id, step"):
        rows.setdefault(aid, []).append((step, int(asleep or 0)))
    awake_steps = 0
    for changes in rows.values():  # state of row i holds over steps [step_i, step_i+1)
        bounds = [step for step, _ in changes[1:]] + [last + 1]
        for (step, asleep), nxt in zip(changes, bounds):
            if not asleep:
                awake_steps += max(0, min(nxt, last + 1) - max(step, first))
    return awake_steps * sps / 3600.0, len(agents), last


def economy(db: Path) -> dict[str, Any]:
    """Calls and tokens per agent per waking hour, by purpose, plus the run's wall time."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        hours, n, last = waking_agent_hours(conn)
        run = dict(zip(("scenario", "llm", "seed", "sps"), conn.execute(
            "SELECT scenario, llm, seed, seconds_per_step FROM runs LIMIT 1").fetchone()))
        rows = conn.execute(
            "SELECT purpose, count(*), coalesce(sum(prompt_tokens), 0),"
            " coalesce(sum(completion_tokens), 0), coalesce(sum(cached), 0),"
            " coalesce(sum(fallback), 0), coalesce(sum(latency_ms), 0)"
            " FROM llm_calls WHERE step >= 1 GROUP BY purpose ORDER BY 2 DESC").fetchall()
        setup = conn.execute("SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0)"
                             " FROM llm_calls WHERE step = 0").fetchone()
        wall = conn.execute("SELECT coalesce(sum(duration_ms), 0) / 1000.0 FROM steps"
                            " WHERE step >= 1").fetchone()[0]
        quiet = conn.execute("SELECT count(*), coalesce(avg(duration_ms), 0) FROM steps"
                             " WHERE step >= 1 AND llm_calls = 0").fetchone()
        wal = Path(f"{db}-wal")  # a run still being written keeps its recent steps there
        size = Path(db).stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    finally:
        conn.close()
    purposes = []
    for p, calls, pt, ct, cached, fb, lat in rows:
        purposes.append({"purpose": p, "calls": calls, "prompt_tokens": pt, "completion_tokens": ct,
                         "cached": cached, "fallbacks": fb, "model_s": lat / 1000.0,
                         "calls_per_agent_hour": calls / hours if hours else None,
                         "tokens_per_agent_hour": (pt + ct) / hours if hours else None})
    calls = sum(p["calls"] for p in purposes)
    tokens = sum(p["prompt_tokens"] + p["completion_tokens"] for p in purposes)
    return {"db": str(db), **run, "agents": n, "last_step": last, "waking_agent_hours": hours,
            "sim_hours": last * run["sps"] / 3600.0, "calls": calls, "tokens": tokens,
            "calls_per_agent_hour": calls / hours if hours else None,
            "tokens_per_agent_hour": tokens / hours if hours else None,
            "by_purpose": purposes, "setup_calls": setup[0], "setup_tokens": setup[1],
            "wall_s": wall, "wall_s_per_agent_hour": wall / hours if hours else None,
            "quiet_steps": quiet[0], "quiet_step_ms": quiet[1], "db_bytes": size}


def day_estimate(econ: dict[str, Any], agents: int = 25, waking_hours: float = 16.0,
                 seconds_per_step: int = 10) -> float:
    """Minutes for `agents` x one simulated day, from the measured seconds per waking
    agent-hour (agents' waking calls do not overlap on the in-process model: one call at
    a time) plus the night's steps at the measured cost of a step without model calls."""
    awake_s = econ["wall_s_per_agent_hour"] * agents * waking_hours
    night_steps = (24 - waking_hours) * 3600 / seconds_per_step
    return (awake_s + night_steps * econ["quiet_step_ms"] / 1000.0) / 60.0


def economy_figures(econ: dict[str, Any], *, scenario_waking_hours: float) -> list[Figure]:
    hrs = econ["waking_agent_hours"]
    span = (f"{econ['scenario']} on {econ['llm']}, {econ['agents']} agents, {econ['last_step']} steps"
            f" ({econ['sim_hours']:.2f} simulated h, {hrs:.2f} waking agent-hours); "
            f"step 0 setup ({econ['setup_calls']} calls) left out")
    purposes = ", ".join(f"{p['purpose']} {p['calls_per_agent_hour']:.1f}"
                         for p in econ["by_purpose"]) if hrs else ""
    tpurposes = ", ".join(f"{p['purpose']} {p['tokens_per_agent_hour']:.0f}"
                          for p in econ["by_purpose"]) if hrs else ""
    est = day_estimate(econ, waking_hours=scenario_waking_hours)
    short = econ["sim_hours"] < 1.0
    caveat = " — shorter than the 1 simulated hour the target asks for" if short else ""
    return [
        Figure("economy", "calls per agent per waking hour", econ["calls_per_agent_hour"],
               "calls", "<= 5", baseline=PAPER_CALLS, baseline_name="paper's released code (published)",
               ratio=econ["calls_per_agent_hour"] / PAPER_CALLS if hrs else None,
               ratio_label="ours / paper", note=f"{span}{caveat}; by purpose: {purposes}",
               extra={"economy": econ}),
        Figure("economy", "tokens per agent per waking hour", econ["tokens_per_agent_hour"],
               "tokens", "<= 2600", baseline=PAPER_TOKENS, baseline_name="paper's released code (published)",
               ratio=econ["tokens_per_agent_hour"] / PAPER_TOKENS if hrs else None,
               ratio_label="ours / paper", note=f"by purpose: {tpurposes}"),
        Figure("economy", "25 agents x 1 simulated day (estimate)", est, "min", "<= 30",
               note=(f"estimated, not run: {econ['wall_s_per_agent_hour']:.0f} s of wall time per "
                     f"waking agent-hour measured ({econ['wall_s']:.0f} s over {hrs:.2f} agent-hours)"
                     f" x 25 agents x {scenario_waking_hours:.1f} waking hours, plus the night's "
                     f"steps at {econ['quiet_step_ms']:.0f} ms")),
    ]


def scenario_waking_hours(name: str) -> float:
    """Mean hours from wake to sleep of a scenario's residents."""
    from datetime import datetime

    from village.scenario import load_scenario

    sc = load_scenario(name)
    day = datetime(2000, 1, 1).date()
    hrs = [(datetime.combine(day, r.sleep) - datetime.combine(day, r.wake)).total_seconds() / 3600
           for r in sc.residents]
    return sum(hrs) / len(hrs)


def run_bundled(scenario: str, steps: int, out: Path, cache_path: Path | None,
                log: Callable[[str], None] = print) -> Path:
    """A recorded run of `scenario` on the bundled model (MiniLM embedder), `steps` long."""
    from village import simulate

    opts = simulate.RunOptions(llm="local", embedder="local", out=out,
                               cache=cache_path is not None, cache_path=cache_path)
    log(f"economy: running {scenario} for {steps} steps on the bundled model → {out}")
    model = simulate.build(scenario, opts)
    simulate.run(model, steps)
    return out


# ------------------------------------------------------------------------------- cache
def cache_speedup(steps: int, scenario: str = "demo") -> Figure:
    """bench_cache.main(): the same seeded run twice against a fresh cache, cold then warm."""
    bc = bench_module("bench_cache")
    argv, sys.argv = sys.argv, ["bench_cache.py", "--steps", str(steps), "--scenario", scenario]
    buf = io.StringIO()
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(buf):
            bc.main()
    finally:
        sys.argv = argv
    text = buf.getvalue()
    times = [float(x) for x in re.findall(r"cache:\s+([\d.]+) s", text)]
    reached = [int(x) for x in re.findall(r"(\d+) reached the model", text)]
    if len(times) != 2:
        raise RuntimeError(f"unexpected bench_cache output: {text!r}")
    cold, warm = times
    name = Path(scenario).stem
    return Figure("cache", f"warm re-run speed-up ({name}, {steps} steps)", cold / warm, "x",
                  ">= 50", baseline=cold, baseline_name="cold run (s)", ratio=cold / warm,
                  ratio_label="cold / warm",
                  note=(f"cold {cold:.1f} s, warm {warm:.2f} s (bundled model, seeded, hash "
                        f"embedder); calls that reached the model: {reached}; "
                        f"benchmarks/bench_cache.py; took {time.perf_counter() - t:.0f} s"),
                  extra={"output": text})


# ------------------------------------------------------------------------------- replay
def replay_seek(db: Path, seeks: int) -> Figure:
    """bench_replay.build (a synthetic 25-agent, 2-day run, cached at `db`) + bench_seek."""
    br = bench_module("bench_replay")
    built = ""
    if not db.exists():
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            br.build(db)
        built = f"built in {time.perf_counter() - t:.0f} s; "
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        br.bench_seek(db, seeks)
    text = buf.getvalue()
    m = re.search(r"median ([\d.]+) ms, p95 ([\d.]+) ms, max ([\d.]+) ms", text)
    if not m:
        raise RuntimeError(f"unexpected bench_seek output: {text!r}")
    med, p95, mx = (float(x) for x in m.groups())
    return Figure("recording", "replay seek latency (median)", med, "ms", "<= 50",
                  note=(f"p95 {p95:.1f} ms, max {mx:.1f} ms over {seeks} random steps of a synthetic"
                        f" 25-agent, 2-day run (17,280 steps); {built}benchmarks/bench_replay.py"),
                  extra={"output": text})
