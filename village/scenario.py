"""Scenario files: the town map, its residents and seeded facts, loaded from TOML.

A scenario is validated completely at load time so that a typo or an impossible map
fails at once with one readable line (``file: field: problem (expected ...)``) rather
than hours into a run. The format is documented in ``docs/scenarios.md``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Iterable

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from village.world import SEP, MapError, World, grid_rows

__all__ = [
    "Fact",
    "MapObject",
    "MapSpec",
    "Resident",
    "Scenario",
    "ScenarioError",
    "ScenarioMeta",
    "Whisper",
    "list_scenarios",
    "load_scenario",
    "parse_scenario",
    "REPO_SCENARIOS",
]

#: The scenarios shipped with the repository (the folder next to the ``village`` package).
REPO_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

MAX_MAP_SIDE = 1000
MAX_SEED = 2**32 - 1  # numpy's legacy seeding rejects larger seeds


# ---------------------------------------------------------------------------- errors
def _one_line(text: str) -> str:
    """Collapse whitespace runs (incl. newlines) so every error stays on one line."""
    return re.sub(r"\s+", " ", str(text)).strip()


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is one line naming file, field and fix."""

    def __init__(self, source: str, path: str | None, problem: str, expected: str | None = None) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.expected = expected
        parts = [_one_line(source)]
        if path:
            parts.append(_one_line(path))
        msg = _one_line(problem)
        if expected:
            msg += f" (expected {_one_line(expected)})"
        parts.append(msg)
        super().__init__(": ".join(parts))


class _Problem(Exception):
    """A semantic problem found before the source file name is known."""

    def __init__(self, path: str, problem: str, expected: str | None = None) -> None:
        super().__init__(problem)
        self.path, self.problem, self.expected = path, problem, expected


def _custom(problem: str, expected: str) -> PydanticCustomError:
    """A pydantic error that carries our problem/expected wording through validation."""
    return PydanticCustomError("village", "{problem}", {"problem": problem, "expected": expected})


# ---------------------------------------------------------------------------- field types
def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _toml_type(value: Any) -> str:
    """The TOML name of a parsed value's type, for "wrong type" messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date-time"
    if isinstance(value, date):
        return "date"
    if isinstance(value, time):
        return "time"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


_DT_EXPECT = 'an ISO local date-time like "2023-02-13T07:00:00"'
_TIME_EXPECT = 'a time of day like "07:00"'
_TILE_EXPECT = "an [x, y] pair of integers"


def _to_datetime(value: Any) -> datetime:
    """Accept a TOML local date-time or an ISO string; reject time zones (game time is naive)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _custom(f"cannot read {_short(value)} as a date-time", _DT_EXPECT) from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise _custom(f"wrong type: {_toml_type(value)} {_short(value)}", _DT_EXPECT)
    if value.tzinfo is not None:
        raise _custom(f"{value.isoformat()} has a time zone", _DT_EXPECT + " without a time zone")
    return value


_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _to_time(value: Any) -> time:
    """Accept "HH:MM" (or "HH:MM:SS") strings and TOML local times."""
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
            raise _custom(f"cannot read {_short(value)} as a time of day", _TIME_EXPECT)
        return time(int(m[1]), int(m[2]), int(m[3] or 0))
    if isinstance(value, time) and value.tzinfo is None:
        return value
    raise _custom(f"wrong type: {_toml_type(value)} {_short(value)}", _TIME_EXPECT)


def _to_tile(value: Any) -> Any:
    """TOML arrays arrive as lists; turn a 2-list into a tuple so strict validation accepts it."""
    if isinstance(value, list):
        if len(value) != 2:
            raise _custom(f"array has {len(value)} items", _TILE_EXPECT)
        return tuple(value)
    if not isinstance(value, tuple):
        raise _custom(f"wrong type: {_toml_type(value)} {_short(value)}", _TILE_EXPECT)
    return value


