"""Sweeps: a 2×2 grid on a local Ray instance; retries and reporting without losing runs."""
from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from village.sweep import SweepError, load_sweep, run_sweep

GRID = """
[sweep]
name = "grid"
scenarios = ["demo"]
seeds = [1, 2]
ablations = ["none", "reflection"]
llms = ["scripted"]
steps = 4
embedder = "hash"
cache = false
"""


def _status(db: str | Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT status FROM runs").fetchone()[0]
    finally:
        con.close()


def test_two_by_two_sweep_on_local_ray_gives_four_databases_and_a_table(tmp_path: Path) -> None:
    toml = tmp_path / "grid.toml"
    toml.write_text(GRID)
    out = tmp_path / "out"
    res = CliRunner().invoke(__import__("village.cli", fromlist=["main"]).main,
                             ["sweep", str(toml), "--out", str(out), "--parallel", "2", "--executor", "ray"])
    assert res.exit_code == 0, res.output
    dbs = sorted(out.glob("*.db"))
    assert [p.name for p in dbs] == [
        "demo-seed1-full-scripted.db", "demo-seed1-reflection-scripted.db",
        "demo-seed2-full-scripted.db", "demo-seed2-reflection-scripted.db"]
    assert all(_status(p) == "finished" for p in dbs)
    table = (out / "compare.md").read_text()
    assert table.count("\n") > 10 and "demo-seed2-reflection-scripted" in table
    assert "| ablations | none | reflection | none | reflection |" in table
    with (out / "compare.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "measure" and len(rows[0]) == 5
    with (out / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert {r["status"] for r in runs} == {"finished"} and len(runs) == 4
    assert "4/4" in res.output and "compare.md" in res.output


def test_a_failing_run_is_retried_once_then_reported_and_finished_runs_kept(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(GRID.replace('llms = ["scripted"]',
                                 'llms = ["scripted", "openai:http://127.0.0.1:9/v1#model=x"]')
                    .replace('seeds = [1, 2]', 'seeds = [1]')
                    .replace('ablations = ["none", "reflection"]', 'ablations = ["none"]')
                    + "llm_retries = 1\n")
    sweep = load_sweep(toml, out=tmp_path / "out")
    seen: list[tuple[int, int, str]] = []
    res = run_sweep(sweep, executor="serial", progress=lambda i, n, o: seen.append((i, n, o.status)))
    assert sorted(s for *_, s in seen) == ["failed", "finished"] and seen[-1][:2] == (2, 2)
    bad = res.failed[0]
    assert bad.attempts == 2 and "connection" in bad.error.lower()
    assert (tmp_path / "out" / (Path(bad.db).stem + ".attempt1.db")).is_file()  # kept
    assert len(res.finished) == 1 and _status(res.finished[0].db) == "finished"
    assert (tmp_path / "out" / "compare.md").is_file()
    # a second sweep into the same folder keeps the finished run and retries only the other
    res2 = run_sweep(load_sweep(toml, out=tmp_path / "out"), executor="serial")
    assert [o.status for o in res2.outcomes] == ["skipped", "failed"]


def test_bad_sweep_files_fail_with_one_line(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    for text, match in [
        (GRID.replace('"reflection"]', '"reflexion"]'), "unknown ablation 'reflexion'"),
        (GRID.replace('"demo"', '"nowhere"'), "scenario 'nowhere'"),
        (GRID.replace("steps = 4", ""), "exactly one of 'steps' or 'hours'"),
        (GRID + "colour = 1\n", "unknown key 'colour'"),
    ]:
        toml.write_text(text)
        with pytest.raises(SweepError, match=match):
            load_sweep(toml)
    sweep = load_sweep(_write(tmp_path, GRID.replace("steps = 4", "hours = 0.5")))
    assert {r.steps for r in sweep.runs} == {180} and len(sweep.runs) == 4


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "ok.toml"
    p.write_text(text)
    return p

