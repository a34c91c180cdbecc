"""A persistent response cache: a seeded run against a cached model replays exactly.

The key is the model name plus :meth:`Request.payload` (messages, schema, sampling settings,
seed), never the context fields, so the same question from another step or agent is a hit.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from agents.llm.base import Request, Response

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``$VILLAGE_CACHE_DIR/responses.db`` if set, else the platform's user cache dir."""
    override = os.environ.get("VILLAGE_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "responses.db"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("village")) / "responses.db"


def cache_key(model_name: str, request: Request) -> str:
    """sha256 over the model name and the request payload (sorted keys: stable across runs)."""
    blob = json.dumps([model_name, request.payload()], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """SQLite-backed cache shared by all threads of a run (and by concurrent runs via WAL)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get(self, model_name: str, request: Request) -> Response | None:
        """The stored response for this exact request, marked ``cached``; None on a miss."""
        key = cache_key(model_name, request)
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        extra = dict(data.get("extra") or {})
        extra["original_latency_ms"] = data.get("latency_ms", 0.0)
        return Response(
            text=data["text"],
            prompt_tokens=int(data["prompt_tokens"]),
            completion_tokens=int(data["completion_tokens"]),
            latency_ms=0.0,
            model=data.get("model", model_name),
            cached=True,
            retries=0,
            finish_reason=data.get("finish_reason", "stop"),
            extra=extra,
        )

    def put(self, model_name: str, request: Request, response: Response) -> None:
        """Store (or replace) the response for this request."""
        data = {
            "text": response.text,
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens,
            "latency_ms": response.latency_ms,
            "model": response.model,
            "finish_reason": response.finish_reason,
            "extra": response.extra,
        }
        row = (
            cache_key(model_name, request),
            model_name,
            json.dumps(request.payload(), sort_keys=True, ensure_ascii=False),
            json.dumps(data, ensure_ascii=False, default=str),
            time.time(),
        )
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", row)
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
