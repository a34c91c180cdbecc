"""Emergent behaviour, measured from a run database (docs/metrics.md).

Every function here reads a recorded run (a path or an open connection; paths are opened
read-only) and returns plain dataclasses: the numbers a report prints, a comparison tabulates
or a notebook plots. Nothing needs the simulation that produced the run.

* :func:`diffusion` — per seeded fact: who knows it and since when (memory evidence: keywords
  plus embedding similarity with the run's own embedder), as a curve over time;
* :func:`density` — relationship formation: 2|E| / (|V|(|V|−1)) on the social graph over time;
* :func:`coordination` — for a fact with a place and a time window (the party): who was
  there in the window, among those who knew, and who planned to be;
* :func:`economy` — model calls and tokens per agent per simulated hour, by purpose;
  fallbacks, retries and cache hits counted;
* :func:`interview_knowledge` / :func:`interview_density` — the paper's interview-based
  variants, computed from answers recorded in the ``interviews`` table (``village interview``).

``run_metrics`` computes all of them at once.
"""
from __future__ import annotations

import json
import math
import re
import sqlite3
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union

import numpy as np

from village.summary import connect_ro

DB = Union[str, Path, sqlite3.Connection]  # a run database: a path (opened read-only) or a connection

# Cosine similarity to a fact's description at or above which a memory counts as mentioning
# the fact even without a keyword. Calibrated so that a paraphrase of the fact counts and an
# unrelated observation in the same place does not (docs/metrics.md, "Calibration").
DEFAULT_SIMILARITY = {"all-MiniLM-L6-v2": 0.6, "hash": 0.75}


# ---------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class FactSpec:
    """A ``[[facts]]`` entry of the run's scenario, with the text its similarity is measured to."""

    name: str
    keywords: tuple[str, ...]
    place: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    description: str = ""

    @property
    def has_window(self) -> bool:
        return self.place is not None and self.start is not None and self.end is not None


@dataclass
class RunInfo:
    path: str
    scenario: str
    llm: str
    embedder: str
    embedder_dim: int
    seed: int | None
    seconds_per_step: int
    game_start: datetime
    last_step: int
    status: str
    ablations: list[str]
    agents: dict[int, str]  # id -> name, scenario order
    facts: list[FactSpec]

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    def time_of(self, step: int) -> datetime:
        return self.game_start + timedelta(seconds=step * self.seconds_per_step)

    def step_of(self, t: datetime) -> float:
        return (t - self.game_start).total_seconds() / self.seconds_per_step

    @property
    def game_end(self) -> datetime:
        return self.time_of(self.last_step)

    @property
    def sim_hours(self) -> float:
        return self.last_step * self.seconds_per_step / 3600

    def fact(self, name: str) -> FactSpec:
        for f in self.facts:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.facts) or "none"
        raise KeyError(f"no fact {name!r} in this run's scenario (facts: {known})")


class _Conn:
    """Use a given connection as is, or open a path read-only and close it afterwards."""

    def __init__(self, db: Any):
        self.db = db
        self.own = not isinstance(db, sqlite3.Connection)

    def __enter__(self) -> sqlite3.Connection:
        if self.own:
            if not Path(self.db).is_file():
                raise FileNotFoundError(f"{self.db}: no such run database")
            self.conn = connect_ro(self.db)
        else:
            self.conn = self.db
            self.conn.row_factory = sqlite3.Row
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        if self.own:
            self.conn.close()


def _dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def describe_fact(name: str, keywords: Sequence[str], place: str | None,
                  start: datetime | None, end: datetime | None) -> str:
    """The sentence a fact's similarity is measured to (facts carry no free-text description)."""
    words = " ".join(dict.fromkeys([*keywords, name]))
    text = words
    if place:
        text += f" at {place}"
    if start is not None:
        text += f" on {start.strftime('%B')} {start.day}, {start.year}, from {start.strftime('%H:%M')}"
        if end is not None:
            text += f" to {end.strftime('%H:%M')}"
    return text


