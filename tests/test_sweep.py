"""Sweeps: a 2×2 grid on a local Ray instance; retries and reporting without losing runs."""
from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from village.sweep import SweepError, load_sweep, run_sweep, usable_cpus

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



SLOW = """
[sweep]
name = "slow"
scenarios = ["demo"]
seeds = [1]
llms = ["scripted", "scripted:60000"]
steps = 3
embedder = "hash"
cache = false
llm_retries = 1
run_timeout = 10
"""


@pytest.mark.parametrize("executor", ["ray", "pool"])
def test_a_run_stuck_inside_a_step_is_killed_at_its_time_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    # every call of the second model takes a minute: its step 0 never ends by itself
    import village.sweep as sw

    monkeypatch.setattr(sw, "kill_grace", lambda limit: 1.0)
    sweep = load_sweep(_write(tmp_path, SLOW), out=tmp_path / "out")
    t0 = time.monotonic()
    res = run_sweep(sweep, executor=executor, parallel=2)
    assert time.monotonic() - t0 < 90  # two attempts of 10 + 1 s, plus start-up
    assert [o.status for o in res.outcomes] == ["finished", "failed"]
    bad = res.failed[0]
    assert bad.attempts == 2 and bad.error.startswith("RunTimeout: exceeded run_timeout (10 s)")
    kept = tmp_path / "out" / "demo-seed1-full-scripted_60000.attempt1.db"
    assert _status(kept) == "failed"  # the killed attempt's database says why
    assert "run_timeout" in _error(kept)
    assert _status(res.finished[0].db) == "finished"
    assert "demo-seed1-full-scripted" in (tmp_path / "out" / "compare.md").read_text()


