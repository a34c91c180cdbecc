"""Shared fixtures: local HTTP servers on 127.0.0.1 for the model layer's tests.

- ``fake_openai``: a tiny stdlib server shaped like OpenAI's chat-completions and embeddings
  API, whose behaviour per request is scripted (429, 500, stall, 401, drop the connection
  and go down, or answer) — for fault and secrecy tests; it keeps every request it got.
- ``llama_server``: a REAL ``python -m llama_cpp.server`` serving the bundled GGUF (session
  scoped: started once, on first use, always killed); its log counts the HTTP requests.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- fake server

_COUNT = re.compile(r"each of these (\d+) memories")


def fake_answer(body: dict[str, Any]) -> str:
    """A deterministic answer valid for the request's schema (importance: one rating each)."""
    from agents.llm.base import Request
    from agents.llm.scripted import instance_from_schema, request_rng

    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    text = " ".join(m.get("content") or "" for m in body.get("messages", []))
    if schema is None:
        return "Fine, thanks."
    m = _COUNT.search(text)
    if m and "ratings" in schema.get("properties", {}):
        return json.dumps({"ratings": [5] * int(m.group(1))})
    req = Request(messages=tuple(body.get("messages", ())), schema=schema,
                  seed=int(body.get("seed") or 0))
    return json.dumps(instance_from_schema(schema, request_rng(req, "fake")))


def completion_json(content: str, model: str = "fake") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": max(1, len(content) // 4),
                  "total_tokens": 11 + max(1, len(content) // 4)},
    }


def fake_embedding(text: str, dim: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % 32] + i) % 17) - 8.0 for i in range(dim)]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected here, not an error


@dataclass
class FakeOpenAI:
    """Behaviours are consumed one per chat request from ``script``; then ``after`` applies.

    ``ok`` answers; ``429``/``500``/``503`` answer that status; ``stall`` waits ``stall_s``
    (past the client's timeout) before answering; ``401`` refuses and echoes the bearer
    token it got (as a careless server might); ``down`` drops the connection and stops
    listening for good.
    """

    script: list[str] = field(default_factory=list)
    after: str = "ok"
    stall_s: float = 3.0
    embed_dim: int = 16
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: _QuietServer | None = None
    is_down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def chat_requests(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["path"].endswith("/chat/completions"))

    def next_behaviour(self, path: str, body: dict[str, Any], auth: str) -> str:
        with self._lock:
            self.requests.append({"path": path, "body": body, "auth": auth})
            if self.is_down:  # kept-alive connections outlive the listening socket
                return "down"
            if not path.endswith("/chat/completions"):
                return "ok"
            what = self.script.pop(0) if self.script else self.after
            self.is_down = what == "down"
            return what

    def go_down(self) -> None:
        srv = self.server
        if srv is not None:
            threading.Thread(target=lambda: (srv.shutdown(), srv.server_close()), daemon=True).start()


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            auth = self.headers.get("Authorization", "")
            what = fake.next_behaviour(self.path, body, auth)
            if what == "down":
                fake.go_down()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if what in ("429", "500", "503"):
                self._send(int(what), {"error": {"message": f"fake {what}", "type": "fake"}})
                return
            if what == "401":
                self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}",
                                           "type": "invalid_request_error"}})
                return
            if what == "stall":
                fake._stop.wait(fake.stall_s)
            if self.path.endswith("/embeddings"):
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                self._send(200, {"object": "list", "model": body.get("model"),
                                 "data": [{"object": "embedding", "index": i,
                                           "embedding": fake_embedding(t, fake.embed_dim)}
                                          for i, t in enumerate(inputs)],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                return
            self._send(200, completion_json(fake_answer(body), body.get("model", "fake")))

    return Handler


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = _QuietServer(("127.0.0.1", 0), _handler(fake))
    fake.server = server
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake._stop.set()
        try:
            server.shutdown()
            server.server_close()
        except OSError:
            pass


# --------------------------------------------------------------------------- real server


@dataclass
class LlamaServer:
    url: str  # base URL, ending in /v1
    log: Path
    proc: subprocess.Popen

    def requests(self, path: str = "/v1/chat/completions") -> int:
        """HTTP requests to ``path`` the server has logged so far (uvicorn access log)."""
        text = self.log.read_text(errors="replace")
        return len(re.findall(rf'"POST {re.escape(path)} HTTP/1\.1" \d+', text))


@contextlib.contextmanager
def _llama_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` on the bundled SmolLM2 GGUF, on a free local port."""
    from agents.llm.local import bundled_gguf_path

    port = free_port()
    log = tmp_path_factory.mktemp(name) / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf_path()),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
           # one thread: llama.cpp threads spin-wait, and on a shared 2-core box two of them
           # made prompt evaluation ~20x slower here than one
           "--n_threads", "1", "--n_threads_batch", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}): "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not become ready in 120 s")
            time.sleep(0.25)
        yield LlamaServer(f"http://127.0.0.1:{port}/v1", log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A real OpenAI-compatible server (llama-cpp-python's) on 127.0.0.1."""
    with _llama_server(tmp_path_factory, "llama_server") as server:
        yield server


@pytest.fixture
def second_llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Another one, for tests of one run spread over several servers."""
    with _llama_server(tmp_path_factory, "llama_server_2") as server:
        yield server
