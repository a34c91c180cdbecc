"""A scripted test double: the whole stack runs in tests without a model file.

It answers through a ``responder`` or, when there is none, with a deterministic instance of
the request's JSON schema, so prompt code paths can be exercised end to end offline.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from agents.llm.base import Request, Response

DEFAULT_SENTENCE = "I am a scripted model and this is my answer."

Responder = Callable[[Request], "str | dict[str, Any]"]

_WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor")


def request_rng(request: Request, model_name: str = "") -> random.Random:
    """A Random seeded from the request payload: same request, same answer; others vary."""
    blob = json.dumps([model_name, request.payload()], sort_keys=True, default=str)
    return random.Random(int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big"))


def instance_from_schema(schema: dict[str, Any] | bool, rng: random.Random) -> Any:
    """Build a value valid against ``schema`` (the subset of JSON schema prompts use).

    Handles const, enum, anyOf/oneOf/allOf (first/random branch), type lists, objects
    (required properties always, optional ones sometimes), arrays within min/maxItems,
    strings within min/maxLength, integers and numbers within bounds, booleans and null.
    """
    if schema is True or schema == {}:
        return "ok"
    if not isinstance(schema, dict):
        raise ValueError(f"cannot build an instance of schema {schema!r}")
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return instance_from_schema(rng.choice(schema[key]), rng)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return instance_from_schema(merged, rng)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or ["null"]
        kind = kinds[0]
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if key in required or rng.random() < 0.5:
                out[key] = instance_from_schema(sub, rng)
        for key in required - out.keys():  # required but without a declared schema
            out[key] = "ok"
        return out
    if kind == "array":
        lo = int(schema.get("minItems", 1 if schema.get("items") else 0))
        hi = int(schema.get("maxItems", max(lo, 3)))
        count = rng.randint(lo, max(lo, hi))
        items = schema.get("items", {})
        values = [instance_from_schema(items, rng) for _ in range(count)]
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for v in values:
                if v not in seen:
                    seen.append(v)
            values = seen  # may undershoot minItems only for tiny enums; good enough
        return values
    if kind == "string":
        lo = int(schema.get("minLength", 1))
        hi = int(schema.get("maxLength", max(lo, 40)))
        words: list[str] = []
        while len(" ".join(words)) < lo or not words:
            words.append(rng.choice(_WORDS))
        text = " ".join(words)
        text = text[:hi] if len(text) > hi else text
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, text):  # the shapes prompts ask for: a
            base = text[: hi - 1].rstrip() or "ok"  # capital first, a final "?"
            for cand in (base[:1].upper() + base[1:], base + "?", base[:1].upper() + base[1:] + "?"):
                if lo <= len(cand) <= hi and re.search(pattern, cand):
                    return cand
            raise ValueError(f"cannot build a string matching {pattern!r}")
        return text
    if kind in ("integer", "number"):
        return _number(schema, rng, integer=(kind == "integer"))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    raise ValueError(f"cannot build an instance of type {kind!r}")


def _number(schema: dict[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    """A number inside the schema's (exclusive) bounds."""
    step = 1 if integer else 0.0
    lo = schema.get("minimum")
    if lo is None and "exclusiveMinimum" in schema:
        lo = schema["exclusiveMinimum"] + step
    hi = schema.get("maximum")
    if hi is None and "exclusiveMaximum" in schema:
        hi = schema["exclusiveMaximum"] - step
    lo = 0 if lo is None else lo
    hi = lo + 10 if hi is None else hi
    if integer:
        lo_i, hi_i = math.ceil(lo), math.floor(hi)
        return rng.randint(lo_i, max(lo_i, hi_i))
    if step == 0.0 and ("exclusiveMinimum" in schema or "exclusiveMaximum" in schema):
        return lo + (hi - lo) * (0.25 + 0.5 * rng.random())  # strictly inside
    return lo + (hi - lo) * rng.random()


def word_count(text: str) -> int:
    """Tokens for the double: whitespace-separated words."""
    return len(text.split())


class ScriptedModel:
    """A :class:`LanguageModel` that answers from a script, counting every call."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        name: str = "scripted",
        context_window: int = 8192,
        max_concurrency: int = 64,
    ) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.name = name
        self.context_window = context_window
        self.max_concurrency = max_concurrency
        self.calls: list[Request] = []
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Response:
        """Answer via the responder, else a schema instance, else a fixed sentence."""
        start = time.perf_counter()
        with self._lock:
            self.calls.append(request)
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.responder is not None:
            answer = self.responder(request)
            text = json.dumps(answer) if isinstance(answer, dict) else str(answer)
        elif request.schema is not None:
            text = json.dumps(instance_from_schema(request.schema, request_rng(request, self.name)))
        else:
            text = DEFAULT_SENTENCE
        return Response(
            text=text,
            prompt_tokens=sum(word_count(m.get("content", "")) for m in request.messages),
            completion_tokens=word_count(text),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            model=self.name,
        )

    def count_tokens(self, text: str) -> int:
        return word_count(text)

    @property
    def call_count(self) -> int:
        with self._lock:
            return len(self.calls)
