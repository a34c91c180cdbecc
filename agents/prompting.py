"""The one way agents call a language model: a template file in, a validated dict out.

One prompt is one file ``agents/prompts/NAME.toml``::

    purpose = "choose_place"            # accounting / recording bucket
    system = "You are {agent}."         # str.format templates
    user = "Where do you go next? ..."
    max_tokens = 64                     # optional (default 256)
    temperature = 0.0                   # optional
    [schema]                            # optional JSON schema, written as TOML
    type = "object"
    required = ["place"]
    properties.place = { "$enum" = "PLACES" }   # filled from run-time enums["PLACES"]

:class:`PromptRunner` renders it, calls the model, parses and validates the answer, retries
within a bound and, if the model never complies, returns the caller's fallback — counted in
the accounting and marked on the recorded response, never silent.
"""
from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import json
import string
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jsonschema

from agents.llm.base import LanguageModel, Message, ModelError, Request, Response
from agents.llm.factory import backend_of
from agents.llm.wrappers import Accounting, one_line

PROMPTS_DIR = Path(__file__).with_name("prompts")
ENUM_KEY = "$enum"
COUNT_KEY = "$count"  # {type = "array", "$count" = "KEY"}: exactly enums[KEY] items
# Rough per-message overhead of chat templates (role markers, separators) in tokens.
MESSAGE_OVERHEAD_TOKENS = 8


class PromptError(ModelError):
    """A template is missing, malformed, or was rendered without what it needs."""


@dataclass(frozen=True)
class Prompt:
    """A loaded template; immutable so it can be cached and shared between threads."""

    name: str
    path: Path
    purpose: str
    system: str
    user: str
    max_tokens: int = 256
    temperature: float = 0.0
    schema: Mapping[str, Any] | None = None
    placeholders: frozenset[str] = frozenset()
    enum_keys: frozenset[str] = frozenset()

    def render(self, variables: Mapping[str, Any]) -> tuple[Message, ...]:
        """System and user messages with the placeholders filled in."""
        missing = sorted(self.placeholders - variables.keys())
        if missing:
            raise PromptError(f"{self.path}: missing placeholder(s) {', '.join(missing)}")
        try:
            system = self.system.format_map(variables)
            user = self.user.format_map(variables)
        except (IndexError, ValueError, AttributeError, KeyError) as exc:
            raise PromptError(f"{self.path}: cannot render: {one_line(exc)}") from exc
        messages: list[Message] = []
        if system.strip():
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        return tuple(messages)

    def resolve_schema(self, enums: Mapping[str, Sequence[str]] | None) -> dict[str, Any] | None:
        """The schema with every ``{"$enum": KEY}`` node replaced by the caller's choices."""
        if self.schema is None:
            return None
        enums = enums or {}
        missing = sorted(self.enum_keys - enums.keys())
        if missing:
            raise PromptError(f"{self.path}: missing enum(s) {', '.join(missing)}")
        for key in self.enum_keys:
            if isinstance(enums[key], int):
                continue  # a "$count" (exact array length), not a list of choices
            if not list(enums[key]):
                raise PromptError(f"{self.path}: enum {key} is empty (nothing valid to choose)")
        key = _enums_key(self.enum_keys, enums)
        if key is None:
            return _substitute(copy.deepcopy(dict(self.schema)), enums)
        entry = _SCHEMAS.get(id(self))
        if entry is None or entry[0] is not self:
            entry = _SCHEMAS[id(self)] = (self, {})  # holds the prompt: its id stays its own
        cache = entry[1]
        hit = cache.get(key)
        if hit is None:
            if len(cache) >= _SCHEMA_CACHE_SIZE:
                cache.clear()
            # shared by every call with these enums: callers (and the Request) only read it
            hit = cache[key] = _ReadOnlySchema.wrap(_substitute(copy.deepcopy(dict(self.schema)), enums))
        return hit


# Resolved schemas per prompt and enum values: a step asks the same few prompts with the
# same choices (the town's places) over and over; resolving costs a deep copy each time.
_SCHEMAS: dict[int, tuple[Prompt, dict[tuple, dict[str, Any]]]] = {}
_SCHEMA_CACHE_SIZE = 1024


def _enums_key(keys: frozenset[str], enums: Mapping[str, Any]) -> tuple | None:
    """A hashable key of the enum values a schema uses (None if they are not hashable)."""
    out = []
    for k in sorted(keys):
        v = enums[k]
        if isinstance(v, int):
            out.append((k, v))
        elif isinstance(v, (list, tuple)):
            try:
                out.append((k, tuple(str(x) for x in v)))
            except Exception:  # noqa: BLE001 - an odd enum value: do not cache
                return None
        else:
            return None
    return tuple(out)


class _ReadOnlySchema(dict):
    """A resolved schema shared between calls: a dict that refuses changes."""

    @classmethod
    def wrap(cls, node: Any) -> Any:
        if isinstance(node, dict):
            return cls((k, cls.wrap(v)) for k, v in node.items())
        if isinstance(node, list):
            return [cls.wrap(v) for v in node]
        return node

    def _refuse(self, *_: Any, **__: Any) -> None:
        raise TypeError("a resolved schema is shared between calls: copy it to change it")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]


