"""VillageModel: the Mesa model — the clock, the world, the residents and one step of the town.

A step (paper: 10 s of game time) runs in three phases:
1. think: every agent perceives, remembers, reflects, plans and reacts. Their model calls
   go out concurrently (asyncio); each agent touches only its own memory.
2. converse: pairs who decided to talk (resolved in a fixed agent order) hold their
   conversations, concurrently across pairs.
3. act: agents move one tile in a fixed order; the recorder commits the step.
So a seeded run with a cached model is reproducible whatever the timing of the calls.

Each committed step carries a checkpoint (village/checkpoint.py): `VillageModel(...,
checkpoint=village.checkpoint.load(conn, step))` rebuilds the town as it stood after that
step, and stepping it on gives what the uninterrupted run would have (resume, fork).
"""
from __future__ import annotations

import asyncio
import operator
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable

import mesa
import networkx as nx

from agents.agent import GenerativeAgent, describe_event
from agents.converse import Conversation
from agents.llm.wrappers import Accounting
from agents.perceive import Event, EventIndex
from agents.prompting import PromptRunner
from village import checkpoint as ckpt
from village.config import SimConfig
from village.recorder import Recorder, iso
from village.scenario import Scenario
from village.world import World

if TYPE_CHECKING:
    from agents.llm.base import LanguageModel, Response
    from agents.plan import Activity
    from memory.embeddings import Embedder
    from memory.stream import MemoryRecord, Scored


class _Unrated:
    """A memory record seen by the recorder before its importance is rated."""

    def __init__(self, rec: "MemoryRecord"):
        self._rec = rec
        self.importance = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rec, name)


class _Resume:
    """A coroutine started by hand (`coro.send(None)`) that stopped at `yielded` (the
    future it waits for), to be finished by a Task: the Task waits for that future, then
    resumes the coroutine exactly as if it had run in the Task from the start."""

    def __init__(self, coro: Any, yielded: Any):
        self.coro, self.yielded = coro, yielded

    def __await__(self) -> Any:
        try:
            sent = yield self.yielded
        except BaseException as exc:  # cancelled while waiting: pass it on
            return (yield from _throw(self.coro, exc))
        return (yield from _resume(self.coro, sent))

    async def run(self) -> Any:
        return await self


def _resume(coro: Any, value: Any) -> Any:
    """Drive `coro` on from a value sent into it (a generator: `yield from` it)."""
    return (yield from _drive(coro, lambda: coro.send(value)))


def _throw(coro: Any, exc: BaseException) -> Any:
    return (yield from _drive(coro, lambda: coro.throw(exc)))


def _drive(coro: Any, first: Any) -> Any:
    try:
        yielded = first()
    except StopIteration as done:
        return done.value
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            yielded = coro.send(sent)
        except StopIteration as done:
            return done.value