def _facts_from_toml(text: str | None) -> list[FactSpec]:
    if not text:
        return []
    raw: list[dict[str, Any]]
    try:  # the scenario's own validation first (typed values) ...
        from village.scenario import parse_scenario

        raw = [f.model_dump() for f in parse_scenario(text).facts]
    except Exception:  # noqa: BLE001 - ... an old run whose scenario no longer validates
        try:
            raw = list(tomllib.loads(text).get("facts", []))
        except tomllib.TOMLDecodeError:
            return []
    out = []
    for f in raw:
        kws = tuple(str(k) for k in f.get("keywords", []) if str(k).strip())
        start, end = _dt(f.get("start")), _dt(f.get("end"))
        desc = str(f.get("description") or "") or describe_fact(f["name"], kws, f.get("place"), start, end)
        out.append(FactSpec(str(f["name"]), kws, f.get("place"), start, end, desc))
    return out


def run_info(db: DB) -> RunInfo:
    """The run's settings, agents and tracked facts (from the scenario stored in the run)."""
    with _Conn(db) as conn:
        try:
            run = conn.execute("SELECT * FROM runs ORDER BY id LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{_name(db)}: not a Village run database ({exc})") from None
        if run is None:
            raise ValueError(f"{_name(db)}: not a Village run database (the runs table is empty)")
        run = dict(run)
        agents = {r[0]: r[1] for r in conn.execute("SELECT id, name FROM agents ORDER BY id")}
        last = conn.execute("SELECT max(step) FROM steps").fetchone()[0]
    try:
        abl = list(json.loads(run.get("ablations") or "[]"))
    except ValueError:
        abl = []
    return RunInfo(
        path=_name(db), scenario=run.get("scenario") or "", llm=run.get("llm") or "",
        embedder=run.get("embedder") or "", embedder_dim=int(run.get("embedder_dim") or 0),
        seed=run.get("seed"), seconds_per_step=int(run.get("seconds_per_step") or 10),
        game_start=_dt(run.get("game_start")) or datetime(2023, 2, 13, 7),
        last_step=int(last if last is not None else (run.get("last_step") or 0)),
        status=run.get("status") or "", ablations=abl, agents=agents,
        facts=_facts_from_toml(run.get("scenario_toml")))


def _name(db: Any) -> str:
    if isinstance(db, sqlite3.Connection):
        row = db.execute("PRAGMA database_list").fetchone()
        return row[2] if row else "<connection>"
    return str(db)


# ---------------------------------------------------------------------------- matching
def keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    """Case-insensitive; each keyword must start at a word boundary and may continue
    ("valentine" matches "Valentine's", "campaign" matches "campaigning"); spaces in a keyword
    match any run of whitespace."""
    parts = [r"\s+".join(re.escape(w) for w in k.split()) for k in keywords if k.strip()]
    if not parts:
        return None
    return re.compile(r"(?<![0-9A-Za-z])(?:" + "|".join(parts) + ")", re.IGNORECASE)


_EMBEDDERS: dict[str, Any] = {}


def embedder_for(name: str, dim: int) -> Any | None:
    """Rebuild the embedder a run recorded (``runs.embedder``), or None if it cannot be.

    ``hash-N`` is rebuilt exactly; ``all-MiniLM-L6-v2`` loads from the bundled package (once
    per process). A dimension that does not match the run's is refused (None)."""
    from memory.embeddings import HashEmbedder, MiniLMEmbedder

    key = f"{name}/{dim}"
    if key in _EMBEDDERS:
        return _EMBEDDERS[key]
    emb: Any = None
    m = re.fullmatch(r"hash-(\d+)", name or "")
    if m and int(m[1]) >= 2:
        emb = HashEmbedder(int(m[1]))
    elif name == MiniLMEmbedder.name:
        try:
            from memory.embeddings import minilm_model_path

            minilm_model_path()
            emb = MiniLMEmbedder(threads=1)
        except RuntimeError:
            emb = None
    if emb is not None and dim and emb.dim != dim:
        emb = None
    _EMBEDDERS[key] = emb
    return emb


def _default_threshold(embedder_name: str) -> float:
    if embedder_name.startswith("hash"):
        return DEFAULT_SIMILARITY["hash"]
    return DEFAULT_SIMILARITY.get(embedder_name, DEFAULT_SIMILARITY["all-MiniLM-L6-v2"])


# ---------------------------------------------------------------------------- diffusion
@dataclass
class Knower:
    """The first evidence that an agent knows a fact."""

    agent_id: int
    agent: str
    step: int
    time: datetime
    source: str  # memory kind (observation, chat, plan, reflection, whisper) or "persona"
    via: str  # "keyword", "embedding" or "persona"
    memory_id: int | None
    similarity: float | None
    text: str


