"""React: on newly seeing another agent, decide (a constrained choice) to talk, wait or
continue. Only someone who was not in sight and free the step before is considered (not
every step they stay in view, nor every time what they do changes), and not again within
`react_cooldown_minutes` of the last reaction to them; someone who stays in sight is
considered again when a wait for them ends (`wait_over`) or the pair's conversation
cool-down does (`cooled_down`)."""
from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Iterable

from agents.perceive import Event, EventIndex
from agents.plan import hhmm

if TYPE_CHECKING:
    from agents.agent import GenerativeAgent
    from agents.plan import Activity

DECISIONS = ("talk", "wait", "continue")
WAITING = "waiting for "  # the action a "wait" decision starts: WAITING + the other's name


def relationship(agent: "GenerativeAgent", other: "GenerativeAgent") -> str:
    """A relationship summary from the social graph (no model call needed)."""
    g = agent.model.social
    if not g.has_edge(agent.name, other.name):
        return f"{agent.name} does not know {other.name} yet."
    e = g.edges[agent.name, other.name]
    parts = [f"{agent.name} knows {other.name}"]
    if e.get("relation"):
        parts.append(f"({e['relation']})")
    n = e.get("conversations", 0)
    if n:
        parts.append(f"; they have talked {n} time{'s' if n != 1 else ''}")
    return " ".join(parts) + "."


def in_sight(agent: "GenerativeAgent", events: "EventIndex | Iterable[Event]") -> list[Event]:
    """The other agents this agent attends to now, nearest first: perception's rules (vision
    radius, own area, at most `attention_bandwidth`, the same order) without its retention
    filter, so that someone who stays in view stays "seen" although nothing new is noticed."""
    x, y = agent.pos_xy
    area = agent.model.world.area_of(x, y)
    near = events.near(x, y, agent.vision_radius) if isinstance(events, EventIndex) else events
    seen = []
    for ev in near:
        if ev.subject == agent.name or ev.agent_id is None or ev.area != area:
            continue
        d = math.hypot(ev.x - x, ev.y - y)
        if d <= agent.vision_radius:
            seen.append((d, ev.description, ev.y, ev.x, ev.subject, ev))
    seen.sort(key=lambda t: t[:5])
    return [t[5] for t in seen[: agent.attention_bandwidth]]


async def react(agent: "GenerativeAgent") -> None:
    """Consider the nearest newly seen agent who is free to talk; at most one reaction a step."""
    m = agent.model
    if agent.busy or agent.action is None:
        return
    other = None
    for ev in agent.newly_seen:
        cand = m.agent_by_name.get(ev.subject)
        if cand is None or not m.may_talk(agent, cand, thinking=True):
            continue
        last = agent.reacted_to.get(cand.name)
        if last is not None and m.now - last < timedelta(minutes=m.config.react_cooldown_minutes):
            continue
        other, observation = cand, ev.description
        break
    if other is None:
        return
    agent.reacted_to[other.name] = m.now
    # no forced rating first (unlike planning and reflection): records still pending count
    # at the lowest importance in this retrieval (recorded with its scores)
    hits, _ = agent.retrieve(f"{other.name}: {observation}", k=m.config.k_react, purpose="react")
    res = await agent.ask(
        "react",
        {
            "identity": agent.identity(),
            "name": agent.name,
            "time": hhmm(m.now),
            "action": agent.action.description,
            "place": m.world.place_at(*agent.pos_xy) or "the street",
            "observation": observation,
            "relationship": relationship(agent, other),
            "other": other.name,
        },
        hits=hits,
        fallback={"decision": "continue", "reason": "no valid answer from the model"},
    )
    decision, reason = res.value["decision"], res.value["reason"]
    m.log_event(agent, "react", f"{agent.name} sees {other.name}: {decision} ({reason})")
    if decision == "talk":
        agent.intent.talk_to, agent.intent.reason = other.name, reason
    elif decision == "wait":
        here = m.world.destination_at(*agent.pos_xy) or agent.action.place
        agent.replan(f"{WAITING}{other.name}", here, m.config.wait_minutes)


def waited_for(action: "Activity | None") -> str | None:
    """Whom an action was waiting for (a "wait" decision), if it was."""
    if action is None or action.level != "action" or not action.description.startswith(WAITING):
        return None
    return action.description[len(WAITING):]


def cooled_down(agent: "GenerativeAgent", sight: list[Event]) -> list[Event]:
    """Those in sight (and free) with whom a conversation cool-down ends this step: people
    who stay together may talk again once it is over, one reaction a cool-down (their
    reaction cool-down aside)."""
    m = agent.model
    step = timedelta(seconds=m.seconds_per_step)
    out = []
    for ev in sight:
        until = m.cooldowns.get(frozenset((agent.name, ev.subject)))
        if until is not None and until <= m.now < until + step:
            agent.reacted_to.pop(ev.subject, None)
            out.append(ev)
    return out


def wait_over(agent: "GenerativeAgent", name: str, sight: list[Event]) -> None:
    """A wait is over: the one waited for, if still in sight and free, is considered again
    now (as if newly seen, the reaction cool-down aside)."""
    for ev in sight:
        if ev.subject == name:
            agent.reacted_to.pop(name, None)
            agent.newly_seen = [ev] + [e for e in agent.newly_seen if e.subject != name]
            return
