"""Smoke tests of the pieces of `village bench` (no timing assertions: the figures are
measured, not checked, here)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from village.bench import engine as eng
from village.bench import retrieval
from village.bench.common import Figure, timed
from village.bench.economy import economy, economy_figures, waking_agent_hours
from village.bench.suite import print_table, run_suite, to_json
from village.cli import main


def test_figure_targets_and_json() -> None:
    assert Figure("s", "a", 3.0, "ms", "<= 4").met is True
    assert Figure("s", "a", 5.0, "ms", "<= 4").met is False
    assert Figure("s", "a", 1200.0, "x", ">= 1000").met is True
    assert Figure("s", "a", None, "", ">= 1", skipped="why").met is None
    assert Figure("s", "a", 1.0, "x").to_dict()["met"] is None
    t = timed(lambda: sum(range(100)), repeat=3)
    assert {"median_ms", "min_ms", "cpu_median_ms"} <= t.keys()


def test_town_tiles_the_demo_map() -> None:
    sc = eng.town(20, per_block=8)  # 3 blocks, 2 x 2 grid
    assert len(sc.residents) == 20
    assert {r.home for r in sc.residents} == {"Lin house", "Moreno house"}
    rows = sc.source_text.split('grid = """\n', 1)[1].split('"""', 1)[0].strip("\n").split("\n")
    assert len(rows) == 40 and len(rows[0]) == 60


def test_engine_measure_records_and_counts(tmp_path: Path) -> None:
    run = eng.measure(8, latency_ms=0, concurrency=8, steps=3, tmp=tmp_path)
    assert run.steps == 3 and len(run.step_ms) == 3 and run.agent_steps_per_s > 0
    ms, calls = eng.one_call_step(4, latency_ms=0, concurrency=4)
    assert calls == 4 and ms > 0


def test_economy_from_a_recorded_run(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    sc = eng.town(8)
    model, _ = eng.build(sc, latency_s=0, concurrency=8, db=db)
    try:
        for _ in range(13):
            model.step()
    finally:
        model.runner.close()
        model.recorder.close()
        model.close()
    conn = sqlite3.connect(db)
    hours, n, last = waking_agent_hours(conn)
    conn.close()
    assert (n, last) == (8, 13)
    assert hours == pytest.approx(8 * 13 * 10 / 3600)  # all awake from 07:00
    e = economy(db)
    assert e["calls"] > 0 and e["calls_per_agent_hour"] == pytest.approx(e["calls"] / hours)
    assert sum(p["calls"] for p in e["by_purpose"]) == e["calls"]
    per_day, steps = eng.db_bytes_per_agent_day(db, 8, 10)
    assert steps == 13 and per_day > 0
    figs = economy_figures(e, scenario_waking_hours=15.0)
    assert [f.target for f in figs] == ["<= 5", "<= 2600", "<= 30"]


def test_retrieval_section_on_small_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieval, "SIZES", (300, 2000))
    figs = retrieval.run(quick=True, log=lambda m: None)
    lat = [f for f in figs if f.name.startswith("top-10 latency")]
    assert len(lat) == 2
    assert all(f.extra["verified"] and f.extra["verified_loop"] for f in lat)
    assert all(f.ratio and f.ratio > 1 for f in lat)  # faster than the per-record loop


def test_suite_table_json_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_suite(True, sections=("economy",), log=lambda m: None)
    (fig,) = result["figures"]
    assert fig.value is None and "economy-db" in fig.skipped  # quick: skipped with a reason
    console = Console(record=True, width=200)
    print_table(result, console)
    assert "skipped" in console.export_text()
    assert json.loads(to_json(result))["figures"][0]["skipped"]

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "--quick", "--only", "economy", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["quick"] is True
    res = CliRunner().invoke(main, ["bench", "--economy-db", str(tmp_path / "none.db")])
    assert res.exit_code == 2 and "no such run database" in res.output


def test_waking_hours_follow_change_only_states() -> None:
    """agent_states holds a row only when something changed: the asleep flag carries on."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE runs (seconds_per_step INTEGER); INSERT INTO runs VALUES (10);"
        "CREATE TABLE steps (step INTEGER); CREATE TABLE agents (id INTEGER);"
        "CREATE TABLE agent_states (agent_id INTEGER, step INTEGER, asleep INTEGER);"
        "INSERT INTO agents VALUES (1), (2), (3);")
    conn.executemany("INSERT INTO steps VALUES (?)", [(s,) for s in range(0, 101)])
    conn.executemany("INSERT INTO agent_states VALUES (?, ?, ?)", [
        (1, 0, 1), (1, 10, 0), (1, 60, 1),  # awake steps 10..59: 50
        (2, 0, 0), (2, 50, 0),  # awake from step 1 (step 0 left out) to 100: 100
        (3, 0, 1),  # asleep throughout
    ])
    hours, n, last = waking_agent_hours(conn)
    assert (n, last) == (3, 100)
    assert hours == pytest.approx((50 + 100) * 10 / 3600)