@dataclass
class Diffusion:
    fact: FactSpec
    n_agents: int
    knowers: list[Knower]  # by step, then agent id
    curve: list[tuple[int, datetime, int]]  # (step, game time, agents knowing) at each change
    method: str  # "keywords" or "keywords+embedding"
    embedder: str | None
    threshold: float | None
    last_step: int

    def known_at(self, step: int) -> int:
        return sum(1 for k in self.knowers if k.step <= step)

    def knew_by(self, step: int) -> list[str]:
        return [k.agent for k in self.knowers if k.step <= step]

    @property
    def initial(self) -> int:
        return self.known_at(0)

    @property
    def final(self) -> int:
        return len(self.knowers)

    @property
    def initial_fraction(self) -> float:
        return self.initial / self.n_agents if self.n_agents else 0.0

    @property
    def final_fraction(self) -> float:
        return self.final / self.n_agents if self.n_agents else 0.0

    def since(self, agent: str) -> Knower | None:
        return next((k for k in self.knowers if k.agent == agent), None)


def diffusion(db: DB, fact: str | FactSpec | None = None, *, method: str = "auto",
              embedder: Any = "auto", threshold: float | None = None,
              persona: bool = True) -> Diffusion:
    """Who knows ``fact`` and since when, from memory evidence.

    A memory mentions the fact when a keyword matches its description, or (``method`` "auto"
    or "embedding", and an embedder is available) when the cosine similarity of its stored
    embedding to the fact's description reaches ``threshold``. ``embedder="auto"`` rebuilds
    the run's own embedder (``runs.embedder``); pass an embedder object to use another of the
    same dimension, or ``method="keywords"`` to use keywords only. With ``persona``, a resident
    whose background/currently/routine names the fact knows it from step 0.
    An agent knows the fact from its first mentioning memory (the ``step`` it was recorded).
    """
    if method not in ("auto", "keywords", "embedding"):
        raise ValueError(f"method: {method!r} (expected auto, keywords or embedding)")
    with _Conn(db) as conn:
        info = run_info(conn)
        spec = _pick_fact(info, fact)
        pat = keyword_pattern(spec.keywords) if method != "embedding" else None
        emb = None
        if method != "keywords":
            emb = (embedder_for(info.embedder, info.embedder_dim) if embedder == "auto" else embedder)
            if emb is not None and info.embedder_dim and getattr(emb, "dim", None) != info.embedder_dim:
                raise ValueError(f"embedder {getattr(emb, 'name', emb)!r} has dim {emb.dim}; "
                                 f"the run's memories are {info.embedder_dim}-d ({info.embedder})")
            if emb is None and method == "embedding":
                raise ValueError(f"cannot rebuild the run's embedder {info.embedder!r}; "
                                 "use method='keywords' or pass an embedder")
        thr = threshold if threshold is not None else (_default_threshold(getattr(emb, "name", info.embedder))
                                                        if emb is not None else None)
        ref = None
        if emb is not None:
            ref = np.asarray(emb.embed([spec.description])[0], dtype=np.float32)
            ref /= max(float(np.linalg.norm(ref)), 1e-12)

        first: dict[int, Knower] = {}
        rows = conn.execute("SELECT id, agent_id, step, kind, description, embedding FROM memories"
                            " ORDER BY step, agent_id, id")
        for r in rows:
            aid = r["agent_id"]
            if aid in first:  # rows come by step: the first mention is kept
                continue
            text = r["description"] or ""
            via, sim = None, None
            if pat is not None and pat.search(text):
                via = "keyword"
            if ref is not None and r["embedding"] is not None:
                vec = np.frombuffer(r["embedding"], dtype="<f4")
                if vec.shape[0] == ref.shape[0]:
                    n = float(np.linalg.norm(vec))
                    sim = float(vec @ ref) / n if n > 0 else 0.0
                    if via is None and thr is not None and sim >= thr:
                        via = "embedding"
            if via is None:
                continue
            name = info.agents.get(aid, f"agent {aid}")
            first[aid] = Knower(aid, name, int(r["step"]), info.time_of(int(r["step"])), r["kind"],
                                via, r["id"], sim, text)
        if persona and pat is not None:  # a persona that names the fact: known from the start
            for r in conn.execute("SELECT id, name, background, currently, routine FROM agents"):
                if r["id"] in first and first[r["id"]].step == 0:
                    continue  # a seeded memory is the better evidence
                for col in ("currently", "background", "routine"):
                    text = r[col] or ""
                    if pat.search(text):
                        first[r["id"]] = Knower(r["id"], r["name"], 0, info.game_start, "persona",
                                                "persona", None, None, text)
                        break
    knowers = sorted(first.values(), key=lambda k: (k.step, k.agent_id))
    curve = _curve([k.step for k in knowers], info)
    used = ("keywords+embedding" if (ref is not None and pat is not None)
            else "embedding" if ref is not None else "keywords")
    return Diffusion(spec, info.n_agents, knowers, curve, used,
                     getattr(emb, "name", None) if emb is not None else None, thr, info.last_step)


