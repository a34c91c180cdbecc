"""The openai: backend against a REAL OpenAI-compatible server: llama-cpp-python's
``llama_cpp.server`` serving the bundled GGUF on 127.0.0.1 (fixture in conftest.py)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agents.llm.base import ModelError, Request
from agents.llm.factory import build_model
from village.simulate import RunOptions, build, run

pytestmark = pytest.mark.server


def test_demo_runs_over_http_and_every_call_is_recorded(llama_server, tmp_path: Path) -> None:
    # llama-cpp-python's server speaks the json_object + "schema" dialect (see docs/models.md).
    spec = f"openai:{llama_server.url}#model=smollm2&structured=json_object_schema&ctx=4096"
    before = llama_server.requests()
    out = tmp_path / "run.db"
    result = run(build("demo", RunOptions(llm=spec, embedder="hash", cache=False, out=out)), 1)
    assert result.status == "finished"
    over_http = llama_server.requests() - before
    con = sqlite3.connect(out)
    rows = con.execute("SELECT model, prompt_tokens, completion_tokens, cached, retries, error "
                       "FROM llm_calls").fetchall()
    assert rows and over_http == len(rows) + sum(r[4] for r in rows)
    for model, prompt_tokens, completion_tokens, cached, _, error in rows:
        assert model.startswith(f"openai:{llama_server.url}#model=smollm2")
        assert prompt_tokens > 0 and completion_tokens > 0 and cached == 0 and error is None
    assert con.execute("SELECT llm FROM runs").fetchone()[0] == build_model(spec).name
    # The server's own token counts were recorded, not our estimate.
    assert con.execute("SELECT sum(tokens) FROM steps").fetchone()[0] == sum(r[1] + r[2] for r in rows)


def test_unsupported_response_format_fails_fast_with_a_hint(llama_server) -> None:
    model = build_model(f"openai:{llama_server.url}#model=smollm2&structured=json_schema")
    request = Request(messages=({"role": "user", "content": "hi"},), max_tokens=4,
                      schema={"type": "object", "properties": {"a": {"type": "integer"}}})
    with pytest.raises(ModelError, match="structured=json_object_schema") as info:
        model.complete(request)  # a permanent error: RetryingModel will not hammer the server
    assert type(info.value) is ModelError


def test_server_tokenizer(llama_server) -> None:
    model = build_model(f"openai:{llama_server.url}#model=smollm2&tokenizer=server")
    n = model.count_tokens("The cafe opens at eight.")
    assert 4 <= n <= 12 and model._tokenize_endpoint == "/extras/tokenize/count"
