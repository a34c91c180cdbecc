"""A full disk stops the run cleanly: one line, exit status 1, every step before it intact
(integrity_check ok), and once there is space `village resume` completes the run as if
nothing had happened. Tested on a real tiny filesystem (tmpfs, when this process may
mount one) and by injecting SQLite's own error at the commit of a chosen step."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from village import simulate
from village.recorder import RecordingError
from tests.test_resume import assert_same_recording, opts

ROOT = Path(__file__).resolve().parent.parent


class _FullAt:
    """A connection whose commit of step `step` fails as a full disk makes SQLite fail."""

    def __init__(self, conn: sqlite3.Connection, step: int) -> None:
        self._conn, self._step = conn, step

    def execute(self, sql: str, args=()):  # noqa: ANN001, ANN201
        if sql.startswith("INSERT INTO steps") and args[0] == self._step:
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, args)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._conn, name)


def test_injected_disk_full_stops_cleanly_and_resume_completes(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.db", tmp_path / "cut.db"
    simulate.run(simulate.build("demo", opts(whole)), 300)
    model = simulate.build("demo", opts(cut))
    model.recorder.conn = _FullAt(model.recorder.conn, 123)
    with pytest.raises(RecordingError) as exc:
        simulate.run(model, 300)
    msg = str(exc.value)
    assert exc.value.disk_full and "\n" not in msg
    assert msg.startswith("disk full while recording step 123") and "steps 0 to 122 are kept" in msg
    assert f"village resume {cut}" in msg
    conn = sqlite3.connect(cut)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT max(step) FROM steps").fetchone()[0] == 122
    status, last, error = conn.execute("SELECT status, last_step, error FROM runs").fetchone()
    assert (status, last) == ("failed", 122) and "RecordingError" in error
    # nothing of the failed step was half-written
    assert conn.execute("SELECT count(*) FROM events WHERE step > 122").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM checkpoints WHERE step > 122").fetchone()[0] == 0
    conn.close()
    model, n = simulate.resume(cut)
    assert (model.steps, n) == (122, 178)
    simulate.run(model, n)
    assert_same_recording(whole, cut)


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 1 MB tmpfs, or a skip that says why (mounting needs root)."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root (the injected disk-full test still runs)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_real_full_disk_through_the_cli(tiny_fs: Path, tmp_path: Path) -> None:
    db = tiny_fs / "run.db"
    p = subprocess.run([sys.executable, "-m", "village.cli", "run", "demo", "--steps", "600",
                        "--llm", "scripted", "--embedder", "hash", "--no-cache", "--quiet",
                        "--out", str(db)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 1, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("error: disk full") and f"village resume {db}" in lines[0]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    last = conn.execute("SELECT max(step) FROM steps").fetchone()[0]
    assert 0 < last < 600
    assert conn.execute("SELECT count(*) FROM events WHERE step > ?", (last,)).fetchone()[0] == 0
    conn.close()
    # resuming on the still-full disk fails the same clean way
    p = subprocess.run([sys.executable, "-m", "village.cli", "resume", str(db), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode in (1, 2) and len([ln for ln in p.stderr.splitlines() if ln.strip()]) == 1, p.stderr
    # space is freed (the run moves to a roomy disk, with its write-ahead log): it completes
    moved = tmp_path / "moved.db"
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{moved}{suffix}")
    model, n = simulate.resume(moved)
    assert model.steps == last and n == 600 - last
    simulate.run(model, n)
    whole = tmp_path / "whole.db"
    simulate.run(simulate.build("demo", opts(whole)), 600)
    assert_same_recording(whole, moved)