def _pick_fact(info: RunInfo, fact: str | FactSpec | None) -> FactSpec:
    if isinstance(fact, FactSpec):
        return fact
    if fact is None:
        if not info.facts:
            raise KeyError("this run's scenario declares no [[facts]]")
        return info.facts[0]
    return info.fact(fact)


def _curve(steps: list[int], info: RunInfo) -> list[tuple[int, datetime, int]]:
    """(step, time, count) at step 0, at every change, and at the last step."""
    counts: dict[int, int] = defaultdict(int)
    for s in steps:
        counts[s] += 1
    out, n = [], 0
    for s in sorted(set(counts) | {0, info.last_step}):
        n += counts.get(s, 0)
        out.append((s, info.time_of(s), n))
    return out


# ---------------------------------------------------------------------------- density
@dataclass
class Edge:
    a: str
    b: str
    since: int  # first step the edge exists
    kind: str  # how it began: "seeded" or "conversation"
    conversations: int  # conversations by the end


@dataclass
class Density:
    n_agents: int
    edges: list[Edge]
    curve: list[tuple[int, datetime, int, float]]  # (step, time, |E|, density) at each change
    kinds: tuple[str, ...] | None

    @property
    def initial(self) -> float:
        return self.curve[0][3] if self.curve else 0.0

    @property
    def final(self) -> float:
        return self.curve[-1][3] if self.curve else 0.0

    @property
    def edges_initial(self) -> int:
        return self.curve[0][2] if self.curve else 0

    @property
    def edges_final(self) -> int:
        return self.curve[-1][2] if self.curve else 0

    def at(self, step: int) -> float:
        d = 0.0
        for s, _t, _e, dens in self.curve:
            if s > step:
                break
            d = dens
        return d


def graph_density(edges: int, n: int) -> float:
    """2|E| / (|V|(|V|−1)), 0 for fewer than two agents."""
    return 2 * edges / (n * (n - 1)) if n > 1 else 0.0


def density(db: DB, *, kinds: Sequence[str] | None = None) -> Density:
    """Network density over time on the recorded social graph (``social_edges``).

    An undirected edge exists from the first step it is recorded (a seeded relationship at
    step 0, or a first conversation). ``kinds`` restricts which rows create edges, e.g.
    ``["conversation"]`` for the relationships formed during the run only."""
    with _Conn(db) as conn:
        info = run_info(conn)
        rows = conn.execute("SELECT step, a, b, kind, conversations FROM social_edges ORDER BY step, a, b")
        edges: dict[tuple[int, int], Edge] = {}
        for r in rows:
            key = (min(r["a"], r["b"]), max(r["a"], r["b"]))
            if key[0] == key[1] or key[0] not in info.agents or key[1] not in info.agents:
                continue
            if key in edges:
                edges[key].conversations = max(edges[key].conversations, int(r["conversations"] or 0))
                continue
            if kinds is not None and r["kind"] not in kinds:
                continue
            edges[key] = Edge(info.agents[key[0]], info.agents[key[1]], int(r["step"]), r["kind"],
                              int(r["conversations"] or 0))
    n = info.n_agents
    counts: dict[int, int] = defaultdict(int)
    for e in edges.values():
        counts[e.since] += 1
    curve, m = [], 0
    for s in sorted(set(counts) | {0, info.last_step}):
        m += counts.get(s, 0)
        curve.append((s, info.time_of(s), m, graph_density(m, n)))
    return Density(n, sorted(edges.values(), key=lambda e: (e.since, e.a, e.b)), curve,
                   tuple(kinds) if kinds is not None else None)


