"""The benchmark suite behind `village bench`: runs each section, prints a table of figures
with their targets and their ratios to baselines measured in the same process, and writes
them as JSON. `quick` keeps the whole suite within about five minutes on a 2-core machine.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from village.bench.common import Figure, load, machine

SECTIONS = ("retrieval", "engine", "recording", "economy", "cache")


def _engine(quick: bool, log: Callable[[str], None]) -> list[Figure]:
    from village.bench import engine as eng

    out: list[Figure] = []
    # (agents, timed steps, untimed warm-up steps: 1 = the 07:00 wake-up, when every agent
    # plans its day; 1000 agents are timed later, past the wake-up burst, as a long run is)
    plan = ([(10, 20, 1), (50, 15, 1), (250, 6, 1), (1000, 6, 12)] if quick
            else [(10, 60, 1), (50, 60, 1), (250, 30, 1), (1000, 20, 30)])
    instant: dict[int, Any] = {}
    for n, steps, warm in plan:
        log(f"engine: {n} agents, instant model, concurrent, {steps} steps after {warm}")
        r = eng.measure(n, latency_ms=0, concurrency=64, steps=steps, warmup=warm)
        instant[n] = r
        seq = None
        if n <= (50 if quick else 250):
            log(f"engine: {n} agents, instant model, sequential")
            seq = eng.measure(n, latency_ms=0, concurrency=1, steps=steps, warmup=warm)
        out.append(Figure(
            "engine", f"agent-steps/s, {n} agents, 0 ms", r.agent_steps_per_s, "agent-steps/s",
            ">= 6000" if n == 1000 else None,
            baseline=seq.agent_steps_per_s if seq else None,
            baseline_name="sequential (max_concurrency 1)" if seq else "",
            ratio=r.agent_steps_per_s / seq.agent_steps_per_s if seq else None,
            ratio_label="concurrent / sequential" if seq else "",
            note=(f"{steps} steps after {warm} untimed (from 07:00, when all wake); "
                  f"{r.calls / (n * steps):.2f} model "
                  f"calls per agent-step; median step {statistics.median(r.step_ms):.0f} ms; "
                  f"{r.agent_steps_per_cpu_s:.0f} agent-steps per CPU-second"),
            extra={"step_ms": r.step_ms, "calls": r.calls}))
    lat_plan = [(10, 10), (50, 8)] if quick else [(10, 30), (50, 30), (250, 12), (1000, 4)]
    for n, steps in lat_plan:
        log(f"engine: {n} agents, 10 ms model, concurrent vs sequential, {steps} steps")
        con = eng.measure(n, latency_ms=10, concurrency=64, steps=steps)
        seq = eng.measure(n, latency_ms=10, concurrency=1, steps=steps) if n <= 250 else None
        out.append(Figure(
            "engine", f"agent-steps/s, {n} agents, 10 ms", con.agent_steps_per_s, "agent-steps/s",
            None, baseline=seq.agent_steps_per_s if seq else None,
            baseline_name="sequential (max_concurrency 1)" if seq else "",
            ratio=con.agent_steps_per_s / seq.agent_steps_per_s if seq else None,
            ratio_label="concurrent / sequential" if seq else "",
            note=(f"{con.calls / (n * steps):.2f} calls per agent-step; instant model: "
                  f"{instant[n].agent_steps_per_s:.0f}" if n in instant else ""),
            extra={"step_ms": con.step_ms, "seq_step_ms": seq.step_ms if seq else None}))
    for n in (50,):
        log(f"engine: one model call per agent in one step, {n} agents, 0 and 10 ms")
        reps = 5

        def med(lat: float, conc: int) -> float:
            return statistics.median(eng.one_call_step(n, latency_ms=lat, concurrency=conc)[0]
                                     for _ in range(reps))

        base, con, seq = med(0, 64), med(10, 64), med(10, 1)
        out.append(Figure(
            "engine", f"latency cost of a step with one call per agent, {n} agents, 10 ms",
            max(con - base, 0.0) / 10.0, "latencies", "<= 2", baseline=(seq - base) / 10.0,
            baseline_name="sequential (latencies)", ratio=seq / con,
            ratio_label="sequential / concurrent step time",
            note=(f"step with {n} calls: {con:.0f} ms concurrent, {seq:.0f} ms sequential, "
                  f"{base:.0f} ms with an instant model (the framework's own CPU time for the "
                  f"step, {base / n:.2f} ms per agent); value = (concurrent - instant) / latency; "
                  f"medians of {reps}")))
    return out


def _recording(quick: bool, log: Callable[[str], None], tmp: Path) -> list[Figure]:
    from village.bench import engine as eng
    from village.bench.economy import replay_seek

    out: list[Figure] = []
    sizes = [(25, 0, 40 if quick else 120)] + ([] if quick else [(25, 10, 60), (250, 0, 30)])
    for n, lat, steps in sizes:
        sc = eng.town(n)
        log(f"recording: {n} agents, {lat} ms, {steps} steps with and without the recorder")
        with_rec, without = [], []
        for _ in range(3):  # alternate, take the best of each (noise)
            with_rec.append(eng.measure(n, latency_ms=lat, concurrency=64, steps=steps,
                                        scenario=sc, record=True).wall_s)
            without.append(eng.measure(n, latency_ms=lat, concurrency=64, steps=steps,
                                       scenario=sc, record=False).wall_s)
        w, wo = min(with_rec), min(without)
        share = max(0.0, (w - wo) / w)
        out.append(Figure(
            "recording", f"recorder's share of step time, {n} agents, {lat} ms", 100 * share, "%",
            "<= 5", baseline=wo * 1000 / steps, baseline_name="ms per step without the recorder",
            ratio=w / wo, ratio_label="with / without",
            note=(f"{w * 1000 / steps:.1f} ms per step with, {wo * 1000 / steps:.1f} without "
                  f"(best of {len(with_rec)}, {steps} steps; scripted model, {lat} ms a call; the "
                  f"recorder includes the per-step checkpoint)")))
    db = tmp / "bytes.db"
    n, steps = 25, 360 if not quick else 120
    log(f"recording: database bytes, {n} agents, {steps} steps")
    sc = eng.town(n)
    model, _ = eng.build(sc, latency_s=0, concurrency=64, db=db)
    try:
        for _ in range(steps + 1):
            model.step()
    finally:
        model.runner.close()
        model.recorder.close()
        model.close()
    per_day, k = eng.db_bytes_per_agent_day(db, n, sc.scenario.seconds_per_step)
    out.append(Figure(
        "recording", "database bytes per agent-day (scripted model)", per_day / 1e6, "MB",
        note=(f"{db.stat().st_size / 1e6:.1f} MB for {n} agents x {k} steps from 07:00, scaled to "
              f"a day; every model call's messages are stored, and the scripted double answers "
              f"far more often than a real model (see the economy figures)")))
    seek_db = Path(tempfile.gettempdir()) / "village-bench-replay.db"
    log(f"recording: replay seek latency ({seek_db})")
    out.append(replay_seek(seek_db, 100 if quick else 500))
    return out


def _economy(quick: bool, log: Callable[[str], None], tmp: Path, econ_db: Path | None,
             scenario: str) -> list[Figure]:
    from village.bench import economy as ec

    hours = ec.scenario_waking_hours(scenario)
    if econ_db is None:
        if quick:
            return [Figure("economy", "calls and tokens per agent per waking hour", None, "", "<= 5",
                           skipped=("needs at least a simulated hour on the bundled model (hours "
                                    "on this machine): pass --economy-db RUN.db, or run the full "
                                    "suite; BENCHMARKS.md has the figure"))]
        econ_db = ec.run_bundled(scenario, 360, tmp / f"{scenario}-economy.db", None, log)
    log(f"economy: reading {econ_db}")
    econ = ec.economy(econ_db)
    figs = ec.economy_figures(econ, scenario_waking_hours=hours)
    mb = econ["db_bytes"] / 1e6
    if econ["waking_agent_hours"]:
        per_day = econ["db_bytes"] / econ["waking_agent_hours"] * hours / 1e6
        figs.append(Figure("recording", "database bytes per agent-day (bundled model)", per_day,
                           "MB", note=(f"{mb:.1f} MB for {econ['waking_agent_hours']:.1f} waking "
                                       f"agent-hours, scaled to {hours:.1f} waking hours")))
    return figs


def _cache(quick: bool, log: Callable[[str], None], tmp: Path) -> list[Figure]:
    from village.bench import engine as eng
    from village.bench.economy import cache_speedup

    if quick:  # two residents of the bench town: a cold run of a minute, not several
        path = tmp / "bench-town-2.toml"
        path.write_text(eng.town(2).source_text, encoding="utf-8")
        scenario, steps = str(path), 2
    else:
        scenario, steps = "demo", 20
    log(f"cache: {Path(scenario).stem}, {steps} steps on the bundled model, cold then warm")
    return [cache_speedup(steps, scenario)]


def run_suite(quick: bool, *, sections: tuple[str, ...] = SECTIONS, econ_db: Path | None = None,
              scenario: str = "valentines", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the sections; return {"machine", "quick", "figures", "load_*", "seconds"}."""
    from village.bench import retrieval

    info = machine()
    figs: list[Figure] = []
    t0 = time.perf_counter()
    loads = {}
    with tempfile.TemporaryDirectory(prefix="village-bench-") as d:
        tmp = Path(d)
        for sec in sections:
            t = time.perf_counter()
            try:
                if sec == "retrieval":
                    got = retrieval.run(quick, log)
                elif sec == "engine":
                    got = _engine(quick, log)
                elif sec == "recording":
                    got = _recording(quick, log, tmp)
                elif sec == "economy":
                    got = _economy(quick, log, tmp, econ_db, scenario)
                elif sec == "cache":
                    got = _cache(quick, log, tmp)
                else:
                    raise ValueError(f"unknown section {sec!r}")
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the rest
                log(traceback.format_exc())
                got = [Figure(sec, "(section failed)", None, "", skipped=f"{type(exc).__name__}: {exc}")]
            figs.extend(got)
            loads[sec] = {"seconds": round(time.perf_counter() - t, 1),
                          "load_after": [round(x, 2) for x in load()]}
    return {"machine": info, "quick": quick, "sections": loads, "figures": figs,
            "seconds": round(time.perf_counter() - t0, 1),
            "load_at_end": [round(x, 2) for x in load()]}


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def print_table(result: dict[str, Any], console: Any = None) -> None:
    """The rich table: figure, value, target, met, baseline, ratio (and notes below)."""
    from rich.console import Console
    from rich.table import Table

    c = console or Console()
    m = result["machine"]
    t = Table(title=(f"village bench{' --quick' if result['quick'] else ''} — {m['nproc']} cores "
                     f"({m['cpu']}), load {m['load_at_start']} → {result['load_at_end']}, "
                     f"{result['seconds']:.0f} s"), show_lines=False)
    for col in ("section", "figure", "value", "target", "met", "baseline", "ratio"):
        t.add_column(col, overflow="fold")
    for f in result["figures"]:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[f.met]
        value = f"{_fmt(f.value)} {f.unit}" if f.value is not None else f"skipped: {f.skipped}"
        base = f"{_fmt(f.baseline)} ({f.baseline_name})" if f.baseline is not None else ""
        ratio = f"{_fmt(f.ratio)} {f.ratio_label}" if f.ratio is not None else ""
        t.add_row(f.section, f.name, value, f.target or "", met, base, ratio)
    c.print(t)
    for f in result["figures"]:
        if f.note:
            c.print(f"[dim]{f.section} · {f.name}:[/dim] {f.note}", highlight=False)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps({**result, "figures": [f.to_dict() for f in result["figures"]]}, indent=2,
                      default=str)
