"""Faults of an OpenAI-compatible server: retried when transient, a clean stop when not."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from agents.llm.wrappers import RetryPolicy
from village.simulate import RunOptions, build, run

FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, maximum=0.05)


def _opts(url: str, out: Path, **kw) -> RunOptions:
    return RunOptions(llm=f"openai:{url}#model=fake", embedder="hash", cache=False, out=out,
                      retry=FAST_RETRY, **kw)


def test_run_completes_through_429_500_and_a_stall_and_records_the_retries(fake_openai, tmp_path: Path) -> None:
    fake_openai.script = ["429", "500", "stall"]
    fake_openai.stall_s = 3.0
    out = tmp_path / "run.db"
    # One call in flight at a time: the first call meets all three faults, in that order.
    result = run(build("demo", _opts(fake_openai.url, out, llm_timeout=0.5, llm_concurrency=1)), 2)
    assert result.status == "finished"
    con = sqlite3.connect(out)
    calls, retries, errors = con.execute(
        "SELECT count(*), sum(retries), count(error) FROM llm_calls").fetchone()
    assert retries == 3 and errors == 0
    assert con.execute("SELECT retries FROM llm_calls WHERE retries > 0").fetchall() == [(3,)]
    # Every recorded call went over HTTP once, plus one request per retry.
    assert fake_openai.chat_requests == calls + 3
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "finished"
    assert result.accounting.totals()["retries"] == 3


def _step0_requests(url: str, tmp_path: Path, fake) -> int:
    """How many requests step 0 (rating the seeded memories) makes against a healthy server."""
    before = fake.chat_requests
    model = build("demo", _opts(url, tmp_path / "probe.db"))
    n = fake.chat_requests - before
    run(model, 0)
    return n


def test_server_that_stays_down_stops_the_run_with_one_line(fake_openai, tmp_path: Path) -> None:
    k = _step0_requests(fake_openai.url, tmp_path, fake_openai)
    assert k > 0
    fake_openai.script = ["ok"] * k + ["down"]  # step 0 succeeds, then the server is gone
    out = tmp_path / "run.db"
    proc = subprocess.run(
        [sys.executable, "-m", "village.cli", "run", "demo", "--steps", "30", "--quiet",
         "--llm", f"openai:{fake_openai.url}#model=fake", "--embedder", "hash", "--no-cache",
         "--out", str(out), "--llm-retries", "2", "--llm-timeout", "5"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "2 attempts" in lines[0] and str(out) in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    con = sqlite3.connect(out)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    status, error, last_step = con.execute("SELECT status, error, last_step FROM runs").fetchone()
    assert status == "failed" and "connection" in error.lower()
    steps = [s for (s,) in con.execute("SELECT step FROM steps ORDER BY step")]
    assert steps == list(range(last_step + 1)) and steps[0] == 0  # step 0 kept, nothing torn


def test_server_down_from_the_start_fails_at_step_zero(tmp_path: Path) -> None:
    out = tmp_path / "run.db"
    proc = subprocess.run(
        [sys.executable, "-m", "village.cli", "run", "demo", "--steps", "3", "--quiet",
         "--llm", "openai:http://127.0.0.1:9/v1#model=fake", "--embedder", "hash",
         "--no-cache", "--out", str(out), "--llm-retries", "1"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    con = sqlite3.connect(out)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "failed"