# ---------------------------------------------------------------------------- coordination
@dataclass
class Attendance:
    fact: FactSpec
    window: tuple[int, int]  # steps [first, last] inside the window
    reached: bool  # the run got into the window
    covered: float  # fraction of the window the run covered
    knew: list[str]  # knew by the window's start
    seeded: list[str]  # knew from step 0 (the host, say)
    planned: list[str]  # had a plan entry at the place overlapping the window (anyone)
    present: dict[str, float]  # name -> minutes at the place during the window
    min_minutes: float

    @property
    def attended(self) -> list[str]:
        return [a for a, m in self.present.items() if m > self.min_minutes]

    @property
    def knew_and_came(self) -> list[str]:
        came = set(self.attended)
        return [a for a in self.knew if a in came]

    @property
    def came_without_knowing(self) -> list[str]:
        knew = set(self.knew)
        return [a for a in self.attended if a not in knew]

    @property
    def invited(self) -> list[str]:
        """Knew by the start but not from the start: the paper's "invited"."""
        seeded = set(self.seeded)
        return [a for a in self.knew if a not in seeded]

    @property
    def invited_came(self) -> list[str]:
        came = set(self.attended)
        return [a for a in self.invited if a in came]

    @property
    def planned_knowing(self) -> list[str]:
        knew = set(self.knew)
        return [a for a in self.planned if a in knew]

    @property
    def rate(self) -> float | None:
        """Of those who knew by the start, the fraction who came (None if nobody knew)."""
        return len(self.knew_and_came) / len(self.knew) if self.knew else None


def _in_place(place: str | None, target: str) -> bool:
    return bool(place) and (place == target or place.startswith(target + ":"))


def coordination(db: DB, fact: str | FactSpec | None = None, *, knowledge: Diffusion | None = None,
                 min_minutes: float = 0.0, **diffusion_kw: Any) -> Attendance:
    """For a fact with a place and a time window: who was at the place during the window,
    among those who knew about it by its start (``knowledge``: a :func:`diffusion` result;
    computed if not given), and who had planned to be there.

    Presence comes from ``agent_states`` (change-only: a row holds until the agent's next
    row); a tile inside the place or any of its rooms and objects counts. An agent attends
    with more than ``min_minutes`` there (default: any step)."""
    with _Conn(db) as conn:
        info = run_info(conn)
        spec = _pick_fact(info, fact)
        if not spec.has_window:
            raise ValueError(f"fact {spec.name!r} has no place and time window to attend")
        assert spec.start is not None and spec.end is not None and spec.place is not None
        know = knowledge or diffusion(conn, spec, **diffusion_kw)
        s0 = max(0, math.ceil(info.step_of(spec.start) - 1e-9))
        s1 = math.ceil(info.step_of(spec.end) - 1e-9) - 1  # last step strictly before the end
        s1 = max(s0, s1)
        reached = info.last_step >= s0
        covered = 0.0 if not reached else min(1.0, (min(info.last_step, s1) - s0 + 1) / (s1 - s0 + 1))
        knew = know.knew_by(s0)
        seeded = know.knew_by(0)
        minutes: dict[str, float] = {}
        per_step_min = info.seconds_per_step / 60
        states: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
        for r in conn.execute("SELECT agent_id, step, place FROM agent_states ORDER BY agent_id, step"):
            states[r["agent_id"]].append((int(r["step"]), r["place"]))
        for aid, rows in states.items():
            total = 0
            for i, (step, place) in enumerate(rows):
                nxt = rows[i + 1][0] if i + 1 < len(rows) else info.last_step + 1
                lo, hi = max(step, s0), min(nxt - 1, s1, info.last_step)
                if hi >= lo and _in_place(place, spec.place):
                    total += hi - lo + 1
            if total:
                minutes[info.agents.get(aid, f"agent {aid}")] = total * per_step_min
        planned: list[str] = []
        ws, we = spec.start.isoformat(timespec="seconds"), spec.end.isoformat(timespec="seconds")
        for r in conn.execute("SELECT DISTINCT agent_id, place FROM plans WHERE start < ? AND end > ?",
                              (we, ws)):
            name = info.agents.get(r["agent_id"])
            if name and _in_place(r["place"], spec.place) and name not in planned:
                planned.append(name)
    order = {n: i for i, n in enumerate(info.agents.values())}
    planned.sort(key=lambda n: order.get(n, 0))
    present = dict(sorted(minutes.items(), key=lambda kv: order.get(kv[0], 0)))
    return Attendance(spec, (s0, s1), reached, covered, knew, seeded, planned, present, min_minutes)


