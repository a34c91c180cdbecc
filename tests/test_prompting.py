"""PromptRunner: render, validate, retry within bounds, visible fallbacks, concurrency."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from agents.llm.base import ModelError, Request
from agents.llm.scripted import ScriptedModel
from agents.llm.wrappers import Accounting, AccountingModel, RecordingModel
from agents.prompting import PromptError, PromptRunner, extract_json, load_prompt

PLACES = ["Hobbs Cafe", "Johnson Park", "Oak Hill College"]
VARS = {"agent": "Isabella", "time": "8:00 am", "places": ", ".join(PLACES)}

TEMPLATE = '''
purpose = "rate"
system = "You are {agent}."
user = "Rate {thing} from 1 to 10."
max_tokens = 20
[schema]
type = "object"
required = ["score"]
properties.score = { type = "integer", minimum = 1, maximum = 10 }
'''


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    (tmp_path / "rate.toml").write_text(TEMPLATE)
    return tmp_path


def scripted_sequence(*answers: str) -> ScriptedModel:
    it = iter(answers)
    return ScriptedModel(lambda r: next(it))


def test_valid_first_time(prompts: Path) -> None:
    model = ScriptedModel(lambda r: 'Sure! {"score": 7} hope that helps')
    result = PromptRunner(model, prompts_dir=prompts).run("rate", {"agent": "Ann", "thing": "tea"}, agent="Ann", step=3)
    assert result.value == {"score": 7} and not result.fallback_used and result.attempts == 1
    req = model.calls[0]
    assert req.purpose == "rate" and req.agent == "Ann" and req.step == 3 and req.max_tokens == 20
    assert req.messages == ({"role": "system", "content": "You are Ann."}, {"role": "user", "content": "Rate tea from 1 to 10."})


def test_invalid_then_valid_retries_with_new_seed(prompts: Path) -> None:
    acc = Accounting()
    seen: list = []
    model = RecordingModel(AccountingModel(scripted_sequence("no idea", '{"score": 11}', '{"score": 4}'), acc), lambda *a: seen.append(a))
    result = PromptRunner(model, accounting=acc, prompts_dir=prompts).run("rate", {"agent": "A", "thing": "x"}, seed=10, agent="A")
    assert result.value == {"score": 4} and result.attempts == 3 and not result.fallback_used
    assert [s[0].seed for s in seen] == [10, 11, 12]
    assert seen[0][0].temperature == 0.0 and seen[1][0].temperature > 0  # a retry can differ
    assert "no JSON object" in seen[0][1].extra["invalid"]
    assert seen[1][1].extra["invalid"].startswith("schema violation at score")
    assert "invalid" not in seen[2][1].extra
    assert acc.by_purpose()["rate"]["invalid"] == 2 and acc.by_purpose()["rate"]["calls"] == 3


def test_always_invalid_uses_fallback_visibly(prompts: Path) -> None:
    acc = Accounting()
    seen: list = []
    model = RecordingModel(AccountingModel(ScriptedModel(lambda r: "{broken"), acc), lambda *a: seen.append(a))
    runner = PromptRunner(model, accounting=acc, attempts=2, prompts_dir=prompts)
    result = runner.run("rate", {"agent": "A", "thing": "x"}, agent="A", fallback={"score": 5})
    assert result.fallback_used and result.value == {"score": 5} and result.attempts == 2
    assert result.error and "\n" not in result.error
    assert seen[-1][1].extra["fallback"] is True and result.response is seen[-1][1]
    assert acc.by_purpose()["rate"]["fallbacks"] == 1 and acc.by_agent()["A"]["fallbacks"] == 1


def test_always_invalid_without_fallback_raises(prompts: Path) -> None:
    runner = PromptRunner(ScriptedModel(lambda r: "[1, 2]"), attempts=2, prompts_dir=prompts)
    with pytest.raises(ModelError, match="no valid answer in 2 attempts: answer is JSON list"):
        runner.run("rate", {"agent": "A", "thing": "x"})


def test_model_errors_propagate_even_with_fallback(prompts: Path) -> None:
    def dead(r: Request) -> str:
        raise ModelError("server gone")

    with pytest.raises(ModelError, match="server gone"):
        PromptRunner(ScriptedModel(dead), prompts_dir=prompts).run("rate", {"agent": "A", "thing": "x"}, fallback={"score": 1})


def test_enum_substitution_from_packaged_prompt() -> None:
    model = ScriptedModel()
    runner = PromptRunner(model)
    picked = {runner.run("_echo_test", VARS, enums={"PLACES": PLACES}, seed=s).value["place"] for s in range(12)}
    assert picked <= set(PLACES) and len(picked) > 1
    place_schema = model.calls[0].schema["properties"]["place"]
    assert place_schema == {"type": "string", "enum": PLACES}


def test_enum_violation_is_invalid() -> None:
    model = scripted_sequence('{"place": "Mars", "reason": "x"}', '{"place": "Johnson Park", "reason": "walk"}')
    result = PromptRunner(model).run("_echo_test", VARS, enums={"PLACES": PLACES})
    assert result.value["place"] == "Johnson Park" and result.attempts == 2


def test_missing_enum_or_placeholder_is_one_line_error() -> None:
    runner = PromptRunner(ScriptedModel())
    with pytest.raises(PromptError, match=r"_echo_test.toml: missing enum\(s\) PLACES"):
        runner.run("_echo_test", VARS)
    with pytest.raises(PromptError, match=r"_echo_test.toml: missing placeholder\(s\) places, time"):
        runner.run("_echo_test", {"agent": "A"}, enums={"PLACES": PLACES})
    with pytest.raises(PromptError, match="enum PLACES is empty"):
        runner.run("_echo_test", VARS, enums={"PLACES": []})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "prompt template not found"),
        ("purpose = ", "malformed TOML"),
        ('purpose = "p"\nsystem = "s"', "missing or non-string key 'user'"),
        ('purpose = "p"\nsystem = "s"\nuser = "u"\nfoo = 1', "unknown key(s) foo"),
        ('purpose = "p"\nsystem = "s"\nuser = "u {}"', "use named placeholders"),
        ('purpose = "p"\nsystem = "s"\nuser = "u"\n[schema]\ntype = "blob"', "invalid [schema]"),
    ],
)
def test_bad_templates_name_the_file(tmp_path: Path, text: str | None, why: str) -> None:
    if text is not None:
        (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(PromptError) as info:
        load_prompt("bad", tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "bad.toml") in msg and why in msg and "\n" not in msg


def test_prompt_must_fit_the_context_window(prompts: Path) -> None:
    runner = PromptRunner(ScriptedModel(context_window=60), prompts_dir=prompts)
    assert runner.budget("rate", {"agent": "A", "thing": "x"}) > 0
    with pytest.raises(ModelError, match="token window of scripted; drop context"):
        runner.run("rate", {"agent": "A", "thing": "word " * 30})


def test_extract_json_tolerates_surrounding_text() -> None:
    assert extract_json('Here: {"a": "}{", "b": {"c": 1}} and {"d": 2}') == {"a": "}{", "b": {"c": 1}}
    assert extract_json('{bad} then {"ok": true}') == {"ok": True}
    with pytest.raises(ValueError):
        extract_json("nothing here")


def test_no_schema_returns_text(tmp_path: Path) -> None:
    (tmp_path / "free.toml").write_text('purpose = "say"\nsystem = ""\nuser = "Hi {who}"')
    model = ScriptedModel()
    result = PromptRunner(model, prompts_dir=tmp_path).run("free", {"who": "Bo"})
    assert result.value["text"] and model.calls[0].messages == ({"role": "user", "content": "Hi Bo"},)


def test_arun_runs_calls_concurrently(prompts: Path) -> None:
    model = ScriptedModel(latency_s=0.05)
    runner = PromptRunner(model, prompts_dir=prompts)

    async def step() -> list:
        return await asyncio.gather(
            *(runner.arun("rate", {"agent": f"A{i}", "thing": "x"}, agent=f"A{i}", seed=i) for i in range(10))
        )

    start = time.perf_counter()
    results = asyncio.run(step())
    elapsed = time.perf_counter() - start
    runner.close()
    assert elapsed < 0.25, elapsed
    assert [r.response.model for r in results] == ["scripted"] * 10
    assert sorted(r.agent for r in model.calls) == sorted(f"A{i}" for i in range(10))
    assert all(1 <= r.value["score"] <= 10 for r in results)


def test_arun_respects_max_concurrency(prompts: Path) -> None:
    model = ScriptedModel(latency_s=0.03, max_concurrency=2)
    runner = PromptRunner(model, prompts_dir=prompts)

    async def step() -> None:
        await asyncio.gather(*(runner.arun("rate", {"agent": "A", "thing": str(i)}) for i in range(6)))

    start = time.perf_counter()
    asyncio.run(step())
    assert time.perf_counter() - start >= 0.09  # 6 calls, 2 at a time, 30 ms each
    runner.close()
