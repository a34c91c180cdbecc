"""Read a recorded run: the map, the agents and the full state at any step.

This module is the only code that reads the recording schema (docs/schema.md); the pygame
viewer, the terminal replay and the TUI inspector all go through it. It never writes: the
database is opened with a read-only ``file:...?mode=ro`` URI, so it can be read while the run
is still being written (the recorder uses WAL; call :meth:`ReplayReader.refresh` to see the
steps committed since).

Quick use::

    from village.replay import ReplayReader, ReplayError

    with ReplayReader("replays/demo.db") as r:
        step = r.step_at("day2 17:00")          # or "17:00", a datetime, "2023-02-14T17:00"
        frame = r.state(step)                   # everyone at that moment
        for a in frame.agents:
            print(a.name, a.x, a.y, a.place, a.action, a.utterance)

API (every ``step`` is a run step: 0 is the initial state, step N is game time
``game_start + N * seconds_per_step``):

Attributes
    ``path``; ``run`` (the ``runs`` row as a dict; ``ablations`` and ``config`` decoded from
    JSON); ``scenario`` (:class:`village.scenario.Scenario` rebuilt from ``runs.scenario_toml``);
    ``world`` (:class:`village.world.World`: ``width``, ``height``, ``walkable``, ``places``,
    ``place_at``, ``tiles_of``, ``render_ascii``...); ``agents`` (list of :class:`Agent`:
    ``id``, ``name``, ``age``, ``traits``, ``background``, ``currently``, ``routine``,
    ``home``, plus display helpers ``initials`` (e.g. "MK") and ``letter`` (one character,
    unique within the run)); ``seconds_per_step``; ``game_start`` (datetime);
    ``first_step`` (0) and ``last_step`` (the last committed step, -1 if none yet);
    ``status`` (``running``/``finished``/``failed``/``interrupted``).

Time
    ``game_time(step) -> datetime``; ``clock(step) -> str`` ("day 2 Tue 17:00:00");
    ``step_at(when, clamp=False) -> int`` where ``when`` is a datetime, an ISO string
    ("2023-02-14T17:00"), "HH:MM[:SS]" (on day 1, the start date), or "dayN HH:MM[:SS]"
    (day 1 is the start date); the last step at or before that time. A time outside the
    recorded steps raises :class:`ReplayError` unless ``clamp``. ``resolve(spec)`` accepts a
    step number ("120") or any of the time forms (for ``--at``).
    ``refresh() -> int`` re-reads ``last_step`` and ``status`` (follow a run in progress);
    returns the new ``last_step``.

State
    ``state(step) -> Frame``: ``step``, ``time`` (datetime), ``clock`` (str), ``agents``
    (tuple of :class:`AgentState`, in agent id order: ``id``, ``name``, ``x``, ``y``,
    ``place``, ``action``, ``action_place``, ``emoji``, ``conversation_id``, ``asleep``,
    ``utterance`` (what the agent is saying at this step, or None), ``since`` (the step this
    state began)), ``utterances`` (tuple of :class:`Utterance` current at this step: the
    latest line, at or before the step, of every conversation in progress), and
    ``frame.agent(id_or_name)``. Seeking costs one indexed lookup per agent on
    ``agent_states(agent_id, step)`` whatever the run's length; moving forward a few steps
    applies only the changed rows (``agent_states(step)`` index). Both give equal frames.

Queries (lists of plain dicts unless said otherwise; agent names resolved; ``time`` added
where a step is known)
    ``events(step_from, step_to, agent_id=None, kind=None)``: events with
    ``step_from <= step <= step_to``, in recording order.
    ``utterances(step_from, step_to)``: lines spoken in that range (:class:`Utterance`).
    ``memories(agent_id, until_step=None, kind=None, limit=None, newest_first=True)``:
    memory records created at or before ``until_step`` (no embedding blob).
    ``memory(id)``: one record with ``evidence`` (records it cites) and ``embedding``
    (numpy float32 array).
    ``plans(agent_id, at_step) -> Plans``: ``day`` (the latest day plan made at or before
    the step: its entries in order), ``hour`` and ``action`` (the entries covering the game
    time of that step, latest revision, or None).
    ``conversation(id)``: the conversation row with ``a_name``, ``b_name`` and
    ``transcript`` (list of :class:`Utterance`); ``conversations(step_from, step_to)``.
    ``llm_calls(step_from=None, step_to=None, agent_id=None, purpose=None, limit=None)``
    and ``llm_call(id)``: model calls (``messages``, ``schema``, ``dropped`` decoded).
    ``retrieval(id)``: a retrieval with its ``hits`` (ranked, with memory descriptions).
    ``social_edges(at_step)``: every relationship known at that step, one dict per pair
    (``a``, ``b``, ``a_name``, ``b_name``, ``kind``, ``conversations``, ``relation``,
    ``since``).
    ``step_info(step)``: the ``steps`` row (wall time, duration, model calls, tokens), or None.

Inspector (traceability; what ``village inspect`` shows)
    ``memory_rows(agent_id, step, unrated=1)``: the agent's records created at or before the
    step as they stood then (:class:`memory.persistence.MemoryRow`, for
    ``stream_from_rows``): evidence, last access (latest recorded retrieval at or before the
    step) and importance (``unrated`` where the rating came later or never).
    ``cited_by(memory_id, until_step=None)``: the records (reflections) citing it as
    evidence, oldest first.
    ``memory_retrievals(memory_id, until_step=None)``: the recorded retrievals that returned
    it, oldest first (``id``, ``step``, ``purpose``, ``query``, the hit's ``rank``,
    ``recency``, ``importance``, ``relevance``, ``score``).
    ``plan_entries(agent_id, at_step, level=None, day=None)``: plan entries made at or
    before the step that start on a game date (default: the step's), every revision, by
    start then by when made; ``plan_entry(id)``: one ``plans`` row, or None.
    ``llm_call_index(step_to=None, agent_id=None, purpose=None, limit=500)``: model calls
    for listings, newest first, without messages, schema or response.
    ``llm_call_totals(step_to=None, agent_id=None)``: model calls by purpose (``calls``,
    ``cached``, tokens, summed ``latency_ms``, ``retries``, ``invalid``, ``fallbacks``,
    ``errors``).
    ``interviews(agent_id=None)``: interviews asked of the agents (``interviews`` rows with
    ``agent``), oldest first.

Errors
    Anything that is not a readable Village run raises :class:`ReplayError` with a one-line
    message naming the file: missing file, not SQLite, not a Village run, a newer schema
    version than this code reads, a truncated or corrupt file, a step out of range.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator

from village.recorder import SCHEMA_VERSION  # the newest recording schema this reader knows

_TABLES = ("meta", "runs", "agents", "steps", "agent_states")
_FORWARD_LIMIT = 256  # apply changed rows forward up to this many steps, else seek
_CACHE_FRAMES = 16  # recent frames kept (playback asks for step and step + 1)


class ReplayError(Exception):
    """A run database that cannot be replayed; ``str()`` is one line naming the file."""


# --------------------------------------------------------------------------- data classes
@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    age: int | None
    traits: tuple[str, ...]
    background: str | None
    currently: str | None
    routine: str | None
    home: str | None
    initials: str
    letter: str


@dataclass(frozen=True)
class Utterance:
    conversation_id: int
    idx: int
    step: int
    speaker_id: int
    speaker: str
    text: str
    call_id: int | None = None


@dataclass(frozen=True)
class AgentState:
    id: int
    name: str
    x: int
    y: int
    place: str | None
    action: str | None
    action_place: str | None
    emoji: str | None
    conversation_id: int | None
    asleep: bool
    since: int
    utterance: str | None = None


@dataclass(frozen=True)
class Frame:
    step: int
    time: datetime
    clock: str
    agents: tuple[AgentState, ...]
    utterances: tuple[Utterance, ...] = ()
    _by_id: dict[int, AgentState] = field(default_factory=dict, compare=False, repr=False)

    def agent(self, key: int | str) -> AgentState:
        """An agent's state by id or name (KeyError if unknown)."""
        if not self._by_id:
            self._by_id.update({a.id: a for a in self.agents})
            self._by_id.update({a.name: a for a in self.agents})  # type: ignore[misc]
        return self._by_id[key]  # type: ignore[index]

    def positions(self) -> dict[str, tuple[int, int]]:
        """name -> (x, y), e.g. for ``World.render_ascii``."""
        return {a.name: (a.x, a.y) for a in self.agents}