def _descendants() -> list[tuple[int, str]]:
    """(pid, command line) of every process below this one."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            parent[int(pid)] = int(rest.rsplit(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [os.getpid()]
    while todo:
        me = todo.pop()
        for pid, pp in parent.items():
            if pp == me:
                todo.append(pid)
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                found.append((pid, cmd))
    return found


def _kill_later(delay: float, match: str) -> None:
    """SIGKILL the processes below this one whose command line has `match`, `delay` seconds
    after the first of them shows up (a minute at most)."""
    def kill() -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end and not any(match in c for _, c in _descendants()):
            time.sleep(0.2)
        time.sleep(delay)
        for pid, cmd in _descendants():
            if match in cmd:
                os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()


@pytest.mark.parametrize(("executor", "match", "error"), [
    ("ray", "ray::run_one", "worker died: WorkerCrashedError"),
    ("pool", "spawn_main", "worker died (killed by SIGKILL)")])
def test_a_worker_that_dies_is_noticed(tmp_path: Path, executor: str, match: str,
                                       error: str) -> None:
    text = SLOW.replace('"scripted", "scripted:60000"', '"scripted:60000"').replace(
        "run_timeout = 10\n", "run_timeout = 60\nretries = 0\n")
    _kill_later(3, match)  # the OOM killer, a segfault
    t0 = time.monotonic()
    res = run_sweep(load_sweep(_write(tmp_path, text), out=tmp_path / "out"),
                    executor=executor, parallel=2)
    assert time.monotonic() - t0 < 60, "the worker was not killed: it ran into run_timeout"
    (bad,) = res.outcomes
    assert bad.status == "failed" and bad.error.startswith(error), bad.error


def test_a_ray_instance_that_dies_fails_the_runs_instead_of_hanging(tmp_path: Path) -> None:
    # when the raylet dies its workers go with it, and ray.wait() alone would wait forever
    text = SLOW.replace('"scripted", "scripted:60000"', '"scripted:60000"').replace(
        "seeds = [1]", "seeds = [1, 2, 3]").replace("run_timeout = 10\n", "")
    _kill_later(5, "raylet/raylet")
    t0 = time.monotonic()
    res = run_sweep(load_sweep(_write(tmp_path, text), out=tmp_path / "out"), executor="ray",
                    parallel=2)
    assert time.monotonic() - t0 < 120
    assert [o.status for o in res.outcomes] == ["failed"] * 3
    assert all("the Ray instance is gone" in (o.error or "") for o in res.outcomes)
    assert sorted(o.attempts for o in res.outcomes) == [0, 1, 1]  # the third never started


def test_a_run_over_its_time_limit_stops_after_the_current_step(tmp_path: Path) -> None:
    text = (SLOW.replace('"scripted", "scripted:60000"', '"scripted:150"')
            .replace("steps = 3", "steps = 500").replace("run_timeout = 10", "run_timeout = 1")
            + "retries = 0\n")
    res = run_sweep(load_sweep(_write(tmp_path, text), out=tmp_path / "out"), executor="serial")
    (bad,) = res.outcomes
    assert bad.status == "failed" and bad.attempts == 1
    assert bad.error.startswith("RunTimeout: exceeded run_timeout (1 s) after step ")
    assert _status(bad.db) == "failed" and "RunTimeout" in _error(bad.db)
    assert 0 < bad.steps < 500


def test_thread_budget_and_time_limit_are_checked(tmp_path: Path) -> None:
    for extra, match in [("threads = 0\n", "'threads' must be an integer >= 1"),
                         ("run_timeout = -5\n", "'run_timeout' must be a number >= 1"),
                         ("retries = -1\n", "'retries' must be an integer >= 0")]:
        with pytest.raises(SweepError, match=match):
            load_sweep(_write(tmp_path, GRID + extra))
    sweep = load_sweep(_write(tmp_path, GRID + "threads = 3\nrun_timeout = 90.5\n"))
    assert {(r.threads, r.run_timeout) for r in sweep.runs} == {(3, 90.5)}


def _error(db: str | Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT error FROM runs").fetchone()[0] or ""
    finally:
        con.close()


MODEL_GRID = """
[sweep]
name = "models"
scenarios = ["demo"]
seeds = [1, 2]
ablations = ["planning"]   # no day plans: the bundled model's longest answers (~90 s here)
llms = ["scripted", "local"]
steps = 3
embedder = "hash"
cache = false
retries = 0
run_timeout = 150          # ~50 s expected; still going at 150 s (+30 s grace): killed
"""


@pytest.mark.model
@pytest.mark.timeout(300)  # the driver polls, so this SIGALRM is delivered even inside Ray
def test_two_by_two_sweep_with_the_bundled_model_on_local_ray(tmp_path: Path) -> None:
    """scripted × bundled SmolLM2 × 2 seeds on a 2-CPU local Ray instance: both bundled-model
    runs share the cores, one llama.cpp thread each (not all cores each: that spin-waits)."""
    pytest.importorskip("llama_cpp")
    toml = tmp_path / "models.toml"
    toml.write_text(MODEL_GRID)
    out = tmp_path / "out"
    res = CliRunner().invoke(__import__("village.cli", fromlist=["main"]).main,
                             ["sweep", str(toml), "--out", str(out), "--parallel", "2",
                              "--executor", "ray"])
    assert res.exit_code == 0, res.output
    labels = ["demo-seed1-planning-local", "demo-seed1-planning-scripted",
              "demo-seed2-planning-local", "demo-seed2-planning-scripted"]
    assert sorted(p.stem for p in out.glob("*.db")) == labels
    for label in labels:
        db = out / f"{label}.db"
        assert _status(db) == "finished", label
        con = sqlite3.connect(db)
        try:
            n, real, errors = con.execute(
                "SELECT COUNT(*), SUM(model LIKE 'local:SmolLM2%' AND cached = 0 "
                "AND completion_tokens > 0), SUM(error IS NOT NULL) FROM llm_calls").fetchone()
            threads = json.loads(con.execute("SELECT config FROM runs").fetchone()[0])["n_threads"]
        finally:
            con.close()
        assert n > 0 and errors == 0, label
        if label.endswith("-local"):
            assert real == n, label  # every call answered by the bundled model itself
            assert threads == max(1, usable_cpus() // 2)  # the cores shared, not each all
        else:
            assert real == 0, label
    table = (out / "compare.md").read_text()
    assert all(label in table for label in labels)
    assert "local:SmolLM2-135M-Instruct" in table and "| model | scripted |" in table
    with (out / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert sorted(r["label"] for r in runs) == labels
    assert {r["status"] for r in runs} == {"finished"}