def _substitute(node: Any, enums: Mapping[str, Sequence[str]]) -> Any:
    if isinstance(node, dict):
        if ENUM_KEY in node:
            rest = {k: v for k, v in node.items() if k != ENUM_KEY}
            return {**rest, "type": "string", "enum": [str(v) for v in enums[node[ENUM_KEY]]]}
        if COUNT_KEY in node:  # an array of exactly enums[KEY] items
            v: Any = enums[node[COUNT_KEY]]
            n = v if isinstance(v, int) else max(1, len(list(v)))  # a list when only checking
            rest = {k: _substitute(v, enums) for k, v in node.items() if k != COUNT_KEY}
            return {**rest, "minItems": n, "maxItems": n}
        return {k: _substitute(v, enums) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, enums) for v in node]
    return node


def _enum_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        if ENUM_KEY in node:
            return {str(node[ENUM_KEY])}
        if COUNT_KEY in node:
            return {str(node[COUNT_KEY])} | _enum_keys({k: v for k, v in node.items() if k != COUNT_KEY})
        return set().union(*(_enum_keys(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_enum_keys(v) for v in node)) if node else set()
    return set()


def _placeholders(template: str, where: Path) -> set[str]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise PromptError(f"{where}: bad template: {one_line(exc)}") from exc
    names = set()
    for f in fields:
        if not f or f[0].isdigit():
            raise PromptError(f"{where}: use named placeholders, not {{{f}}}")
        names.add(f.split(".")[0].split("[")[0])
    return names


@functools.lru_cache(maxsize=None)
def load_prompt(name: str, prompts_dir: Path = PROMPTS_DIR) -> Prompt:
    """Read and check ``prompts_dir/NAME.toml`` once; errors name the file."""
    path = Path(prompts_dir) / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptError(f"{path}: prompt template not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PromptError(f"{path}: malformed TOML: {one_line(exc)}") from exc
    for key in ("purpose", "system", "user"):
        if not isinstance(data.get(key), str):
            raise PromptError(f"{path}: missing or non-string key {key!r}")
    unknown = set(data) - {"purpose", "system", "user", "max_tokens", "temperature", "schema"}
    if unknown:
        raise PromptError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    max_tokens = data.get("max_tokens", 256)
    temperature = data.get("temperature", 0.0)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise PromptError(f"{path}: max_tokens must be a positive integer")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise PromptError(f"{path}: temperature must be a number >= 0")
    schema = data.get("schema")
    enum_keys: set[str] = set()
    if schema is not None:
        if not isinstance(schema, dict):
            raise PromptError(f"{path}: [schema] must be a table")
        enum_keys = _enum_keys(schema)
        probe = _substitute(schema, {k: ["x"] for k in enum_keys})
        try:
            jsonschema.Draft202012Validator.check_schema(probe)
        except jsonschema.SchemaError as exc:
            raise PromptError(f"{path}: invalid [schema]: {one_line(exc.message)}") from exc
    placeholders = _placeholders(data["system"], path) | _placeholders(data["user"], path)
    return Prompt(
        name=name,
        path=path,
        purpose=data["purpose"],
        system=data["system"],
        user=data["user"],
        max_tokens=max_tokens,
        temperature=float(temperature),
        schema=schema,
        placeholders=frozenset(placeholders),
        enum_keys=frozenset(enum_keys),
    )


def extract_json(text: str) -> Any:
    """The answer as JSON: the whole text, else the first balanced ``{...}`` block in it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is not None:
            try:
                return json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                pass
        start = text.find("{", start + 1)
    raise ValueError("no JSON object in the answer")


def _matching_brace(text: str, start: int) -> int | None:
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for `schema`; compiled once per shared (cached) resolved schema."""
    if isinstance(schema, _ReadOnlySchema):
        hit = _VALIDATORS.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        if len(_VALIDATORS) >= 4 * _SCHEMA_CACHE_SIZE:
            _VALIDATORS.clear()
        v = jsonschema.Draft202012Validator(schema)
        _VALIDATORS[id(schema)] = (schema, v)
        return v
    return jsonschema.Draft202012Validator(schema)


_VALIDATORS: dict[int, tuple[dict[str, Any], jsonschema.Draft202012Validator]] = {}


def parse_answer(text: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """Parse and validate a model answer; raises ValueError with a one-line reason."""
    if schema is None:
        if not text.strip():
            raise ValueError("empty answer")
        return {"text": text.strip()}
    value = extract_json(text)
    if not isinstance(value, dict):
        raise ValueError(f"answer is JSON {type(value).__name__}, not an object")
    validator = _validator(schema)
    if validator.is_valid(value):
        return value
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise ValueError(f"schema violation at {where}: {error.message}")
    return value


@dataclass
class PromptResult:
    """A prompt's outcome: the value to use and how it was obtained."""

    value: dict[str, Any]
    fallback_used: bool
    attempts: int
    error: str | None
    response: Response | None


class PromptRunner:
    """Runs prompt templates against a model (usually the composed wrapper stack).

    Retries re-ask with ``seed + attempt`` and, if the prompt samples greedily, at
    ``retry_temperature`` so that a retry can actually produce a different answer.
    Errors from the model itself (after the retry wrapper gave up) propagate: a dead
    backend should stop the run at a step boundary, not be papered over with fallbacks.
    """

    def __init__(
        self,
        model: LanguageModel,
        *,
        accounting: Accounting | None = None,
        attempts: int = 3,
        retry_temperature: float = 0.7,
        prompts_dir: Path = PROMPTS_DIR,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.model = model
        self.accounting = accounting
        self.attempts = attempts
        self.retry_temperature = retry_temperature
        self.prompts_dir = Path(prompts_dir)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._inline: bool | None = None  # backend declares blocking = False (see arun)

    def prompt(self, name: str) -> Prompt:
        return load_prompt(name, self.prompts_dir)

    def prompt_tokens(self, name: str, variables: Mapping[str, Any]) -> int:
        """Tokens the rendered prompt takes (callers trim context until it fits)."""
        messages = self.prompt(name).render(variables)
        return sum(self.model.count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    def budget(self, name: str, variables: Mapping[str, Any]) -> int:
        """Tokens left in the context window after the prompt and its answer (may be < 0)."""
        p = self.prompt(name)
        return self.model.context_window - self.prompt_tokens(name, variables) - p.max_tokens

    def run(
        self,
        name: str,
        variables: Mapping[str, Any],
        *,
        agent: str | None = None,
        step: int | None = None,
        enums: Mapping[str, Sequence[str]] | None = None,
        fallback: dict[str, Any] | None = None,
        seed: int = 0,
        dropped: Iterable[str] = (),
        check: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> PromptResult:
        """Render, ask, parse, validate; retry within bounds; fall back visibly.

        `check` validates what a JSON schema cannot express (e.g. "one rating per memory"):
        it returns a one-line reason to reject the answer, or None to accept it."""
        prompt = self.prompt(name)
        messages = prompt.render(variables)
        schema = prompt.resolve_schema(enums)
        used = sum(self.model.count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        if used + prompt.max_tokens > self.model.context_window:
            raise ModelError(
                f"prompt {name} needs ~{used} tokens + {prompt.max_tokens} to answer, more than "
                f"the {self.model.context_window}-token window of {self.model.name}; drop context"
            )
        dropped = tuple(dropped)
        response: Response | None = None
        error: str | None = None
        for attempt in range(self.attempts):
            temperature = prompt.temperature
            if attempt > 0 and temperature == 0.0:
                temperature = self.retry_temperature
            request = Request(
                messages=messages,
                schema=schema,
                max_tokens=prompt.max_tokens,
                temperature=temperature,
                seed=seed + attempt,
                purpose=prompt.purpose,
                agent=agent,
                step=step,
                dropped=dropped,
            )
            response = self.model.complete(request)
            try:
                value = parse_answer(response.text, schema)
                problem = check(value) if check is not None else None
                if problem:
                    raise ValueError(problem)
            except ValueError as exc:
                error = one_line(exc)
                if response.finish_reason == "length":
                    error = one_line(f"{error} (answer cut at max_tokens={prompt.max_tokens})")
                response.extra["invalid"] = error
                if self.accounting is not None:
                    self.accounting.invalid(prompt.purpose, agent)
                continue
            return PromptResult(value, False, attempt + 1, None, response)
        if fallback is None:
            raise ModelError(f"prompt {name} got no valid answer in {self.attempts} attempts: {error}")
        if response is not None:
            response.extra["fallback"] = True
        if self.accounting is not None:
            self.accounting.fallback(prompt.purpose, agent)
        return PromptResult(dict(fallback), True, self.attempts, error, response)

    async def arun(self, name: str, variables: Mapping[str, Any], **kwargs: Any) -> PromptResult:
        """:meth:`run` off the event loop, so many agents' calls in a step overlap.

        A backend that declares ``blocking = False`` (answers at once, never waits: e.g.
        an instant scripted double) is called on the loop instead — no thread hop.
        Otherwise uses a private pool of ``model.max_concurrency`` threads (the shared default pool of
        ``asyncio.to_thread`` is only min(32, cpus + 4) wide and would cap a server backend).
        """
        if self._inline is None:
            self._inline = getattr(backend_of(self.model), "blocking", True) is False
        if self._inline:  # a backend that never waits: a thread hop would only add cost
            return self.run(name, variables, **kwargs)
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, self.run, name, variables, **kwargs)
        return await loop.run_in_executor(self._pool(), call)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=max(1, self.model.max_concurrency), thread_name_prefix="prompt"
                )
            return self._executor

    def close(self) -> None:
        """Release the worker threads used by :meth:`arun`."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
