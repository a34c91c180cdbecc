"""Several OpenAI-compatible servers behind one run: calls are spread across them."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest

from agents.llm.base import Request, TransientModelError
from agents.llm.factory import build_model
from agents.llm.multi import MultiServerModel
from tests.conftest import FakeOpenAI, _handler, _QuietServer
from village.simulate import RunOptions, build, run


@pytest.fixture
def second_openai() -> Iterator[FakeOpenAI]:
    """A second scripted OpenAI-shaped server (the `fake_openai` fixture makes one)."""
    fake = FakeOpenAI()
    server = _QuietServer(("127.0.0.1", 0), _handler(fake))
    fake.server = server
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield fake
    finally:
        fake._stop.set()
        server.shutdown()
        server.server_close()


def test_one_run_splits_its_calls_across_two_servers(fake_openai, second_openai, tmp_path: Path) -> None:
    spec = f"openai:{fake_openai.url}|{second_openai.url}#model=fake"
    out = tmp_path / "run.db"
    model = build("demo", RunOptions(llm=spec, embedder="hash", cache=False, out=out))
    from agents.llm.factory import backend_of

    backend = backend_of(model.llm)
    assert isinstance(backend, MultiServerModel)
    result = run(model, 3)
    assert result.status == "finished"
    a, b = fake_openai.chat_requests, second_openai.chat_requests
    assert a > 0 and b > 0, (a, b)
    per = backend.calls_per_server()
    assert per == {fake_openai.url: a, second_openai.url: b}
    import sqlite3

    con = sqlite3.connect(out)
    recorded = con.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    llm = con.execute("SELECT llm FROM runs").fetchone()[0]
    con.close()
    assert recorded == a + b  # every recorded call went to one of the two servers
    assert fake_openai.url in llm and second_openai.url in llm
    assert abs(a - b) <= max(2, (a + b) // 3), (a, b)  # a fair share each


def test_least_loaded_with_round_robin_ties_and_failover(fake_openai, second_openai) -> None:
    fake_openai.script = ["500"]  # the first server fails once
    m = build_model(f"openai:{fake_openai.url}|{second_openai.url}#model=fake")
    assert isinstance(m, MultiServerModel) and m.max_concurrency == 16
    req = Request(messages=({"role": "user", "content": "hi"},))
    with pytest.raises(TransientModelError):
        m.complete(req)  # server 1 (its 500)
    m.complete(req)  # a re-ask goes to server 2
    m.complete(req)  # then server 1 again (round robin on ties)
    assert m.stats()[fake_openai.url] == {"calls": 1, "failures": 1, "in_flight": 0}
    assert m.stats()[second_openai.url]["calls"] == 1
    # a busy server is passed over whatever the rotation says
    m._stats[1].in_flight = 5
    for _ in range(3):
        m.complete(req)
    m._stats[1].in_flight = 0
    assert m.calls_per_server() == {fake_openai.url: 4, second_openai.url: 1}


def test_bad_multi_specs_are_refused(fake_openai) -> None:
    with pytest.raises(ValueError, match="empty base URL"):
        build_model(f"openai:{fake_openai.url}|#model=fake")
    with pytest.raises(ValueError, match="twice"):
        build_model(f"openai:{fake_openai.url}|{fake_openai.url}#model=fake")
    m = build_model(f"openai:{fake_openai.url}|http://127.0.0.1:9/v1#model=fake",
                    concurrency=3)
    assert m.max_concurrency == 3


@pytest.mark.server
def test_one_run_over_two_real_llama_servers(llama_server, second_llama_server, tmp_path: Path) -> None:
    """The same, against two real `llama_cpp.server` processes on 127.0.0.1 (bundled GGUF)."""
    import sqlite3

    servers = (llama_server, second_llama_server)
    spec = (f"openai:{llama_server.url}|{second_llama_server.url}"
            "#model=smollm2&structured=json_object_schema&ctx=4096")
    before = [s.requests() for s in servers]
    out = tmp_path / "run.db"
    result = run(build("demo", RunOptions(llm=spec, embedder="hash", cache=False, out=out)), 1)
    assert result.status == "finished"
    a, b = (s.requests() - n for s, n in zip(servers, before))
    assert a > 0 and b > 0, (a, b)
    con = sqlite3.connect(out)
    recorded, retries = con.execute("SELECT count(*), coalesce(sum(retries), 0) FROM llm_calls").fetchone()
    tokens = con.execute("SELECT min(prompt_tokens), min(completion_tokens) FROM llm_calls").fetchone()
    con.close()
    assert a + b == recorded + retries  # every call reached one of the two real servers
    assert tokens[0] > 0 and tokens[1] > 0  # the servers' own token counts
