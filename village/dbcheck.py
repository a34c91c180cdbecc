"""Open and validate run databases: is it a Village run, which schema version, is it intact.

Every tool that reads a run (replay, viewers, inspector, report, summary, interview) should
open it with :func:`open_run_ro`: a read-only connection (``file:...?mode=ro``; the tool
can never write to the run) or a :class:`RunDBError` whose message is one line naming the
file and the problem — not an SQLite database, truncated or corrupt, not a Village run,
recorded by a newer Village. Tools that continue a run (resume, fork) validate it the
same way, then upgrade an older schema with :func:`migrate` (the chain :data:`MIGRATIONS`).

    conn = open_run_ro("replays/demo.db")          # sqlite3.Connection, row_factory Row
    conn = open_run_ro(path, check="full")         # + PRAGMA quick_check (reads every page)
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from village.recorder import SCHEMA, SCHEMA_VERSION

#: Tables every Village run has had since schema version 1.
REQUIRED_TABLES = ("meta", "runs", "agents", "steps", "agent_states", "memories", "events",
                   "llm_calls")

_MAGIC = b"SQLite format 3\x00"


class RunDBError(ValueError):
    """A database that cannot be used as a run; ``str()`` is one line starting with the path."""


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------- migrations
def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """2: checkpoints (resume, fork) and the runs columns that describe them."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    for col, decl in (("target_steps", "INTEGER"), ("resumes", "INTEGER DEFAULT 0"),
                      ("forked_from", "TEXT"), ("forked_at", "INTEGER"),
                      ("fork_changes", "TEXT")):
        if col not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {col} {decl}")
    conn.execute("CREATE TABLE IF NOT EXISTS checkpoints (step INTEGER, agent_id INTEGER,"
                 " part TEXT, state TEXT, PRIMARY KEY (agent_id, part, step))")


#: MIGRATIONS[n] upgrades a database from schema version n to n + 1 (in one transaction).
#: A new schema version adds its function here and bumps `village.recorder.SCHEMA_VERSION`.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2}


def migrate(conn: sqlite3.Connection, path: str | Path = "") -> tuple[int, int]:
    """Upgrade the database on ``conn`` (autocommit mode) to SCHEMA_VERSION, one version per
    transaction. Returns (version before, version after)."""
    before = schema_version(conn, path)
    v = before
    while v < SCHEMA_VERSION:
        step = MIGRATIONS.get(v)
        if step is None:
            raise RunDBError(f"{path}: no migration from schema version {v} to {v + 1}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                         (str(v + 1),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        v += 1
    conn.executescript(SCHEMA)  # indexes and tables added without a version bump
    return before, v


# --------------------------------------------------------------------------- checks
def check_file(path: Path) -> None:
    """Cheap checks before SQLite sees the file: exists, is SQLite, is not truncated."""
    if not path.exists():
        raise RunDBError(f"{path}: no such file")
    if path.is_dir():
        raise RunDBError(f"{path}: is a directory, not a run database")
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise RunDBError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise RunDBError(f"{path}: not a Village run (the file is empty)")
    if not head.startswith(_MAGIC):
        raise RunDBError(f"{path}: not a Village run (not an SQLite database)")
    if len(head) < 100:
        raise RunDBError(f"{path}: truncated database ({len(head)} bytes)")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the header's page count is valid for this version
    size = path.stat().st_size
    wal = Path(f"{path}-wal")
    # With a write-ahead log the pages may still live there (a checkpoint cut short by a
    # full disk leaves a header that counts them): then SQLite's own checks decide.
    has_wal = wal.exists() and wal.stat().st_size > 0
    if valid and pages and size < pages * page and not has_wal:
        raise RunDBError(f"{path}: truncated database ({size} bytes; its header says "
                         f"{pages * page})")


def schema_version(conn: sqlite3.Connection, path: str | Path = "") -> int:
    """The run's schema version; RunDBError if it is not a Village run or is newer."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _db_error(path, exc) from None
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        what = "no tables at all" if not tables else f"no {', '.join(missing)} table" + (
            "s" if len(missing) > 1 else "")
        raise RunDBError(f"{path}: not a Village run ({what})")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _db_error(path, exc) from None
    if row is None:
        raise RunDBError(f"{path}: not a Village run (no schema_version in meta)")
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        raise RunDBError(f"{path}: not a Village run (schema_version {row[0]!r})") from None
    if version > SCHEMA_VERSION:
        raise RunDBError(f"{path}: recorded with schema version {version}, newer than the "
                         f"{SCHEMA_VERSION} this Village reads; upgrade Village")
    if version < 1:
        raise RunDBError(f"{path}: not a Village run (schema_version {version})")
    return version


def _db_error(path: str | Path, exc: BaseException) -> RunDBError:
    msg = _one_line(exc)
    if any(w in msg for w in ("malformed", "not a database", "disk I/O", "corrupt")):
        return RunDBError(f"{path}: truncated or corrupt database ({msg})")
    return RunDBError(f"{path}: cannot read the run ({msg})")


def _validate(conn: sqlite3.Connection, path: Path, check: str) -> int:
    version = schema_version(conn, path)
    try:
        if conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0:
            raise RunDBError(f"{path}: not a Village run (the runs table is empty)")
        conn.execute("SELECT max(step) FROM steps").fetchone()
        if check == "full":
            bad = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
            if bad != ["ok"]:
                raise RunDBError(f"{path}: corrupt database ({_one_line(bad[0])})")
    except sqlite3.DatabaseError as exc:
        raise _db_error(path, exc) from None
    return version


def open_run_ro(path: str | Path, *, check: str = "fast",
                row_factory: object = sqlite3.Row) -> sqlite3.Connection:
    """A read-only connection to a Village run, validated; RunDBError (one line) otherwise.

    check="fast" reads the header, meta, runs and steps (milliseconds, any size);
    check="full" adds SQLite's quick_check, which reads every page. A run still being
    written can be opened (WAL): readers see the last committed step.
    """
    path = Path(path)
    check_file(path)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               check_same_thread=False)
    except sqlite3.Error as exc:
        raise RunDBError(f"{path}: cannot open ({_one_line(exc)})") from None
    try:
        _validate(conn, path, check)
    except BaseException:
        conn.close()
        raise
    conn.row_factory = row_factory  # type: ignore[assignment]
    return conn


__all__ = ["MIGRATIONS", "REQUIRED_TABLES", "RunDBError", "check_file", "migrate",
           "open_run_ro", "schema_version"]