# ---------------------------------------------------------------------------- model economy
@dataclass
class Economy:
    n_agents: int
    sim_hours: float
    wall_s: float  # summed step durations (excludes setup)
    by_purpose: list[dict[str, Any]]
    by_agent: list[dict[str, Any]]
    totals: dict[str, Any]

    @property
    def wall_s_per_sim_minute(self) -> float | None:
        return self.wall_s / (self.sim_hours * 60) if self.sim_hours > 0 else None

    @property
    def fallback_rate(self) -> float | None:
        c = self.totals["calls"]
        return self.totals["fallbacks"] / c if c else None


_ECON_COLS = ("count(*) AS calls, coalesce(sum(cached), 0) AS cached,"
              " coalesce(sum(prompt_tokens), 0) AS prompt_tokens,"
              " coalesce(sum(completion_tokens), 0) AS completion_tokens,"
              " coalesce(sum(fallback), 0) AS fallbacks, coalesce(sum(retries), 0) AS retries,"
              " coalesce(sum(invalid IS NOT NULL), 0) AS invalid,"
              " coalesce(sum(error IS NOT NULL), 0) AS errors,"
              " coalesce(sum(latency_ms), 0) AS latency_ms")


def economy(db: DB) -> Economy:
    """Model calls and tokens per agent per simulated hour by purpose; fallbacks counted.

    Rates divide by the number of residents and the simulated hours the run covered
    (``last_step × seconds_per_step``); calls made for no agent count in the totals."""
    with _Conn(db) as conn:
        info = run_info(conn)
        wall = conn.execute("SELECT coalesce(sum(duration_ms), 0) FROM steps").fetchone()[0] / 1000
        by_purpose = [dict(r) for r in conn.execute(
            f"SELECT purpose, {_ECON_COLS} FROM llm_calls GROUP BY purpose ORDER BY calls DESC, purpose")]
        by_agent_rows = {r["agent_id"]: dict(r) for r in conn.execute(
            f"SELECT agent_id, {_ECON_COLS} FROM llm_calls GROUP BY agent_id")}
        totals = dict(conn.execute(f"SELECT {_ECON_COLS} FROM llm_calls").fetchone())
    hours, n = info.sim_hours, info.n_agents

    def rates(d: dict[str, Any], agents: int) -> dict[str, Any]:
        d["tokens"] = d["prompt_tokens"] + d["completion_tokens"]
        per = hours * agents
        d["calls_per_agent_hour"] = d["calls"] / per if per > 0 else None
        d["tokens_per_agent_hour"] = d["tokens"] / per if per > 0 else None
        return d

    by_purpose = [rates(d, n) for d in by_purpose]
    by_agent = []
    for aid, name in info.agents.items():
        d = by_agent_rows.get(aid) or {k: 0 for k in ("calls", "cached", "prompt_tokens", "completion_tokens",
                                                      "fallbacks", "retries", "invalid", "errors", "latency_ms")}
        d = rates({**d, "agent": name}, 1)
        d.pop("agent_id", None)
        by_agent.append(d)
    totals = rates(totals, n)
    return Economy(n, hours, float(wall), by_purpose, by_agent, totals)


# ---------------------------------------------------------------------------- interviews (hook)
_NEGATIVE = re.compile(r"^\s*(no\b|nope|not really)|\b(don'?t|do not|didn'?t|did not|haven'?t|have not)"
                       r" (know|heard|hear|recall|remember)|\bnever heard\b|\bnot sure\b|\bno idea\b",
                       re.IGNORECASE)
_POSITIVE = re.compile(r"^\s*(yes|yeah|yep|of course|sure|certainly|indeed)\b|\bi (do )?know\b|\bi'?ve heard\b",
                       re.IGNORECASE)


def affirmative(answer: str, keywords: Sequence[str] = ()) -> bool:
    """Default judge of an interview answer: a clear no is no; a clear yes, or an answer that
    names the fact's keywords without a no, is yes. Pass your own judge (say, a model call)
    to the interview functions for anything finer."""
    if not answer or _NEGATIVE.search(answer):
        return False
    if _POSITIVE.search(answer):
        return True
    pat = keyword_pattern(keywords)
    return bool(pat and pat.search(answer))


