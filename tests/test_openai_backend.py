"""The openai: backend and openai-embed: embedder against a fake server on 127.0.0.1."""
from __future__ import annotations

import json

import numpy as np
import pytest

from agents.llm.base import LanguageModel, ModelError, Request, TransientModelError
from agents.llm.factory import DEFAULT_CONCURRENCY, build_model
from agents.llm.openai_compat import OpenAIModel, estimate_tokens, from_spec
from memory.embeddings import OpenAIEmbedder, load_embedder

SCHEMA = {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}


def req(schema=SCHEMA, **kw) -> Request:
    return Request(messages=({"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Pick a number."}), schema=schema, **kw)


def test_spec_name_options_and_defaults() -> None:
    m = build_model("openai:http://127.0.0.1:8080/v1/#model=qwen2.5&structured=json_object&ctx=2048&timeout=5")
    assert isinstance(m, LanguageModel) and isinstance(m, OpenAIModel)
    assert m.name == "openai:http://127.0.0.1:8080/v1#model=qwen2.5&structured=json_object"
    assert (m.context_window, m.timeout, m.max_concurrency) == (2048, 5.0, DEFAULT_CONCURRENCY["openai"])
    hosted = build_model("openai#model=gpt-4o-mini", concurrency=3, timeout=9)
    assert hosted.name.startswith("openai:https://api.openai.com/v1#model=gpt-4o-mini")
    assert (hosted.max_concurrency, hosted.timeout) == (3, 9.0)
    # CLI options override the spec's
    assert build_model("openai:http://h/v1#model=a", llm_model="b").name.endswith("model=b&structured=json_schema")


@pytest.mark.parametrize("spec, message", [
    ("openai:http://127.0.0.1:8080/v1", "model name"),
    ("openai:http://127.0.0.1/v1#model=m&colour=red", "unknown option 'colour'"),
    ("openai:http://user:secret@127.0.0.1/v1#model=m", "must not contain credentials"),
    ("openai:ftp://127.0.0.1/v1#model=m", "bad base URL"),
    ("openai:http://h/v1#model=m&structured=xml", "structured='xml'"),
    ("openai:http://h/v1#model=m&ctx=big", "ctx='big'"),
])
def test_bad_specs_are_one_line_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        build_model(spec)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_concurrency_defaults_and_override() -> None:
    assert build_model("scripted").max_concurrency == 64
    assert build_model("scripted", concurrency=2).max_concurrency == 2
    assert build_model("local").max_concurrency == 1
    with pytest.raises(ValueError):
        build_model("scripted", concurrency=0)


def test_response_format_per_structured_mode() -> None:
    def kwargs(mode: str) -> dict:
        return from_spec(f"http://h/v1#model=m&structured={mode}").request_kwargs(req())

    k = kwargs("json_schema")
    assert k["response_format"] == {"type": "json_schema",
                                    "json_schema": {"name": "answer", "schema": SCHEMA, "strict": False}}
    assert k["messages"][0]["content"] == "Be brief."  # schema not in the prompt
    assert from_spec("http://h/v1#model=m&strict=1").request_kwargs(req())[
        "response_format"]["json_schema"]["strict"] is True
    assert kwargs("json_object_schema")["response_format"] == {"type": "json_object", "schema": SCHEMA}
    for mode, fmt in (("json_object", {"type": "json_object"}), ("none", None)):
        k = kwargs(mode)
        assert k.get("response_format") == fmt
        assert json.dumps(SCHEMA, sort_keys=True) in k["messages"][0]["content"]  # in the prompt
    # without a schema nothing is added
    plain = from_spec("http://h/v1#model=m&structured=none").request_kwargs(req(schema=None))
    assert "response_format" not in plain and plain["messages"][0]["content"] == "Be brief."
    assert (plain["seed"], plain["temperature"], plain["max_tokens"]) == (0, 0.0, 256)


def test_token_estimate_is_documented_chars_over_three() -> None:
    m = from_spec("http://h/v1#model=m")
    assert m.count_tokens("") == 0 and m.count_tokens("abcdefg") == 3 == estimate_tokens("abcdefg")


def test_completion_over_http(fake_openai) -> None:
    m = from_spec(f"{fake_openai.url}#model=fake-model")
    r = m.complete(req())
    assert json.loads(r.text).keys() == {"x"}
    assert (r.prompt_tokens, r.model, r.cached) == (11, m.name, False) and r.completion_tokens > 0
    sent = fake_openai.requests[-1]["body"]
    assert sent["model"] == "fake-model" and sent["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("behaviour, transient", [("429", True), ("500", True), ("503", True),
                                                  ("401", False)])
def test_status_errors_are_classified(fake_openai, behaviour: str, transient: bool) -> None:
    fake_openai.script = [behaviour]
    m = from_spec(f"{fake_openai.url}#model=m")
    with pytest.raises(ModelError) as info:
        m.complete(req())
    assert isinstance(info.value, TransientModelError) is transient
    assert f"HTTP {behaviour}" in str(info.value) and "\n" not in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_timeout_and_connection_errors_are_transient(fake_openai) -> None:
    fake_openai.script = ["stall"]
    m = from_spec(f"{fake_openai.url}#model=m&timeout=0.3")
    with pytest.raises(TransientModelError, match="timed out after 0.3 s"):
        m.complete(req())
    dead = from_spec("http://127.0.0.1:9/v1#model=m&timeout=2")
    with pytest.raises(TransientModelError, match="connection error"):
        dead.complete(req())


def test_rejected_response_format_is_permanent_with_a_hint(fake_openai, monkeypatch) -> None:
    m = from_spec(f"{fake_openai.url}#model=m")
    import openai

    class Resp:  # what openai hands the mapper for a 500 from llama-cpp-python's server
        status_code = 500
        headers: dict = {}
        request = None

    exc = openai.InternalServerError("bad", response=Resp(), body={
        "error": {"message": "Input should be 'text' or 'json_object' at body.response_format.type"}})
    mapped = m._map_error(exc)
    assert type(mapped) is ModelError and "structured=json_object_schema" in str(mapped)


def test_openai_embedder(fake_openai) -> None:
    emb = load_embedder(f"openai-embed:{fake_openai.url}#model=nomic-embed")
    assert isinstance(emb, OpenAIEmbedder)
    assert emb.name == f"openai-embed:{fake_openai.url}#model=nomic-embed"
    assert emb.dim == fake_openai.embed_dim  # probed once at build
    probes = len(fake_openai.requests)
    v = emb.embed(["a cat", "a dog", "a cat"])
    assert v.shape == (3, emb.dim) and np.allclose(np.linalg.norm(v, axis=1), 1.0)
    assert np.array_equal(v[0], v[2])
    emb.embed(["a dog"])  # cached in memory
    assert len(fake_openai.requests) == probes + 1
    assert fake_openai.requests[-1]["body"]["input"] == ["a cat", "a dog"]
    fixed = load_embedder(f"openai-embed:{fake_openai.url}#model=e&dim={fake_openai.embed_dim}")
    assert fixed.dim == fake_openai.embed_dim and len(fake_openai.requests) == probes + 1  # no probe
    with pytest.raises(ValueError, match="unknown option"):
        load_embedder(f"openai-embed:{fake_openai.url}#model=e&size=3")


def test_openai_embedder_rejects_a_changed_dimension(fake_openai) -> None:
    emb = OpenAIEmbedder(fake_openai.url, "e", dim=fake_openai.embed_dim + 1)
    with pytest.raises(ModelError, match="expected"):
        emb.embed(["x"])