def _text(value: Any) -> Any:
    """Strings must be non-empty after trimming; other types are left to strict validation."""
    if isinstance(value, str) and not value.strip():
        raise _custom("is empty", "a non-empty string")
    return value


def _name(value: Any) -> Any:
    """A one-line name without surrounding spaces, so it can be matched exactly later."""
    value = _text(value)
    if isinstance(value, str):
        if value != value.strip() or "\n" in value:
            raise _custom(f"{_short(value)} has surrounding spaces or a line break", "a one-line name")
        if len(value) > 100:
            raise _custom(f"name is {len(value)} characters long", "at most 100 characters")
    return value


GameTime = Annotated[datetime, BeforeValidator(_to_datetime)]
TimeOfDay = Annotated[time, BeforeValidator(_to_time)]
TileT = Annotated[tuple[int, int], BeforeValidator(_to_tile)]
Text = Annotated[str, BeforeValidator(_text)]
Name = Annotated[str, BeforeValidator(_name)]


class _Strict(BaseModel):
    """Base: unknown keys are errors (a typo must not be silently ignored); no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


# ---------------------------------------------------------------------------- models
class ScenarioMeta(_Strict):
    """The ``[scenario]`` table: identity, clock and seed."""

    name: Name = Field(description="a scenario name (a non-empty string)")
    description: str = Field("", description="a string")
    start: GameTime = Field(description=_DT_EXPECT)
    seconds_per_step: int = Field(10, ge=1, le=3600, description="an integer number of seconds in 1..3600")
    seed: int = Field(0, ge=0, le=MAX_SEED, description=f"an integer in 0..{MAX_SEED}")


class MapObject(_Strict):
    """One ``[[map.objects]]`` entry: a named object on one tile of a room."""

    name: Name = Field(description="an object name without ':'")
    place: str = Field(description='the room it is in, "Area:room"')
    at: TileT = Field(description="the [x, y] tile it stands on, inside its room")

    @property
    def full_name(self) -> str:
        """``"Area:room:object"``."""
        return f"{self.place}{SEP}{self.name}"


def _grid(value: Any) -> Any:
    """Accept the grid as one multi-line string or as an array of row strings."""
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return "\n".join(value)
    return value


class MapSpec(_Strict):
    """The ``[map]`` table: a character grid, its legend and optional objects."""

    grid: Annotated[str, BeforeValidator(_grid)] = Field(
        description="a multi-line string, one character per tile"
    )
    legend: dict[str, str] = Field(
        description="a table mapping each grid character to \"wall\", \"Area\" or \"Area:room\""
    )
    objects: list[MapObject] = Field(default_factory=list, description="[[map.objects]] tables")

    @property
    def rows(self) -> list[str]:
        """The grid's rows without the blank lines a TOML multi-line string adds."""
        return grid_rows(self.grid)


class Resident(_Strict):
    """One ``[[residents]]`` entry: an agent's persona, home and perception settings."""

    name: Name = Field(description="a unique resident name")
    age: int = Field(ge=0, le=130, description="an integer age in 0..130")
    traits: list[Text] = Field(default_factory=list, description="an array of strings")
    background: str = Field("", description="a string (who they are)")
    currently: str = Field("", description="a string (their current situation)")
    routine: str = Field("", description="a string (their daily routine)")
    home: str = Field(description='a place name, "Area" or "Area:room"')
    start: TileT | None = Field(None, description="an [x, y] walkable tile on the map")
    wake: TimeOfDay = Field(time(7, 0), description=_TIME_EXPECT)
    sleep: TimeOfDay = Field(time(22, 0), description=_TIME_EXPECT)
    memories: list[Text] = Field(default_factory=list, description="an array of strings")
    vision_radius: int = Field(4, ge=0, le=50, description="an integer number of tiles in 0..50")
    attention_bandwidth: int = Field(3, ge=1, le=50, description="an integer in 1..50")
    retention: int = Field(5, ge=0, le=1000, description="an integer in 0..1000")
    relationships: dict[str, Text] = Field(
        default_factory=dict, description="a table of resident name = relationship"
    )

    def wake_time(self) -> time:
        """Time of day the resident wakes (same day as :meth:`sleep_time`, earlier)."""
        return self.wake

    def sleep_time(self) -> time:
        """Time of day the resident goes to sleep."""
        return self.sleep


