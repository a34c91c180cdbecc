"""The scripted double: schema instances are valid, deterministic, and not always the first option."""
from __future__ import annotations

import json
import random

import jsonschema
import pytest

from agents.llm.base import Request
from agents.llm.scripted import DEFAULT_SENTENCE, ScriptedModel, instance_from_schema

SCHEMAS = [
    {"type": "object", "required": ["place"], "properties": {"place": {"type": "string", "enum": ["cafe", "park", "library"]}}},
    {
        "type": "object",
        "required": ["importance", "why"],
        "additionalProperties": False,
        "properties": {
            "importance": {"type": "integer", "minimum": 1, "maximum": 10},
            "why": {"type": "string", "minLength": 3, "maxLength": 12},
        },
    },
    {
        "type": "object",
        "required": ["plan"],
        "properties": {
            "plan": {
                "type": "array",
                "minItems": 5,
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "required": ["start", "activity", "minutes"],
                    "properties": {
                        "start": {"type": "string"},
                        "activity": {"type": "string"},
                        "minutes": {"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 16},
                    },
                },
            }
        },
    },
    {
        "type": "object",
        "required": ["talk", "score", "tags", "note"],
        "properties": {
            "talk": {"type": "boolean"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
            "note": {"type": ["string", "null"]},
            "kind": {"const": "chat"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_instances_validate(schema: dict) -> None:
    for seed in range(50):
        jsonschema.validate(instance_from_schema(schema, random.Random(seed)), schema)


def test_answers_are_deterministic_but_vary_across_requests() -> None:
    model = ScriptedModel()
    schema = SCHEMAS[0]
    answers = set()
    for seed in range(30):
        req = Request(messages=({"role": "user", "content": "where?"},), schema=schema, seed=seed)
        first = model.complete(req).text
        assert model.complete(req).text == first
        answers.add(json.loads(first)["place"])
    assert answers == {"cafe", "park", "library"}


def test_responder_dict_and_str_and_default_sentence() -> None:
    req = Request(messages=({"role": "user", "content": "say three words"},))
    assert ScriptedModel().complete(req).text == DEFAULT_SENTENCE
    assert json.loads(ScriptedModel(lambda r: {"a": 1}).complete(req).text) == {"a": 1}
    model = ScriptedModel(lambda r: "one two")
    resp = model.complete(req)
    assert (resp.text, resp.prompt_tokens, resp.completion_tokens) == ("one two", 3, 2)
    assert model.calls == [req] and model.count_tokens("a b  c") == 3
