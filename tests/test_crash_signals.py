"""Ctrl-C and SIGTERM: the step in progress is finished and committed, the run exits with
status 130 and one line, the database says `interrupted`, and `village resume` goes on to
record what an uninterrupted run records. A second Ctrl-C stops at once (the step in
progress is dropped; the database is just as valid)."""
from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from tests.test_crash_kill import last_step, village
from tests.test_resume import assert_same_recording

STEPS = 1000  # steps are fast: the signal must land well before the end
CASES = (("SIGINT",), ("SIGTERM",), ("SIGINT", "SIGINT"))


def args(out: Path) -> list[str]:
    return ["run", "demo", "--steps", str(STEPS), "--llm", "scripted:15", "--embedder", "hash",
            "--no-cache", "--quiet", "--out", str(out)]


def test_interrupts_commit_the_step_and_resume_completes_the_run(tmp_path: Path) -> None:
    whole = tmp_path / "whole.db"
    uninterrupted = village(*args(whole))
    cuts = [tmp_path / f"cut-{'-'.join(c)}.db" for c in CASES]
    procs = []
    for signals, db in zip(CASES, cuts):  # one at a time: a run can finish in seconds
        proc = village(*args(db))
        procs.append(proc)
        deadline = time.monotonic() + 120
        while last_step(db) < 25:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.005)
        for name in signals:
            proc.send_signal(getattr(signal, name))
            time.sleep(0.001)
    for signals, db, proc in zip(CASES, cuts, procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, (signals, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("error: interrupted") and f"village resume {db}" in lines[0]
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        status, last, error = conn.execute("SELECT status, last_step, error FROM runs").fetchone()
        assert status == "interrupted" and 25 <= last < STEPS, signals
        assert conn.execute("SELECT max(step) FROM steps").fetchone()[0] == last
        if len(signals) == 1:  # the step that was running was finished and committed
            assert f"after step {last};" in lines[0]
            assert error == f"stopped by {signals[0]} after step {last}"
        conn.close()
    resumed = [village("resume", str(db), "--quiet") for db in cuts]
    for proc in (*resumed, uninterrupted):
        assert proc.wait(timeout=300) == 0, proc.communicate()
    for signals, db in zip(CASES, cuts):
        assert_same_recording(whole, db, f"{'+'.join(signals)}: ")
        assert sqlite3.connect(db).execute("SELECT status FROM runs").fetchone()[0] == "finished"