class Whisper(_Strict):
    """An "inner voice" memory given to one resident at a game time."""

    at: GameTime = Field(description=_DT_EXPECT)
    resident: str = Field(description="a resident name")
    text: Text = Field(description="a non-empty string")


class Fact(_Strict):
    """A seeded fact whose spread metrics track (by keyword, optionally place and window)."""

    name: Name = Field(description="a unique fact name")
    keywords: list[Text] = Field(min_length=1, description="a non-empty array of strings")
    place: str | None = Field(None, description="a place name")
    start: GameTime | None = Field(None, description=_DT_EXPECT)
    end: GameTime | None = Field(None, description=_DT_EXPECT)


class Scenario(_Strict):
    """A whole scenario file. Load with :func:`load_scenario` or :func:`parse_scenario`."""

    scenario: ScenarioMeta = Field(description="a [scenario] table")
    map: MapSpec = Field(description="a [map] table")
    residents: list[Resident] = Field(description="one or more [[residents]] tables")
    whispers: list[Whisper] = Field(default_factory=list, description="[[whispers]] tables")
    facts: list[Fact] = Field(default_factory=list, description="[[facts]] tables")

    _source_text: str = PrivateAttr("")
    _source_path: Path | None = PrivateAttr(None)

    # Shortcuts for the [scenario] table (``sc.name`` == ``sc.scenario.name``).
    @property
    def meta(self) -> ScenarioMeta:
        return self.scenario

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def description(self) -> str:
        return self.scenario.description

    @property
    def start(self) -> datetime:
        return self.scenario.start

    @property
    def seconds_per_step(self) -> int:
        return self.scenario.seconds_per_step

    @property
    def seed(self) -> int:
        return self.scenario.seed

    @property
    def source_text(self) -> str:
        """The raw TOML text, stored by the recorder so a run can rebuild its world."""
        return self._source_text

    @property
    def source_path(self) -> Path | None:
        """Where the scenario was read from (None when parsed from a string)."""
        return self._source_path

    def resident(self, name: str) -> Resident:
        """The resident with this name (KeyError if none)."""
        for r in self.residents:
            if r.name == name:
                return r
        raise KeyError(name)

    def build_world(self) -> World:
        """A fresh World for this scenario's map (each has its own path cache)."""
        return World.from_scenario(self)


# ---------------------------------------------------------------------------- pydantic errors → one line
def _unwrap(ann: Any) -> Any:
    """Strip Annotated and Optional so the walker sees the underlying type."""
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann
            ann = args[0]
        else:
            return ann


def _resolve(loc: Iterable[Any]) -> tuple[Any, FieldInfo | None]:
    """Walk the model types along an error location: (type there, FieldInfo if a field)."""
    ann: Any = Scenario
    info: FieldInfo | None = None
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
            found = None
            for fname, finfo in ann.model_fields.items():
                if part in (fname, finfo.alias):
                    found = finfo
                    break
            if found is None:
                return None, None
            info, ann = found, found.annotation
            continue
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        info = None
        if origin is list and args:
            ann = args[0]
        elif origin is tuple and args and isinstance(part, int):
            ann = args[min(part, len(args) - 1)]
        elif origin is dict and args:
            ann = args[0] if part == "[key]" else args[1]
        else:
            return None, None
    return ann, info


_TYPE_WORDS = {int: "an integer", str: "a string", bool: "true or false", float: "a number",
               datetime: _DT_EXPECT, time: _TIME_EXPECT}


