"""Cache, retry, accounting and recording wrappers around the scripted double."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agents.llm.base import LanguageModel, ModelError, Request, Response, TransientModelError
from agents.llm.cache import ResponseCache, default_cache_path
from agents.llm.scripted import ScriptedModel
from agents.llm.wrappers import (
    Accounting,
    AccountingModel,
    CachedModel,
    RecordingModel,
    RetriesExhaustedError,
    RetryingModel,
)

SCHEMA = {"type": "object", "required": ["x"], "properties": {"x": {"type": "integer"}}}


def req(text: str = "hello there", **kw) -> Request:
    return Request(messages=({"role": "user", "content": text},), **kw)


def no_sleep(_: float) -> None:
    pass


class Flaky:
    """Fails transiently ``failures`` times, then delegates."""

    def __init__(self, failures: int, error: type[Exception] = TransientModelError) -> None:
        self.inner = ScriptedModel(latency_s=0.001)
        self.failures = failures
        self.error = error
        self.calls = 0
        self.name, self.context_window, self.max_concurrency = "flaky", 100, 4

    def complete(self, request: Request) -> Response:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"boom {self.calls}\nsecond line")
        return self.inner.complete(request)

    def count_tokens(self, text: str) -> int:
        return 7


# ------------------------------------------------------------------ cache


def test_cache_hit_on_identical_request(tmp_path: Path) -> None:
    inner = ScriptedModel(latency_s=0.01)
    model = CachedModel(inner, ResponseCache(tmp_path / "c.db"))
    first = model.complete(req(schema=SCHEMA, purpose="a", agent="Ann"))
    # Context fields (purpose, agent, step) are not part of the key.
    second = model.complete(req(schema=SCHEMA, purpose="b", agent="Bob", step=9))
    assert len(inner.calls) == 1
    assert not first.cached and second.cached
    assert second.text == first.text
    assert (second.prompt_tokens, second.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
    assert second.latency_ms == 0.0 and second.extra["original_latency_ms"] >= 10


def test_cache_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    CachedModel(ScriptedModel(), ResponseCache(path)).complete(req())
    inner = ScriptedModel()
    assert CachedModel(inner, ResponseCache(path)).complete(req()).cached
    assert inner.calls == []


@pytest.mark.parametrize(
    "other",
    [req(seed=1), req(schema=SCHEMA), req("something else"), req(max_tokens=9), req(temperature=0.5)],
)
def test_cache_miss_on_any_payload_change(tmp_path: Path, other: Request) -> None:
    inner = ScriptedModel()
    model = CachedModel(inner, ResponseCache(tmp_path / "c.db"))
    model.complete(req())
    assert not model.complete(other).cached
    assert len(inner.calls) == 2


def test_cache_keyed_by_model_name(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.db")
    CachedModel(ScriptedModel(name="m1"), cache).complete(req())
    assert not CachedModel(ScriptedModel(name="m2"), cache).complete(req()).cached
    assert len(cache) == 2


def test_default_cache_path_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VILLAGE_CACHE_DIR", str(tmp_path))
    assert default_cache_path() == tmp_path / "responses.db"
    monkeypatch.delenv("VILLAGE_CACHE_DIR")
    assert default_cache_path().name == "responses.db" and "village" in str(default_cache_path())


def test_cache_is_thread_safe(tmp_path: Path) -> None:
    model = CachedModel(ScriptedModel(), ResponseCache(tmp_path / "c.db"))
    threads = [threading.Thread(target=lambda i=i: [model.complete(req(f"q{i} {j}")) for j in range(20)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(model.cache) == 160


# ------------------------------------------------------------------ retry


def test_retry_then_success_counts_retries() -> None:
    flaky = Flaky(failures=2)
    sleeps: list[float] = []
    model = RetryingModel(flaky, attempts=5, initial=0.5, maximum=8.0, sleep=sleeps.append)
    resp = model.complete(req())
    assert resp.retries == 2 and flaky.calls == 3
    assert len(sleeps) == 2 and all(0 <= s <= 8.0 for s in sleeps)


def test_retry_gives_up_with_one_line_error() -> None:
    flaky = Flaky(failures=100)
    model = RetryingModel(flaky, attempts=3, sleep=no_sleep)
    with pytest.raises(ModelError) as info:
        model.complete(req())
    msg = str(info.value)
    assert msg == "model call failed after 3 attempts: boom 3 second line"
    assert "\n" not in msg and flaky.calls == 3
    assert isinstance(info.value, RetriesExhaustedError) and info.value.attempts == 3


def test_permanent_error_is_not_retried() -> None:
    flaky = Flaky(failures=100, error=ModelError)
    with pytest.raises(ModelError, match="boom 1"):
        RetryingModel(flaky, attempts=5, sleep=no_sleep).complete(req())
    assert flaky.calls == 1


def test_retry_timeout_stops_early() -> None:
    flaky = Flaky(failures=100)
    model = RetryingModel(flaky, attempts=1000, initial=0.01, maximum=0.02, timeout_s=0.1)
    with pytest.raises(RetriesExhaustedError):
        model.complete(req())
    assert 2 < flaky.calls < 1000


# ------------------------------------------------------------------ accounting


def test_accounting_numbers(tmp_path: Path) -> None:
    acc = Accounting()
    inner = ScriptedModel(lambda r: "a b c", latency_s=0.005)
    model = AccountingModel(CachedModel(RetryingModel(inner), ResponseCache(tmp_path / "c.db")), acc)
    model.complete(req("one two", purpose="plan", agent="Ann"))  # 2 prompt, 3 completion
    model.complete(req("one two", purpose="plan", agent="Bob"))  # cache hit
    model.complete(req("x", purpose="chat", agent="Ann"))
    acc.fallback("chat", "Ann")
    acc.invalid("chat", "Ann")
    t = acc.totals()
    assert (t["calls"], t["prompt_tokens"], t["completion_tokens"], t["cache_hits"]) == (3, 5, 9, 1)
    assert (t["fallbacks"], t["invalid"], t["failures"], t["retries"]) == (1, 1, 0, 0)
    assert 5 <= t["latency_ms"]["p50"] <= t["latency_ms"]["p95"] <= t["latency_ms"]["max"]
    bp, ba = acc.by_purpose(), acc.by_agent()
    assert bp["plan"]["calls"] == 2 and bp["plan"]["cache_hits"] == 1 and bp["chat"]["fallbacks"] == 1
    assert ba["Ann"]["calls"] == 2 and ba["Bob"]["cache_hits"] == 1 and ba["Ann"]["fallbacks"] == 1
    snap = acc.snapshot()
    assert snap["calls"] == 3 and snap["tokens"] == 14 and snap["tokens_per_s"] > 0


def test_accounting_counts_retries_and_failures() -> None:
    acc = Accounting()
    AccountingModel(RetryingModel(Flaky(failures=2), sleep=no_sleep), acc).complete(req(purpose="p"))
    with pytest.raises(ModelError):
        AccountingModel(RetryingModel(Flaky(failures=9), attempts=3, sleep=no_sleep), acc).complete(req(purpose="p"))
    t = acc.by_purpose()["p"]
    assert (t["calls"], t["retries"], t["failures"]) == (2, 4, 1)
    assert acc.by_agent()["(none)"]["calls"] == 2


class TransientThenPermanent(Flaky):
    """Fails transiently ``failures`` times, then for good (a permanent error)."""

    def complete(self, request: Request) -> Response:
        self.calls += 1
        raise (TransientModelError if self.calls <= self.failures else ModelError)(f"boom {self.calls}")


def test_permanent_error_after_retries_counts_them() -> None:
    acc = Accounting()
    flaky = TransientThenPermanent(failures=2)
    with pytest.raises(ModelError, match="boom 3") as info:
        AccountingModel(RetryingModel(flaky, attempts=5, sleep=no_sleep), acc).complete(req(purpose="p"))
    assert flaky.calls == 3 and info.value.attempts == 3
    assert (acc.totals()["retries"], acc.totals()["failures"]) == (2, 1)


def test_accounting_thread_safe() -> None:
    acc = Accounting()
    model = AccountingModel(ScriptedModel(lambda r: "w"), acc)
    threads = [threading.Thread(target=lambda: [model.complete(req("a", agent="A")) for _ in range(200)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acc.totals()["calls"] == 1600 and acc.by_agent()["A"]["completion_tokens"] == 1600


# ------------------------------------------------------------------ recording and forwarding


def test_recording_sink_success_and_failure() -> None:
    seen: list[tuple] = []
    ok = RecordingModel(ScriptedModel(), lambda *a: seen.append(a))
    resp = ok.complete(req())
    assert seen == [(req(), resp, None)]
    bad = RecordingModel(Flaky(failures=1, error=ModelError), lambda *a: seen.append(a))
    with pytest.raises(ModelError):
        bad.complete(req("x"))
    r, response, error = seen[-1]
    assert r == req("x") and response is None and isinstance(error, ModelError)


def test_wrappers_forward_protocol(tmp_path: Path) -> None:
    inner = Flaky(0)
    for model in (
        CachedModel(inner, ResponseCache(tmp_path / "c.db")),
        RetryingModel(inner),
        AccountingModel(inner, Accounting()),
        RecordingModel(inner, lambda *a: None),
    ):
        assert isinstance(model, LanguageModel)
        assert (model.name, model.context_window, model.max_concurrency) == ("flaky", 100, 4)
        assert model.count_tokens("anything") == 7


def test_a_call_that_fails_for_good_is_recorded_with_its_retries(tmp_path: Path) -> None:
    """The database, not just the accounting, says how many retries a failed call made."""
    import sqlite3
    from datetime import datetime

    from village.recorder import Recorder

    rec = Recorder(tmp_path / "run.db")
    rec.start_run(scenario="t", scenario_toml="", seed=1, llm="flaky", embedder="hash",
                  embedder_dim=8, seconds_per_step=10, game_start="2023-02-13T07:00:00")
    model = RecordingModel(RetryingModel(TransientThenPermanent(failures=2), attempts=5,
                                         sleep=no_sleep), rec.call)
    with pytest.raises(ModelError):
        model.complete(req(purpose="p"))
    rec.commit_step(1, datetime(2023, 2, 13, 7, 0, 10), 1.0)
    rec.close()
    row = sqlite3.connect(tmp_path / "run.db").execute(
        "SELECT retries, error FROM llm_calls").fetchone()
    assert row[0] == 2 and "boom 3" in row[1]
