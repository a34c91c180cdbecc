"""The optional ``llm:MODEL_ID`` backend (Simon Willison's llm library)."""
from __future__ import annotations

import json

import pytest

from agents.llm.base import ModelError, Request, TransientModelError
from agents.llm.factory import build_model
from agents.llm.llm_backend import LLMLibraryModel

SCHEMA = {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}


class _FakeResponse:
    def __init__(self, text: str) -> None:
        self._text, self.input_tokens, self.output_tokens = text, 12, 3

    def text(self) -> str:
        return self._text


def test_specs_names_and_concurrency() -> None:
    remote = build_model("llm:gpt-4o-mini")  # no network: nothing is called yet
    assert isinstance(remote, LLMLibraryModel) and remote.name == "llm:gpt-4o-mini"
    assert remote.max_concurrency == 4
    local = build_model("llm:SmolLM2")  # a keyless (local) plugin model: one call at a time
    assert local.max_concurrency == 1
    with pytest.raises(ValueError, match="unknown to the llm library"):
        build_model("llm:no-such-model")


def test_request_mapping_and_usage(monkeypatch) -> None:
    model = build_model("llm:gpt-4o-mini")
    seen = {}

    def prompt(text, **kwargs):
        seen.update(kwargs, prompt=text)
        return _FakeResponse('{"x": 1}')

    monkeypatch.setattr(model._model, "prompt", prompt)
    r = model.complete(Request(messages=({"role": "system", "content": "S"},
                                         {"role": "user", "content": "U"}),
                               schema=SCHEMA, temperature=0.0, max_tokens=9, seed=4))
    assert json.loads(r.text) == {"x": 1} and (r.prompt_tokens, r.completion_tokens) == (12, 3)
    assert seen["prompt"] == "U" and seen["system"] == "S" and seen["schema"] == SCHEMA
    assert (seen["temperature"], seen["max_tokens"], seen["seed"]) == (0.0, 9, 4)


def test_errors_are_mapped(monkeypatch) -> None:
    model = build_model("llm:gpt-4o-mini")

    def boom(*a, **k):
        raise ConnectionError("reset by peer")

    monkeypatch.setattr(model._model, "prompt", boom)
    with pytest.raises(TransientModelError, match="reset by peer"):
        model.complete(Request(messages=({"role": "user", "content": "hi"},)))

    def bad(*a, **k):
        raise RuntimeError("no such thing")

    monkeypatch.setattr(model._model, "prompt", bad)
    with pytest.raises(ModelError) as info:
        model.complete(Request(messages=({"role": "user", "content": "hi"},)))
    assert not isinstance(info.value, TransientModelError)


@pytest.mark.model
def test_bundled_smollm2_through_llm() -> None:
    model = build_model("llm:SmolLM2")
    r = model.complete(Request(messages=({"role": "user", "content": "Say hello."},),
                               schema=SCHEMA))  # no schema support: the schema goes in the prompt
    assert r.text.strip() and r.model == "llm:SmolLM2" and r.completion_tokens > 0
