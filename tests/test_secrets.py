"""A planted API key reaches the server and nothing else: not the database, cache or output."""
from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ENV = "VILLAGE_TEST_API_KEY"


@pytest.fixture
def planted_key() -> str:
    return "sk-planted-" + secrets.token_hex(16)


def _village(args: list[str], key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ENV: key, "COLUMNS": "200"}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "village.cli", "run", "demo", *args],
                          capture_output=True, text=True, timeout=180, env=env)


def _assert_nowhere(key: str, folder: Path, *outputs: str) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:  # run database (and any -wal/-shm), response cache
        assert key.encode() not in path.read_bytes(), path
    for text in outputs:
        assert key not in text


def test_key_is_sent_but_never_stored_or_shown(fake_openai, tmp_path: Path, planted_key: str) -> None:
    url = fake_openai.url
    proc = _village(["--steps", "3", "--llm", f"openai:{url}#model=fake", "--api-key-env", ENV,
                     "--embedder", f"openai-embed:{url}#model=emb&key_env={ENV}",
                     "--cache-path", str(tmp_path / "cache" / "responses.db"),
                     "--out", str(tmp_path / "run.db")], planted_key)
    assert proc.returncode == 0, proc.stderr
    assert {r["auth"] for r in fake_openai.requests} == {f"Bearer {planted_key}"}
    con = sqlite3.connect(tmp_path / "run.db")
    assert con.execute("SELECT count(*) FROM llm_calls").fetchone()[0] > 0
    llm, embedder = con.execute("SELECT llm, embedder FROM runs").fetchone()
    assert llm.startswith(f"openai:{url}#model=fake") and embedder == f"openai-embed:{url}#model=emb"
    con.close()
    _assert_nowhere(planted_key, tmp_path, proc.stdout, proc.stderr)


def test_key_is_redacted_when_the_server_refuses_it_and_echoes_it(fake_openai, tmp_path: Path,
                                                                   planted_key: str) -> None:
    fake_openai.after = "401"  # a careless server: "Incorrect API key provided: Bearer sk-..."
    proc = _village(["--steps", "3", "--llm", f"openai:{fake_openai.url}#model=fake&key_env={ENV}",
                     "--embedder", "hash", "--cache-path", str(tmp_path / "cache.db"),
                     "--out", str(tmp_path / "run.db")], planted_key)
    assert proc.returncode == 1
    assert fake_openai.requests and planted_key in fake_openai.requests[0]["auth"]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "[REDACTED]" in lines[0], proc.stderr
    assert f"${ENV}, which is set" in lines[0]
    con = sqlite3.connect(tmp_path / "run.db")
    status, error = con.execute("SELECT status, error FROM runs").fetchone()
    con.close()
    assert status == "failed" and "HTTP 401" in error
    _assert_nowhere(planted_key, tmp_path, proc.stdout, proc.stderr)