class VillageModel(mesa.Model):
    """The town. `llm` is a ready LanguageModel (wrappers already composed around it)."""

    agent_class: type[GenerativeAgent] = GenerativeAgent

    def __init__(
        self,
        scenario: Scenario,
        *,
        llm: "LanguageModel",
        embedder: "Embedder",
        recorder: Recorder | None = None,
        config: SimConfig | None = None,
        accounting: Accounting | None = None,
        seed: int | None = None,
        checkpoint: "ckpt.Checkpoint | None" = None,
    ) -> None:
        self.seed_value = scenario.scenario.seed if seed is None else seed
        super().__init__(seed=self.seed_value)
        self.scenario = scenario
        self.config = config or SimConfig()
        self.world = World.from_scenario(scenario)
        self.start_time: datetime = scenario.scenario.start
        self.seconds_per_step: int = scenario.scenario.seconds_per_step
        self.embedder = embedder
        self.llm = llm
        self.llm_seed = self.seed_value
        self.accounting = accounting or Accounting()
        self.runner = PromptRunner(llm, accounting=self.accounting)
        self.recorder = recorder
        self._loop = asyncio.new_event_loop()
        self.busy_at_step_start: frozenset[str] = frozenset()
        self.conversations: dict[int, Conversation] = {}
        self._next_conversation_id = 1
        self.cooldowns: dict[frozenset[str], datetime] = {}
        self.talked_at: dict[str, datetime] = {}  # each agent's last conversation (from cooldowns)
        self.social = nx.Graph()
        self._last_states: dict[int, tuple] = {}
        self._whispers = sorted(scenario.whispers, key=lambda w: (w.at, w.resident))
        self.residents: list[GenerativeAgent] = []
        for i, res in enumerate(scenario.residents, start=1):
            self.residents.append(self.agent_class(self, res, agent_id=i))
        self.agent_by_name = {a.name: a for a in self.residents}
        # perception cells about twice the widest vision radius: a look visits ≤ 2×2..3×3
        self._event_cell = max(4, 2 * max((int(a.vision_radius) for a in self.residents), default=4))
        self._saved: dict[tuple[int, str], str] = {}  # checkpoint parts as last written
        self._saved_values: dict[tuple[int, str], Any] = {}  # ... and as last seen
        # Wall time of the steps and of recording them (states, checkpoint, commit): the
        # recorder's share of a run, reported at its end.
        self.stepping_s = 0.0
        self.recording_s = 0.0
        self._fingerprints: dict[int, tuple] = {}  # agent id -> _agent_fingerprint at last write
        self._fingerprint_ok: bool | None = None  # it covers checkpoint_state's keys
        self._inject: list[tuple[str, str]] = []  # whispers given at the next step (fork)
        for a in self.residents:
            self.social.add_node(a.name)
        if checkpoint is not None:
            self._restore(checkpoint)
            return
        for res in scenario.residents:
            for other, relation in (res.relationships or {}).items():
                self._edge(res.name, other, kind="seeded", relation=relation, count=False)
        if recorder is not None:
            recorder.add_agents(
                {"id": a.agent_id, "name": a.name, "age": a.resident.age,
                 "traits": list(a.resident.traits), "background": a.resident.background,
                 "currently": a.resident.currently, "routine": a.resident.routine,
                 "home": a.home} for a in self.residents)
        for a in self.residents:
            for text in a.resident.memories:
                a.remember(text, "observation", importance=None)
        self._gather(a.flush_pending() for a in self.residents)
        self._record_states()
        self._commit(0.0)

    # -- time --------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.start_time + timedelta(seconds=self.steps * self.seconds_per_step)

    def steps_for(self, *, hours: float | None = None, steps: int | None = None) -> int:
        if steps is not None:
            return steps
        return int(round((hours or 0) * 3600 / self.seconds_per_step))

    # -- the step -------------------------------------------------------------------------------
    def step(self) -> None:
        t0 = time.perf_counter()
        self._deliver_injected()
        events = EventIndex(self.visible_world_events(), cell=self._event_cell)
        # Agents think concurrently: what they read of each other is this snapshot, never
        # state another agent's think changes mid-step (that would depend on call timing).
        self.busy_at_step_start = frozenset(a.name for a in self.residents if a.busy)
        self._gather(a.think(events) for a in self.residents)
        self._start_conversations()
        for a in self.residents:  # fixed order
            self._apply_replan(a)
            a.act()
        self._end_conversations()
        t1 = time.perf_counter()
        self._record_states()
        self._commit((time.perf_counter() - t0) * 1000)
        t2 = time.perf_counter()
        self.stepping_s += t2 - t0
        self.recording_s += t2 - t1

    def _gather(self, coros: Iterable[Any]) -> list[Any]:
        """Run coroutines concurrently on the model's own loop; results in input order.

        Each coroutine is started in input order and runs until it first waits; most
        agents' `think` never waits (nothing to do, or an instant backend) and finishes
        there, without a Task or a turn of the loop. Only those that wait are wrapped in
        Tasks (resumed where they stopped) and gathered — the order in which the code
        runs is the one `asyncio.gather` gives, minus its scheduling."""
        async def gather() -> list[Any]:
            results: list[Any] = []
            waiting: list[tuple[int, Any]] = []
            for i, coro in enumerate(coros):
                try:
                    yielded = coro.send(None)
                except StopIteration as done:
                    results.append(done.value)
                    continue
                except BaseException:
                    for _, t in waiting:
                        t.cancel()
                    raise
                results.append(None)
                waiting.append((i, asyncio.ensure_future(_Resume(coro, yielded).run())))
            if waiting:
                for (i, _), value in zip(waiting, await asyncio.gather(*(t for _, t in waiting))):
                    results[i] = value
            return results

        return self._loop.run_until_complete(gather())

    def visible_world_events(self) -> list[Event]:
        """What can be seen this step: every awake agent doing something, where they are."""
        out = []
        for a in self.residents:
            x, y = a.pos_xy
            out.append(Event(a.name, describe_event(a), x, y, self.world.area_of(x, y), a.agent_id))
        return out

    # -- conversations -----------------------------------------------------------------------
    def may_talk(self, a: GenerativeAgent, b: GenerativeAgent, *, thinking: bool = False) -> bool:
        """Whether a may start a conversation with b. While thinking (concurrently), b's
        state is read from the step-start snapshot."""
        b_busy = b.name in self.busy_at_step_start if thinking else b.busy
        if a is b or a.busy or b_busy:
            return False
        until = self.cooldowns.get(frozenset((a.name, b.name)))
        if until is not None and self.now < until:
            return False
        gap = timedelta(minutes=min(self.config.talk_gap_minutes, self.config.cooldown_minutes))
        return all(self.now - self.talked_at.get(x.name, datetime.min) >= gap for x in (a, b))

    def _start_conversations(self) -> None:
        taken: set[str] = set()
        pairs: list[Conversation] = []
        for a in self.residents:  # fixed order decides who talks with whom
            other = self.agent_by_name.get(a.intent.talk_to or "")
            if other is None or a.name in taken or other.name in taken or not self.may_talk(a, other):
                continue
            taken.update((a.name, other.name))
            conv = Conversation(self._next_conversation_id, a, other, self.steps,
                                self.world.place_at(*a.pos_xy) or "the street",
                                reason=a.intent.reason)
            self._next_conversation_id += 1
            a.conversation_id = other.conversation_id = conv.id
            a.partner, other.partner = other.name, a.name
            self.log_event(a, "conversation", f"{a.name} starts talking with {other.name}", conv.place)
            pairs.append(conv)
        if not pairs:
            return
        self._gather(c.a.converse(c) for c in pairs)
        for conv in pairs:
            self.conversations[conv.id] = conv
            self.cooldowns[frozenset((conv.a.name, conv.b.name))] = (
                self.now + timedelta(minutes=self.config.cooldown_minutes))
            self.talked_at[conv.a.name] = self.talked_at[conv.b.name] = self.now
            self._edge(conv.a.name, conv.b.name, kind="conversation")
            self._record_conversation(conv)

    def _end_conversations(self) -> None:
        for a in self.residents:
            cid = a.conversation_id
            if cid is not None and self.steps >= self.conversations[cid].step_end:
                a.conversation_id = a.partner = None

    def _apply_replan(self, a: GenerativeAgent) -> None:
        if a.replan_after_conversation and a.conversation_id is None:
            desc, place, minutes = a.replan_after_conversation
            a.replan_after_conversation = None
            a.replan(desc, place, minutes)

    def _edge(self, a: str, b: str, *, kind: str, relation: str | None = None,
              count: bool = True) -> None:
        if a not in self.agent_by_name or b not in self.agent_by_name:
            return
        if not self.social.has_edge(a, b):
            self.social.add_edge(a, b, conversations=0, relation=relation, kind=kind,
                                 since=self.steps)
        e = self.social.edges[a, b]
        if relation and not e.get("relation"):
            e["relation"] = relation
        if count:
            e["conversations"] += 1
            e["last_step"] = self.steps
        if self.recorder is not None:
            ia, ib = sorted((self.agent_by_name[a].agent_id, self.agent_by_name[b].agent_id))
            self.recorder.add("social_edges", (self.steps, ia, ib, kind, e["conversations"],
                                               e.get("relation")))

    # -- whispers (the paper's "inner voice") ------------------------------------------------
    def whispers_due(self, agent: GenerativeAgent) -> Iterable[str]:
        lo = self.now - timedelta(seconds=self.seconds_per_step)
        for w in self._whispers:
            if w.resident == agent.name and lo < w.at <= self.now:
                self.log_event(agent, "whisper", w.text)
                yield w.text

    def inject_whisper(self, agent: str, text: str) -> None:
        """Give `agent` an inner-voice memory at the start of the next step, asleep or not
        (`village fork --whisper`); kept in the checkpoint until it is delivered."""
        if agent not in self.agent_by_name:
            raise KeyError(agent)
        self._inject.append((agent, text))

    def _deliver_injected(self) -> None:
        todo, self._inject = self._inject, []
        for name, text in todo:
            a = self.agent_by_name[name]
            self.log_event(a, "whisper", text)
            a.remember(text, "whisper", counts=True)

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """The model's part of a checkpoint (agent id 0); see GenerativeAgent.checkpoint_state."""
        now = self.now
        return {
            "model": {
                "next_conversation_id": self._next_conversation_id,
                # expired cool-downs act as absent ones: leave them out
                "cooldowns": sorted([*sorted(pair), ckpt.dt(t)]
                                    for pair, t in self.cooldowns.items() if t > now),
                "calls": sorted(self.recorder.call_counters().items()) if self.recorder else [],
                "inject": [list(w) for w in self._inject],
            },
            "rng": {"random": self.random.getstate(),  # a tuple: cheap to compare
                    "numpy": self.rng.bit_generator.state},
            "social": {"nodes": list(self.social.nodes),
                       "edges": sorted([*sorted((a, b)), dict(d)]  # copies, not live dicts
                                       for a, b, d in self.social.edges(data=True))},
        }

    def restore_state(self, parts: dict[str, Any]) -> None:
        m = parts["model"]
        self._next_conversation_id = int(m["next_conversation_id"])
        self.cooldowns = {frozenset((a, b)): ckpt.to_dt(t) for a, b, t in m["cooldowns"]}
        # a talk gap is at most the cool-down, so the live cool-downs hold every talk it needs
        keep = timedelta(minutes=self.config.cooldown_minutes)
        self.talked_at = {}
        for pair, until in self.cooldowns.items():
            for name in pair:
                self.talked_at[name] = max(self.talked_at.get(name, datetime.min), until - keep)
        if self.recorder is not None:
            self.recorder.set_call_counters({int(k): int(v) for k, v in m["calls"]})
        self._inject = [(a, t) for a, t in m.get("inject", [])]
        version, state, gauss = parts["rng"]["random"]
        self.random.setstate((version, tuple(state), gauss))
        self.rng.bit_generator.state = parts["rng"]["numpy"]
        self.social = nx.Graph()
        self.social.add_nodes_from(parts["social"]["nodes"])
        for a, b, d in parts["social"]["edges"]:
            self.social.add_edge(a, b, **d)

    def _restore(self, ck: "ckpt.Checkpoint") -> None:
        self.steps = ck.step
        by_id = {a.agent_id: a for a in self.residents}
        self.restore_state(ck.parts[0])
        for a in self.residents:
            a.restore_state(ck.parts[a.agent_id], ck.memories.get(a.agent_id, []),
                            ck.positions.get(a.agent_id, a.pos_xy))
        for cid, c in ck.conversations.items():
            conv = Conversation(cid, by_id[c["a"]], by_id[c["b"]], c["step_start"], c["place"])
            conv.lines = [(by_id[s], text, None) for s, text in c["lines"]]
            conv.ended_by = c["ended_by"]
            self.conversations[cid] = conv
        self._last_states = dict(ck.last_states)
        self._saved = dict(ck.texts)

    def save_checkpoint(self) -> None:
        """Commit the current state again at the current step (after changing it between
        steps, e.g. a fork's whispers); only the parts that changed are written."""
        self._commit(0.0)

    def _checkpoint(self) -> None:
        """Buffer the parts that changed since they were last written (same transaction).

        Most agents change nothing most steps: an agent whose class keeps
        `GenerativeAgent.checkpoint_state` is skipped when `_agent_fingerprint` — a cheap
        tuple of exactly what that method reads — equals the last one (no state built, no
        JSON). Other parts are compared as values before they are encoded."""
        todo: list[tuple[int, dict[str, Any]]] = [(0, self.checkpoint_state())]
        fps = self._fingerprints
        now = self.now
        keep = timedelta(minutes=self.config.react_cooldown_minutes)
        for a in self.residents:
            if type(a).checkpoint_state is not _BASE_CHECKPOINT_STATE:
                todo.append((a.agent_id, a.checkpoint_state()))
                continue
            fp = _agent_fingerprint(a, now, keep)
            if fps.get(a.agent_id) == fp:
                continue
            state = a.checkpoint_state()
            if self._fingerprint_ok is None:
                self._fingerprint_ok = _fingerprint_covers(state)
            if self._fingerprint_ok:
                fps[a.agent_id] = fp
            todo.append((a.agent_id, state))
        for aid, parts in todo:
            for part, value in parts.items():
                key = (aid, part)
                if key in self._saved_values and self._saved_values[key] == value:
                    continue
                self._saved_values[key] = value
                text = ckpt.dumps(value)
                if self._saved.get(key) != text:
                    self._saved[key] = text
                    self.recorder.add("checkpoints", (self.steps, aid, part, text))

    # -- recording -------------------------------------------------------------------------------
    def log_event(self, agent: GenerativeAgent | None, kind: str, description: str,
                  place: str | None = None) -> None:
        if self.recorder is not None:
            self.recorder.event(self.steps, agent.agent_id if agent else None, kind, description, place)

    def record_memory(self, agent: GenerativeAgent, rec: "MemoryRecord", vec: Any,
                      call_id: int | None, *, rated: bool = True) -> None:
        """A record is written when it is made; an unrated one has importance NULL until
        `record_rating` (so 'who knew since when' never waits for a rating)."""
        if self.recorder is not None:
            row = rec if rated else _Unrated(rec)
            self.recorder.memory(agent.agent_id, row, vec, call_id)

    def record_rating(self, agent: GenerativeAgent, rec: "MemoryRecord",
                      call: "Response | None") -> None:
        if self.recorder is not None:
            call_id = call.extra.get("call_id") if call is not None else None
            self.recorder.rated(rec.id, rec.importance, call_id)

    def record_retrieval(self, agent: GenerativeAgent, rid: int, purpose: str, query: str,
                         hits: "list[Scored]") -> None:
        if self.recorder is None:
            return
        self.recorder.add("retrievals", (rid, self.steps, agent.agent_id, purpose, query))
        for rank, h in enumerate(hits):
            self.recorder.add("retrieval_hits", (rid, rank, h.record.id, float(h.recency),
                                                 float(h.importance), float(h.relevance),
                                                 float(h.score)))

    def record_plan(self, agent: GenerativeAgent, pid: int, a: "Activity", parent: int | None,
                    memory_id: int | None, call: "Response | None", retrieval: int | None) -> None:
        if self.recorder is None:
            return
        call_id = call.extra.get("call_id") if call is not None else None
        self.recorder.add("plans", (pid, agent.agent_id, self.steps, a.level, parent, iso(a.start),
                                    iso(a.end), a.description, a.place, memory_id, call_id,
                                    retrieval))

    def _record_conversation(self, conv: Conversation) -> None:
        if self.recorder is None:
            return
        self.recorder.add("conversations", (conv.id, conv.a.agent_id, conv.b.agent_id,
                                            conv.step_start, conv.step_end, conv.place,
                                            len(conv.lines), conv.ended_by))
        for i, (speaker, text, resp) in enumerate(conv.lines):
            call_id = resp.extra.get("call_id") if resp is not None else None
            self.recorder.add("utterances", (conv.id, i, conv.step_start + i, speaker.agent_id,
                                             text, call_id))

    def _record_states(self) -> None:
        if self.recorder is None:
            return
        for a in self.residents:
            x, y = a.pos_xy
            action_place = a.action.place if (a.action and not a.asleep) else None
            state = (x, y, self.world.place_at(x, y), a.action_text, action_place, None,
                     a.conversation_id, int(a.asleep))
            if self._last_states.get(a.agent_id) != state:  # change-only storage
                self._last_states[a.agent_id] = state
                self.recorder.add("agent_states", (a.agent_id, self.steps, *state))

    def _commit(self, duration_ms: float) -> None:
        if self.recorder is not None:
            self._checkpoint()
            self.recorder.commit_step(self.steps, self.now, duration_ms)

    def finish(self) -> None:
        """Rate what is still pending so no record is left without importance; commit."""
        if any(a.pending for a in self.residents):
            self._gather(a.flush_pending() for a in self.residents)
            self._commit(0.0)

    def close(self) -> None:
        self._loop.close()


