"""Model specs and the canonical wrapper order."""
from __future__ import annotations

from pathlib import Path

import pytest

from agents.llm.base import LanguageModel, ModelError, Request
from agents.llm.cache import ResponseCache
from agents.llm.factory import build_model, compose
from agents.llm.local import BUNDLED_NAME
from agents.llm.scripted import ScriptedModel
from agents.llm.wrappers import Accounting, AccountingModel, CachedModel, RecordingModel, RetryingModel


def test_scripted_specs() -> None:
    assert isinstance(build_model("scripted"), ScriptedModel)
    slow = build_model("scripted:50")
    assert isinstance(slow, ScriptedModel) and slow.latency_s == pytest.approx(0.05)
    with pytest.raises(ValueError, match="LATENCY_MS"):
        build_model("scripted:fast")


def test_unknown_spec_lists_valid_forms() -> None:
    with pytest.raises(ValueError) as info:
        build_model("gpt5")
    assert "local | gguf:PATH | scripted" in str(info.value) and "\n" not in str(info.value)


def test_missing_gguf_is_one_line_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF model file not found") as info:
        build_model(f"gguf:{tmp_path}/nope.gguf")
    assert "\n" not in str(info.value)


def test_local_spec_does_not_load_the_model() -> None:
    model = build_model("local", n_ctx=1024)
    assert isinstance(model, LanguageModel)
    assert model.name == BUNDLED_NAME and model.context_window == 1024
    assert model.max_concurrency == 1 and model._llm is None  # lazy


def test_gguf_spec_names_the_path() -> None:
    from agents.llm.local import bundled_gguf_path

    model = build_model(f"gguf:{bundled_gguf_path()}")
    assert model.name == BUNDLED_NAME  # same file, same cache key


def test_compose_order_and_cache_hits_are_recorded(tmp_path: Path) -> None:
    seen = []
    acc = Accounting()
    stack = compose(ScriptedModel(), cache=ResponseCache(tmp_path / "c.db"), accounting=acc, sink=lambda *a: seen.append(a))
    layers = []
    node = stack
    while hasattr(node, "inner"):
        layers.append(type(node))
        node = node.inner
    assert layers == [RecordingModel, AccountingModel, CachedModel, RetryingModel]
    r = Request(messages=({"role": "user", "content": "hi"},))
    stack.complete(r)
    stack.complete(r)
    assert [s[1].cached for s in seen] == [False, True]
    assert acc.totals()["cache_hits"] == 1 and acc.totals()["calls"] == 2


def test_compose_minimal() -> None:
    base = ScriptedModel()
    assert compose(base, retry=False) is base
