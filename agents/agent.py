"""GenerativeAgent: a Mesa agent whose mind follows the paper's figure.

perceive → remember (rated, embedded) → reflect → plan / react → converse → act.
Each step happens in two halves: `think()` (async, may call the model, touches only this
agent's own memory so agents can think concurrently) and `act()` (applied by the model
in a fixed agent order, so a run never depends on which model call returned first).
Subclass it and override any stage to change how residents think.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable

import mesa
import numpy as np

from agents import converse, perceive, plan, react, reflect
from agents.plan import Activity, hhmm
from agents.prompting import PromptResult
from memory.stream import MemoryRecord, MemoryStream, Scored
from village import checkpoint as ckpt
from village.recorder import ID_SPACE

if TYPE_CHECKING:
    from agents.llm.base import Response
    from village.model import VillageModel
    from village.scenario import Resident


@dataclass
class Intent:
    """What an agent decided this step that needs another agent (resolved after thinking)."""

    talk_to: str | None = None
    reason: str = ""


@dataclass
class _Pending:
    record: MemoryRecord
    call: Any = None
    counts_for_reflection: bool = True


class GenerativeAgent(mesa.Agent):
    model: "VillageModel"

    def __init__(self, model: "VillageModel", resident: "Resident", agent_id: int):
        super().__init__(model)
        self.agent_id = agent_id  # stable across runs (scenario order), unlike Mesa's unique_id
        self.resident = resident
        self.name: str = resident.name
        self.first_name = self.name.split()[0]
        self.home: str = resident.home
        self.vision_radius = resident.vision_radius
        self.attention_bandwidth = resident.attention_bandwidth
        self.recent_observations: deque[str] = deque(maxlen=max(1, resident.retention))
        self._mem_seq = 0
        self.memory = MemoryStream(self.name, model.embedder.dim, next_id=self._next_memory_id)
        self._plan_seq = 0
        self._retrieval_seq = 0
        self.pending: list[_Pending] = []
        self._ratings: dict[str, int] = {}  # description -> importance, as rated by a call
        self.importance_since_reflection = 0.0
        self.last_reflection: datetime | None = None  # when it last reflected (min interval)
        self.day_plan: list[Activity] = []
        self.actions: list[Activity] = []
        self.action: Activity | None = None
        self.planned_day: datetime | None = None
        self.yesterday: str = ""
        self.last_note: str = ""
        self.asleep = True
        self.pos_xy: tuple[int, int] = model.world.start_tile(resident)
        self.path: list[tuple[int, int]] = []
        self._path_goal: str | None = None  # the place `path` leads to (see restore_state)
        self.conversation_id: int | None = None
        self.partner: str | None = None
        self.busy_until_step = -1
        self.intent = Intent()
        self.new_events: list[perceive.Event] = []
        self.reacted_to: dict[str, datetime] = {}
        self.in_view: frozenset[str] = frozenset()  # who was in sight and free last step
        self.newly_seen: list[perceive.Event] = []  # this step's, nearest first
        self.replan_after_conversation: tuple[str, str, int] | None = None

    # -- identity -------------------------------------------------------------------
    def identity(self) -> str:
        r = self.resident
        traits = ", ".join(r.traits)
        return (f"{r.name} is {r.age} years old ({traits}). {r.background} "
                f"Currently: {r.currently}")

    def wake_time(self, t: datetime) -> datetime:
        return datetime.combine(t.date(), self.resident.wake_time())

    def sleep_time(self, t: datetime) -> datetime:
        return datetime.combine(t.date(), self.resident.sleep_time())

    @property
    def action_text(self) -> str:
        if self.asleep:
            return "sleeping"
        if self.conversation_id is not None and self.partner:
            return f"talking with {self.partner}"
        return self.action.description if self.action else "idle"

    @property
    def busy(self) -> bool:
        return self.asleep or self.conversation_id is not None

    # -- memory -----------------------------------------------------------------------
    def _next_memory_id(self) -> int:
        self._mem_seq += 1
        return self.agent_id * ID_SPACE + self._mem_seq

    def remember(self, description: str, kind: str, *, evidence: tuple[int, ...] = (),
                 importance: int | None = None, counts: bool = False) -> MemoryRecord:
        """Add a record now (so it can be cited at once); its importance is rated in a batch
        with others before anything retrieves (see `flush_pending`). A description this
        agent has already had rated takes that rating at once, without a call: its row has
        an importance and no `call_id` (the call is the earlier identical record's)."""
        m = self.model
        reused = self._ratings.get(description) if importance is None else None
        vec = m.embedder.embed([description])[0]
        rec = self.memory.add(description, kind, m.now, importance or reused or 1, vec,
                              evidence=evidence, step=m.steps)
        self.model.record_memory(self, rec, vec, None,
                                 rated=importance is not None or reused is not None)
        if reused is not None:
            if counts:
                self.importance_since_reflection += reused
        elif importance is None:
            self.pending.append(_Pending(rec, counts_for_reflection=counts))
        else:
            self._ratings.setdefault(description, importance)
        return rec

    async def flush_pending(self, force: bool = True) -> None:
        """Rate pending records in one model call (cheaper than one call each): once
        `importance_batch` are pending or the oldest has waited `importance_max_age_minutes`,
        and (`force`) always before anything retrieves. Records with the same description
        are rated once, in the same call; a batch is cut to fit the context window."""
        if not self.pending:
            return
        cfg = self.model.config
        if not force:
            age = (self.model.now - self.pending[0].record.created).total_seconds() / 60
            if len(self.pending) < cfg.importance_batch and age < cfg.importance_max_age_minutes:
                return
        cap = max(20, cfg.importance_batch)
        texts: list[str] = []  # distinct descriptions, in order
        for p in self.pending:
            d = p.record.description
            if d not in texts and d not in self._ratings:
                if len(texts) == cap:
                    break
                texts.append(d)
        while texts:
            variables = {"identity": self.identity(), "name": self.name, "count": len(texts),
                         "memories": "\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))}
            if len(texts) == 1 or self.model.runner.budget("importance", variables) >= 0:
                break
            texts.pop()  # rated in the next call
        res = None
        if texts:
            n = len(texts)
            res = await self.ask(
                "importance", variables, enums={"count": n},
                fallback={"ratings": [3] * n},
                check=lambda v: None if len(v["ratings"]) == n else
                f"expected {n} ratings, got {len(v['ratings'])}",
            )
            for t, score in zip(texts, res.value["ratings"]):
                self._ratings[t] = int(min(10, max(1, score)))
        rest = []
        for p in self.pending:
            imp = self._ratings.get(p.record.description)
            if imp is None:
                rest.append(p)
                continue
            self.memory.set_importance(p.record.id, imp)
            if p.counts_for_reflection:
                self.importance_since_reflection += imp
            rated_now = res is not None and p.record.description in texts
            self.model.record_rating(self, p.record, res.response if rated_now else None)
        self.pending = rest
        if self.pending:
            await self.flush_pending(force)

    def retrieve(self, query: str, *, k: int, purpose: str,
                 kinds: tuple[str, ...] | None = None) -> tuple[list[Scored], int | None]:
        """The paper's retrieval, recorded with its three score components."""
        if len(self.memory) == 0:
            return [], None
        m = self.model
        q = m.embedder.embed([query])[0]
        hits = self.memory.retrieve(q, m.now, k=k, weights=m.config.weights,
                                    kinds=list(kinds) if kinds else None)
        self._retrieval_seq += 1
        rid = self.agent_id * ID_SPACE + self._retrieval_seq
        m.record_retrieval(self, rid, purpose, query, hits)
        return hits, rid

    @staticmethod
    def numbered(hits: list[Scored]) -> str:
        return GenerativeAgent.bulleted([h.record.description for h in hits])

    @staticmethod
    def bulleted(lines: list[str]) -> str:
        return "\n".join(f"- {t}" for t in lines) if lines else "(nothing)"

    # -- model calls --------------------------------------------------------------------
    def fit(self, prompt: str, variables: dict[str, Any], items: list[Any],
            show: Callable[[list[Any]], str], *, drop_first: bool = False
            ) -> tuple[dict[str, Any], list[Any], list[str]]:
        """Fill {memories} with `show(items)`, dropping items until the prompt fits the
        context window: the last (lowest-scored) ones, or with `drop_first` the first (oldest).
        Returns the variables, the items kept and the descriptions dropped."""
        items, dropped = list(items), []
        variables = {**variables, "memories": show(items)}
        while items and self.model.runner.budget(prompt, variables) < 0:
            gone = items.pop(0) if drop_first else items.pop()
            dropped.append(gone if isinstance(gone, str) else gone.record.description)
            variables["memories"] = show(items)
        return variables, items, dropped

    async def ask(self, prompt: str, variables: dict[str, Any], *,
                  hits: list[Scored] | None = None, lines: list[str] | None = None,
                  dropped: Iterable[str] = (), **kw: Any) -> PromptResult:
        """One model call through the prompt runner, fitted to the context window.

        With `hits`, the retrieved memories fill {memories} and the lowest-scored are dropped
        first; with `lines` (oldest first), the oldest are dropped first. What was dropped is
        recorded on the call: never silent truncation."""
        dropped = list(dropped)
        if hits is not None:
            variables, _, gone = self.fit(prompt, variables, hits, self.numbered)
            dropped += gone
        elif lines is not None:
            variables, _, gone = self.fit(prompt, variables, lines, self.bulleted, drop_first=True)
            dropped += gone
        return await self.model.runner.arun(
            prompt, variables, agent=self.name, step=self.model.steps,
            seed=self.model.llm_seed, dropped=tuple(dropped), **kw)

    def record_plan(self, a: Activity, *, parent: int | None = None, memory_id: int | None = None,
                    call: "Response | None" = None, retrieval: int | None = None) -> int:
        self._plan_seq += 1
        pid = self.agent_id * ID_SPACE + self._plan_seq
        self.model.record_plan(self, pid, a, parent, memory_id, call, retrieval)
        return pid

    # -- the step -------------------------------------------------------------------------
    def current_block(self, t: datetime) -> Activity | None:
        for b in self.day_plan:
            if b.covers(t):
                return b
        return None

    async def think(self, events: "perceive.EventIndex | list[perceive.Event]") -> None:
        """Everything this step that may call the model. Touches only this agent's state."""
        m = self.model
        now = m.now
        self.intent = Intent()
        if self.asleep:
            if self.planned_day != now.date() and self.wake_time(now) <= now < self.sleep_time(now):
                await self.wake_up()
            else:
                return
        elif now >= self.sleep_time(now):
            await self.go_to_sleep()
            return
        for w in m.whispers_due(self):
            self.remember(w, "whisper", counts=True)
        if m.config.enabled("observation"):
            self.new_events = perceive.visible_events(self, events)
            for ev in self.new_events:
                self.recent_observations.append(ev.description)
                self.remember(ev.description, "observation", counts=True)
            # who is in sight and free to talk (read from the step-start snapshot): someone
            # counts as newly seen when they come into view or become free (wake up, end a talk)
            busy = m.busy_at_step_start
            sight: list[perceive.Event] = [ev for ev in react.in_sight(self, events)
                                           if ev.subject not in busy]
            self.newly_seen = [ev for ev in sight if ev.subject not in self.in_view]
            self.in_view = frozenset(ev.subject for ev in sight)
            again = [ev for ev in react.cooled_down(self, sight) if ev not in self.newly_seen]
            self.newly_seen += again
        else:
            self.new_events, self.newly_seen, sight = [], [], []
        await self.flush_pending(force=False)
        if m.config.enabled("reflection") and reflect.due(self):
            await reflect.reflect(self)
        if self.conversation_id is not None:
            return
        if self.action is None or now >= self.action.end:
            waited = react.waited_for(self.action)
            await self.next_action()
            if waited:
                react.wait_over(self, waited, sight)
        if self.newly_seen:
            await react.react(self)

    async def wake_up(self) -> None:
        self.asleep = False
        self.planned_day = self.model.now.date()
        self.model.log_event(self, "wake", f"{self.name} wakes up")
        await plan.plan_day(self)
        self.actions = []
        await self.next_action()

    async def go_to_sleep(self) -> None:
        await reflect.summarize_day(self)
        self.asleep = True
        self.in_view, self.newly_seen = frozenset(), []
        self.day_plan, self.actions, self.path = [], [], []
        self.action = Activity(self.model.now, self.model.now, "sleeping", self.home, "action")
        self.model.log_event(self, "sleep", f"{self.name} goes to sleep")

    async def next_action(self) -> None:
        now = self.model.now
        self.actions = [a for a in self.actions if a.end > now]
        if not self.actions:
            await plan.next_actions(self)
        self.action = self.actions.pop(0) if self.actions else None
        if self.action is not None:
            self.model.log_event(self, "action", f"{self.name} starts: {self.action.description}",
                                 self.action.place)

    def replan(self, description: str, place: str, minutes: int) -> None:
        """A reaction changes the rest of the current window: do this now, then resume."""
        now = self.model.now
        end = now + timedelta(minutes=minutes)
        self.action = Activity(now, end, description, place, "action")
        self.action.plan_id = self.record_plan(self.action)
        self.actions = [a for a in self.actions if a.end > end]
        if self.actions and self.actions[0].start < end:
            self.actions[0].start = end

    def act(self) -> None:
        """Move one tile along the path to the current action's place (never a free-text place)."""
        world = self.model.world
        if self.asleep:
            target = self.home
        elif self.conversation_id is not None or self.action is None:
            return
        else:
            target = self.action.place
        if world.place_contains(target, self.pos_xy):
            self.path = []
            return
        if not self.path or self.path[-1] not in world.tiles_set(target):
            self.path = world.path(self.pos_xy, target)
            self._path_goal = target
        if self.path:
            self.pos_xy = self.path.pop(0)

    # -- checkpoints (village/checkpoint.py) -------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """What `restore_state` needs that the recorded tables do not hold, as JSON-able
        parts; each part is stored only when it changed. Subclasses add keys (parts) —
        fresh values (copies), never live objects, or a change would go unnoticed.

        Not here because the tables hold it: the memory stream (`memories`), the position
        (`agent_states`), the conversation (`conversations`). The path is not stored
        either: it is the shortest path from the position to `_path_goal` (paths are
        deterministic, and a walked path's rest is the shortest path from where one is)."""
        now = self.model.now
        keep = timedelta(minutes=self.model.config.react_cooldown_minutes)
        return {
            "plan": {
                "day_plan": [ckpt.activity(a) for a in self.day_plan],
                "actions": [ckpt.activity(a) for a in self.actions],
                "action": ckpt.activity(self.action),
                "planned_day": ckpt.dt(self.planned_day),
                "yesterday": self.yesterday,
                "last_note": self.last_note,
                "replan": (list(self.replan_after_conversation)
                           if self.replan_after_conversation else None),
            },
            "mind": {
                "seq": [self._mem_seq, self._plan_seq, self._retrieval_seq],
                "pending": [[p.record.id, p.counts_for_reflection] for p in self.pending],
                "importance_since_reflection": self.importance_since_reflection,
                "last_reflection": ckpt.dt(self.last_reflection),
                "recent_observations": list(self.recent_observations),
                # expired entries act as absent ones: leave them out
                "reacted_to": {k: ckpt.dt(v) for k, v in sorted(self.reacted_to.items())
                               if now - v < keep},
                "in_view": sorted(self.in_view),
                "asleep": self.asleep,
                "conversation_id": self.conversation_id,
                "partner": self.partner,
                "busy_until_step": self.busy_until_step,
                "path_goal": self._path_goal if self.path else None,
            },
        }

    def restore_state(self, parts: dict[str, Any], memories: "list[ckpt.MemoryRow]",
                      pos: tuple[int, int]) -> None:
        """Inverse of `checkpoint_state`, given the recorded memories and position."""
        plan_, mind = parts["plan"], parts["mind"]
        self._mem_seq, self._plan_seq, self._retrieval_seq = (int(x) for x in mind["seq"])
        pending = {int(i): bool(c) for i, c in mind["pending"]}
        ids = iter([r.id for r in memories])
        stream = MemoryStream(self.name, self.model.embedder.dim, next_id=lambda: next(ids))
        self._ratings = {}
        for r in memories:
            vec = np.frombuffer(r.embedding, dtype="<f4")
            unrated = r.id in pending or r.importance is None
            if not unrated:
                self._ratings.setdefault(r.description, r.importance)
            rec = stream.add(r.description, r.kind, r.created, 1 if unrated else r.importance,
                             vec, evidence=r.evidence, step=r.step)
            if r.last_accessed is not None and r.last_accessed > r.created:
                stream._touch([rec.index], r.last_accessed)
        stream._next_id = self._next_memory_id
        self.memory = stream
        self.pending = [_Pending(stream.get(i), counts_for_reflection=c) for i, c in pending.items()]
        self.importance_since_reflection = mind["importance_since_reflection"]
        last = mind.get("last_reflection")  # absent in checkpoints written before it existed
        self.last_reflection = ckpt.to_dt(last) if last else None
        self.recent_observations = deque(mind["recent_observations"],
                                         maxlen=self.recent_observations.maxlen)
        self.reacted_to = {k: ckpt.to_dt(v) for k, v in mind["reacted_to"].items()}
        self.in_view = frozenset(mind.get("in_view", ()))
        self.newly_seen = []
        self.asleep = bool(mind["asleep"])
        self.conversation_id = mind["conversation_id"]
        self.partner = mind["partner"]
        self.busy_until_step = mind["busy_until_step"]
        self.pos_xy = (int(pos[0]), int(pos[1]))
        self._path_goal = mind["path_goal"]
        self.path = self.model.world.path(self.pos_xy, self._path_goal) if self._path_goal else []
        self.day_plan = [ckpt.to_activity(a) for a in plan_["day_plan"]]
        self.actions = [ckpt.to_activity(a) for a in plan_["actions"]]
        self.action = ckpt.to_activity(plan_["action"])
        self.planned_day = ckpt.to_date(plan_["planned_day"])
        self.yesterday = plan_["yesterday"]
        self.last_note = plan_["last_note"]
        r = plan_["replan"]
        self.replan_after_conversation = (r[0], r[1], int(r[2])) if r else None
        self.intent = Intent()
        self.new_events = []

    # expose the conversation stage to subclasses
    converse = staticmethod(converse.converse)

    def __repr__(self) -> str:
        return f"<GenerativeAgent {self.name} at {self.pos_xy}>"


def describe_event(agent: GenerativeAgent) -> str:
    place = agent.model.world.place_at(*agent.pos_xy) or "the street"
    return f"{agent.name} is {agent.action_text} at {place}"


__all__ = ["GenerativeAgent", "Intent", "describe_event"]
