"""SIGKILL a recording run at random steps, resume it, and compare with an uninterrupted run.

With the shared response cache the resumed recording is identical to the uninterrupted
one; without a cache, nothing committed before the kill is lost or duplicated.
The kills land wherever they land: between steps, during model calls, during a commit.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_resume import TABLES, assert_same_recording, recording

ROOT = Path(__file__).resolve().parent.parent
STEPS = 240
SEED = int(os.environ.get("VILLAGE_KILL_SEED", time.time_ns() % 100_000))


def village(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "village.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, COLUMNS="120"))


def run_args(out: Path, cache: Path | None) -> list[str]:
    # scripted:60 = a model that takes 60 ms per call, so kills also land mid-call
    return ["run", "demo", "--steps", str(STEPS), "--llm", "scripted:60", "--embedder", "hash",
            "--quiet", "--out", str(out),
            *(["--cache-path", str(cache)] if cache else ["--no-cache"])]


def last_step(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return conn.execute("SELECT coalesce(max(step), -1) FROM steps").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet
        return -1


def kill_at(proc: subprocess.Popen, db: Path, step: int, rng: random.Random) -> None:
    """SIGKILL once `step` is committed, a random few milliseconds later."""
    deadline = time.monotonic() + 120
    while last_step(db) < step:
        assert proc.poll() is None, f"the run ended before step {step}: {proc.communicate()}"
        assert time.monotonic() < deadline, "the run did not reach the step in time"
        time.sleep(0.003)
    time.sleep(rng.uniform(0, 0.03))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def snapshot(db: Path, to: Path) -> Path:
    """A copy of the database as the kill left it (the -wal file holds the recent steps)."""
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{to}{suffix}")
    return to


def test_sigkill_at_random_steps_then_resume_is_identical_with_the_cache(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kills = sorted(rng.sample(range(1, STEPS - 80), 3))  # room left: steps can be very fast
    cache = tmp_path / "cache" / "responses.db"
    cut = [tmp_path / f"cut{i}.db" for i in range(len(kills))]
    whole = tmp_path / "whole.db"
    uninterrupted = village(*run_args(whole, cache))
    # Each killed run has its own cache: answers from a cache another run filled would be
    # instant, and a run could finish before the kill lands on a busy machine.
    caches = [tmp_path / f"cache{i}" / "responses.db" for i in range(len(cut))]
    procs = [village(*run_args(db, c)) for db, c in zip(cut, caches)]
    for proc, db, step in zip(procs, cut, kills):
        kill_at(proc, db, step, rng)
    for db, step in zip(cut, kills):
        conn = sqlite3.connect(db)
        status, last = conn.execute("SELECT status, last_step FROM runs").fetchone()
        assert status == "running" and last >= step, (SEED, step)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    for proc in [village("resume", str(db), "--quiet") for db in cut]:
        finish(proc)
    finish(uninterrupted)
    for db, step in zip(cut, kills):
        assert_same_recording(whole, db, f"(VILLAGE_KILL_SEED={SEED}, killed at {step}) ")
        conn = sqlite3.connect(db)
        assert conn.execute("SELECT status, last_step, resumes FROM runs").fetchone() == \
            ("finished", STEPS, 1)
        conn.close()


# rows as of the kill, keyed so that a lost or duplicated row shows
_KEYS = {"events": lambda r: r[:6], "memories": lambda r: r[:6] + r[7:8],
         "utterances": lambda r: r, "agent_states": lambda r: r, "plans": lambda r: r,
         "conversations": lambda r: r, "social_edges": lambda r: r, "retrievals": lambda r: r,
         "llm_calls": lambda r: r[:3], "steps": lambda r: r[:2], "checkpoints": lambda r: r}


def test_sigkill_without_cache_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    step = rng.randrange(20, STEPS - 20)
    db = tmp_path / "cut.db"
    kill_at(village(*run_args(db, None)), db, step, rng)
    before = recording(snapshot(db, tmp_path / "at-kill.db"))
    last = before["steps"][-1][0]
    assert last >= step
    finish(village("resume", str(db), "--quiet"))
    after = recording(db)
    assert [s for s, *_ in after["steps"]] == list(range(STEPS + 1))
    for table, key in _KEYS.items():
        old = [key(r) for r in before[table]]
        new = [key(r) for r in after[table]]
        assert len(set(new)) == len(new), f"{table}: duplicated rows (seed {SEED})"
        missing = set(old) - set(new)
        assert not missing, f"{table}: rows from before the kill lost (seed {SEED}): {sorted(missing)[:3]}"
    # memories rated after the kill keep everything else; rated ones keep their rating
    rated = {r[0]: r[6] for r in before["memories"] if r[6] is not None}
    assert all(rated[r[0]] == r[6] for r in after["memories"] if r[0] in rated)
    assert all(r[6] is not None for r in after["memories"])  # finished: everything rated
    events_then = [r for r in after["events"] if r[1] <= last]
    assert events_then == before["events"]
    assert set(TABLES) >= set(_KEYS)