_BASE_CHECKPOINT_STATE = GenerativeAgent.checkpoint_state
_ACTIVITY_FIELDS = operator.attrgetter("start", "end", "description", "place", "level", "plan_id")
# The keys of `GenerativeAgent.checkpoint_state` that `_agent_fingerprint` covers. If that
# method ever returns another key, fingerprints are not used (every agent is checkpointed
# every step, as before): a new part of the state can never be skipped unseen.
_FINGERPRINTED = {
    "plan": frozenset({"day_plan", "actions", "action", "planned_day", "yesterday", "last_note",
                       "replan"}),
    "mind": frozenset({"seq", "pending", "importance_since_reflection", "last_reflection",
                       "recent_observations",
                       "reacted_to", "asleep", "conversation_id", "partner", "busy_until_step",
                       "path_goal", "in_view"}),
}


def _fingerprint_covers(state: dict[str, Any]) -> bool:
    """Whether `_agent_fingerprint` covers every key of this `checkpoint_state()`."""
    return state.keys() == _FINGERPRINTED.keys() and all(
        isinstance(v, dict) and v.keys() <= _FINGERPRINTED[k] for k, v in state.items())


def _agent_fingerprint(a: GenerativeAgent, now: datetime, keep: timedelta) -> tuple:
    """Everything `GenerativeAgent.checkpoint_state` reads, by value, as a flat tuple
    (C-level attribute gets and tuple compares, ~10x cheaper than building the state):
    equal fingerprints mean equal states. Includes what the state derives from the clock
    (which `reacted_to` entries are still live)."""
    act = a.action
    reacted = a.reacted_to
    return (
        tuple(map(_ACTIVITY_FIELDS, a.day_plan)),
        tuple(map(_ACTIVITY_FIELDS, a.actions)),
        None if act is None else _ACTIVITY_FIELDS(act),
        a.planned_day, a.yesterday, a.last_note, a.replan_after_conversation,
        a._mem_seq, a._plan_seq, a._retrieval_seq,
        tuple([(p.record.id, p.counts_for_reflection) for p in a.pending]) if a.pending else (),
        a.importance_since_reflection, a.last_reflection,
        tuple(a.recent_observations),
        tuple([(k, v) for k, v in reacted.items() if now - v < keep]) if reacted else (),
        a.asleep, a.conversation_id, a.partner, a.busy_until_step,
        a._path_goal if a.path else None,
        a.in_view,
    )