def _expect(loc: tuple[Any, ...]) -> str:
    """What the field at ``loc`` should hold, from its description or its type."""
    ann, info = _resolve(loc)
    if info is not None and info.description:
        return info.description
    ann = _unwrap(ann)
    if ann in _TYPE_WORDS:
        return _TYPE_WORDS[ann]
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "a table with keys: " + ", ".join(_keys(ann))
    if typing.get_origin(ann) is tuple:
        return _TILE_EXPECT
    return "a valid value"


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _format_loc(loc: Iterable[Any]) -> str:
    """``('residents', 1, 'home')`` → ``residents[1].home``; odd keys are quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += ("." if out else "") + repr(str(part))
    return out or "(top level)"


_BOUND_WORDS = {
    "greater_than_equal": ("too small", "ge", "at least"),
    "greater_than": ("too small", "gt", "more than"),
    "less_than_equal": ("too large", "le", "at most"),
    "less_than": ("too large", "lt", "less than"),
}


def _describe(err: dict[str, Any]) -> tuple[str, str, str]:
    """(field path, problem, expected) for one pydantic error."""
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    path = _format_loc(loc)
    if kind == "village":
        return path, ctx.get("problem", err.get("msg", "")), ctx.get("expected", _expect(loc))
    if kind == "missing":
        ann, _ = _resolve(loc)
        what = "section" if isinstance(_unwrap(ann), type) and issubclass(_unwrap(ann), BaseModel) else "field"
        return path, f"required {what} is missing", _expect(loc)
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        parent, _ = _resolve(loc[:-1])
        parent = _unwrap(parent)
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = _keys(parent)
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return path, f"unknown key {key!r}{hint}", "one of: " + ", ".join(allowed)
        return path, f"unknown key {key!r}", "no such key"
    if kind in _BOUND_WORDS:
        word, ck, phrase = _BOUND_WORDS[kind]
        expected = _expect(loc)
        if ".." not in expected:  # descriptions with a range already say the bound
            expected += f"; {phrase} {ctx.get(ck)}"
        return path, f"{_short(value)} is {word}", expected
    if kind in ("too_short", "too_long"):
        return path, f"has {ctx.get('actual_length', '?')} items", _expect(loc)
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("model_attributes_type",):
        return path, f"wrong type: {_toml_type(value)} {_short(value)}", _expect(loc)
    return path, _one_line(err.get("msg", "invalid value")), _expect(loc)


# ---------------------------------------------------------------------------- semantic checks
def _places_hint(names: list[str]) -> str:
    shown = ", ".join(names[:15]) + (", ..." if len(names) > 15 else "")
    return "one of: " + (shown or "no places defined")


def _check(sc: Scenario) -> World:
    """Cross-field checks pydantic cannot express; returns the built World. Raises _Problem."""
    rows = sc.map.rows
    if len(rows) > MAX_MAP_SIDE or any(len(r) > MAX_MAP_SIDE for r in rows):
        raise _Problem("map.grid", "the grid is too large", f"at most {MAX_MAP_SIDE}x{MAX_MAP_SIDE} tiles")
    try:
        world = World(sc.map)
    except MapError as e:
        raise _Problem(e.path, e.problem, e.expected) from None

    dests = world.destinations()
    if not sc.residents:
        raise _Problem("residents", "there are no residents", "at least one [[residents]] table")

    seen: dict[str, int] = {}
    for i, r in enumerate(sc.residents):
        key = r.name.casefold()
        if key in seen:
            raise _Problem(f"residents[{i}].name", f"duplicate resident name {r.name!r} "
                           f"(also residents[{seen[key]}])", "unique names")
        seen[key] = i
    names = [r.name for r in sc.residents]

    for i, r in enumerate(sc.residents):
        if r.home not in world.places or world.places[r.home].kind == "object":
            close = difflib.get_close_matches(r.home, dests, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _Problem(f"residents[{i}].home", f"unknown place {r.home!r}{hint}", _places_hint(dests))
        if r.start is not None:
            x, y = r.start
            if not world.in_bounds(x, y):
                raise _Problem(f"residents[{i}].start", f"tile [{x}, {y}] is outside the "
                               f"{world.width}x{world.height} map",
                               f"x in 0..{world.width - 1}, y in 0..{world.height - 1}")
            if not world.is_walkable(x, y):
                raise _Problem(f"residents[{i}].start", f"tile [{x}, {y}] is a wall", "a walkable tile")
        else:
            r.start = world.places[r.home].tiles[0]
        if r.sleep <= r.wake:  # the day loop assumes waking and sleeping on the same day
            raise _Problem(f"residents[{i}].sleep", f"sleep time {r.sleep:%H:%M} is not after "
                           f"wake time {r.wake:%H:%M}", "a sleep time later the same day, up to 23:59")
        for other in r.relationships:
            if other not in names:
                raise _Problem(f"residents[{i}].relationships", f"unknown resident {other!r}",
                               "one of: " + ", ".join(names))
            if other == r.name:
                raise _Problem(f"residents[{i}].relationships", f"{r.name!r} is related to themself",
                               "other residents' names")

    # Every home must be reachable from every other, and each start must reach its home:
    # otherwise an agent is stuck from the first step.
    def comps(place: str) -> set[int]:
        return {world.component_of(x, y) for x, y in world.places[place].tiles}

    home_comps = [comps(r.home) for r in sc.residents]
    counts: dict[int, int] = {}
    for cs in home_comps:
        for c in cs:
            counts[c] = counts.get(c, 0) + 1
    main = max(sorted(counts), key=lambda c: counts[c])  # most homes; ties → lowest id
    first_ok = next(i for i, cs in enumerate(home_comps) if main in cs)
    for i, (r, cs) in enumerate(zip(sc.residents, home_comps)):
        if main not in cs:
            raise _Problem(f"residents[{i}].home", f"{r.home!r} cannot be reached from "
                           f"{sc.residents[first_ok].home!r} (home of {sc.residents[first_ok].name})",
                           "a walkable path between all homes")
        x, y = r.start
        if world.component_of(x, y) not in cs:
            raise _Problem(f"residents[{i}].start", f"tile [{x}, {y}] ({world.place_at(x, y)}) "
                           f"cannot reach home {r.home!r}", "a tile connected to the home")
    for name in dests:
        if main not in comps(name):
            raise _Problem("map.grid", f"place {name!r} cannot be reached from the residents' homes",
                           "every area and room to be reachable on foot")

    for i, w in enumerate(sc.whispers):
        if w.resident not in names:
            raise _Problem(f"whispers[{i}].resident", f"unknown resident {w.resident!r}",
                           "one of: " + ", ".join(names))
        if w.at < sc.start:
            raise _Problem(f"whispers[{i}].at", f"{w.at.isoformat()} is before the scenario start",
                           f"a time at or after {sc.start.isoformat()}")

    fact_names: set[str] = set()
    for i, f in enumerate(sc.facts):
        if f.name in fact_names:
            raise _Problem(f"facts[{i}].name", f"duplicate fact name {f.name!r}", "unique names")
        fact_names.add(f.name)
        if f.place is not None and f.place not in world.places:
            raise _Problem(f"facts[{i}].place", f"unknown place {f.place!r}", _places_hint(sorted(world.places)))
        if f.start and f.end and f.end < f.start:
            raise _Problem(f"facts[{i}].end", f"{f.end.isoformat()} is before start {f.start.isoformat()}",
                           "end at or after start")
    return world


# ---------------------------------------------------------------------------- entry points
_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Parse and fully validate scenario TOML text; every problem becomes a ScenarioError."""
    source = str(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        lineno = getattr(e, "lineno", None) or (int(m[1]) if m else None)
        colno = getattr(e, "colno", None) or (int(m[2]) if m else None)
        detail = getattr(e, "msg", None) or _TOML_POS.sub("", msg)
        if "(at end of document)" in detail:  # tomllib gives no position here: use the end
            detail = detail.replace("(at end of document)", "").strip()
            lines = text.split("\n")
            lineno, colno = len(lines), len(lines[-1]) + 1
        where = f"line {lineno}, column {colno}" if lineno else "somewhere in the file"
        line = text.split("\n")[lineno - 1].strip() if lineno and lineno <= text.count("\n") + 1 else ""
        near = f" near {_short(line)}" if line else ""
        raise ScenarioError(source, where, f"invalid TOML ({detail}{near})") from None
    except (TypeError, ValueError) as e:  # e.g. text is bytes
        raise ScenarioError(source, None, f"cannot read scenario text: {e}", "TOML text") from None

    try:
        sc = Scenario.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        # One line means one error: a misspelt key is the root cause of the "missing" error
        # it also causes, so an unknown key with a close match goes first; else pydantic's order.
        try:
            first = next((err for err in errors if err["type"] == "extra_forbidden"
                          and "did you mean" in _describe(err)[1]), errors[0])
            path, problem, expected = _describe(first)
        except Exception:  # noqa: BLE001 - a describer bug must not hide the user's error
            first = errors[0]
            path, problem, expected = _format_loc(first.get("loc", ())), str(first.get("msg")), None
        more = f" [+{len(errors) - 1} more]" if len(errors) > 1 else ""
        raise ScenarioError(source, path, problem + more, expected) from None
    except Exception as e:  # noqa: BLE001 - never leak a traceback for bad input
        raise ScenarioError(source, None, f"invalid scenario: {e}", "a valid scenario") from None

    try:
        _check(sc)
    except _Problem as p:
        raise ScenarioError(source, p.path, p.problem, p.expected) from None
    except Exception as e:  # noqa: BLE001
        raise ScenarioError(source, None, f"invalid scenario: {e}", "a valid scenario") from None
    sc._source_text = text
    return sc


def _search_dirs() -> list[Path]:
    """Where bare names are looked up: ./scenarios first, then the repository's scenarios/."""
    dirs = [Path.cwd() / "scenarios", REPO_SCENARIOS]
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def list_scenarios() -> list[str]:
    """Names loadable by bare name: ``NAME.toml`` files and ``NAME/scenario.toml`` folders."""
    names: set[str] = set()
    for d in _search_dirs():
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.is_file() and p.suffix == ".toml":
                names.add(p.stem)
            elif p.is_dir() and (p / "scenario.toml").is_file():
                names.add(p.name)
    return sorted(names)


def _display(path: Path) -> str:
    """The path as the user would recognise it: relative to the cwd if it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _locate(name_or_path: str | Path) -> Path:
    """Resolve a file, a folder with scenario.toml, or a bare scenario name to a file."""
    given = str(name_or_path)
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        inner = p / "scenario.toml"
        if inner.is_file():
            return inner
        raise ScenarioError(given, None, "folder has no scenario.toml", "a folder containing scenario.toml")
    bare = not any(s in given for s in ("/", "\\")) and not given.endswith(".toml") \
        and given not in ("", ".", "..")
    if bare:
        for d in _search_dirs():
            for cand in (d / f"{given}.toml", d / given / "scenario.toml"):
                if cand.is_file():
                    return cand
        names = list_scenarios()
        close = difflib.get_close_matches(given, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ScenarioError(given, None, f"unknown scenario {given!r}{hint}",
                            "a .toml file, a folder with scenario.toml, or one of: "
                            + (", ".join(names) or "no scenarios found"))
    raise ScenarioError(given, None, "file not found", "an existing .toml file or scenario folder")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario from a file, a folder, or a bare name (see module docs)."""
    path = _locate(name_or_path)
    source = _display(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(source, None, f"not UTF-8 text (byte {e.start})", "a UTF-8 TOML file") from None
    except OSError as e:
        raise ScenarioError(source, None, f"cannot read file: {e.strerror or e}", "a readable file") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    sc = parse_scenario(text, source)
    sc._source_path = path.resolve()
    return sc
