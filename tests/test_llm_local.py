"""The bundled SmolLM2 through llama-cpp-python (the real-model test is marked ``model``)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from agents.llm.base import ModelError, Request
from agents.llm.local import BUNDLED_FILE, LlamaCppModel, bundled_gguf_path
from agents.prompting import PromptRunner

PLACES = ["Hobbs Cafe", "Johnson Park", "Oak Hill College"]


def test_bundled_path_found() -> None:
    path = bundled_gguf_path()
    assert path.name == BUNDLED_FILE and path.stat().st_size > 10_000_000


def test_missing_file_is_one_line_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF model file not found"):
        LlamaCppModel(tmp_path / "x.gguf")


def test_names() -> None:
    assert LlamaCppModel(bundled_gguf_path()).name == "local:SmolLM2-135M-Instruct.Q4_1"
    assert LlamaCppModel(bundled_gguf_path(), name="mine").name == "mine"


@pytest.fixture(scope="module")
def smol() -> LlamaCppModel:
    return LlamaCppModel(bundled_gguf_path(), n_ctx=2048)


@pytest.mark.model
def test_real_model_answers_schema_with_enum(smol: LlamaCppModel) -> None:
    schema = {
        "type": "object",
        "required": ["place"],
        "additionalProperties": False,
        "properties": {"place": {"type": "string", "enum": PLACES}},
    }
    request = Request(
        messages=(
            {"role": "system", "content": "You are Isabella, who runs Hobbs Cafe. Answer in JSON."},
            {"role": "user", "content": f"It is 7 am. Where do you go? Choose one of: {', '.join(PLACES)}."},
        ),
        schema=schema,
        max_tokens=32,
    )
    response = smol.complete(request)
    value = json.loads(response.text)
    jsonschema.validate(value, schema)
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    assert response.latency_ms > 0 and response.model == "local:SmolLM2-135M-Instruct.Q4_1"
    assert smol.count_tokens("Hobbs Cafe") > 0


@pytest.mark.model
def test_real_model_through_prompt_runner(smol: LlamaCppModel) -> None:
    vars = {"agent": "Isabella", "time": "8:00 am", "places": ", ".join(PLACES)}
    result = PromptRunner(smol).run("_echo_test", vars, enums={"PLACES": PLACES})
    assert result.value["place"] in PLACES and result.response is not None
    assert result.response.completion_tokens > 0