@dataclass(frozen=True)
class Plans:
    day: list[dict[str, Any]]
    hour: dict[str, Any] | None
    action: dict[str, Any] | None


# --------------------------------------------------------------------------- helpers
def _initials(name: str) -> str:
    parts = [p for p in re.split(r"\s+", name.strip()) if p]
    if not parts:
        return "?"
    if len(parts) == 1:
        return parts[0][:2].capitalize()
    return (parts[0][0] + parts[-1][0]).upper()


def _letters(names: Iterable[str]) -> list[str]:
    """One distinct character per agent: first initial if free, else another letter of the name."""
    taken: set[str] = set()
    out = []
    for name in names:
        cands = [c.upper() for c in name if c.isalpha()] + [c.lower() for c in name if c.isalpha()]
        cands += list("0123456789")
        mark = next((c for c in cands if c not in taken), "?")
        taken.add(mark)
        out.append(mark)
    return out


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


_DAY = re.compile(r"^\s*(?:day\s*(\d+)\s*[ ,@T]?\s*)?(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$", re.I)


# --------------------------------------------------------------------------- the reader
class ReplayReader:
    """Read-only access to one run database. See the module docstring for the API."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        from village.dbcheck import RunDBError, open_run_ro

        try:  # one validation for every reader of runs (header, schema version, tables)
            self._conn = open_run_ro(self.path)
        except RunDBError as exc:
            raise ReplayError(str(exc)) from None
        self._conn.row_factory = sqlite3.Row
        try:
            self._load()
        except ReplayError:
            self._conn.close()
            raise
        self._cache: OrderedDict[int, Frame] = OrderedDict()

    # ---------------------------------------------------------------- opening
    def _q(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run a query; any SQLite failure becomes a one-line ReplayError."""
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.DatabaseError as exc:
                msg = _one_line(exc)
                if "malformed" in msg or "not a database" in msg or "disk I/O" in msg:
                    raise ReplayError(f"{self.path}: truncated or corrupt database ({msg})") from None
                raise ReplayError(f"{self.path}: cannot read the run ({msg})") from None

    def _load(self) -> None:
        tables = {r[0] for r in self._q("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise ReplayError(f"{self.path}: not a Village run (no {', '.join(missing)} table"
                              f"{'s' if len(missing) > 1 else ''})")
        self._tables = tables
        row = self._q("SELECT value FROM meta WHERE key = 'schema_version'")
        if not row:
            raise ReplayError(f"{self.path}: not a Village run (no schema_version in meta)")
        try:
            version = int(row[0][0])
        except (TypeError, ValueError):
            raise ReplayError(f"{self.path}: not a Village run (schema_version {row[0][0]!r})") from None
        if version > SCHEMA_VERSION:
            raise ReplayError(f"{self.path}: recorded with schema version {version}, newer than the "
                              f"{SCHEMA_VERSION} this Village reads; upgrade Village")
        self.schema_version = version
        runs = self._q("SELECT * FROM runs ORDER BY id LIMIT 1")
        if not runs:
            raise ReplayError(f"{self.path}: not a Village run (the runs table is empty)")
        self.run: dict[str, Any] = self._decode(dict(runs[0]), ("ablations", "config"))
        text = self.run.get("scenario_toml")
        if not text:
            raise ReplayError(f"{self.path}: the run does not hold its scenario (runs.scenario_toml)")
        from village.scenario import ScenarioError, parse_scenario
        from village.world import World

        try:
            self.scenario = parse_scenario(text, source=f"{self.path}:runs.scenario_toml")
            self.world = World.from_scenario(self.scenario)
        except ScenarioError as exc:
            raise ReplayError(f"{self.path}: the recorded scenario no longer loads ({_one_line(exc)})") from None
        sps = self.run.get("seconds_per_step") or self.scenario.scenario.seconds_per_step
        self.seconds_per_step: int = int(sps)
        start = self.run.get("game_start")
        try:
            self.game_start: datetime = (datetime.fromisoformat(start) if start
                                         else self.scenario.scenario.start)
        except ValueError:
            raise ReplayError(f"{self.path}: bad runs.game_start {start!r}") from None
        self.first_step = 0
        self.last_step = -1
        self.status: str | None = None
        self.agents: list[Agent] = []
        self._max_conv_len = 0
        self.refresh()

    def _load_agents(self) -> None:
        rows = self._q("SELECT * FROM agents ORDER BY id")
        letters = _letters(r["name"] for r in rows)
        agents = []
        for r, letter in zip(rows, letters):
            try:
                traits = tuple(json.loads(r["traits"] or "[]"))
            except ValueError:
                traits = ()
            agents.append(Agent(r["id"], r["name"], r["age"], traits, r["background"], r["currently"],
                                r["routine"], r["home"], _initials(r["name"]), letter))
        self.agents = agents
        self._agent_by_id = {a.id: a for a in agents}
        self._agent_by_name = {a.name: a for a in agents}

    def refresh(self) -> int:
        """Re-read the last committed step and the run's status; returns ``last_step``."""
        row = self._q("SELECT max(step) AS last, min(step) AS first FROM steps")[0]
        last = -1 if row["last"] is None else int(row["last"])
        status = self._q("SELECT status FROM runs ORDER BY id LIMIT 1")
        self.status = status[0][0] if status else None
        if last != self.last_step or not self.agents:
            if row["first"] is not None:
                self.first_step = int(row["first"])
            if len(self.agents) == 0 or last != self.last_step:
                n = self._q("SELECT count(*) FROM agents")[0][0]
                if n != len(self.agents):
                    self._load_agents()
            if "conversations" in self._tables:
                m = self._q("SELECT max(step_end - step_start) FROM conversations")[0][0]
                self._max_conv_len = int(m or 0)
            self.last_step = last
        return self.last_step

    @property
    def running(self) -> bool:
        """Whether the recorder still marks the run as in progress."""
        return self.status == "running"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ReplayReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"ReplayReader({str(self.path)!r}, {len(self.agents)} agents, "
                f"steps {self.first_step}..{self.last_step}, {self.status})")

    # ---------------------------------------------------------------- agents
    def agent(self, key: int | str) -> Agent:
        """An agent by id or name; ReplayError if unknown."""
        a = self._agent_by_id.get(key) if isinstance(key, int) else self._agent_by_name.get(key)
        if a is None:
            raise ReplayError(f"{self.path}: no agent {key!r} "
                              f"(expected one of: {', '.join(x.name for x in self.agents)})")
        return a

    def _name(self, agent_id: int | None) -> str | None:
        a = self._agent_by_id.get(agent_id) if agent_id is not None else None
        return a.name if a else None

    # ---------------------------------------------------------------- time
    def game_time(self, step: int) -> datetime:
        """The game time of a step."""
        return self.game_start + timedelta(seconds=int(step) * self.seconds_per_step)

    def day_of(self, step: int) -> int:
        """1 for the start date, 2 for the next day..."""
        return (self.game_time(step).date() - self.game_start.date()).days + 1

    def clock(self, step: int) -> str:
        """A short clock for displays: ``"day 2 Tue 17:00:00"``."""
        t = self.game_time(step)
        return f"day {self.day_of(step)} {t:%a %H:%M:%S}"

    def _to_datetime(self, when: datetime | date | str) -> datetime:
        if isinstance(when, datetime):
            return when
        if isinstance(when, date):
            return datetime.combine(when, time())
        text = str(when).strip()
        m = _DAY.match(text)
        if m:
            day = int(m[1]) if m[1] else 1
            hh, mm, ss = int(m[2]), int(m[3]), int(m[4] or 0)
            if day < 1 or hh > 23 or mm > 59 or ss > 59:
                raise ReplayError(f"{self.path}: bad time {text!r} (expected HH:MM, 'dayN HH:MM' "
                                  "with N >= 1, or an ISO date-time)")
            return datetime.combine(self.game_start.date() + timedelta(days=day - 1), time(hh, mm, ss))
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ReplayError(f"{self.path}: bad time {text!r} (expected a step number, HH:MM, "
                              "'day2 17:00' or an ISO date-time such as 2023-02-14T17:00)") from None

    def step_at(self, when: datetime | date | str, clamp: bool = False) -> int:
        """The last step at or before a game time (see the module docstring for the forms)."""
        t = self._to_datetime(when)
        secs = (t - self.game_start).total_seconds()
        step = int(secs // self.seconds_per_step)
        if clamp:
            return max(self.first_step, min(step, max(self.last_step, self.first_step)))
        if step < self.first_step or step > self.last_step:
            last = (f"{self.clock(self.last_step)} (step {self.last_step})" if self.last_step >= 0
                    else "nothing yet")
            raise ReplayError(f"{self.path}: {when} ({t:%Y-%m-%d %H:%M:%S}) is outside the recorded run: "
                              f"{self.clock(self.first_step)} to {last}")
        return step

    def resolve(self, spec: int | str | datetime, clamp: bool = False) -> int:
        """A step from a step number, ``"-1"`` (the last step) or any time form of :meth:`step_at`."""
        if isinstance(spec, int) or (isinstance(spec, str) and re.fullmatch(r"\s*-?\d+\s*", spec)):
            step = int(spec)
            if step < 0:
                step = self.last_step + 1 + step
            return self._check_step(step, clamp)
        return self.step_at(spec, clamp=clamp)

    def _check_step(self, step: int, clamp: bool = False) -> int:
        step = int(step)
        if self.last_step < self.first_step:
            raise ReplayError(f"{self.path}: no steps recorded yet")
        if clamp:
            return max(self.first_step, min(step, self.last_step))
        if not self.first_step <= step <= self.last_step:
            raise ReplayError(f"{self.path}: step {step} is outside the recorded run "
                              f"(steps {self.first_step}..{self.last_step})")
        return step

    # ---------------------------------------------------------------- state
    def _state_row(self, r: sqlite3.Row) -> AgentState:
        return AgentState(
            id=r["agent_id"], name=self._name(r["agent_id"]) or f"agent {r['agent_id']}",
            x=int(r["x"]), y=int(r["y"]), place=r["place"], action=r["action"],
            action_place=r["action_place"], emoji=r["emoji"], conversation_id=r["conversation_id"],
            asleep=bool(r["asleep"]), since=int(r["step"]))

    def _current_utterances(self, step: int) -> tuple[Utterance, ...]:
        if "utterances" not in self._tables or "conversations" not in self._tables:
            return ()
        rows = self._q(
            "SELECT u.* FROM utterances u JOIN conversations c ON c.id = u.conversation_id"
            " WHERE u.step BETWEEN ? AND ? AND c.step_start <= ? AND c.step_end >= ?"
            " ORDER BY u.conversation_id, u.step, u.idx",
            (step - self._max_conv_len - 1, step, step, step))
        latest: dict[int, sqlite3.Row] = {}
        for r in rows:
            latest[r["conversation_id"]] = r
        return tuple(self._utterance(r) for r in latest.values())

    def _utterance(self, r: sqlite3.Row) -> Utterance:
        return Utterance(r["conversation_id"], r["idx"], r["step"], r["speaker_id"],
                         self._name(r["speaker_id"]) or f"agent {r['speaker_id']}", r["text"],
                         r["call_id"])

    def _frame(self, step: int, states: Iterable[AgentState]) -> Frame:
        utts = self._current_utterances(step)
        said = {u.speaker_id: u.text for u in utts}
        agents = tuple(replace(s, utterance=said.get(s.id)) if s.utterance != said.get(s.id) else s
                       for s in sorted(states, key=lambda s: s.id))
        return Frame(step, self.game_time(step), self.clock(step), agents, utts)

    def _seek(self, step: int) -> Frame:
        rows = self._q(
            "SELECT s.* FROM agents a JOIN agent_states s ON s.agent_id = a.id AND s.step ="
            " (SELECT max(step) FROM agent_states WHERE agent_id = a.id AND step <= ?)"
            " ORDER BY a.id", (step,))
        return self._frame(step, (self._state_row(r) for r in rows))

    def _advance(self, frame: Frame, step: int) -> Frame:
        rows = self._q("SELECT * FROM agent_states WHERE step > ? AND step <= ? ORDER BY step",
                       (frame.step, step))
        states = {a.id: a for a in frame.agents}
        for r in rows:
            states[r["agent_id"]] = self._state_row(r)
        return self._frame(step, states.values())

    def state(self, step: int) -> Frame:
        """Every agent's state at a step (ReplayError if the step is not recorded)."""
        step = self._check_step(step)
        cache = self._cache
        hit = cache.get(step)
        if hit is not None and len(hit.agents) == len(self.agents):
            cache.move_to_end(step)
            return hit
        base = max((f for f in cache.values() if f.step < step <= f.step + _FORWARD_LIMIT
                    and len(f.agents) == len(self.agents)), key=lambda f: f.step, default=None)
        frame = self._advance(base, step) if base is not None else self._seek(step)
        self._remember(frame)
        return frame

    def _remember(self, frame: Frame) -> None:
        self._cache[frame.step] = frame
        self._cache.move_to_end(frame.step)
        while len(self._cache) > _CACHE_FRAMES:
            self._cache.popitem(last=False)

    def seek(self, step: int) -> Frame:
        """Like :meth:`state` but always by index lookup (no forward stepping, no cache)."""
        frame = self._seek(self._check_step(step))
        self._remember(frame)
        return frame

    def frames(self, step_from: int, step_to: int) -> Iterator[Frame]:
        """Frames of consecutive steps, each built from the previous one's changes."""
        frame = self.seek(step_from)
        yield frame
        for s in range(step_from + 1, self._check_step(step_to) + 1):
            frame = self._advance(frame, s)
            self._remember(frame)
            yield frame

    # ---------------------------------------------------------------- queries
    @staticmethod
    def _decode(d: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
        for k in keys:
            v = d.get(k)
            if isinstance(v, str):
                try:
                    d[k] = json.loads(v)
                except ValueError:
                    pass
        return d

    def _with_time(self, d: dict[str, Any], key: str = "step") -> dict[str, Any]:
        if d.get(key) is not None:
            d["time"] = self.game_time(d[key])
        return d

    def events(self, step_from: int, step_to: int, agent_id: int | None = None,
               kind: str | None = None) -> list[dict[str, Any]]:
        """Events recorded with step_from <= step <= step_to, in recording order."""
        sql = "SELECT * FROM events WHERE step BETWEEN ? AND ?"
        args: list[Any] = [step_from, step_to]
        if agent_id is not None:
            sql += " AND agent_id = ?"
            args.append(agent_id)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        out = []
        for r in self._q(sql + " ORDER BY step, id", args):
            d = self._with_time(dict(r))
            d["agent"] = self._name(d["agent_id"])
            out.append(d)
        return out

    def utterances(self, step_from: int, step_to: int) -> list[Utterance]:
        """Lines of dialogue spoken with step_from <= step <= step_to."""
        if "utterances" not in self._tables:
            return []
        rows = self._q("SELECT * FROM utterances WHERE step BETWEEN ? AND ? ORDER BY step,"
                       " conversation_id, idx", (step_from, step_to))
        return [self._utterance(r) for r in rows]

    def memories(self, agent_id: int, until_step: int | None = None, kind: str | None = None,
                 limit: int | None = None, newest_first: bool = True) -> list[dict[str, Any]]:
        """An agent's memory records created at or before ``until_step`` (no embeddings)."""
        sql = ("SELECT id, agent_id, step, created, kind, description, importance, call_id"
               " FROM memories WHERE agent_id = ?")
        args: list[Any] = [agent_id]
        if until_step is not None:
            sql += " AND step <= ?"
            args.append(until_step)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY step {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [self._with_time(dict(r)) for r in self._q(sql, args)]

    def memory(self, memory_id: int) -> dict[str, Any] | None:
        """One memory record with ``embedding`` (numpy float32) and ``evidence`` (cited records)."""
        rows = self._q("SELECT * FROM memories WHERE id = ?", (memory_id,))
        if not rows:
            return None
        d = self._with_time(dict(rows[0]))
        blob = d.get("embedding")
        if blob is not None:
            import numpy as np

            d["embedding"] = np.frombuffer(blob, dtype="<f4")
        d["evidence"] = [dict(r) for r in self._q(
            "SELECT m.id, m.step, m.created, m.kind, m.description, m.importance FROM memory_evidence x"
            " JOIN memories m ON m.id = x.evidence_id WHERE x.memory_id = ? ORDER BY m.id",
            (memory_id,))]
        return d

    def plans(self, agent_id: int, at_step: int) -> Plans:
        """Today's day plan (latest made at or before the step) and the hour and action in force."""
        if "plans" not in self._tables:
            return Plans([], None, None)
        now = self.game_time(at_step).isoformat(timespec="seconds")
        day = [dict(r) for r in self._q(
            "SELECT * FROM plans WHERE agent_id = ? AND level = 'day' AND step ="
            " (SELECT max(step) FROM plans WHERE agent_id = ? AND level = 'day' AND step <= ?)"
            " ORDER BY start, id", (agent_id, agent_id, at_step))]

        def current(level: str) -> dict[str, Any] | None:
            rows = self._q(
                "SELECT * FROM plans WHERE agent_id = ? AND level = ? AND step <= ?"
                " AND start <= ? AND \"end\" > ? ORDER BY step DESC, id DESC LIMIT 1",
                (agent_id, level, at_step, now, now))
            return dict(rows[0]) if rows else None

        return Plans(day, current("hour"), current("action"))

    def conversation(self, conversation_id: int) -> dict[str, Any] | None:
        """A conversation with names and its ``transcript`` (list of Utterance)."""
        rows = self._q("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if not rows:
            return None
        d = self._with_time(dict(rows[0]), "step_start")
        d["a_name"], d["b_name"] = self._name(d["agent_a"]), self._name(d["agent_b"])
        d["transcript"] = [self._utterance(r) for r in self._q(
            "SELECT * FROM utterances WHERE conversation_id = ? ORDER BY idx", (conversation_id,))]
        return d

    def conversations(self, step_from: int | None = None, step_to: int | None = None) -> list[dict[str, Any]]:
        """Conversations that started in a step range (all by default), without transcripts."""
        lo = self.first_step if step_from is None else step_from
        hi = max(self.last_step, lo) if step_to is None else step_to
        out = []
        for r in self._q("SELECT * FROM conversations WHERE step_start BETWEEN ? AND ? ORDER BY id",
                         (lo, hi)):
            d = self._with_time(dict(r), "step_start")
            d["a_name"], d["b_name"] = self._name(d["agent_a"]), self._name(d["agent_b"])
            out.append(d)
        return out

    _CALL_JSON = ("messages", "schema", "dropped")

    def llm_calls(self, step_from: int | None = None, step_to: int | None = None,
                  agent_id: int | None = None, purpose: str | None = None,
                  limit: int | None = None) -> list[dict[str, Any]]:
        """Model calls, filtered by step range, agent and purpose, in id order per step."""
        sql, args = "SELECT * FROM llm_calls WHERE 1 = 1", []
        if step_from is not None:
            sql += " AND step >= ?"
            args.append(step_from)
        if step_to is not None:
            sql += " AND step <= ?"
            args.append(step_to)
        if agent_id is not None:
            sql += " AND agent_id = ?"
            args.append(agent_id)
        if purpose is not None:
            sql += " AND purpose = ?"
            args.append(purpose)
        sql += " ORDER BY step, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [self._call(r) for r in self._q(sql, args)]

    def _call(self, r: sqlite3.Row) -> dict[str, Any]:
        d = self._with_time(self._decode(dict(r), self._CALL_JSON))
        d["agent"] = self._name(d.get("agent_id"))
        return d

    def llm_call(self, call_id: int) -> dict[str, Any] | None:
        rows = self._q("SELECT * FROM llm_calls WHERE id = ?", (call_id,))
        return self._call(rows[0]) if rows else None

    def retrieval(self, retrieval_id: int) -> dict[str, Any] | None:
        """A retrieval (query, purpose) with its ranked ``hits`` and their memory descriptions."""
        rows = self._q("SELECT * FROM retrievals WHERE id = ?", (retrieval_id,))
        if not rows:
            return None
        d = self._with_time(dict(rows[0]))
        d["hits"] = [dict(r) for r in self._q(
            "SELECT h.*, m.description, m.kind FROM retrieval_hits h LEFT JOIN memories m"
            " ON m.id = h.memory_id WHERE h.retrieval_id = ? ORDER BY h.rank", (retrieval_id,))]
        return d

    def social_edges(self, at_step: int) -> list[dict[str, Any]]:
        """Every relationship as of a step: the latest row per pair, plus ``since`` (first step)."""
        if "social_edges" not in self._tables:
            return []
        out = []
        for r in self._q(
            "SELECT e.*, f.since FROM social_edges e JOIN"
            " (SELECT a, b, max(step) AS last, min(step) AS since FROM social_edges"
            "  WHERE step <= ? GROUP BY a, b) f ON f.a = e.a AND f.b = e.b AND f.last = e.step"
            " ORDER BY e.a, e.b", (at_step,)):
            d = dict(r)
            d["a_name"], d["b_name"] = self._name(d["a"]), self._name(d["b"])
            out.append(d)
        return out

    def step_info(self, step: int) -> dict[str, Any] | None:
        """The ``steps`` row (wall time, duration, model calls, tokens) of a step."""
        rows = self._q("SELECT * FROM steps WHERE step = ?", (step,))
        return dict(rows[0]) if rows else None

    # ---------------------------------------------------------------- inspector (traceability)
    @staticmethod
    def _id_range(agent_id: int) -> tuple[int, int]:
        """Ids of an agent's memories, plans, retrievals and calls (docs/schema.md: Ids)."""
        return agent_id * 1_000_000, (agent_id + 1) * 1_000_000 - 1

    def memory_rows(self, agent_id: int, step: int, unrated: int | None = 1) -> list[Any]:
        """An agent's records created at or before ``step``, as they stood then, as
        :class:`memory.persistence.MemoryRow` (feed them to ``stream_from_rows``): with their
        evidence, last access (the latest recorded retrieval at or before the step) and
        importance; a record whose rating came after the step (or never) gets ``unrated``
        (default 1: the placeholder the agent's own stream holds until the rating)."""
        from memory.persistence import MemoryRow

        lo, hi = self._id_range(agent_id)
        evidence: dict[int, list[int]] = {}
        if "memory_evidence" in self._tables:
            for r in self._q("SELECT x.memory_id, x.evidence_id FROM memory_evidence x JOIN memories m"
                             " ON m.id = x.memory_id WHERE m.agent_id = ? AND m.step <= ?",
                             (agent_id, step)):
                evidence.setdefault(r[0], []).append(r[1])
        accessed: dict[int, int] = {}
        if "retrievals" in self._tables and "retrieval_hits" in self._tables:
            accessed = {r[0]: r[1] for r in self._q(
                "SELECT h.memory_id, max(r.step) FROM retrievals r JOIN retrieval_hits h"
                " ON h.retrieval_id = r.id WHERE r.id BETWEEN ? AND ? AND r.agent_id = ?"
                " AND r.step <= ? GROUP BY h.memory_id", (lo, hi, agent_id, step))}
        rated = ("(SELECT c.step FROM llm_calls c WHERE c.id = m.call_id)"
                 if "llm_calls" in self._tables else "NULL")
        out = []
        for r in self._q(
            f"SELECT m.id, m.step, m.created, m.kind, m.description, m.importance, m.embedding,"
            f" {rated} AS rated_step FROM memories m WHERE m.agent_id = ? AND m.step <= ?"
            " ORDER BY m.id", (agent_id, step)):
            imp = r["importance"]
            if imp is None or (r["rated_step"] is not None and r["rated_step"] > step):
                imp = unrated
            acc = accessed.get(r["id"])
            out.append(MemoryRow(r["id"], r["step"], datetime.fromisoformat(r["created"]), r["kind"],
                                 r["description"], imp, r["embedding"],
                                 tuple(sorted(evidence.get(r["id"], ()))),
                                 self.game_time(acc) if acc is not None else None))
        return out

    def cited_by(self, memory_id: int, until_step: int | None = None) -> list[dict[str, Any]]:
        """The records (reflections) that cite this one as evidence, oldest first."""
        if "memory_evidence" not in self._tables:
            return []
        sql = ("SELECT m.id, m.agent_id, m.step, m.created, m.kind, m.description, m.importance"
               " FROM memory_evidence x JOIN memories m ON m.id = x.memory_id WHERE x.evidence_id = ?")
        args: list[Any] = [memory_id]
        if until_step is not None:
            sql += " AND m.step <= ?"
            args.append(until_step)
        return [self._with_time(dict(r)) for r in self._q(sql + " ORDER BY m.step, m.id", args)]

    def memory_retrievals(self, memory_id: int, until_step: int | None = None) -> list[dict[str, Any]]:
        """The recorded retrievals that returned this record, oldest first: the retrieval's
        ``id``, ``step``, ``purpose``, ``query`` and the hit's ``rank``, ``recency``,
        ``importance``, ``relevance``, ``score``."""
        if "retrievals" not in self._tables or "retrieval_hits" not in self._tables:
            return []
        lo, hi = self._id_range(memory_id // 1_000_000)
        sql = ("SELECT r.id, r.step, r.agent_id, r.purpose, r.query, h.rank, h.recency, h.importance,"
               " h.relevance, h.score FROM retrieval_hits h JOIN retrievals r ON r.id = h.retrieval_id"
               " WHERE h.retrieval_id BETWEEN ? AND ? AND h.memory_id = ?")
        args: list[Any] = [lo, hi, memory_id]
        if until_step is not None:
            sql += " AND r.step <= ?"
            args.append(until_step)
        return [self._with_time(dict(r)) for r in self._q(sql + " ORDER BY r.step, r.id", args)]

    def plan_entries(self, agent_id: int, at_step: int, level: str | None = None,
                     day: date | None = None) -> list[dict[str, Any]]:
        """Plan entries made at or before ``at_step`` that start on a game date (default: the
        step's), every revision included, ordered by start, then by when they were made."""
        if "plans" not in self._tables:
            return []
        d = day or self.game_time(at_step).date()
        sql = ("SELECT * FROM plans WHERE agent_id = ? AND step <= ? AND start >= ? AND start < ?")
        args: list[Any] = [agent_id, at_step, d.isoformat(), (d + timedelta(days=1)).isoformat()]
        if level is not None:
            sql += " AND level = ?"
            args.append(level)
        return [self._with_time(dict(r)) for r in self._q(sql + " ORDER BY start, step, id", args)]

    def plan_entry(self, plan_id: int) -> dict[str, Any] | None:
        """One plan entry (``plans`` row)."""
        if "plans" not in self._tables:
            return None
        rows = self._q("SELECT * FROM plans WHERE id = ?", (plan_id,))
        return self._with_time(dict(rows[0])) if rows else None

    _CALL_INDEX = ("id, step, agent_id, purpose, model, prompt_tokens, completion_tokens, latency_ms,"
                   " cached, retries, invalid, fallback, error, finish_reason")

    def llm_call_index(self, step_to: int | None = None, agent_id: int | None = None,
                       purpose: str | None = None, limit: int | None = 500) -> list[dict[str, Any]]:
        """Model calls for listings, newest first, without messages, schema or response."""
        sql, args = f"SELECT {self._CALL_INDEX} FROM llm_calls WHERE 1 = 1", []
        if step_to is not None:
            sql += " AND step <= ?"
            args.append(step_to)
        if agent_id is not None:
            lo, hi = self._id_range(agent_id)
            sql += " AND id BETWEEN ? AND ? AND agent_id = ?"
            args += [lo, hi, agent_id]
        if purpose is not None:
            sql += " AND purpose = ?"
            args.append(purpose)
        sql += " ORDER BY step DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        out = []
        for r in self._q(sql, args):
            d = self._with_time(dict(r))
            d["agent"] = self._name(d.get("agent_id"))
            out.append(d)
        return out

    def llm_call_totals(self, step_to: int | None = None, agent_id: int | None = None) -> list[dict[str, Any]]:
        """Model calls by purpose: ``purpose``, ``calls``, ``cached``, ``prompt_tokens``,
        ``completion_tokens``, ``latency_ms`` (summed), ``retries``, ``invalid``, ``fallbacks``,
        ``errors``."""
        sql = ("SELECT purpose, count(*) AS calls, coalesce(sum(cached), 0) AS cached,"
               " coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
               " coalesce(sum(completion_tokens), 0) AS completion_tokens,"
               " coalesce(sum(latency_ms), 0) AS latency_ms, coalesce(sum(retries), 0) AS retries,"
               " sum(invalid IS NOT NULL AND invalid != '') AS invalid,"
               " coalesce(sum(fallback), 0) AS fallbacks,"
               " sum(error IS NOT NULL AND error != '') AS errors FROM llm_calls WHERE 1 = 1")
        args: list[Any] = []
        if step_to is not None:
            sql += " AND step <= ?"
            args.append(step_to)
        if agent_id is not None:
            lo, hi = self._id_range(agent_id)
            sql += " AND id BETWEEN ? AND ? AND agent_id = ?"
            args += [lo, hi, agent_id]
        return [dict(r) for r in self._q(sql + " GROUP BY purpose ORDER BY purpose", args)]

    def interviews(self, agent_id: int | None = None) -> list[dict[str, Any]]:
        """Interviews asked of the run's agents (``interviews`` rows with ``agent``), oldest first."""
        if "interviews" not in self._tables:
            return []
        sql, args = "SELECT * FROM interviews", []
        if agent_id is not None:
            sql += " WHERE agent_id = ?"
            args.append(agent_id)
        out = []
        for r in self._q(sql + " ORDER BY id", args):
            d = dict(r)
            d["agent"] = self._name(d.get("agent_id"))
            out.append(d)
        return out


__all__ = ["Agent", "AgentState", "Frame", "Plans", "ReplayError", "ReplayReader", "Utterance",
           "SCHEMA_VERSION"]