@dataclass
class InterviewKnowledge:
    fact: FactSpec
    asked: list[str]  # agents asked about the fact
    knows: list[str]  # of those, who said they know it
    answers: dict[str, str]

    @property
    def fraction(self) -> float | None:
        return len(self.knows) / len(self.asked) if self.asked else None


def interview_knowledge(db: DB, fact: str | FactSpec | None = None, *,
                        judge: Callable[[str, Sequence[str]], bool] = affirmative) -> InterviewKnowledge:
    """The paper's measure: "Do you know about …?" answers recorded with ``village interview``.

    Uses each agent's latest recorded interview whose question names one of the fact's
    keywords (or its name); ``judge(answer, keywords)`` decides yes or no."""
    with _Conn(db) as conn:
        info = run_info(conn)
        spec = _pick_fact(info, fact)
        pat = keyword_pattern([*spec.keywords, spec.name])
        latest: dict[int, str] = {}
        for r in _interviews(conn):
            if pat is not None and pat.search(r["question"] or ""):
                latest[r["agent_id"]] = r["answer"] or ""
    asked = [info.agents[a] for a in info.agents if a in latest]
    answers = {info.agents[a]: latest[a] for a in info.agents if a in latest}
    knows = [n for n in asked if judge(answers[n], spec.keywords)]
    return InterviewKnowledge(spec, asked, knows, answers)


@dataclass
class InterviewDensity:
    n_agents: int
    asked_pairs: int  # ordered (asker, named) pairs with an answer
    knows: list[tuple[str, str]]  # (interviewee, named) who said yes
    edges: int  # undirected pairs where either said yes
    density: float


def interview_density(db: DB, *, judge: Callable[[str, Sequence[str]], bool] = affirmative) -> InterviewDensity:
    """Density over "Do you know X?" answers recorded with ``village interview``: an
    undirected edge where either of the two said yes about the other (latest answer)."""
    with _Conn(db) as conn:
        info = run_info(conn)
        names = {n: a for a, n in info.agents.items()}
        latest: dict[tuple[int, int], str] = {}
        for r in _interviews(conn):
            q = r["question"] or ""
            if not re.search(r"\bknow\b", q, re.IGNORECASE):
                continue
            named = [a for n, a in names.items() if a != r["agent_id"] and re.search(re.escape(n), q, re.I)]
            if len(named) == 1:
                latest[(r["agent_id"], named[0])] = r["answer"] or ""
    knows = [(info.agents[a], info.agents[b]) for (a, b), ans in latest.items() if judge(ans, ())]
    pairs = {frozenset(p) for p in knows}
    n = info.n_agents
    return InterviewDensity(n, len(latest), knows, len(pairs), graph_density(len(pairs), n))


def _interviews(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    try:
        return conn.execute("SELECT agent_id, at_step, question, answer FROM interviews"
                            " ORDER BY at_step, id").fetchall()
    except sqlite3.OperationalError:  # an older run without the table
        return []


# ---------------------------------------------------------------------------- all at once
@dataclass
class RunMetrics:
    info: RunInfo
    diffusion: dict[str, Diffusion]
    density: Density
    coordination: dict[str, Attendance]
    economy: Economy
    interview_knowledge: dict[str, InterviewKnowledge] = field(default_factory=dict)
    interview_density: InterviewDensity | None = None


def run_metrics(db: DB, *, method: str = "auto", embedder: Any = "auto",
                threshold: float | None = None) -> RunMetrics:
    """Every metric of a run, for a report or a comparison."""
    with _Conn(db) as conn:
        info = run_info(conn)
        diff = {f.name: diffusion(conn, f, method=method, embedder=embedder, threshold=threshold)
                for f in info.facts}
        coord = {f.name: coordination(conn, f, knowledge=diff[f.name]) for f in info.facts if f.has_window}
        ik: dict[str, InterviewKnowledge] = {}
        idens = None
        if _interviews(conn):
            for f in info.facts:
                k = interview_knowledge(conn, f)
                if k.asked:
                    ik[f.name] = k
            d = interview_density(conn)
            idens = d if d.asked_pairs else None
        return RunMetrics(info, diff, density(conn), coord, economy(conn), ik, idens)
