"""Ctrl-C and SIGTERM: the step in progress is finished and committed, the run exits with
status 130 and one line, the database says `interrupted`, and `village resume` goes on to
record what an uninterrupted run records. A second Ctrl-C stops at once."""
from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.test_crash_kill import last_step, village
from tests.test_resume import assert_same_recording

STEPS = 300


def args(out: Path) -> list[str]:
    return ["run", "demo", "--steps", str(STEPS), "--llm", "scripted:15", "--embedder", "hash",
            "--no-cache", "--quiet", "--out", str(out)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    whole = tmp_path_factory.mktemp("signals") / "whole.db"
    proc = village(*args(whole))
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return whole


@pytest.mark.parametrize("signals", [["SIGINT"], ["SIGTERM"], ["SIGINT", "SIGINT"]])
def test_interrupt_commits_the_step_and_resume_completes_the_run(
        tmp_path: Path, signals: list[str], uninterrupted: Path) -> None:
    cut = tmp_path / "cut.db"
    proc = village(*args(cut))
    deadline = time.monotonic() + 120
    while last_step(cut) < 25:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    for name in signals:
        proc.send_signal(getattr(signal, name))
        time.sleep(0.001)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: interrupted") and f"village resume {cut}" in lines[0]
    conn = sqlite3.connect(cut)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    status, last, error = conn.execute("SELECT status, last_step, error FROM runs").fetchone()
    assert status == "interrupted" and 25 <= last < STEPS
    assert conn.execute("SELECT max(step) FROM steps").fetchone()[0] == last
    if len(signals) == 1:  # the step that was running was finished and committed
        assert f"after step {last};" in lines[0] and error == f"stopped by {signals[0]} after step {last}"
    conn.close()
    done = village("resume", str(cut), "--quiet")
    assert done.wait(timeout=300) == 0, done.communicate()
    assert_same_recording(uninterrupted, cut, f"{'+'.join(signals)}: ")
    assert sqlite3.connect(cut).execute("SELECT status FROM runs").fetchone()[0] == "finished"
